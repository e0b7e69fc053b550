"""Damaged and hostile files, and pages that would fetch from elsewhere: each refused at its line with a fix.

Real Pillow files (tests/damaged.py makes them damaged), real `blog check` and `blog serve` processes, the
real cleaning process with its bounds. Each test fails on the tree before the fixes it names.
"""

from __future__ import annotations

import io
import os
import random
import re
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import pytest
from PIL import Image

from blog import pipeline
from blog.builds import load_current
from blog.content import ContentProblems, check_site
from blog.files import MAX_BYTES, check_files
from processes import ROOT, Server, free_port
from tests.conftest import make_app, make_config
from tests.damaged import _garbage, _tiff_garbage, chunk, jpeg_insert, png_by_hand, png_insert, webp_replace
from tests.pictures import add_picture_entry, plot_png

FOLDER = "log/2026-10-03-hostile"
HEAD = '---\ntitle: "Hostile"\ndate: 2026-10-03T10:00:00Z\ntags: [web]\nsummary: "Files and fetches."\n---\n\n'
FIRST = 8  # the body's first line: links start there, one a line with a blank line between


def entry_with(content: Path, files: dict[str, bytes], body: str = "") -> dict[str, int]:
    """Write an entry whose folder holds the files, each linked on a line of its own; return each one's line."""
    folder = content / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    lines, text = {}, ""
    for number, (name, data) in enumerate(files.items()):
        (folder / name).write_bytes(data)
        lines[name] = FIRST + 2 * number
        text += f"![Picture number {number}]({name})\n\n"
    (folder / "index.md").write_text(HEAD + text + body)
    return lines


def blog_check(content: Path, timeout: float = 300, command: str = "check") -> tuple[int, str]:
    """Run the real `blog check` (or another command) in a process of its own; return its status and output."""
    done = subprocess.run([sys.executable, "-m", "blog.cli", "--content", str(content), "--data",
                           str(content.parent / "data"), command], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, check=False)
    return done.returncode, done.stdout + done.stderr


def problem_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(r"^\S+:\d+: ", line)]


