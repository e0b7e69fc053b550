"""Full index builds: one segment in this process, or two written at once by this process and a child.

A full build of 1,000 entries is a few seconds of pure Python per core. Above PARALLEL_FROM entries a child
Python (blog/child.py: a fresh interpreter running write_segment) writes the first part of the entries as a
segment of its own, in a directory beside the index, while this process writes the rest. The child's
segment files are then moved in and one commit records both segments, the child's first, so every block
keeps the document number a one-segment build gives it. Readers see an ordinary two-segment Whoosh index,
as after an incremental update. See docs/search.md.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from whoosh import index as windex

from blog import child
from blog.index.engine.bulk import BulkWriter
from blog.index.engine.codec import WritingCodec
from blog.index.schema import Part, block_documents, make_schema

log = logging.getLogger(__name__)

# compound segments cost each worker a private copy in RAM; the codec reads field lengths once per flush
WRITER = {"limitmb": 256, "compound": False, "codec": WritingCodec()}
# A full build's postings wait in memory (about 80 bytes each) until a segment is written: 4 million (some
# 2,300 entries of the bench's corpus) is the stock writer's 256 MB pool, and a bigger log gets more segments.
SEGMENT_POSTINGS = 4_000_000
PARALLEL_FROM = 200  # entries and pages; below this, starting a Python process costs more than it saves
CHILD_SHARE = 0.47  # of the blocks: the child spends about 0.3 s starting before it writes anything


def write_full(gather: Callable[[], Part], count: int, directory: Path) -> str:
    """Create the index of `count` entries and pages in a new directory; return what was done, for the log.

    gather() returns their blocks (blog.index.sources.parts_of), called once the child is starting.
    """
    directory.mkdir()
    if count >= PARALLEL_FROM:
        try:
            return _write_two(gather, directory)
        except (child.ChildFailed, OSError) as exc:
            # A process that cannot start (or died) is no reason to fail a publish: one process will do.
            log.warning("writing the index in two processes failed (%s); writing it in one", exc)
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
    ix = windex.create_in(str(directory), make_schema())
    _add(BulkWriter(ix, SEGMENT_POSTINGS, **WRITER), gather()).commit()
    return f"full build of {count} entries and pages"


def _add(writer: BulkWriter, parts: Part) -> BulkWriter:
    for fields, blocks in parts:
        for doc in block_documents(fields, blocks):
            writer.add_document(**doc)
    return writer


def _split(parts: Part) -> int:
    """Return how many entries the child takes: CHILD_SHARE of the blocks, counted in whole entries or pages."""
    total, wanted = sum(len(b) for _, b in parts), 0
    for taken, (_, blocks) in enumerate(parts, 1):
        wanted += len(blocks)
        if wanted >= total * CHILD_SHARE:
            return taken
    return len(parts)


def _write_two(gather: Callable[[], Part], directory: Path) -> str:
    side = directory.with_name(directory.name + ".part")  # the child's own index, beside ours
    shutil.rmtree(side, ignore_errors=True)
    side.mkdir()
    try:
        # Started first: the child spends its first 0.3 s importing, while this process gathers the blocks.
        with child.start("blog.index.engine.full:write_segment") as worker:
            parts = gather()
            total, cut = len(parts), _split(parts)
            worker.send(side, SEGMENT_POSTINGS, parts[:cut])
            ours, parts = parts[cut:], []
            ix = windex.create_in(str(directory), make_schema())
            writer = _add(BulkWriter(ix, SEGMENT_POSTINGS, **WRITER), ours)
            mine = writer.finish_segments()  # before waiting: the child may still be writing
            try:
                theirs = worker.result()
            except child.ChildFailed:
                writer.cancel()
                raise
        prefixes = tuple(segment.segment_id() + "." for segment in theirs)
        for name in os.listdir(side):
            if name.startswith(prefixes):
                os.rename(side / name, directory / name)
        writer.commit_with([*theirs, *mine])
    finally:
        shutil.rmtree(side, ignore_errors=True)
    return f"full build of {total} entries and pages in two processes ({cut} + {total - cut})"


def write_segment(directory: Path, max_postings: int, parts: Part) -> list[Any]:
    """Write the parts as the segments of a new index in directory (the child's side); return them."""
    ix = windex.create_in(str(directory), make_schema())
    writer = _add(BulkWriter(ix, max_postings, **WRITER), parts)
    segments = writer.finish_segments()
    writer.commit_with(segments)  # releases the writer; the parent commits the index these will be part of
    return segments
