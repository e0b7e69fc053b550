"""The codec the index is written with: Whoosh's own W3 format, with field lengths read once per flush.

When Whoosh's writer flushes a segment it asks for the field length of every posting (for each posting
block's statistics). The stock per-document reader looks each one up through a column reader and, for
fields without lengths (ID, KEYWORD, NUMERIC), stat()s a missing column file every time: about a fifth of
indexing time. This reader loads each field's lengths once. The segments written are ordinary W3
segments and record Whoosh's stock codec, so readers never depend on this module.
"""

from __future__ import annotations

from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3Codec, W3PerDocReader, W3Segment, _lenfield
from whoosh.filedb.filestore import Storage
from whoosh.util.numeric import byte_to_length

from blog.index.engine import whoosh_private

whoosh_private.require()  # a Whoosh without the names the engine reaches for fails here, naming them

# A length byte decoded as the stock reader does it: 0 means no length recorded (None).
LENGTH_OF_BYTE: list[int | None] = [None] + [byte_to_length(b) for b in range(1, 256)]


class _OnceLengths(W3PerDocReader):
    """W3PerDocReader with each field's length column decoded once, and missing columns remembered."""

    def __init__(self, storage: Storage, segment: W3Segment) -> None:
        super().__init__(storage, segment)
        self._decoded: dict[str, list[int | None] | None] = {}

    def doc_field_length(self, docnum: int, fieldname: str, default: int = 0) -> int | None:
        if fieldname not in self._decoded:
            column = self._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
            self._decoded[fieldname] = None if column is None else [LENGTH_OF_BYTE[b] for b in column.load()]
        lengths = self._decoded[fieldname]
        if lengths is None:
            return default
        if docnum > self._doccount:
            raise IndexError(f"Asked for docnum {docnum} of {self._doccount}")
        return lengths[docnum] if docnum < len(lengths) else None


class WritingCodec(W3Codec):
    """Write W3 segments; record the stock codec in them, so opening an index needs only Whoosh."""

    def per_document_reader(self, storage: Storage, segment: W3Segment) -> W3PerDocReader:
        return _OnceLengths(storage, segment)

    def new_segment(self, storage: Storage, indexname: str) -> W3Segment:
        return W3Segment(W3Codec(), indexname)
