"""The files a published entry links, by their path in the content tree, with the SHA-256 of the operator's bytes."""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path

from blog.content import Entry
from blog.files.links import LinkLines, content_path, folder_of, links_in, may_link_files
from blog.render import render

MISSING = ""  # the digest of a linked file that is not there (`blog check` says so on its own)


@dataclass(frozen=True)
class LinkedFile:
    """One file an entry links: its path in the content tree, the hash of its bytes, the line that links it."""

    path: str  # log/2026-10-25-rack-pictures/plot.png, files/nginx.conf
    digest: str  # hex SHA-256 of the file as the operator wrote it; MISSING when there is none
    line: int


def digest_of(file: Path) -> str:
    """Return the hex SHA-256 of a file's bytes, or MISSING when it is not a readable file."""
    try:
        if not stat.S_ISREG(file.stat().st_mode):
            return MISSING  # a FIFO would hang the check: refused by the files check, never opened
        with file.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return MISSING


def linked_files(entry: Entry, root: Path, html: str | None = None) -> dict[str, LinkedFile]:
    """Return the files an entry links by path in the content tree (its rendered HTML, if at hand, saves a render)."""
    if not may_link_files(entry.body):
        return {}
    folder = folder_of(entry.path)
    found: dict[str, LinkedFile] = {}
    links = links_in(render(entry.body).html if html is None else html)
    lines = LinkLines(entry.body, entry.body_line, {link.url for link in links})
    for link in links:
        path = content_path(folder, link.url)
        if path is None or path in found:
            continue  # outside the tree: refused by the files check, never served
        file = Path(root) / path
        inside = file.resolve().is_relative_to(Path(root).resolve())
        line = lines.line(link.url)
        found[path] = LinkedFile(path, digest_of(file) if inside else MISSING, line)
    return dict(sorted(found.items()))


def digests(linked: dict[str, LinkedFile]) -> dict[str, str]:
    """Return what the lock records of linked files: path -> SHA-256."""
    return {path: item.digest for path, item in linked.items()}


def files_unrecorded(recorded: dict[str, str] | None, files: dict[str, str]) -> bool:
    """Tell whether `blog lock` has files to record (not for an older lock's revision of an entry that links none)."""
    return recorded != files and not (recorded is None and not files)
