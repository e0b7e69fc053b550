"""Every name the engine uses that Whoosh does not document, in one list, checked against the installed Whoosh.

Reaching into Whoosh is what makes the engine fast (docs/search.md). A Whoosh release that renamed one of
these names would fail far from here, or silently: an override nobody calls any more, an attribute set
that Whoosh no longer reads. Importing the engine (codec.py, which every engine module imports) checks the
functions and methods below, a few hasattr calls, and raises WhooshChanged naming the missing ones;
`missing()` also checks the attributes Whoosh sets on its objects, by reading Whoosh's source, and
tests/test_index_engine.py calls it.
"""

from __future__ import annotations

from whoosh.codec import whoosh3
from whoosh.codec.whoosh3 import W3Codec, W3FieldWriter, W3LeafMatcher, W3PerDocReader, W3PostingsWriter
from whoosh.columns import NumericColumn
from whoosh.matching import FilterMatcher
from whoosh.reading import SegmentReader
from whoosh.scoring import BM25FScorer
from whoosh.writing import SegmentWriter

# Functions, methods and properties: module or class attributes, checked when the engine is imported.
DEFINED: tuple[tuple[object, str], ...] = (
    (whoosh3, "_lenfield"),  # postings, codec: the name of a field's length column
    (W3PerDocReader, "_cached_reader"),  # postings, codec: a segment's length column, opened once
    (SegmentReader, "deleted_docs_set"),  # rank: deleted documents, dropped once after scoring
    (W3LeafMatcher, "_read_ids"),  # postings: a posting block's ids and weights as arrays ...
    (W3LeafMatcher, "_read_weights"),
    (W3LeafMatcher, "_next_block"),  # ... then the next block
    (W3PostingsWriter, "_write_block"),  # bulk: encode the block _RunWriter filled
    (W3PostingsWriter, "_mini_ids"),  # bulk overrides these two (the same tuples, so the same bytes)
    (W3PostingsWriter, "_mini_weights"),
    (SegmentWriter, "_flush_segment"),  # bulk overrides it: writes the per-term runs
    (SegmentWriter, "_check_state"),
    (SegmentWriter, "_check_fields"),
    (SegmentWriter, "_finalize_segment"),
    (SegmentWriter, "_close_segment"),
    (SegmentWriter, "_commit_toc"),
    (SegmentWriter, "_finish"),
)

# Attributes Whoosh's own code sets on its objects (`self.<name> = ...`), which the engine reads or sets.
SET: tuple[tuple[type, str], ...] = (
    (SegmentReader, "_perdoc"),  # postings: a segment's per-document reader (its length columns)
    (W3PerDocReader, "_doccount"),  # codec
    (NumericColumn.Reader, "_fixedlen"),  # postings: a length column read whole, one byte a document
    (NumericColumn.Reader, "_dbfile"),
    (NumericColumn.Reader, "_basepos"),
    (NumericColumn.Reader, "_count"),
    (W3LeafMatcher, "_ids"),  # postings: what _read_ids and _read_weights decoded
    (W3LeafMatcher, "_weights"),
    (FilterMatcher, "child"),  # postings: the postings under a segment's deletions
    (BM25FScorer, "idf"),  # postings: the BM25F constants of one term in one field
    (BM25FScorer, "avgfl"),
    (BM25FScorer, "B"),
    (BM25FScorer, "K1"),
    (W3Codec, "_blocklimit"),  # bulk: the codec's block size, compression and inline limit
    (W3Codec, "_compression"),
    (W3Codec, "_inlinelimit"),
    (W3FieldWriter, "_codec"),  # bulk: the field writer whose postings _RunWriter writes
    (W3FieldWriter, "_postfile"),
    (W3FieldWriter, "_postwriter"),
    (W3FieldWriter, "_btext"),
    (W3PostingsWriter, "_blocklimit"),  # bulk: the block _RunWriter fills for _write_block
    (W3PostingsWriter, "_ids"),
    (W3PostingsWriter, "_weights"),
    (W3PostingsWriter, "_values"),
    (W3PostingsWriter, "_maxweight"),
    (W3PostingsWriter, "_minlength"),
    (W3PostingsWriter, "_maxlength"),
    (SegmentWriter, "_added"),  # bulk: what BulkWriter resets when it starts another segment
    (SegmentWriter, "newsegment"),
    (SegmentWriter, "perdocwriter"),
    (SegmentWriter, "fieldwriter"),
    (SegmentWriter, "docnum"),
)


class WhooshChanged(ImportError):
    """The installed Whoosh lacks names the engine relies on: pin the Whoosh the project was tested with."""


def _where(owner: object) -> str:
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}"
    return str(getattr(owner, "__name__", owner))


def assigned(cls: type) -> set[str]:
    """Return the attribute names Whoosh's code sets on `self` in a class and the Whoosh classes it extends."""
    import ast  # reading Whoosh's source is for the tests, not for every worker's import
    import inspect
    import textwrap
    import warnings

    names: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("whoosh"):
            continue
        with warnings.catch_warnings():  # parts of Whoosh's source have invalid escape sequences
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        names.update(node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                     and isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name)
                     and node.value.id == "self")
    return names


def missing() -> list[str]:
    """Return every listed name the installed Whoosh lacks, as owner.name."""
    gone = [f"{_where(owner)}.{name}" for owner, name in DEFINED if not hasattr(owner, name)]
    found: dict[type, set[str]] = {}
    for cls, name in SET:
        if cls not in found:
            found[cls] = assigned(cls) | set(dir(cls))
        if name not in found[cls]:
            gone.append(f"{_where(cls)}.{name}")
    return gone


def require() -> None:
    """Raise WhooshChanged unless every listed function and method is there (cheap: run on import)."""
    gone = [f"{_where(owner)}.{name}" for owner, name in DEFINED if not hasattr(owner, name)]
    if gone:
        raise WhooshChanged(f"the installed Whoosh lacks {', '.join(gone)}, which blog/index/engine/ relies on; "
                            "install the Whoosh in constraints.txt")
