"""Every file the pages link, found, checked and cleaned: what a build serves, and what `blog check` refuses."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from blog.content import ContentError, Site, Written
from blog.files.cleaning_process import Cleaner
from blog.files.fileset import FILES_DIR, MAX_BYTES, TYPES, Asset, FileSet, Unfit, kind_of
from blog.files.links import FileLink, LinkLines, content_path, folder_of, links_in, may_link_files
from blog.files.remote import may_fetch, remote_problems
from blog.render import render

log = logging.getLogger(__name__)

__all__ = ["check_files", "collect", "documents"]

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_NAME_MAX = 255  # bytes of one file name on Linux file systems: a longer one cannot exist
_ALLOWED = ", ".join(sorted(TYPES))


def documents(site: Site) -> Iterator[tuple[str, Written, str]]:
    """Yield each entry and page: its key in a build ("slug" or "page:slug"), itself, its folder in the tree."""
    for entry in site.entries:
        yield entry.slug, entry, folder_of(entry.path)
    for page in site.pages.values():
        yield page.key, page, folder_of(page.path)


class _Collector:
    def __init__(self, site: Site, previous: FileSet | None, previous_dir: Path | None, cleaner: Cleaner) -> None:
        self.root, self.shown = Path(site.root), Path(Path(site.root).name)
        self.previous, self.previous_dir = previous, previous_dir
        self.cleaner = cleaner
        self.files = FileSet()
        self.problems: list[ContentError] = []
        self.refused: set[str] = set()

    def document(self, key: str, document: Written, folder: str, html: str) -> None:
        urls: list[str] = []
        seen: dict[str, int] = {}
        links = links_in(html)
        lines = LinkLines(document.body, document.body_line, {link.url for link in links})
        for link in links:
            seen[link.url] = seen.get(link.url, -1) + 1
            no_alt = link.image and not (link.alt or "").strip()
            line = lines.line(link.url, seen[link.url], no_alt)
            problem = self.admit(link, folder)
            if problem is None:
                urls.append(link.url)
            elif problem:
                self.problems.append(ContentError(document.path, line, *problem))
        if urls:
            self.files.folders[key] = folder
            self.files.links[key] = tuple(dict.fromkeys(urls))

    def admit(self, link: FileLink, folder: str) -> tuple[str, str] | bool | None:
        """Return None when the link's file is served, else (what is wrong, fix); False: already reported."""
        path = content_path(folder, link.url)
        own = folder if folder.count("/") == 1 else None  # log/<entry>/ or pages/<page>/: a folder of its own
        if path is None:
            return f"{link.url} points outside {self.shown}/", f"put the file in {self.shown}/{FILES_DIR}/"
        shown = self.shown / path
        if not (path.startswith(f"{FILES_DIR}/") or (own and path.startswith(f"{own}/"))):
            where = f"{self.shown / own}/ or " if own else ""
            fix = f"put it in {where}{self.shown}/{FILES_DIR}/ and link it from there" + (
                "" if own else f", or make this a folder: {self.shown / folder}/<name>/index.md with its files")
            return f"{shown} is neither beside this page nor in {self.shown}/{FILES_DIR}/", fix
        file = self.root / path
        kind = kind_of(file.name)
        if kind is None:
            return f"{shown}: files of type {file.suffix} are not served", f"link only {_ALLOWED} files"
        if any(len(part.encode()) > _NAME_MAX for part in path.split("/")):
            return f"{shown}: a file name longer than {_NAME_MAX} bytes", "give the file a shorter name"
        try:
            mode = file.stat().st_mode  # never opened unless it is a regular file: a FIFO would hang the build
        except OSError:
            return f"{shown} does not exist", f"put the file there, or correct the link {link.url}"
        if not stat.S_ISREG(mode):
            return f"{shown} is not a regular file", "link a file, not a folder, pipe or device"
        if not file.resolve().is_relative_to(self.root.resolve()):
            return f"{shown} is a link to a file outside {self.shown}/", f"copy the file into {self.shown}/ instead"
        if not SAFE_NAME.match(file.name):
            return f"{shown}: a file name this site cannot serve", "rename it with letters, digits, '.', '-', '_'"
        if link.image and not kind.media_type.startswith("image/"):
            return f"{shown} is shown as an image but is not one", f"link it as a file: [{file.name}]({link.url})"
        if link.image and not (link.alt or "").strip():
            return f"image {link.url} has no alt text", f"describe it: ![what {file.name} shows]({link.url})"
        if path in self.refused:
            return False
        if path not in self.files.assets:
            problem = self.add_asset(path, file, kind.media_type, kind.clean)
            if problem:
                self.refused.add(path)
                return problem
        return None

    def add_asset(self, path: str, file: Path, media_type: str, how: str) -> tuple[str, str] | None:
        """Read, clean (or take an earlier build's cleaning of the same bytes) and record one file; say its problem."""
        shown = self.shown / path
        try:
            size = file.stat().st_size
            raw = _read(file) if size <= MAX_BYTES else b""
        except OSError as exc:
            return f"{shown} cannot be read ({exc.strerror or exc})", "make it readable by the user the site runs as"
        if max(size, len(raw)) > MAX_BYTES:
            fix = "scale the image down" if media_type.startswith("image/") else "link a shorter excerpt of it"
            return (f"{shown} is {max(size, len(raw)) / 2**20:.1f} MiB, over the {MAX_BYTES // 2**20} MiB a linked "
                    f"file may be", f"{fix}; docs/files.md says why")
        source_digest = hashlib.sha256(raw).hexdigest()
        earlier = self.previous.assets.get(path) if self.previous else None
        if earlier and earlier.source_digest == source_digest and self.previous_dir and \
                (self.previous_dir / earlier.stored).is_file():
            self.files.assets[path] = earlier
            self.files.payloads[earlier.stored] = self.previous_dir / earlier.stored
            return None
        try:
            cleaned = self.cleaner.clean(raw, how)
        except Unfit as unfit:
            return f"{shown} {unfit.message}", unfit.fix
        digest = hashlib.sha256(cleaned.data).hexdigest()[:16]
        asset = Asset(path, digest, media_type, len(cleaned.data), cleaned.width, cleaned.height, source_digest,
                      cleaned.stripped)
        self.files.assets[path] = asset
        self.files.payloads[asset.stored] = cleaned.data
        if cleaned.stripped:
            log.info("%s: stripped %s", shown, ", ".join(cleaned.stripped))
        return None