def saved(image: Image.Image, kind: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def noise(size: tuple[int, int]) -> Image.Image:
    """A photo's worth of detail: what makes a lossy file large."""
    return Image.merge("RGB", [Image.effect_noise(size, 40).convert("L"), Image.linear_gradient("L").resize(size),
                               Image.effect_noise(size, 20).convert("L")])


def with_garbage_exif(kind: str) -> bytes:
    """A real picture whose EXIF block is garbage, as the issue found them (a PNG eXIf, a WebP EXIF chunk)."""
    rng, exif = random.Random(7), Image.Exif()
    exif[0x010F] = "PrivateCam"
    picture = Image.new("RGB", (30, 20), (10, 200, 30))
    if kind == "png":
        return png_insert(b"eXIf", _garbage(40))(rng, saved(picture, "PNG"))
    if kind == "webp":
        return webp_replace(b"EXIF", _garbage(40))(rng, saved(picture, "WEBP", quality=80, exif=exif))
    return jpeg_insert(0xE1, _tiff_garbage)(rng, saved(picture, "JPEG"))


@pytest.mark.parametrize("kind", ["png", "webp", "jpg"])
def test_a_picture_with_garbage_exif_is_served_without_it(site_dir: Path, tmp_path: Path, kind: str) -> None:
    data = with_garbage_exif(kind)
    entry_with(site_dir, {f"shot.{kind}": data})
    code, output = blog_check(site_dir)
    assert code == 0 and "Traceback" not in output, output
    assert f"content/{FOLDER}/shot.{kind}: stripped EXIF (unreadable)" in output
    client = make_app(make_config(site_dir, tmp_path / "data")).test_client()
    page = client.get("/log/hostile").get_data(as_text=True)
    src = re.search(rf'src="(/files/[0-9a-f]{{16}}/shot\.{kind})"', page)
    assert src, page
    served = Image.open(io.BytesIO(client.get(src[1], buffered=True).data))
    served.load()
    assert "exif" not in served.info and len(served.getexif()) == 0


def test_a_damaged_picture_is_reported_at_its_line_never_as_a_traceback(site_dir: Path, tmp_path: Path) -> None:
    plot = plot_png(tmp_path / "plot.png")
    wrong_crc = bytearray(plot)
    wrong_crc[29] ^= 0xFF  # the IHDR chunk's checksum
    files = {"cut.png": plot[:-40], "crc.png": bytes(wrong_crc), "cut.jpg": with_garbage_exif("jpg")[:-30],
             "liar.png": plot[:16] + struct.pack(">II", 10000, 10000) + plot[24:29] +
             struct.pack(">I", zlib.crc32(plot[12:16] + struct.pack(">II", 10000, 10000) + plot[24:29])) +
             plot[33:]}
    lines = entry_with(site_dir, files)
    code, output = blog_check(site_dir)
    assert code == 1 and "Traceback" not in output, output
    index = f"content/{FOLDER}/index.md"
    expected = {"cut.png": "is cut short", "crc.png": "is damaged: the checksum of its IHDR chunk is wrong",
                "cut.jpg": "is cut short", "liar.png": "is 10000x10000 pixels, more than 24 million"}
    for name, what in expected.items():
        found = [line for line in problem_lines(output) if line.startswith(f"{index}:{lines[name]}: ")]
        assert found and f"{name} {what}" in found[0] and re.search(r" \(.+\)$", found[0]), (name, output)
    assert "not an image Pillow can read" not in output  # the size is named, not a reader's failure
    code, output = blog_check(site_dir, command="reload")
    assert code == 1 and "Traceback" not in output and "keeps serving its last good build" in output, output
    assert f"{index}:{lines['cut.png']}: content/{FOLDER}/cut.png is cut short" in output


def test_the_builder_survives_a_picture_with_garbage_exif(site_dir: Path, tmp_path: Path) -> None:
    from blog.builder import Builder

    cfg = make_config(site_dir, tmp_path / "data")
    first = pipeline.publish(cfg).id
    entry_with(site_dir, {"garbage.webp": with_garbage_exif("webp"), "garbage.png": with_garbage_exif("png")})
    builder = Builder(cfg, os.getpid())
    builder.nudged = True
    builder.step()  # raised SyntaxError, and the builder process died
    current = load_current(cfg.builds_dir)
    assert current.id != first and {a.name for a in current.files.assets.values()} == {"garbage.webp", "garbage.png"}


def _page(server: Server, path: str) -> str:
    with urllib.request.urlopen(server.url + path, timeout=10) as answer:
        return answer.read().decode()


def test_blog_serve_starts_on_the_last_good_build_and_names_the_damaged_picture(site_dir: Path,
                                                                                 tmp_path: Path) -> None:
    add_picture_entry(site_dir)
    data = tmp_path / "data"
    (tmp_path / "blog.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_") or k == "BLOG_SEMANTIC"}

    def serve() -> Server:
        port = free_port()
        args = [sys.executable, "-m", "blog.cli", "--content", str(site_dir), "--data", str(data), "serve",
                "--no-tor", "--workers", "1", "--bind", f"127.0.0.1:{port}"]
        return Server(args, tmp_path / "serve.log", port=port, env=env, cwd=tmp_path)

    with serve() as server:  # the last good build, made and served
        assert "photo.jpg" in _page(server, "/log/rack-pictures")
    first = load_current(data / "builds").id
    folder = site_dir / "log/2026-10-25-rack-pictures"
    (folder / "garbage.webp").write_bytes(with_garbage_exif("webp"))  # raised SyntaxError out of cleaning
    (folder / "cut.png").write_bytes(plot_png(tmp_path / "whole.png")[:-40])  # truncated
    index = folder / "index.md"
    index.write_text(index.read_text() + "\n![A picture with garbage EXIF](garbage.webp)\n\n![A cut plot](cut.png)\n")
    cut_line = index.read_text().splitlines().index("![A cut plot](cut.png)") + 1
    with serve() as server:  # started again: it exited 1 and nothing listened
        html = _page(server, "/log/rack-pictures")
        assert "photo.jpg" in html and "cut.png" not in html and "garbage.webp" not in html
        log = server.log(since_start=True)
    assert load_current(data / "builds").id == first
    assert f"content/log/2026-10-25-rack-pictures/index.md:{cut_line}: " in log
    assert "cut.png is cut short" in log and "serving the last good build" in log and "Traceback" not in log


