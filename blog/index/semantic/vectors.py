"""Per-build block vectors: computed after a build is published, stored beside the index, keyed by hash.

One file pair per build and model under `DATA_DIR/vectors/`: `<build>.<model>.npy` (float32, one unit
row per citable block) and `<build>.<model>.json` (the blocks' keys and the SHA-256 of the text each row
embeds). A new build reuses every row whose text hash it finds in the newest earlier file of the same
model, so an edited entry costs only its changed blocks. The JSON is written last, so a file pair is
either whole or absent; a lock keeps two processes from embedding the same build twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from blog.builds import Build
from blog.index import sources
from blog.index.semantic.weights import DIMENSIONS

if TYPE_CHECKING:  # onnxruntime stays out of every process that only reads vectors or asks for them
    from blog.index.semantic.encoder import Encoder

KEEP = 3  # vector files kept per model: the current build's, and a couple for a switch in flight
BATCH = 64  # blocks embedded between progress reports and checks for a newer build
Progress = Callable[[int, int], None]  # (blocks done, blocks to embed)


@dataclass(frozen=True)
class Passage:
    key: str  # what the lexical index stores: slug#anchor
    text: str  # what is embedded: the block with its entry's title and headings for context


@dataclass(frozen=True)
class VectorSet:
    keys: tuple[str, ...]
    matrix: np.ndarray  # len(keys) x 384, float32, rows of unit length
    model_id: str


def passage_text(title: str, headings: tuple[str, ...], text: str) -> str:
    """Return what is embedded for one block: its place in the entry, then its own words."""
    return " — ".join([title, *headings, text])


def passages(build: Build) -> list[Passage]:
    """Return every citable block of a build, in a stable order: what the lexical index holds, by its keys."""
    found = []
    for (slug, _tags, _ts, title), blocks in sources.parts_of(build.site, build.rendered):
        for block in blocks:
            found.append(Passage(f"{slug}#{block.anchor}", passage_text(title, tuple(block.heading_path),
                                                                         block.text)))
    return found


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _paths(root: Path, build_id: str, model_id: str) -> tuple[Path, Path]:
    return root / f"{build_id}.{model_id}.npy", root / f"{build_id}.{model_id}.json"


def load(root: Path, build_id: str, model_id: str) -> VectorSet | None:
    """Return a build's vectors, or None when they are not (yet) written or are unreadable."""
    matrix_path, keys_path = _paths(root, build_id, model_id)
    try:
        meta = json.loads(keys_path.read_text(encoding="utf-8"))
        matrix = np.load(matrix_path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    keys = tuple(meta.get("keys", ()))
    if matrix.dtype != np.float32 or matrix.shape != (len(keys), DIMENSIONS):
        return None
    return VectorSet(keys, matrix, model_id)


def _reusable(root: Path, model_id: str) -> dict[str, np.ndarray]:
    """Return text hash → row from the newest earlier vectors of this model."""
    files = sorted(root.glob(f"*.{model_id}.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for keys_path in files:
        try:
            meta = json.loads(keys_path.read_text(encoding="utf-8"))
            matrix = np.load(keys_path.with_suffix(".npy"), allow_pickle=False)
        except (OSError, ValueError):
            continue
        if matrix.shape == (len(meta["hashes"]), DIMENSIONS):
            return dict(zip(meta["hashes"], matrix, strict=True))
    return {}


@contextlib.contextmanager
def _locked(root: Path, build_id: str) -> Iterator[None]:
    with (root / f".{build_id}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    (root / f".{build_id}.lock").unlink(missing_ok=True)


def embed_build(build: Build, root: Path, encoder: Encoder, progress: Progress | None = None,
                stale: Callable[[], bool] = lambda: False) -> VectorSet | None:
    """Write a build's vectors (reusing unchanged blocks' rows) and return them.

    Returns None when `stale()` turns true between batches: a newer build came, and these vectors would be
    wasted work.
    """
    root.mkdir(parents=True, exist_ok=True)
    model_id = encoder.files.model_id
    with _locked(root, build.id):
        done = load(root, build.id, model_id)
        if done is not None:
            return done
        items = passages(build)
        hashes = [_digest(p.text) for p in items]
        known = _reusable(root, model_id)
        matrix = np.empty((len(items), DIMENSIONS), np.float32)
        todo = [i for i, h in enumerate(hashes) if h not in known]
        for i, h in enumerate(hashes):
            if h in known:
                matrix[i] = known[h]
        for start in range(0, len(todo), BATCH):
            if stale():
                return None
            chosen = todo[start:start + BATCH]
            matrix[chosen] = encoder.encode([items[i].text for i in chosen])
            if progress:
                progress(min(start + BATCH, len(todo)), len(todo))
        if progress and not todo:
            progress(0, 0)
        matrix_path, keys_path = _paths(root, build.id, model_id)
        part = matrix_path.with_name(f".{matrix_path.name}.{os.getpid()}")
        with part.open("wb") as f:
            np.save(f, matrix, allow_pickle=False)
        os.replace(part, matrix_path)
        meta = {"build": build.id, "model": model_id, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "reused": len(items) - len(todo), "keys": [p.key for p in items], "hashes": hashes}
        part = keys_path.with_name(f".{keys_path.name}.{os.getpid()}")
        part.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(part, keys_path)
        _prune(root, model_id)
        return VectorSet(tuple(meta["keys"]), matrix, model_id)


def _prune(root: Path, model_id: str) -> None:
    files = sorted(root.glob(f"*.{model_id}.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP:]:
        old.with_suffix(".npy").unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    for other in root.glob("*.json"):
        if not other.name.endswith(f".{model_id}.json"):  # another model's vectors never mix with these
            other.with_suffix(".npy").unlink(missing_ok=True)
            other.unlink(missing_ok=True)
