"""A build's values kept in files of their own: renderings, texts, revisions, the revision log's answers."""

from __future__ import annotations

import os
import pickle
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEEP_BUILDS = 3
KEEP_SECONDS = 120.0  # a worker that loaded a build just before a switch still reads its rendered entries
RENDERED_CACHE = 64  # entries' renderings (and texts, revisions) a worker keeps after reading them


class BuildError(Exception):
    """A build could not be written or read."""


@dataclass(frozen=True)
class Stored:
    """A value still in an earlier build's file: copied byte for byte when the new build is written."""

    path: Path
    start: int
    size: int

    def read(self) -> bytes:
        with self.path.open("rb") as handle:
            handle.seek(self.start)
            return handle.read(self.size)


class FileStore(Mapping[str, Any]):
    """Values by key: held in memory while a build is made, read one at a time from the build's file after.

    A worker that loaded every entry's HTML and block texts held them all for its whole life (34 MB at
    1,000 entries, most of a worker's memory); it now reads an entry's rendering, Markdown or revisions
    when a page, a search result or a tool needs them, and keeps the last few. See docs/performance.md.
    """

    prefix = "store"

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items = dict(items or {})
        self._spans: dict[str, tuple[int, int]] = {}
        self._file = ""
        self._dir = Path()
        self._init_cache()

    def _init_cache(self) -> None:
        self._recent: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> Any:
        found = self._items.get(key)
        if found is not None and not isinstance(found, Stored):
            return found
        with self._lock:
            if key in self._recent:
                self._recent.move_to_end(key)
                return self._recent[key]
        where = found or self.stored(key)  # KeyError for an unknown key, like a dict
        try:
            value = pickle.loads(where.read())  # noqa: S301 - written by save() into a build directory of ours
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise BuildError(f"cannot read {key} from {where.path}: {exc} (run `blog build`)") from exc
        with self._lock:
            self._recent[key] = value
            while len(self._recent) > RENDERED_CACHE:
                self._recent.popitem(last=False)
        return value

    def stored(self, key: str) -> Stored:
        """Return where a written value is, to copy it into a later build without reading it."""
        start, size = self._spans[key]
        return Stored(self._dir / self._file, start, size)

    def handle(self, key: str) -> Any:
        """Return the value if it is in memory, else where it is written (see `stored`)."""
        return self._items[key] if key in self._items else self.stored(key)

    def is_copy(self, key: str) -> bool:
        """Tell whether the value will be copied from an earlier build's file (not rendered again)."""
        return isinstance(self._items.get(key), Stored)

    def __setitem__(self, key: str, value: Any) -> None:
        if self._spans:
            raise BuildError(f"{type(self).__name__} is read-only once written")
        self._items[key] = value

    def __iter__(self) -> Iterator[str]:
        return iter(self._items or self._spans)

    def __len__(self) -> int:
        return len(self._items or self._spans)

    def __contains__(self, key: object) -> bool:
        return key in self._items or key in self._spans

    def write(self, directory: Path) -> None:
        """Write every value into one new file in the directory, then read them from there."""
        if not self._items:
            return
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.prefix}-")
        spans: dict[str, tuple[int, int]] = {}
        with os.fdopen(fd, "wb") as handle:
            for key, value in self._items.items():
                try:
                    data = value.read() if isinstance(value, Stored) else \
                        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
                except OSError as exc:
                    raise BuildError(f"cannot copy {key} from {value.path}: {exc} (run `blog build`)") from exc
                spans[key] = (handle.tell(), len(data))
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        name = f"{self.prefix}-{time.time_ns():x}.pickle"  # a new name: workers still read the previous file
        os.replace(tmp, directory / name)
        self._spans, self._file, self._dir, self._items = spans, name, directory, {}
        _prune_files(directory, self.prefix, keep=name)

    def attach(self, directory: Path) -> None:
        """Read values from this build directory (after loading the build from it)."""
        self._dir = directory

    def __getstate__(self) -> dict[str, object]:
        return {"items": self._items, "spans": self._spans, "file": self._file}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._items, self._spans, self._file = state["items"], state["spans"], state["file"]
        self._dir = Path()
        self._init_cache()


class RenderedStore(FileStore):
    """Each entry's and page's rendering (`Rendered`), by slug or "page:<slug>"."""

    prefix = "rendered"


class TextStore(FileStore):
    """Each entry's and page's Markdown as (body, source), by slug or "page:<slug>"."""

    prefix = "texts"


class LogStore(FileStore):
    """The revision log's JSON answers (blog.honesty.revlog_view): "" for the whole log, a slug for one entry's view."""

    prefix = "revlog"


class RevisionStore(FileStore):
    """Each entry's revisions (the honesty room's `Revision`s, oldest first), by slug."""

    prefix = "revisions"


def _prune_files(directory: Path, prefix: str, keep: str) -> None:
    files = sorted(directory.glob(f"{prefix}-*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    for old in files[KEEP_BUILDS:]:
        if old.name != keep and now - old.stat().st_mtime > KEEP_SECONDS:
            old.unlink(missing_ok=True)
