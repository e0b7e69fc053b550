"""A writer for new documents that keeps each term's postings in arrays and writes them a block at a time.

Whoosh's SegmentWriter puts every posting into a sorting pool as a tuple, sorts them all, then hands them to
the postings writer one call at a time: at 1,000 entries (1.7 million postings) that per-posting Python was
most of a full build. Documents arrive in document-number order, so a term's postings are already sorted
once they are grouped by term; only the terms need sorting. The blocks written go through Whoosh's own
W3PostingsWriter block encoder, so the segment files are the ones the stock writer produces, byte for byte
(tests/test_index_bulk.py compares them), and any Whoosh reads them.
"""

from __future__ import annotations

from array import array
from operator import sub
from typing import Any

from whoosh.codec.whoosh3 import W3PostingsWriter, W3TermInfo
from whoosh.fields import FieldType
from whoosh.util.numeric import length_to_byte
from whoosh.writing import SegmentWriter

from blog.index.engine.codec import LENGTH_OF_BYTE

# One term's postings in one field: document numbers, weights (doubles, as the pool kept them), values.
_Run = tuple[array, array, list[bytes]]


class _RunWriter(W3PostingsWriter):
    """W3PostingsWriter fed a whole posting list at once, cut into the blocks add_posting() would make."""

    def write_run(self, run: _Run, lengths: list[int | None] | None) -> None:
        ids, weights, values = run
        limit, total = self._blocklimit, len(ids)
        for start in range(0, total, limit):
            end = start + limit
            chunk = weights[start:end]
            self._ids = ids[start:end]
            self._weights = array("f", chunk)
            top = max(chunk)
            self._maxweight = top if top > 0 else 0  # add_posting starts from the int 0
            self._values = [v for v in values[start:end] if v]
            known = [n for n in map(lengths.__getitem__, self._ids) if n] if lengths else ()
            self._minlength = min(known) if known else None
            self._maxlength = max(known) if known else 0
            if end < total:
                self._write_block()  # the last block stays buffered: finish_postings() marks it last

    # The stock minifiers with C-level loops instead of generators; the same tuples, so the same bytes.
    def _mini_ids(self) -> tuple[int, ...]:
        ids = self._ids
        return tuple(map(sub, ids, array("I", [0]) + ids[:-1]))

    def _mini_weights(self) -> tuple[float, ...] | float | None:
        weights, count = self._weights, len(self._weights)
        if weights.count(1.0) == count:
            return None
        if weights.count(weights[0]) == count:
            return weights[0]
        return tuple(weights)


class BulkWriter(SegmentWriter):
    """A SegmentWriter for a new segment of plain documents (no vectors, spelling, columns or boosts).

    Merging older segments would feed the sorting pool, which this writer never reads: use it on an empty
    index (or commit with merge=False) only.
    """

    def __init__(self, ix: Any, max_postings: int = 0, **kwargs: Any) -> None:
        if ix.doc_count_all():
            raise ValueError("BulkWriter writes new indexes only; use ix.writer() to update one")
        super().__init__(ix, **kwargs)
        # The postings are held in memory (about 80 bytes each) until a segment is written: past
        # max_postings (0: no limit) the segment is written and the next document starts a new one.
        self._max = max_postings
        self._done: list[Any] = []
        self._reset()

    def _reset(self) -> None:
        self._count = 0
        self._runs: dict[str, dict[bytes, _Run]] = {}
        self._lengths: dict[str, dict[int, int]] = {}
        self._last: dict[str, tuple[object, list[tuple[bytes, int, float, bytes]]]] = {}

    def _next_segment(self) -> None:
        self._done.append(self._finalize_segment())
        codec, storage = self.codec, self.storage
        self.newsegment = codec.new_segment(storage, self.indexname)
        self.perdocwriter = codec.per_document_writer(storage, self.newsegment)
        self.fieldwriter = codec.field_writer(storage, self.newsegment)
        self.docnum = 0
        self._added = False
        self._reset()

    def _items(self, name: str, field: FieldType, value: object) -> list[tuple[bytes, int, float, bytes]]:
        # A block's slug, tags, date and headings repeat across the blocks of an entry: analyse them once.
        last = self._last.get(name)
        if last is not None and last[0] == value:
            return last[1]
        items = list(field.index(value))
        self._last[name] = (value, items)
        return items

    def add_document(self, **fields: Any) -> None:
        """Add one document: its stored values and lengths now, its postings to the per-term runs."""
        self._check_state()
        schema, docnum, pdw = self.schema, self.docnum, self.perdocwriter
        names = sorted(fields)
        self._check_fields(schema, names)
        pdw.start_doc(docnum)
        for name in names:
            value = fields[name]
            if value is None:
                continue
            field = schema[name]
            if field.vector or field.column_type or field.separate_spelling() or name.startswith("_"):
                raise ValueError(f"BulkWriter cannot write field {name!r}: use ix.writer()")
            length = 0
            if field.indexed:
                runs = self._runs.setdefault(name, {})
                scorable = field.scorable
                items = self._items(name, field, value)
                self._count += len(items)
                for tbytes, freq, weight, vbytes in items:
                    run = runs.get(tbytes)
                    if run is None:
                        run = runs[tbytes] = (array("I"), array("d"), [])
                    run[0].append(docnum)
                    run[1].append(weight * 1.0)  # SegmentWriter multiplies by the field boost, 1.0
                    run[2].append(vbytes)
                    if scorable:
                        length += freq
                if length:
                    self._lengths.setdefault(name, {})[docnum] = length
            pdw.add_field(name, field, value if field.stored else None, length)
        pdw.finish_doc()
        self._added = True
        self.docnum += 1
        if self._max and self._count >= self._max:
            self._next_segment()

    def _decoded_lengths(self, name: str) -> list[int | None] | None:
        # What the stock flush reads back per posting: the length byte decoded, None for no length, and
        # no list at all (every length 0) for a field that never had one.
        known = self._lengths.get(name)
        if not known:
            return None
        return [LENGTH_OF_BYTE[length_to_byte(known[d])] if d in known else None for d in range(self.docnum)]

    def _flush_segment(self) -> None:
        self.perdocwriter.close()
        fw = self.fieldwriter
        for name in sorted(self._runs):
            runs = self._runs[name]
            fw.start_field(name, self.schema[name])
            writer = _RunWriter(fw._postfile, blocklimit=fw._codec._blocklimit,
                                compression=fw._codec._compression, inlinelimit=fw._codec._inlinelimit)
            fw._postwriter = writer
            lengths = self._decoded_lengths(name)
            fmt = self.schema[name].format
            for tbytes in sorted(runs):
                fw._btext = tbytes
                writer.start_postings(fmt, W3TermInfo())
                writer.write_run(runs[tbytes], lengths)
                fw.finish_term()
            fw.finish_field()
        self._runs.clear()
        fw.close()

    def finish_segments(self) -> list[Any]:
        """Write the segment being filled and return every segment written, without committing."""
        self._check_state()
        if self._added:
            return [*self._done, self._finalize_segment()]
        self._close_segment()  # nothing since the last segment: its files are dropped at commit
        return list(self._done)

    def commit_with(self, segments: list[Any]) -> None:
        """Commit a new index of these finished segments, in this order, and release the writer."""
        self._commit_toc(segments)
        self._finish()

    def commit(self, mergetype: Any = None, optimize: bool = False, merge: bool = True) -> None:
        """Commit every segment this writer wrote (a new index has nothing to merge)."""
        self.commit_with(self.finish_segments())