def _read(file: Path) -> bytes:
    """Return a regular file's bytes, at most one byte more than a linked file may have (it is refused then)."""
    with open(file, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NONBLOCK)) as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(0, "not a regular file")  # swapped for a FIFO since it was looked at
        return handle.read(MAX_BYTES + 1)


def collect(site: Site, html_of: Callable[[str], str], previous: FileSet | None = None,
            previous_dir: Path | None = None) -> tuple[FileSet, list[ContentError]]:
    """Find, check and clean every file the pages link; reuse an earlier build's cleaning of the same bytes."""
    with Cleaner() as cleaner:
        collector = _Collector(site, previous, previous_dir, cleaner)
        for key, document, folder in documents(site):
            links, fetches = may_link_files(document.body), may_fetch(document.body)
            html = html_of(key) if links or fetches else ""
            if fetches:
                collector.problems.extend(remote_problems(document, html))
            if links:
                collector.document(key, document, folder, html)
    files = collector.files
    published = {content_path(files.folders[key], url) for key, document, _ in documents(site)
                 if key in files.links and not getattr(document, "draft", False) for url in files.links[key]}
    files.drafts = set(files.assets) - published
    return files, collector.problems


def check_files(site: Site) -> tuple[FileSet, list[ContentError]]:
    """Check every file the pages link and what else they would fetch, as a build would (rendering the pages
    that may link or fetch one)."""
    bodies = {key: document.body for key, document, _ in documents(site)}
    return collect(site, lambda key: render(bodies[key]).html)
