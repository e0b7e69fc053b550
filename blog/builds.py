"""Builds: the whole site at one moment, rendered, stored on disk, switched in atomically."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import pickle
import shutil
import signal
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blog import __version__
from blog.content import ContentProblems, Entry, Page, Site, load_site, utcnow
from blog.files import FileSet, collect, place
from blog.render import Rendered, render_many

log = logging.getLogger(__name__)

SNAPSHOT = "site.pickle"
POINTER = "current"
BUILDER_PID = "builder.pid"  # in the data directory: where a worker finds the builder to ask for a repair
REPAIR_SIGNAL = signal.SIGUSR2  # what a worker sends the builder when it finds the index unusable
KEEP_BUILDS = 3
KEEP_SECONDS = 120.0  # a worker that loaded a build just before a switch still reads its rendered entries
RENDERED_CACHE = 64  # entries' renderings (and texts, revisions) a worker keeps after reading them
BUILD_FORMAT = 6  # what a saved build holds; a build of another format is rebuilt, not read
# 3: the content room became a package (blog.content.*), so a format-2 pickle names modules that are gone.
# 4: a build holds the files its pages link (blog.files), cleaned, in files/ beside its renderings.
# 5: a build holds the signed revision log (blog.honesty.revlog), and an SVG image alone in a paragraph
#    renders as a figure with a caption.
# 6: the build room was renamed (blog.build -> blog.builds), so a format-5 pickle names a module that is gone.


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
    """The revision log's JSON answers (blog.honesty.view): "" for the whole log, a slug for one entry's view."""

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


@dataclass
class Build:
    """A validated, rendered site: what every worker serves until the next build is switched in."""

    id: str
    created: dt.datetime
    site: Site
    rendered: Mapping[str, Rendered]  # entry slug, or "page:<slug>"; a RenderedStore once saved
    path: Path = field(default=Path())
    index_dir: Path | None = None
    # Filled by the honesty room at publish time (blog/honesty/snapshot.py); see docs/honesty.md.
    revisions: MutableMapping[str, tuple[Any, ...]] = field(default_factory=dict)  # slug -> Revisions
    # (slug, anchor) -> when that block was first shown, for blocks first shown after the entry's date
    paragraph_changed: dict[tuple[str, str], dt.datetime] = field(default_factory=dict)
    upstream: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # slug -> (url, PullState | None)
    texts: TextStore | None = None  # every entry's and page's Markdown, once saved
    files: FileSet = field(default_factory=FileSet)  # what the pages link, served from files/ (blog/files/)
    revlog: Any = None  # the revision log's signed head (blog.honesty.view.SignedHead), set at publish time
    revlog_answers: FileStore | None = None  # its JSON answers, read on demand (a LogStore once saved)
    format: int = BUILD_FORMAT

    def block_changed(self, slug: str, anchor: str) -> dt.datetime | None:
        """Return when the block at an entry's anchor was first shown, if after the entry's date (else None)."""
        found = self.paragraph_changed.get((slug, anchor))
        entry = self.site.by_slug.get(slug)
        if found is not None or entry is None or slug not in self.revisions:
            return found
        # Blocks first shown with the entry are not listed (they were 290,000 items at 10,000 entries).
        return entry.date if anchor in self.rendered[slug].anchors() else None

    def entry_html(self, entry: Entry) -> Rendered:
        return self.placed(entry.slug)

    def page_html(self, page: Page) -> Rendered:
        return self.placed(f"page:{page.slug}")

    def placed(self, key: str, rendered: Rendered | None = None) -> Rendered:
        """Return a rendering (the key's own, or an earlier text's) with its links to files pointing at their
        served URLs (blog.files.place)."""
        folder = self.files.folders.get(key)
        if rendered is None:
            rendered = self.rendered[key]
            if folder is None:
                return rendered  # today's text links no file
        return Rendered(place(rendered.html, folder, self.files), rendered.toc, rendered.blocks)


def content_fingerprint(content_dir: Path) -> str:
    """Hash every content file's path and bytes, and the software version that renders them."""
    digest = hashlib.sha256(f"engineering-log {__version__} build-format {BUILD_FORMAT}".encode())
    for path in sorted(p for p in Path(content_dir).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(content_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def make_build(content_dir: Path, builds_dir: Path, previous: Build | None = None,
               build_id: str | None = None) -> Build:
    """Read, check and render the content into a new build directory (not yet current)."""
    build_id = build_id or content_fingerprint(content_dir)
    site = load_site(content_dir)
    reuse = previous.rendered if previous else {}
    # Unchanged renderings are copied byte for byte from the previous build's file when this one is saved:
    # unpickling and pickling them again was most of a one-entry publish at 10,000 entries.
    keep = reuse.handle if isinstance(reuse, FileStore) else reuse.__getitem__
    # Compared by the hash of the whole file, which an entry keeps in memory when its text is on disk (the
    # body hash ignores surrounding whitespace, and four leading spaces make a Markdown code block).
    old_bodies = {e.slug: e.text.source_digest for e in previous.site.entries} if previous else {}
    old_pages = {p.slug: p.text.source_digest for p in previous.site.pages.values()} if previous else {}
    rendered: dict[str, Rendered] = {}
    todo: dict[str, str] = {}
    for entry in site.entries:
        if old_bodies.get(entry.slug) == entry.text.source_digest and entry.slug in reuse:
            rendered[entry.slug] = keep(entry.slug)
        else:
            todo[entry.slug] = entry.body
    for page in site.pages.values():
        key = f"page:{page.slug}"
        if old_pages.get(page.slug) == page.text.source_digest and key in reuse:
            rendered[key] = keep(key)
        else:
            todo[key] = page.body
    rendered.update(render_many(todo))  # many at once (a cold start): a second process renders part
    rendered = {key: rendered[key] for key in [e.slug for e in site.entries] + [f"page:{p}" for p in site.pages]}
    store = RenderedStore(rendered)
    files, problems = collect(site, lambda key: store[key].html, previous.files if previous else None,
                              previous.path if previous else None)
    if problems:  # a missing, unfit or unsafe file: no build, and the site keeps its last good one
        raise ContentProblems(problems)
    builds_dir.mkdir(parents=True, exist_ok=True)
    return Build(build_id, utcnow(), site, store, builds_dir / build_id, files=files)


def save(build: Build) -> None:
    """Write the build's snapshot into its directory (write to a temp file, then rename)."""
    build.path.mkdir(parents=True, exist_ok=True)
    target = build.path / SNAPSHOT
    if not isinstance(build.rendered, RenderedStore):
        build.rendered = RenderedStore(build.rendered)
    if not isinstance(build.revisions, RevisionStore):
        build.revisions = RevisionStore(build.revisions)
    fd, tmp = tempfile.mkstemp(dir=build.path, prefix=".snapshot-")
    try:
        build.files.write(build.path)  # the cleaned files, before the snapshot that names them
        build.rendered.write(build.path)  # the snapshot keeps only where each rendering is
        build.revisions.write(build.path)
        if build.revlog_answers is not None:
            build.revlog_answers.write(build.path)
        _write_texts(build)
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(build, handle, protocol=pickle.HIGHEST_PROTOCOL)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BuildError(f"cannot write {target}: {exc} "
                         "(is the data directory writable and the disk not full?)") from exc


def _write_texts(build: Build) -> None:
    """Move every entry's and page's Markdown into the build's texts file; keep only their hashes."""
    holders = {e.slug: e.text for e in build.site.entries}
    holders.update({f"page:{p.slug}": p.text for p in build.site.pages.values()})
    texts = TextStore({key: (text.body, text.source) for key, text in holders.items()})
    texts.write(build.path)
    for key, text in holders.items():
        text.detach(texts, key)
    build.texts = texts


def switch(builds_dir: Path, build: Build) -> None:
    """Point `current` at the build atomically, then drop builds older than the last few."""
    data = json.dumps({"build": build.id, "index": str(build.index_dir or "")})
    fd, tmp = tempfile.mkstemp(dir=builds_dir, prefix=".current-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, builds_dir / POINTER)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BuildError(f"cannot switch to build {build.id}: {exc}") from exc
    _prune(builds_dir, keep={build.id})


def _prune(builds_dir: Path, keep: set[str]) -> None:
    candidates = sorted((p for p in builds_dir.iterdir() if p.is_dir() and p.name not in keep and
                         not p.name.startswith(".")), key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    for old in candidates[KEEP_BUILDS - 1:]:
        if now - old.stat().st_mtime > KEEP_SECONDS:  # a worker may still read the renderings it loaded
            shutil.rmtree(old, ignore_errors=True)


def current_pointer(builds_dir: Path) -> dict[str, str] | None:
    """Return what `current` points at, or None when there is no build yet."""
    try:
        return json.loads((builds_dir / POINTER).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BuildError(f"{builds_dir / POINTER} is unreadable: {exc} (run `blog build`)") from exc


def pointer_mtime(builds_dir: Path) -> float:
    try:
        return (builds_dir / POINTER).stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def load(builds_dir: Path, build_id: str) -> Build:
    """Load a stored build by id."""
    path = builds_dir / build_id / SNAPSHOT
    try:
        with path.open("rb") as handle:
            build = pickle.load(handle)  # noqa: S301 - written by this software into its own 0700 directory
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        # AttributeError and ImportError: a build pickled by a version whose classes lived elsewhere.
        raise BuildError(f"cannot read build {path}: {exc} (run `blog build`)") from exc
    if getattr(build, "format", 1) != BUILD_FORMAT:
        raise BuildError(f"build {path} was written by another version of this software (run `blog build`)")
    build.path = builds_dir / build_id
    for store in (build.rendered, build.revisions, build.texts, build.revlog_answers):
        if isinstance(store, FileStore):
            store.attach(build.path)
    return build


def load_current(builds_dir: Path) -> Build | None:
    """Load the build `current` points at, or None when there is none."""
    pointer = current_pointer(builds_dir)
    if not pointer:
        return None
    build = load(builds_dir, pointer["build"])
    build.index_dir = Path(pointer["index"]) if pointer.get("index") else None
    return build


def ask_for_repair(data_dir: Path) -> bool:
    """Ask the running builder to rebuild an unusable index now; return whether one was asked.

    A worker never writes under the data directory, so it signals the process named in `builder.pid`,
    after checking that the process is a builder (a stale file may name any process by now).
    """
    try:
        pid = int((data_dir / BUILDER_PID).read_text(encoding="ascii").strip())
        if b"blog.builder" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
        os.kill(pid, REPAIR_SIGNAL)
    except (OSError, ValueError):
        return False
    return True
