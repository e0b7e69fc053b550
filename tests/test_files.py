"""Pictures and files beside an entry: checked, stripped of metadata, served by hash, linked everywhere the entry is."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from blog import pipeline
from blog.builds import load_current
from blog.cli import cli
from blog.content import ContentProblems
from blog.web.files import FILE_POLICY
from tests.conftest import make_app, make_config
from tests.pictures import (
    PHOTO_COLOUR,
    PHOTO_SIZE,
    PLOT_COLOUR,
    PLOT_SIZE,
    SERIAL,
    add_picture_entry,
    near,
    photo_with_gps,
)

ENTRY = "/log/rack-pictures"
IMG = re.compile(r'<img alt="(?P<alt>[^"]*)" src="(?P<src>/files/(?P<hash>[0-9a-f]{16})/(?P<name>[\w.-]+))"'
                 r' width="(?P<w>\d+)" height="(?P<h>\d+)" loading="lazy">')
ONION = "pqvmwfyjugiqx5f7cxqv3twlpgfw2z4zrw7udy7bidfivxlwoqu4pbyd.onion"  # a well-formed v3 address


@pytest.fixture
def pictures(site_dir: Path) -> Path:
    add_picture_entry(site_dir)
    return site_dir


@pytest.fixture
def client(pictures: Path, tmp_path: Path):
    return make_app(make_config(pictures, tmp_path / "data")).test_client()


def run(content: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--content", str(content), "--data", str(content.parent / "data"), *args])
    return result.exit_code, result.output


def images(html: str) -> dict[str, re.Match]:
    return {found["name"]: found for found in IMG.finditer(html)}


def policy(response) -> dict[str, str]:
    directives = [d.strip().split(" ", 1) for d in response.headers["Content-Security-Policy"].split(";")]
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


def test_the_page_shows_both_images_with_their_size_at_hashed_urls(client) -> None:
    html = client.get(ENTRY).get_data(as_text=True)
    shown = images(html)
    assert set(shown) == {"photo.jpg", "plot.png"}, html
    assert (int(shown["photo.jpg"]["w"]), int(shown["photo.jpg"]["h"])) == PHOTO_SIZE
    assert (int(shown["plot.png"]["w"]), int(shown["plot.png"]["h"])) == PLOT_SIZE
    assert shown["photo.jpg"]["alt"] == "The rack, seen from the front, cables on the left"
    assert re.search(r'<a href="/files/[0-9a-f]{16}/nginx\.conf">nginx\.conf</a>', html)
    assert 'src="photo.jpg"' not in html and "../../files" not in html


def test_the_served_jpeg_has_no_metadata_and_is_not_the_original(client, pictures: Path) -> None:
    original = (pictures / "log/2026-10-25-rack-pictures/photo.jpg").read_bytes()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)  # the test photo does carry a GPS position
    found = images(client.get(ENTRY).get_data(as_text=True))["photo.jpg"]
    response = client.get(found["src"], buffered=True)
    assert response.status_code == 200
    served = response.data
    assert served != original
    assert hashlib.sha256(served).hexdigest()[:16] == found["hash"]
    image = Image.open(io.BytesIO(served))
    assert image.format == "JPEG" and image.size == PHOTO_SIZE
    assert len(image.getexif()) == 0 and not image.getexif().get_ifd(0x8825)
    assert not {"exif", "xmp", "comment", "photoshop"} & set(image.info), image.info
    assert not [marker for marker, _ in image.applist if marker not in ("APP0",)], image.applist
    for secret in (SERIAL.encode(), b"PrivateCam", b"taken at home", b"2026:10:25"):
        assert secret not in served
    assert near(image.convert("RGB").getpixel((5, 5)), PHOTO_COLOUR)


def test_files_are_answered_immutable_typed_nosniff_and_sandboxed(client) -> None:
    shown = images(client.get(ENTRY).get_data(as_text=True))
    for name, media_type in (("photo.jpg", "image/jpeg"), ("plot.png", "image/png")):
        response = client.get(shown[name]["src"], buffered=True)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == media_type
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert set(response.headers["Cache-Control"].replace(" ", "").split(",")) >= \
            {"public", "max-age=31536000", "immutable"}
        assert response.headers["Content-Security-Policy"] == FILE_POLICY
        assert response.headers["ETag"] == f'"{shown[name]["hash"]}"'
        assert "Server" not in response.headers and "Set-Cookie" not in response.headers
        again = client.get(shown[name]["src"], headers={"If-None-Match": response.headers["ETag"]}, buffered=True)
        assert again.status_code == 304
    plot = Image.open(io.BytesIO(client.get(shown["plot.png"]["src"], buffered=True).data))
    assert plot.format == "PNG" and plot.info == {} and getattr(plot, "text", {}) == {}
    assert near(plot.convert("RGB").getpixel((3, 3)), PLOT_COLOUR, 0)
    text = client.get(re.search(r'href="(/files/[0-9a-f]{16}/nginx\.conf)"',
                                client.get(ENTRY).get_data(as_text=True))[1], buffered=True)
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8" and b"listen 127.0.0.1" in text.data
    name = shown["photo.jpg"]["src"].rsplit("/", 2)
    assert client.get(f"/files/{'0' * 16}/photo.jpg").status_code == 404
    assert client.get(f"/files/{name[1]}/plot.png").status_code == 404  # the hash names the bytes and the name


def test_img_src_self_only_on_pages_that_show_images(client) -> None:
    for _ in range(2):  # Flask's answer, then the fast path's replay of it
        assert policy(client.get(ENTRY))["img-src"] == "'self' data:"
        for path in ("/", "/log/verify-config", "/pages/about", "/tags/tor", "/archive", "/search?q=tor"):
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert policy(answer)["img-src"] == "data:", path
            assert "<img" not in answer.get_data(as_text=True), path
    assert client.application.extensions["blog.fastpath"].replayed > 0


def test_feeds_link_files_absolutely_on_the_channel_they_are_read_through(pictures: Path, tmp_path: Path) -> None:
    cfg = make_config(pictures, tmp_path / "data", base_url="https://log.example.org", onion_address=ONION)
    client = make_app(cfg).test_client()
    for feed in ("/feed.atom", "/feed.rss"):
        clearnet = client.get(feed).get_data(as_text=True)
        assert re.search(r'src="https://log\.example\.org/files/[0-9a-f]{16}/photo\.jpg"', clearnet), feed
        assert re.search(r'href="https://log\.example\.org/files/[0-9a-f]{16}/nginx\.conf"', clearnet)
        onion = client.get(feed, headers={"Host": ONION}).get_data(as_text=True)
        assert re.search(rf'src="http://{ONION}/files/[0-9a-f]{{16}}/plot\.png"', onion), feed
        assert "log.example.org" not in onion  # never a clearnet URL in an onion answer


def test_the_markdown_mirror_and_llms_full_link_the_served_files(pictures: Path, tmp_path: Path) -> None:
    client = make_app(make_config(pictures, tmp_path / "data", onion_address=ONION)).test_client()
    for path in (f"{ENTRY}.md", "/llms-full.txt"):
        text = client.get(path, headers={"Host": ONION}).get_data(as_text=True)
        assert re.search(rf"!\[The rack[^\]]*\]\(http://{ONION}/files/[0-9a-f]{{16}}/photo\.jpg\)", text), path
        assert re.search(rf"\[nginx\.conf\]\(http://{ONION}/files/[0-9a-f]{{16}}/nginx\.conf\)", text), path
        assert "](photo.jpg)" not in text


def test_check_reports_what_it_stripped_from_which_file(pictures: Path) -> None:
    code, output = run(pictures, "check")
    assert code == 0, output
    folder = "content/log/2026-10-25-rack-pictures"
    assert f"{folder}/photo.jpg: stripped EXIF (GPS position, camera serial, capture time, camera make and model)" \
           ", XMP, comment" in output
    assert f"{folder}/plot.png: stripped text (Author, Software)" in output
    assert "3 linked files" in output


BAD = """---
title: "Bad links"
date: 2026-10-26T09:00:00Z
tags: [hardware]
summary: "Every way a linked file can be wrong."
---

