"""Index directories on disk: full and incremental builds, atomic switching, one searcher per process.

Every build of the index is a new directory beside the old ones. An incremental update hard-links the
previous directory's files into a temporary directory (Whoosh never rewrites a segment file once it is
written; deletions live in the new TOC), re-indexes only the entries whose source changed, then renames the
temporary directory into place. Readers of the old directory never see a change, and the build's
`current` pointer switches them over atomically. See docs/search.md.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import pickle
import shutil
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from whoosh import index as windex
from whoosh.filedb.filestore import StorageError
from whoosh.filedb.filetables import FileFormatError
from whoosh.searching import Searcher

from blog.builds import Build
from blog.index.engine.full import WRITER, write_full
from blog.index.results import IndexUnavailable
from blog.index.schema import block_documents
from blog.index.sources import digests, part, parts_of

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SCHEMA_VERSION = "9"  # bump when the schema or analyzers change: forces a full rebuild
KEEP_DIRS = 3  # newest index directories kept, besides any younger than KEEP_SECONDS
KEEP_SECONDS = 120.0  # a worker that loaded a build just before a switch may still open its index
_BROKEN = (OSError, EOFError, ValueError, KeyError, struct.error, pickle.UnpicklingError, windex.IndexError,
           StorageError, FileFormatError)


def _signature(source: str) -> str:
    return hashlib.sha256(f"{SCHEMA_VERSION}\0{source}".encode()).hexdigest()[:20]


def _manifest(build: Build, previous: Build | None = None, old: dict[str, str] | None = None) -> dict[str, str]:
    """Map each entry and page to a signature of what is indexed of it; unchanged ones keep the old signature.

    Keys are index slugs: an entry's slug, or "page:<slug>" (blog.content.page_key).
    """
    # Hashing every entry's source took 120 ms of a one-entry update at 10,000 entries; each entry now
    # carries its file's hash (blog/content/text.py), so finding the changed ones compares short strings.
    # The hash covers the front matter too: a summary or an update note is indexed with its entry.
    known = old or {}
    before = dict(digests(previous.site)) if previous is not None and known else {}
    now = list(digests(build.site))
    out: dict[str, str] = {}
    checked = False
    for key, text in now:
        if key not in before or key not in known or before[key] != text:
            out[key] = _signature(text)
        elif checked:
            out[key] = known[key]
        elif _signature(text) == known[key]:
            out[key] = known[key]
            checked = True  # one unchanged entry hashes as before, so SCHEMA_VERSION did not change
        else:
            return {k: _signature(t) for k, t in now}
    return out


def _read_manifest(index_dir: Path) -> dict[str, str] | None:
    try:
        return json.loads((index_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def is_usable(index_dir: Path | None) -> bool:
    """Tell whether an index directory exists, opens and reads (a cheap check, not a full scan)."""
    if not index_dir or _read_manifest(Path(index_dir)) is None:
        return False
    try:
        ix = windex.open_dir(str(index_dir))
        with ix.reader() as reader:
            reader.doc_count_all()
            for name in ix.storage.list():
                ix.storage.file_length(name)
        return True
    except _BROKEN as exc:
        log.warning("index %s is unusable: %s", index_dir, exc)
        return False


def update_index(build: Build, index_root: Path, previous: Build | None = None) -> Path:
    """Write the build's index into a new directory beside the old ones and return its path."""
    index_root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    target = index_root / f"{build.id}-{time.time_ns():x}"
    tmp = index_root / f".tmp-{target.name}"
    old_dir = previous.index_dir if previous else None
    old = _read_manifest(old_dir) if old_dir and is_usable(old_dir) else None
    wanted = _manifest(build, previous, old)
    if old_dir and old is None:
        log.warning("index %s is missing or damaged; rebuilding the whole index from content/", old_dir)
    try:
        if old is not None and old_dir is not None:
            changed = _incremental(build, old_dir, tmp, old, wanted)
        else:
            changed = _full(build, tmp)
        (tmp / MANIFEST).write_text(json.dumps(wanted))
        os.rename(tmp, target)
    except _BROKEN as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise IndexUnavailable(f"cannot write the index in {index_root}: {exc} "
                               "(is the data directory writable and the disk not full?)") from exc
    log.info("index %s: %s in %.0f ms", target.name, changed, (time.perf_counter() - started) * 1000)
    _prune(index_root, keep={target, *([old_dir] if old_dir else [])})
    return target


