"""A new operator's path, from the built wheel: a fresh venv, `blog init`, entries, check, lock, build, serve.

Nothing of this checkout is importable where the operator's commands run. The wheel is built the way a
deployment builds it (ansible/roles/blog/files/build-wheel.sh: a copy holding only pyproject.toml, README.md
and blog/), installed with its pinned dependencies into a venv of its own (no system site packages, no
PYTHONPATH), and every command, gunicorn included, runs in the new site's folder. A template, a static file,
the torrc template or a skeleton file the wheel forgot, or a dependency pyproject.toml forgot, fails here.

The walk is one test made of steps (`Operator` runs the commands; `write_entry`, `serve` and the checks are
functions), so a later feature adds its own step to the same walk: the honest log's dated update, then an
entry with a phone's photo (GPS and all) and a plot, whose served JPEG must carry no metadata and whose page
Chromium must show with JavaScript off.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import re
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from processes import ROOT, Server, free_port
from tests.pictures import SERIAL, assert_both_pictures_shown, photo_with_gps, plot_png

BUILD_WHEEL = ROOT / "ansible" / "roles" / "blog" / "files" / "build-wheel.sh"
WORDS_ONLY = "search ranks by words only"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the package's wheel from a copy of what the build reads, as a deployment does."""
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(["sh", str(BUILD_WHEEL), sys.executable, str(ROOT), str(out)], capture_output=True,
                           text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the wheel and its pinned dependencies into a fresh venv (pip's cache makes it quick)."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    # --no-compile: byte-compiling every dependency costs more than the few imports this venv ever makes.
    installed = subprocess.run(
        [str(folder / "bin" / "pip"), "install", "--quiet", "--no-compile", "--disable-pip-version-check",
         "--constraint", str(ROOT / "constraints.txt"), str(wheel)],
        env=clean_env(), capture_output=True, text=True, timeout=1200, check=False)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return folder


def clean_env(venv: Path | None = None, **extra: str) -> dict[str, str]:
    """Return this machine's environment without the checkout's traces: no BLOG_*, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BLOG_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env["VIRTUAL_ENV"] = str(venv)
    return {**env, **extra}


@dataclass
class Operator:
    """Someone with the installed `blog` command and a site folder of their own."""

    venv: Path
    site: Path

    def blog(self, *args: str, ok: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run the installed `blog` in the site's folder; by default fail the test when it fails."""
        done = subprocess.run([str(self.venv / "bin" / "blog"), *args], cwd=cwd or self.site, env=clean_env(self.venv),
                              capture_output=True, text=True, timeout=600, check=False)
        if ok:
            assert done.returncode == 0, f"blog {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    @classmethod
    def init(cls, venv: Path, site: Path) -> Operator:
        """Create the site with `blog init`, as the README says."""
        operator = cls(venv, site)
        made = operator.blog("init", str(site), cwd=site.parent)
        assert f"site: {site} (new)" in made.stderr
        return operator


@dataclass
class Entry:
    """An entry the operator wrote: its file and its slug."""

    path: Path
    slug: str


BODY = """
The humidity sensor in the server cupboard read 71 % for a week: the zeolite cartridge had been saturated
since March.

## The fix

I swapped the cartridge and the reading fell to 38 % within a day.
"""


def write_entry(operator: Operator, title: str, body: str) -> Entry:
    """Start an entry with `blog new`, publish it (no longer a draft) and write its body."""
    path = Path(operator.blog("new", title, "--tag", "hardware").stdout.strip())
    assert path.parent == operator.site / "content" / "log", path
    head, _, _ = path.read_text().rpartition("\n---\n")
    path.write_text(head.replace("\ndraft: true", "") + "\n---\n" + body)
    return Entry(path, re.sub(r"^\d{4}-\d{2}-\d{2}-", "", path.stem))


def get(url: str) -> str:
    """Return a page's text (a non-200 answer fails)."""
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200, url
        return response.read().decode()


def wait_for(url: str, text: str, timeout: float = 30.0) -> str:
    """Return the page once it holds text; fail after the timeout (a new build is served within a second)."""
    deadline = time.monotonic() + timeout
    while True:
        page = get(url)
        if text in page or time.monotonic() > deadline:
            assert text in page, f"{url} did not show {text!r} within {timeout:.0f} s"
            return page
        time.sleep(0.2)


@contextlib.contextmanager
def serve(operator: Operator, log: Path) -> Iterator[Server]:
    """Run the installed `blog serve` (gunicorn, no tor) in the site's folder on a free loopback port."""
    port = free_port()
    args = [str(operator.venv / "bin" / "blog"), "serve", "--no-tor", "--workers", "1", "--bind", f"127.0.0.1:{port}"]
    with Server(args, log, port=port, env=clean_env(operator.venv), cwd=operator.site) as server:
        yield server


def test_the_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.startswith("blog/")}
    on_disk = {str(path.relative_to(ROOT)) for path in (ROOT / "blog").rglob("*")
               if path.is_file() and "__pycache__" not in path.parts}
    assert not on_disk - packed, f"add these to [tool.setuptools.package-data] in pyproject.toml: {on_disk - packed}"


def test_installed_blog_commands_come_from_the_venv(venv: Path, tmp_path: Path) -> None:
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import blog; print(blog.__file__)"], cwd=tmp_path,
                           env=clean_env(venv), capture_output=True, text=True, timeout=60, check=True)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout


@pytest.mark.slow
@pytest.mark.browser
def test_a_new_operator_writes_checks_builds_serves_and_finds_an_entry(venv: Path, tmp_path: Path, browser) -> None:
    operator = Operator.init(venv, tmp_path / "mylog")
    entry = write_entry(operator, "Replacing the zeolite cartridge", BODY)

    checked = operator.blog("check")
    assert f"site: {operator.site} (found from the working directory)" in checked.stderr
    assert "ok: 1 published entries, 3 pages (1 drafts, 0 scheduled)" in checked.stdout
    assert f"not recorded in published.lock ({entry.slug}): run `blog lock`" in checked.stdout
    assert f"{entry.slug}: recorded" in operator.blog("lock").stdout
    assert "not recorded" not in operator.blog("check").stdout

    built = operator.blog("build")
    assert f"index {operator.site}/var/index/" in built.stdout
    # No model in a new site: the build says so, names the command that installs it, and ranks by words.
    assert "no model installed (`blog model fetch` installs it)" in built.stderr

    with serve(operator, tmp_path / "serve.log") as server:
        page = get(f"{server.url}/log/{entry.slug}")
        assert "<title>Replacing the zeolite cartridge" in page and "read 71 % for a week" in page
        assert "Replacing the zeolite cartridge" in get(server.url + "/")
        found = get(f"{server.url}/search?q=zeolite")
        assert f'href="/log/{entry.slug}#' in found, found[-2000:]
        check_honesty(operator, entry, server)
        check_pictures(operator, server, browser, tmp_path)
        log = server.log()
    assert log.count(WORDS_ONLY) == 1 and "blog model fetch" in log, log[-3000:]


def check_honesty(operator: Operator, entry: Entry, server: Server) -> None:
    """A silent edit of the published entry is refused and the site keeps it; a dated update goes through."""
    url = f"{server.url}/log/{entry.slug}"
    entry.path.write_text(entry.path.read_text().replace("read 71 % for a week", "read 81 % for a week"))
    refused = operator.blog("build", ok=False)  # `blog build` checks first, as `blog check` does
    assert refused.returncode == 1 and "changed without a dated update" in refused.stderr, refused.stderr[-2000:]
    assert "-The humidity sensor in the server cupboard read 71 %" in refused.stderr
    assert "+The humidity sensor in the server cupboard read 81 %" in refused.stderr
    assert "keeps serving its last good build" in refused.stderr and "read 71 % for a week" in get(url)

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    update = f'updated:\n  - {{date: {now}, reason: "the log says 81 %"}}\n'
    entry.path.write_text(entry.path.read_text().replace("\n---\n", f"\n{update}---\n", 1))
    operator.blog("build")
    page = wait_for(url, "read 81 % for a week")
    assert "the log says 81 %" in page and f'href="/log/{entry.slug}/revisions/1"' in page
    assert "read 71 % for a week" in get(f"{url}/revisions/1")
    assert f"{entry.slug}: recorded revision 2 (the log says 81 %)" in operator.blog("lock").stdout


