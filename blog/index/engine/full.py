"""Full index builds: one segment in this process, or two written at once by this process and a child.

A full build of 1,000 entries is a few seconds of pure Python per core. Above PARALLEL_FROM entries a child
Python (`python -m blog.index.engine.segment_worker`, a fresh interpreter: never a fork, since publishing also
runs inside a threaded gunicorn worker, and not multiprocessing's spawn, which re-runs the parent's main
script) writes the first part of the entries as a segment of its own, in a directory beside the index,
while this process writes the rest. The child's segment files are then moved in and one commit records
both segments, the child's first, so every block keeps the document number a one-segment build gives it.
Readers see an ordinary two-segment Whoosh index, as after an incremental update. See docs/search.md.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from whoosh import index as windex

from blog.content import Entry
from blog.index.engine.bulk import BulkWriter
from blog.index.engine.codec import WritingCodec
from blog.index.schema import block_documents, entry_fields, make_schema
from blog.render import Block, Rendered

log = logging.getLogger(__name__)

# compound segments cost each worker a private copy in RAM; the codec reads field lengths once per flush
WRITER = {"limitmb": 256, "compound": False, "codec": WritingCodec()}
# A full build's postings wait in memory (about 80 bytes each) until a segment is written: 4 million (some
# 2,300 entries of the bench's corpus) is the stock writer's 256 MB pool, and a bigger log gets more segments.
SEGMENT_POSTINGS = 4_000_000
PARALLEL_FROM = 200  # entries; below this, starting a Python process costs more than it saves
CHILD_SHARE = 0.47  # of the blocks: the child spends about 0.3 s starting before it writes anything

PACKAGE_ROOT = Path(__file__).resolve().parents[3]
SEGMENT, INDEX, ERRORS = "segment.pickle", "index", "stderr.txt"  # the child's files in its directory

# What a process needs to index an entry's blocks: entry_fields() and the blocks, both plain picklable data.
Part = list[tuple[tuple[str, str, int, str], tuple[Block, ...]]]


class ChildFailed(Exception):
    """The process writing the other segment exited with an error."""


def write_full(entries: Sequence[Entry], rendered: Mapping[str, Rendered], directory: Path) -> str:
    """Create the index of every entry in a new directory; return what was done, for the log."""
    directory.mkdir()
    if len(entries) >= PARALLEL_FROM:
        try:
            return _write_two(entries, rendered, directory)
        except (ChildFailed, OSError) as exc:
            # A process that cannot start (or died) is no reason to fail a publish: one process will do.
            log.warning("writing the index in two processes failed (%s); writing it in one", exc)
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
    ix = windex.create_in(str(directory), make_schema())
    _add(BulkWriter(ix, SEGMENT_POSTINGS, **WRITER), _parts(entries, rendered)).commit()
    return f"full build of {len(entries)} entries"


def _parts(entries: Sequence[Entry], rendered: Mapping[str, Rendered]) -> Part:
    return [(entry_fields(e), rendered[e.slug].blocks) for e in entries]


def _add(writer: BulkWriter, parts: Part) -> BulkWriter:
    for fields, blocks in parts:
        for doc in block_documents(fields, blocks):
            writer.add_document(**doc)
    return writer


def _split(parts: Part) -> int:
    """Return how many entries the child takes: CHILD_SHARE of the blocks, counted in whole entries."""
    total, wanted = sum(len(b) for _, b in parts), 0
    for taken, (_, blocks) in enumerate(parts, 1):
        wanted += len(blocks)
        if wanted >= total * CHILD_SHARE:
            return taken
    return len(parts)


def _feed(pipe: IO[bytes], data: bytes) -> None:
    try:
        with pipe:
            pipe.write(data)
    except BrokenPipeError:
        pass  # the child died; its exit status says why


def _write_two(entries: Sequence[Entry], rendered: Mapping[str, Rendered], directory: Path) -> str:
    side = directory.with_name(directory.name + ".part")
    shutil.rmtree(side, ignore_errors=True)
    side.mkdir()
    path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
    # Started first: the child spends its first 0.3 s importing, while this process gathers the blocks.
    with (side / ERRORS).open("wb") as errors:
        child = subprocess.Popen([sys.executable, "-m", "blog.index.engine.segment_worker", str(side)],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
                                 env={**os.environ, "PYTHONPATH": path})
    feeder: threading.Thread | None = None
    try:
        parts = _parts(entries, rendered)
        cut = _split(parts)
        data = pickle.dumps((SEGMENT_POSTINGS, parts[:cut]), protocol=pickle.HIGHEST_PROTOCOL)
        feeder = threading.Thread(target=_feed, args=(child.stdin, data), name="index-child-feed", daemon=True)
        feeder.start()
        ours, data, parts = parts[cut:], b"", []  # the child's blocks are freed once they are sent
        ix = windex.create_in(str(directory), make_schema())
        writer = _add(BulkWriter(ix, SEGMENT_POSTINGS, **WRITER), ours)
        mine = writer.finish_segments()  # before waiting: the child may still be writing
        feeder.join()
        if child.wait():
            writer.cancel()
            said = (side / ERRORS).read_text(errors="replace")[-2000:]
            raise ChildFailed(f"exit status {child.returncode}: {said}")
        with (side / SEGMENT).open("rb") as handle:
            theirs = pickle.load(handle)  # noqa: S301 - written by our child into our own directory
        prefixes = tuple(segment.segment_id() + "." for segment in theirs)
        for name in os.listdir(side / INDEX):
            if name.startswith(prefixes):
                os.rename(side / INDEX / name, directory / name)
        writer.commit_with([*theirs, *mine])
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if feeder is not None:
            feeder.join()  # it closes the pipe, also when the child was killed mid-write
        elif child.stdin is not None:
            child.stdin.close()
        shutil.rmtree(side, ignore_errors=True)
    return f"full build of {len(entries)} entries in two processes ({cut} + {len(entries) - cut})"


def write_segment(side: Path, source: IO[bytes]) -> None:
    """Write the entries pickled on source as segments in side/INDEX; pickle them to side/SEGMENT."""
    max_postings, parts = pickle.load(source)  # noqa: S301 - sent by our parent, write_full
    (side / INDEX).mkdir()
    ix = windex.create_in(str(side / INDEX), make_schema())
    writer = _add(BulkWriter(ix, max_postings, **WRITER), parts)
    segments = writer.finish_segments()
    writer.commit_with(segments)  # releases the writer; the parent commits the index these will be part of
    with (side / SEGMENT).open("wb") as handle:
        pickle.dump(segments, handle, protocol=pickle.HIGHEST_PROTOCOL)