![Missing](gone.png)

![](photo.jpg)

[A PDF](slides.pdf)

[Too big](big.log)

![A diagram](diagram.svg)

![Fake](fake.png)

[Out](../../../secret.txt)

![Elsewhere](../2026-10-25-rack-pictures/plot.png)

[A symbolic link](linked.conf)
"""


def test_check_refuses_bad_files_with_the_line_that_links_them_and_a_fix(pictures: Path) -> None:
    folder = pictures / "log" / "2026-10-26-bad-links"
    folder.mkdir()
    (folder / "index.md").write_text(BAD)
    photo_with_gps(folder / "photo.jpg")
    (folder / "slides.pdf").write_bytes(b"%PDF-1.4\n")
    (folder / "big.log").write_bytes(b"x" * (2 * 2**20 + 1))
    (folder / "diagram.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                                        '<script>alert(1)</script></svg>')
    photo_with_gps(folder / "fake.png")  # a JPEG under a PNG's name
    secret = pictures.parent / "secret.conf"
    secret.write_text("password = hunter2\n")
    (folder / "linked.conf").symlink_to(secret)
    code, output = run(pictures, "check")
    assert code == 1, output
    index = "content/log/2026-10-26-bad-links/index.md"
    expected = [
        (8, "content/log/2026-10-26-bad-links/gone.png does not exist", "put the file there"),
        (10, "image photo.jpg has no alt text", "describe it: ![what photo.jpg shows](photo.jpg)"),
        (12, "slides.pdf: files of type .pdf are not served", "link only"),
        (14, "big.log is 2.0 MiB, over the 2 MiB a linked file may be", "link a shorter excerpt of it"),
        (16, "diagram.svg carries a <script> element", "remove it"),
        (18, "fake.png is a JPEG image, not PNG as its name says", "rename it to end in .jpg"),
        (20, "../../../secret.txt points outside content/", "put the file in content/files/"),
        (22, "content/log/2026-10-25-rack-pictures/plot.png is neither beside this page nor in content/files/",
         "put it in content/log/2026-10-26-bad-links/ or content/files/"),
        (24, "linked.conf is a link to a file outside content/", "copy the file into content/ instead"),
    ]
    for line, what, fix in expected:
        found = [row for row in output.splitlines() if row.startswith(f"{index}:{line}: ")]
        assert found and what in found[0] and fix in found[0], (line, what, output)
    assert "nothing was published" in output


def test_a_bad_file_fails_the_build_and_the_site_keeps_serving_its_files(pictures: Path, tmp_path: Path) -> None:
    cfg = make_config(pictures, tmp_path / "data")
    app = make_app(cfg)
    client = app.test_client()
    src = images(client.get(ENTRY).get_data(as_text=True))["photo.jpg"]["src"]
    good = client.get(src, buffered=True).data
    first = load_current(cfg.builds_dir).id
    photo = pictures / "log/2026-10-25-rack-pictures/photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not a JPEG after all")
    with pytest.raises(ContentProblems, match=r"index\.md:10: .*photo\.jpg is cut short"):
        pipeline.publish(cfg)
    assert load_current(cfg.builds_dir).id == first
    photo.unlink()  # the build holds its own copy: the source going away changes nothing either
    assert client.get(src, buffered=True).data == good
    assert images(client.get(ENTRY).get_data(as_text=True))["photo.jpg"]["src"] == src


def test_changed_bytes_get_a_new_url_and_the_old_url_goes(pictures: Path, tmp_path: Path, monkeypatch) -> None:
    from blog.serving import current as state_module

    monkeypatch.setattr(state_module, "CHECK_EVERY", 0.0)
    cfg = make_config(pictures, tmp_path / "data")
    client = make_app(cfg).test_client()
    before = images(client.get(ENTRY).get_data(as_text=True))
    photo_with_gps(pictures / "log/2026-10-25-rack-pictures/photo.jpg", colour=(20, 20, 220))
    pipeline.publish(cfg)
    after = images(client.get(ENTRY).get_data(as_text=True))
    assert after["photo.jpg"]["src"] != before["photo.jpg"]["src"]
    assert after["plot.png"]["src"] == before["plot.png"]["src"]  # unchanged bytes keep their URL
    assert client.get(before["photo.jpg"]["src"]).status_code == 404
    served = client.get(after["photo.jpg"]["src"], buffered=True).data
    assert near(Image.open(io.BytesIO(served)).getpixel((4, 4)), (20, 20, 220))
    build = load_current(cfg.builds_dir)
    plot = build.path / "files" / after["plot.png"]["hash"] / "plot.png"
    assert plot.stat().st_nlink >= 2  # the unchanged file is a hard link to the previous build's copy


def test_an_orientation_is_applied_to_the_pixels_before_exif_goes(pictures: Path, tmp_path: Path) -> None:
    folder = pictures / "log/2026-10-25-rack-pictures"
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show the image rotated by 90 degrees
    Image.new("RGB", (40, 20), PHOTO_COLOUR).save(folder / "turned.jpg", exif=exif)
    index = folder / "index.md"
    index.write_text(index.read_text() + "\n![A turned photo](turned.jpg)\n")
    client = make_app(make_config(pictures, tmp_path / "data")).test_client()
    turned = images(client.get(ENTRY).get_data(as_text=True))["turned.jpg"]
    assert (turned["w"], turned["h"]) == ("20", "40")
    served = Image.open(io.BytesIO(client.get(turned["src"], buffered=True).data))
    assert served.size == (20, 40) and len(served.getexif()) == 0


SVG = """<?xml version="1.0"?>
<!-- drawn by alice in /home/alice/secret-project -->
<svg xmlns="http://www.w3.org/2000/svg" xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
     xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd" width="120" height="60"
     sodipodi:docname="/home/alice/secret-project/diagram.svg">
  <metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></metadata>
  <sodipodi:namedview inkscape:window-width="1920"/>
  <rect x="0" y="0" width="120" height="60" fill="#1e963c" inkscape:label="box"/>
