"""A build on disk: saved into its directory, loaded back, and the atomic `current` pointer that names it."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import time
from pathlib import Path

from blog.builds.make import BUILD_FORMAT, Build
from blog.builds.stores import KEEP_BUILDS, KEEP_SECONDS, BuildError, FileStore, RenderedStore, RevisionStore, TextStore

SNAPSHOT = "site.pickle"
POINTER = "current"


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
    holders.update({p.key: p.text for p in build.site.pages.values()})
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