PICTURES = """
The cupboard from the front, before the new cartridge went in:

![The server cupboard, door open, the sensor on the left wall](photo.jpg)

The humidity over the week, falling once the cartridge was swapped:

![Relative humidity per hour, from 71 % down to 38 %](plot.png)
"""


def write_picture_entry(operator: Operator) -> Entry:
    """Start an entry with `blog new`, make it a folder with a phone's photo (GPS and all) and a plot beside it."""
    started = write_entry(operator, "The cupboard in pictures", PICTURES)
    folder = started.path.with_suffix("")
    folder.mkdir()
    started.path.rename(folder / "index.md")
    photo_with_gps(folder / "photo.jpg")
    plot_png(folder / "plot.png")
    return Entry(folder / "index.md", started.slug)


def check_pictures(operator: Operator, server: Server, browser: object, shots: Path) -> None:
    """An entry with a GPS-tagged photo and a plot: checked, stripped, served, shown with script off, found."""
    entry = write_picture_entry(operator)
    checked = operator.blog("check").stdout
    folder = entry.path.parent.relative_to(operator.site)
    assert f"{folder}/photo.jpg: stripped EXIF (GPS position, camera serial, capture time" in checked, checked
    assert f"{folder}/plot.png: stripped text (Author, Software)" in checked and "2 linked files" in checked
    assert f"{entry.slug}: recorded" in operator.blog("lock").stdout
    operator.blog("build")
    url = f"{server.url}/log/{entry.slug}"
    page = wait_for(url, "The cupboard in pictures")
    photo = re.search(r'src="(/files/[0-9a-f]{16}/photo\.jpg)" width="320" height="200" loading="lazy"', page)
    assert photo, page[-3000:]
    with urllib.request.urlopen(server.url + photo[1], timeout=30) as response:
        served = response.read()
        assert response.headers["Content-Type"] == "image/jpeg" and "immutable" in response.headers["Cache-Control"]
    image = Image.open(io.BytesIO(served))
    assert len(image.getexif()) == 0 and not {"exif", "xmp", "comment"} & set(image.info), image.info
    assert SERIAL.encode() not in served and served != (entry.path.parent / "photo.jpg").read_bytes()
    assert_both_pictures_shown(browser, url, shots / "operator-pictures.png")
    assert f'href="/log/{entry.slug}#' in get(f"{server.url}/search?q=cartridge+swapped+humidity+week")
    assert "not recorded" not in operator.blog("check").stdout  # the lock holds both entries, as published


@pytest.mark.slow
def test_an_installed_site_fetches_its_model_into_its_data_folder(venv: Path, tmp_path: Path) -> None:
    operator = Operator.init(venv, tmp_path / "mylog")
    missing = operator.blog("model", "check", ok=False)
    assert missing.returncode == 1 and "blog model fetch" in missing.stderr
    fetched = operator.blog("model", "fetch")
    model = operator.site / "var" / "model"
    assert f"installed in {model}" in fetched.stdout and (model / "manifest.json").is_file()
    assert f"already installed in {model}" in operator.blog("model", "fetch").stdout
    assert "every file matches its pinned SHA-256" in operator.blog("model", "check").stdout
    built = operator.blog("build")
    assert re.search(r"vectors for \d+ blocks ready", built.stdout), built.stdout + built.stderr