VECTORS = {  # what the issue found accepted, and more: (Markdown, the line of it that fetches)
    "reference": ("![chart][c]\n\n[c]: https://tracker.example/pixel.png\n", 3),
    "multiline": ('<img alt="x"\n     src="https://tracker.example/a.png">\n', 2),
    "srcset": ('<img alt="x" src="data:," srcset="https://tracker.example/b.png 2x">\n', 1),
    "picture": ('<picture>\n<source srcset="https://tracker.example/c.webp">\n<img alt="x" src="data:,">\n'
                '</picture>\n', 2),
    "svg-image": ('<svg width="10" height="10">\n<image href="https://tracker.example/d.png"/>\n</svg>\n', 2),
    "svg-use": ('<svg width="10" height="10"><use xlink:href="https://tracker.example/e.svg#x"/></svg>\n', 1),
    "entity": ('<img alt="x" src="&#47;&#47;tracker.example/f.png">\n', 1),
    "video-poster": ('Before.\n\n<video poster="https://tracker.example/g.jpg"></video>\n', 3),
    "style-url": ('<span style="background:u\\72l(https://tracker.example/h.png)">x</span>\n', 1),
    "backslash": ('<img alt="x" src="/\\tracker.example/i.png">\n', 1),
    "table-background": ('<table background="https://tracker.example/k.png"><tr><td>x</td></tr></table>\n', 1),
    "ping": ('<a href="https://example.org/" ping="https://tracker.example/l">x</a>\n', 1),
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_what_a_page_would_fetch_from_elsewhere_is_refused_at_its_line(site_dir: Path, name: str) -> None:
    markdown, line = VECTORS[name]
    entry_with(site_dir, {}, "Text first.\n\n" + markdown)
    site, problems = check_site(site_dir)
    assert site is not None, problems
    _files, problems = check_files(site)
    found = [p for p in problems if "tracker.example" in p.message]
    assert len(found) == 1, problems
    assert found[0].line == FIRST + 1 + line and "from another site" in found[0].message, found[0]
    assert re.match(r"^\S+:\d+: .+ \(.+\)$", str(found[0]))


def test_no_feed_carries_a_remote_image(site_dir: Path, tmp_path: Path) -> None:
    cfg = make_config(site_dir, tmp_path / "data")
    client = make_app(cfg).test_client()
    entry_with(site_dir, {}, "A chart:\n\n" + VECTORS["reference"][0])
    with pytest.raises(ContentProblems, match=r"index\.md:12: remote image https://tracker\.example/pixel\.png"):
        pipeline.publish(cfg)
    for path in ("/feed.atom", "/feed.rss", "/llms-full.txt"):
        assert "tracker.example" not in client.get(path).get_data(as_text=True), path


def test_a_script_url_inside_a_page_is_refused_even_split_by_a_tab(site_dir: Path) -> None:
    entry_with(site_dir, {}, '<svg width="9" height="9"><a xlink:href="java&#9;script:alert(1)"><rect/></a></svg>\n')
    site, problems = check_site(site_dir)
    assert site is not None, problems
    _files, problems = check_files(site)
    assert [p.line for p in problems if "script URL" in p.message] == [FIRST], problems


SVG_HEAD = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40" height="20">'
DOCTYPES = {  # what matplotlib and Graphviz write before their <svg>
    "matplotlib.svg": '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG '
                      '1.1//EN"\n  "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n',
    "graphviz.svg": '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG '
                    '1.1//EN"\n "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n<!-- Generated by graphviz -->\n',
}


def test_svgs_from_matplotlib_and_graphviz_are_served_and_script_urls_are_refused(site_dir: Path) -> None:
    files = {name: (head + SVG_HEAD + '<rect width="40" height="20"/></svg>\n').encode()
             for name, head in DOCTYPES.items()}
    for number, split in enumerate(("&#9;", "&#10;", "&#13;", " &#x0A; ", "&#x09;&#x09;")):
        files[f"script{number}.svg"] = (SVG_HEAD + f'<a xlink:href="JaVa{split}ScRiPt:alert(1)"><rect/></a>'
                                        '</svg>').encode()
    files["subset.svg"] = ('<!DOCTYPE svg [<!ATTLIST svg onload CDATA "alert(1)">]>' + SVG_HEAD + "</svg>").encode()
    files["entity.svg"] = (DOCTYPES["matplotlib.svg"] + SVG_HEAD + "<text>a&nbsp;b</text></svg>").encode()
    lines = entry_with(site_dir, files)
    site, problems = check_site(site_dir)
    assert site is not None, problems
    found, problems = check_files(site)
    by_line = {p.line: p.message for p in problems}
    assert set(by_line) == {lines[name] for name in files if name not in DOCTYPES}, problems
    assert all("carries script in the attribute href" in by_line[lines[f"script{n}.svg"]] for n in range(5))
    assert "DOCTYPE with its own entities or declarations" in by_line[lines["subset.svg"]]
    assert "uses the entity &nbsp;" in by_line[lines["entity.svg"]]
    for name in DOCTYPES:
        assert found.assets[f"{FOLDER}/{name}"].width == 40


def test_a_served_copy_is_never_larger_than_its_source_nor_the_limit(site_dir: Path, tmp_path: Path) -> None:
    lossy = saved(noise((2400, 1800)), "WEBP", quality=40)
    exif = Image.Exif()
    exif[0x0112] = 6  # turned: the pixels must be turned and encoded again
    turned = saved(noise((3200, 2200)), "JPEG", quality=75, subsampling=2, exif=exif)
    assert len(lossy) < MAX_BYTES and 1.6 * 2**20 < len(turned) < MAX_BYTES, (len(lossy), len(turned))
    entry_with(site_dir, {"lossy.webp": lossy, "turned.jpg": turned})
    client = make_app(make_config(site_dir, tmp_path / "data")).test_client()
    page = client.get("/log/hostile").get_data(as_text=True)
    served = {name: client.get(src, buffered=True).data
              for src, name in re.findall(r'src="(/files/[0-9a-f]{16}/(\w+\.\w+))"', page)}
    assert len(served["lossy.webp"]) <= len(lossy)  # the same picture bytes, without metadata
    assert len(served["turned.jpg"]) <= MAX_BYTES
    upright = Image.open(io.BytesIO(served["turned.jpg"]))
    assert upright.size == (2200, 3200) and len(upright.getexif()) == 0


def _inflated(png: bytes) -> tuple[int, bytes]:
    """Return a PNG's bit depth and its picture data, inflated."""
    position, depth, data = 8, 0, b""
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position:position + 8])
        if kind == b"IHDR":
            depth = png[position + 16]
        elif kind == b"IDAT":
            data += png[position + 8:position + 8 + length]
        position += 12 + length
    return depth, zlib.decompress(data)