</svg>
"""


def test_an_svg_is_served_as_a_sandboxed_image_without_editor_data(pictures: Path, tmp_path: Path) -> None:
    folder = pictures / "log/2026-10-25-rack-pictures"
    (folder / "diagram.svg").write_text(SVG)
    index = folder / "index.md"
    index.write_text(index.read_text() + "\n![How the parts connect](diagram.svg)\n")
    code, output = run(pictures, "check")
    assert code == 0 and "diagram.svg: stripped comments, editor data, metadata" in output, output
    client = make_app(make_config(pictures, tmp_path / "data")).test_client()
    diagram = images(client.get(ENTRY).get_data(as_text=True))["diagram.svg"]
    assert (diagram["w"], diagram["h"]) == ("120", "60")
    response = client.get(diagram["src"], buffered=True)
    assert response.headers["Content-Type"] == "image/svg+xml"
    assert response.headers["Content-Security-Policy"] == FILE_POLICY
    assert "sandbox" in FILE_POLICY and "script-src" not in FILE_POLICY and "default-src 'none'" in FILE_POLICY
    body = response.get_data(as_text=True)
    assert "alice" not in body and "inkscape" not in body and "metadata" not in body and "<rect" in body


def test_a_revision_page_shows_the_files_the_entry_links(pictures: Path, tmp_path: Path) -> None:
    folder = pictures / "log/2026-10-25-rack-pictures"
    index = folder / "index.md"
    photo_with_gps(folder / "old.jpg", colour=(90, 90, 90))
    index.write_text(index.read_text() + "\n![The old rack](old.jpg)\n")
    assert run(pictures, "lock")[0] == 0
    text = index.read_text().replace("\n![The old rack](old.jpg)\n", "\nThe old rack is gone.\n")
    text = text.replace("\n---\n", '\nupdated:\n  - {date: 2026-11-01T10:00:00Z, reason: "the old rack went"}\n---\n',
                        1)
    index.write_text(text)
    (folder / "old.jpg").unlink()
    code, output = run(pictures, "lock")
    assert code == 0, output
    client = make_app(make_config(pictures, tmp_path / "data")).test_client()
    current = images(client.get(ENTRY).get_data(as_text=True))
    earlier = client.get(f"{ENTRY}/revisions/1")
    html = earlier.get_data(as_text=True)
    assert earlier.status_code == 200
    assert images(html)["photo.jpg"]["src"] == current["photo.jpg"]["src"]
    assert "<em>[The old rack: no longer published]</em>" in html
    assert not re.search(r'(src|href)="[^"]*old\.jpg', html)
    assert policy(earlier)["img-src"] == "'self' data:"


def test_the_demo_log_links_no_files_and_its_pages_keep_their_policy(content_copy: Path, tmp_path: Path) -> None:
    cfg = make_config(content_copy, tmp_path / "data")
    client = make_app(cfg).test_client()
    assert load_current(cfg.builds_dir).files.assets == {}
    home = client.get("/").get_data(as_text=True)
    for path in ["/", *sorted(set(re.findall(r'href="(/log/[a-z0-9-]+)"', home)))]:
        answer = client.get(path)
        assert answer.status_code == 200 and policy(answer)["img-src"] == "data:", path
        assert "<img" not in answer.get_data(as_text=True)


def test_get_entry_over_mcp_gives_markdown_whose_files_an_agent_can_fetch(pictures: Path, tmp_path: Path) -> None:
    import asyncio

    from mcp import Client

    from blog.index.search import Search
    from blog.mcp.server import create_server

    current = pipeline.ensure_current(make_config(pictures, tmp_path / "data"))
    server = create_server(lambda: current, Search(), base_url="https://log.example.org", onion_base="")

    async def get() -> dict:
        async with Client(server) as client:
            return (await client.call_tool("get_entry", {"slug": "rack-pictures"})).structured_content

    markdown = asyncio.run(get())["markdown"]
    photo = re.search(r"!\[The rack[^\]]*\]\((https://log\.example\.org/files/([0-9a-f]{16})/photo\.jpg)\)", markdown)
    assert photo, markdown
    assert photo[2] in {a.digest for a in current.files.assets.values()}


def test_a_drafts_own_files_are_checked_but_not_served(pictures: Path, tmp_path: Path) -> None:
    folder = add_picture_entry(pictures, slug="draft-pictures", day="2026-10-27")
    index = folder / "index.md"
    index.write_text(index.read_text().replace("tags: [hardware]", "tags: [hardware]\ndraft: true"))
    photo_with_gps(folder / "photo.jpg", colour=(240, 200, 0))  # not the published entry's photo: other bytes
    code, output = run(pictures, "check")
    assert code == 0 and "2026-10-27-draft-pictures/photo.jpg: stripped EXIF (GPS position" in output, output
    cfg = make_config(pictures, tmp_path / "data")
    client = make_app(cfg).test_client()
    files = load_current(cfg.builds_dir).files
    draft = files.assets["log/2026-10-27-draft-pictures/photo.jpg"]
    assert client.get(draft.url).status_code == 404 and client.get("/log/draft-pictures").status_code == 404
    shared = files.assets["files/nginx.conf"]  # linked by a published entry too
    assert client.get(shared.url, buffered=True).status_code == 200


def test_the_preview_shows_a_drafts_own_pictures(pictures: Path, tmp_path: Path) -> None:
    from blog.web.preview import PreviewState, create_preview_app

    folder = add_picture_entry(pictures, slug="draft-pictures", day="2026-10-27")
    index = folder / "index.md"
    index.write_text(index.read_text().replace("tags: [hardware]", "tags: [hardware]\ndraft: true"))
    photo_with_gps(folder / "photo.jpg", colour=(240, 200, 0))
    cfg = make_config(pictures, tmp_path / "data")
    state = PreviewState(cfg)
    client = create_preview_app(cfg, state).test_client()
    state.show(pipeline.publish(cfg))
    shown = images(client.get("/log/draft-pictures").get_data(as_text=True))
    photo = client.get(shown["photo.jpg"]["src"], buffered=True)
    assert photo.status_code == 200 and near(Image.open(io.BytesIO(photo.data)).getpixel((3, 3)), (240, 200, 0))


def iptc_segment(caption: bytes) -> bytes:
    """Return a JPEG APP13 segment holding an IPTC caption, as photo tools write one."""
    record = b"\x1c\x02\x78" + len(caption).to_bytes(2, "big") + caption
    record += b"\0" * (len(record) % 2)
    body = b"Photoshop 3.0\x00" + b"8BIM\x04\x04\x00\x00" + len(record).to_bytes(4, "big") + record
    return b"\xff\xed" + (len(body) + 2).to_bytes(2, "big") + body


def test_webp_and_iptc_lose_their_metadata_too(pictures: Path, tmp_path: Path) -> None:
    from tests.pictures import GPS_IFD, XMP

    folder = pictures / "files"
    exif = Image.Exif()
    exif[0x010F] = "PrivateCam"
    exif.get_ifd(GPS_IFD)[1] = "N"
    Image.new("RGB", (30, 20), (10, 200, 30)).save(folder / "shot.webp", "WEBP", lossless=True, exif=exif, xmp=XMP)
    Image.new("RGB", (30, 20), (10, 30, 200)).save(folder / "photo.webp", "WEBP", quality=80, exif=exif, xmp=XMP)
    Image.new("RGB", (24, 24), PHOTO_COLOUR).save(folder / "caption.jpg", extra=iptc_segment(b"Alice at home"))
    page = pictures / "pages" / "about.md"
    page.write_text(page.read_text() + "\n![A shot](../files/shot.webp) ![A photo](../files/photo.webp)\n"
                    "![Captioned](../files/caption.jpg) and [the config](../files/nginx.conf)\n")
    code, output = run(pictures, "check")
    assert code == 0, output
    assert "content/files/shot.webp: stripped EXIF (GPS position, camera make and model), XMP" in output
    assert "content/files/caption.jpg: stripped IPTC" in output
    client = make_app(make_config(pictures, tmp_path / "data")).test_client()
    about = client.get("/pages/about")  # a standing page links the shared files as an entry does
    shown = images(about.get_data(as_text=True))
    assert set(shown) == {"shot.webp", "photo.webp", "caption.jpg"} and policy(about)["img-src"] == "'self' data:"
    for name, lossless in (("shot.webp", True), ("photo.webp", False)):
        response = client.get(shown[name]["src"], buffered=True)
        assert response.headers["Content-Type"] == "image/webp"
        served = Image.open(io.BytesIO(response.data))
        assert not {"exif", "xmp"} & set(served.info) and b"PrivateCam" not in response.data
        assert (response.data[12:16] == b"VP8L") == lossless  # a lossless WebP stays lossless
    caption = client.get(shown["caption.jpg"]["src"], buffered=True).data
    assert b"Alice" not in caption and b"Photoshop" not in caption