def _full(build: Build, tmp: Path) -> str:
    site = build.site
    return write_full(lambda: parts_of(site, build.rendered), len(site.entries) + len(site.pages), tmp)


def _incremental(build: Build, old_dir: Path, tmp: Path, old: dict[str, str], wanted: dict[str, str]) -> str:
    tmp.mkdir()
    for path in old_dir.iterdir():
        if path.is_file() and not path.name.endswith(".lock") and path.name != MANIFEST:
            os.link(path, tmp / path.name)
    stale = [slug for slug, sig in old.items() if wanted.get(slug) != sig]
    fresh = [key for key, sig in wanted.items() if old.get(key) != sig]
    if not stale and not fresh:
        return "no entry changed"
    ix = windex.open_dir(str(tmp))
    writer = ix.writer(**WRITER)
    for slug in stale:
        writer.delete_by_term("slug", slug)
    for key in fresh:
        for doc in block_documents(*part(build.site, build.rendered, key)):
            writer.add_document(**doc)
    writer.commit()
    return f"re-indexed {len(fresh)} changed entries and pages, dropped {len(stale)}"


def _prune(index_root: Path, keep: set[Path]) -> None:
    dirs = sorted((p for p in index_root.iterdir() if p.is_dir() and p not in keep),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    for old in dirs[max(KEEP_DIRS - len(keep), 0):]:
        if now - old.stat().st_mtime > KEEP_SECONDS:
            shutil.rmtree(old, ignore_errors=True)


@dataclass
class Handle:
    """An open index and its searcher, shared by one process's threads under a lock."""

    path: str
    pid: int
    searcher: Searcher
    lock: threading.Lock
    files: tuple = ()  # (name, size, mtime) of every file when opened: an index directory never changes
    checked: float = 0.0


CHECK_EVERY = 0.0  # seconds between looks at an open index's files: one scandir (~20 files) is cheap


def _files(index_dir: str) -> tuple:
    """Return what the index directory holds now; any change means someone damaged it."""
    with os.scandir(index_dir) as entries:
        return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file()))


_handles: dict[str, Handle] = {}
_handles_lock = threading.Lock()


def open_searcher(index_dir: Path | None) -> Handle:
    """Return this process's searcher for an index directory, opening it once (and again after a fork)."""
    if not index_dir:
        raise IndexUnavailable("search is not ready yet: the index is being built; try again in a minute")
    key = str(index_dir)
    with _handles_lock:
        handle = _handles.get(key)
        if handle is not None and handle.pid == os.getpid():
            return handle
        try:
            searcher = windex.open_dir(key).searcher()
        except _BROKEN as exc:
            log.error("cannot open the search index %s: %s; it will be rebuilt from content/", key, exc)
            raise IndexUnavailable("search is unavailable while its index is rebuilt; "
                                   "try again in a minute") from exc
        for stale_key in [k for k in _handles if k != key]:
            _close(_handles.pop(stale_key))
        handle = Handle(key, os.getpid(), searcher, threading.Lock(), _files(key), time.monotonic())
        _handles[key] = handle
        return handle


def check_intact(index_dir: Path | None) -> None:
    """Raise IndexUnavailable when the index this process has open was deleted or changed on disk.

    Answers cached in memory would otherwise hide a damaged index until the worker restarts; a look at the
    directory costs one scandir of a few dozen files, far below a query's cost.
    """
    if not index_dir:
        return
    handle = _handles.get(str(index_dir))
    now = time.monotonic()
    if handle is None or handle.pid != os.getpid() or now - handle.checked < CHECK_EVERY:
        return
    handle.checked = now
    try:
        intact = _files(handle.path) == handle.files
    except OSError:
        intact = False
    if not intact:
        forget(index_dir)
        log.error("the search index %s was deleted or changed on disk; rebuilding it from content/", index_dir)
        raise IndexUnavailable("search is unavailable while its index is rebuilt; try again in a minute")


@atexit.register
def close_all() -> None:
    """Close every searcher this process opened (at exit, and in tests)."""
    with _handles_lock:
        for key in list(_handles):
            _close(_handles.pop(key))


def _close(handle: Handle) -> None:
    if handle.pid != os.getpid():
        return  # inherited from the parent over fork: its files belong to the parent
    with handle.lock:
        handle.searcher.close()


def forget(index_dir: Path) -> None:
    """Drop this process's searcher for an index directory (after it failed mid-search)."""
    with _handles_lock:
        handle = _handles.pop(str(index_dir), None)
    if handle is not None:
        try:
            _close(handle)
        except _BROKEN:
            pass