def test_a_16_bit_png_keeps_its_precision(site_dir: Path, tmp_path: Path) -> None:
    deep = png_by_hand(64, 48, colour=2, depth=16)
    tagged = deep[:33] + chunk(b"tEXt", b"Author\0alice") + deep[33:]
    entry_with(site_dir, {"deep.png": tagged})
    client = make_app(make_config(site_dir, tmp_path / "data")).test_client()
    src = re.search(r'src="(/files/[0-9a-f]{16}/deep\.png)"', client.get("/log/hostile").get_data(as_text=True))
    assert src
    served = client.get(src[1], buffered=True).data
    assert b"alice" not in served
    assert _inflated(served) == _inflated(deep) and _inflated(served)[0] == 16


def test_messages_say_what_is_wrong(site_dir: Path) -> None:
    long_name = "a" * 296 + ".png"
    lines = entry_with(site_dir, {"big.png": b"\x89PNG" + b"\0" * (MAX_BYTES + 10)})
    index = site_dir / FOLDER / "index.md"
    index.write_text(index.read_text() + f"![A long name]({long_name})\n")
    code, output = blog_check(site_dir)
    assert code == 1 and "Traceback" not in output, output
    assert re.search(rf"index\.md:{lines['big.png']}: .*big\.png is 2\.0 MiB.*\(scale the image down", output)
    assert any(f"{long_name}: a file name longer than 255 bytes (give the file a shorter name)" in line
               for line in problem_lines(output)), output


def test_a_nul_in_the_content_never_reaches_the_terminal(site_dir: Path) -> None:
    log = site_dir / "log" / "2026-10-04-nul.md"
    log.write_text(HEAD.replace("2026-10-03", "2026-10-04").replace("summary:", '"a\\0b": 1\nsummary:') + "Hi.\n")
    code, output = blog_check(site_dir)
    assert code == 1 and "\0" not in output, output
    assert "unknown front-matter key 'a\\x00b'" in output


