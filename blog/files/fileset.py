"""What a build serves beside its pages: each linked file, cleaned, under a content-hashed name."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FILES_DIR", "MAX_BYTES", "MAX_PIXELS", "TYPES", "Asset", "Cleaned", "FileSet", "Kind", "Unfit", "kind_of"]

FILES_DIR = "files"  # in the content tree: files any entry or page may link; in a build: what is served
# A file a page links may be this large at most: a Tor reader waits several seconds a megabyte (docs/files.md).
MAX_BYTES = 2 * 2**20
# An image larger than this is refused before its pixels are decoded: 6000x4000, a 24-megapixel camera's
# frame, which cleaning handles within its bounds of time and memory (blog/files/cleaning_process.py).
MAX_PIXELS = 24_000_000


class Unfit(Exception):
    """A file the site will not serve: what is wrong with it, and how to fix it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message, self.fix = message, fix


@dataclass(frozen=True)
class Cleaned:
    """The bytes to serve, the image's size in pixels (0 for text), and what cleaning removed."""

    data: bytes
    width: int = 0
    height: int = 0
    stripped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kind:
    """One type of file the site serves: its Content-Type and how it is cleaned."""

    media_type: str
    clean: str  # jpeg | png | webp | svg | text


_TEXT = Kind("text/plain; charset=utf-8", "text")
# The allowlist, by file name extension (lower case). Anything else is refused by `blog check`.
TYPES: dict[str, Kind] = {
    ".jpg": Kind("image/jpeg", "jpeg"),
    ".jpeg": Kind("image/jpeg", "jpeg"),
    ".png": Kind("image/png", "png"),
    ".webp": Kind("image/webp", "webp"),
    ".svg": Kind("image/svg+xml", "svg"),
    ".csv": Kind("text/csv; charset=utf-8", "text"),
    ".json": Kind("application/json", "text"),
    **{ext: _TEXT for ext in (".txt", ".log", ".conf", ".cfg", ".ini", ".toml", ".yaml", ".yml", ".sh",
                              ".py", ".diff", ".patch", ".service")},
}


def kind_of(name: str) -> Kind | None:
    """Return the allowed type of a file by its name, or None when the allowlist has no such type."""
    return TYPES.get(os.path.splitext(name)[1].lower())


@dataclass(frozen=True)
class Asset:
    """One file as served: the hash and size of its cleaned bytes, its type, its size in pixels."""

    path: str  # within the content tree, with / separators: log/2026-11-30-slug/plot.png, files/plot.png
    digest: str  # of the bytes served (after cleaning): the URL changes when they do
    media_type: str
    size: int
    width: int = 0  # pixels, for an image (0 when unknown)
    height: int = 0
    source_digest: str = ""  # of the operator's file: a later build reuses the cleaning of the same bytes
    stripped: tuple[str, ...] = ()  # what cleaning removed: "EXIF (GPS position, capture time)", "XMP", ...

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def url(self) -> str:
        """Return the path the file is served at (immutable: another content is another URL)."""
        return f"/files/{self.digest}/{self.name}"

    @property
    def stored(self) -> str:
        """Return where the cleaned bytes are within a build directory."""
        return f"{FILES_DIR}/{self.digest}/{self.name}"

    @property
    def image(self) -> bool:
        return self.media_type.startswith("image/")


@dataclass
class FileSet:
    """Every file the pages of one build link, and where each page's Markdown is (to resolve its links)."""

    assets: dict[str, Asset] = field(default_factory=dict)  # by path within the content tree
    folders: dict[str, str] = field(default_factory=dict)  # "slug" or "page:slug" -> the folder of its Markdown
    links: dict[str, tuple[str, ...]] = field(default_factory=dict)  # the same keys -> the URLs naming files
    drafts: set[str] = field(default_factory=set)  # paths only drafts link: checked and kept, not served
    # The cleaned bytes (or where an earlier build holds them) until write(); never pickled.
    payloads: dict[str, bytes | Path] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def served(self) -> Mapping[tuple[str, str], Asset]:
        """Return every asset a reader may fetch by (digest, name), as its URL names it: not a draft's own files."""
        return {(a.digest, a.name): a for a in self.assets.values() if a.path not in self.drafts}

    def write(self, directory: Path) -> None:
        """Put every cleaned file into the build directory: a hard link to an earlier build's copy when it has one."""
        for stored, payload in self.payloads.items():
            target = directory / stored
            if target.exists():
                continue  # the same build written again: same name, same bytes
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.tmp")
            if isinstance(payload, Path):
                try:
                    os.link(payload, temporary)
                except OSError:
                    shutil.copyfile(payload, temporary)
            else:
                temporary.write_bytes(payload)
            os.replace(temporary, target)
        self.payloads = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"assets": self.assets, "folders": self.folders, "links": self.links, "drafts": self.drafts}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.payloads = {}