def test_a_fifo_is_refused_without_being_opened(site_dir: Path) -> None:
    entry_with(site_dir, {}, "[the data](data.txt)\n")
    os.mkfifo(site_dir / FOLDER / "data.txt")
    pipe = site_dir / "log" / "2026-10-05-pipe.md"
    for named, expected in (("data.txt", rf"index\.md:{FIRST}: .*data\.txt is not a regular file"),
                            ("*.md", r"content/log/2026-10-05-pipe\.md:1: is not a regular file")):
        if named == "*.md":
            os.mkfifo(pipe)
        try:
            code, output = blog_check(site_dir, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"blog check hung on a FIFO named {named}")
        assert code == 1 and re.search(expected, output), output


def test_ten_thousand_links_are_placed_on_their_lines_in_linear_time(site_dir: Path) -> None:
    folder = site_dir / FOLDER
    folder.mkdir(parents=True)
    (folder / "data.txt").write_text("one line\n")
    body = "".join(f"Run {n}: [the data](data.txt)\n" for n in range(10_000))
    (folder / "index.md").write_text(HEAD + body + "![](data.txt)\n")
    site, problems = check_site(site_dir)
    assert site is not None, problems
    started = time.monotonic()
    _files, problems = check_files(site)
    took = time.monotonic() - started
    assert [p.line for p in problems] == [FIRST + 10_000] and "no alt text" not in problems[0].message
    assert took < 30, f"{took:.1f} s for 10,000 links (it took 101 s when each link's line was searched anew)"


def test_the_costly_files_of_an_attack_are_turned_away_before_decoding(site_dir: Path) -> None:
    from bench.cleaning import beyond

    costly = {f"costly{number}.{'webp' if how == 'webp' else 'jpg'}": data
              for number, (how, data) in enumerate(beyond().values())}
    lines = entry_with(site_dir, costly)
    site, problems = check_site(site_dir)
    assert site is not None, problems
    started = time.monotonic()
    _files, problems = check_files(site)
    took = time.monotonic() - started
    by_line = {p.line: p.message for p in problems}
    assert "is 6300x6300 pixels, more than 24 million" in by_line[lines["costly0.webp"]]
    assert "is 6000x6000 pixels, more than 24 million" in by_line[lines["costly1.jpg"]]
    assert "has more than 100 scans" in by_line[lines["costly2.jpg"]]
    assert took < 30, f"{took:.1f} s (these took 5 s, 1.7 GB and 62 s to clean before they were bounded)"


def test_the_cleaning_process_is_killed_past_its_deadline_and_held_to_its_memory(tmp_path: Path) -> None:
    import threading

    from bench.cleaning import WEBP, _plot, _saved, _turned
    from blog.files.cleaning_process import Cleaner
    from blog.files.fileset import Unfit

    turned = _saved(_plot((4900, 3260)), "PNG", exif=_turned())  # 16 megapixels to decode, turn and encode
    webp = _saved(_plot(WEBP), "WEBP", lossless=True, quality=0, method=0)
    with Cleaner(seconds=0.3) as cleaner:
        with pytest.raises(Unfit, match=r"took more than 0\.3 s to clean"):
            cleaner.clean(turned, "png")
        assert cleaner.clean(b"still cleaning\n", "text").data == b"still cleaning\n"  # a new process took over
    with Cleaner(memory=64 * 2**20) as cleaner, pytest.raises(Unfit) as refused:
        cleaner.clean(webp, "webp")
    assert re.search(r"cleaning it would hold \d+ MiB, more than the 6\d MiB the cleaning process may",
                     refused.value.message)
    with Cleaner(memory=2 * 2**20) as cleaner:  # the file itself does not fit: MemoryError, and a new process
        with pytest.raises(Unfit, match=r"needs more than 2 MiB of memory to clean"):
            cleaner.clean(webp + bytes(MAX_BYTES - len(webp)), "webp")
        assert cleaner.clean(b"next\n", "text").data == b"next\n"
        with pytest.raises(Unfit, match=r"needs more than 2 MiB of memory to clean"):
            cleaner.clean(bytes(32 * 2**20), "text")  # too large even to be read whole: answered, not a death
        assert cleaner.clean(b"after\n", "text").data == b"after\n"
    with Cleaner() as cleaner:
        cleaner.clean(b"warm\n", "text")
        killer = threading.Timer(0.2, lambda: os.kill(cleaner.pid or 0, 9))
        killer.start()
        with pytest.raises(Unfit, match=r"made the image decoder fail \(signal SIGKILL\)"):
            cleaner.clean(turned, "png")
        killer.join()
