"""The bulk writer of full builds: the segment files it writes are the stock writer's, byte for byte."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from whoosh import index as windex

from bench.corpus import write_corpus
from blog import builds
from blog.index.engine.bulk import BulkWriter
from blog.index.schema import block_documents, make_schema
from blog.index.sources import parts_of
from blog.index.store import WRITER
from tests.conftest import ROOT


def _docs(content: Path, tmp: Path) -> list[dict[str, object]]:
    build = builds.make_build(content, tmp / "builds")
    return [doc for part in parts_of(build.site, build.rendered) for doc in block_documents(*part)]


def _write(directory: Path, docs: list[dict[str, object]], bulk: bool) -> dict[str, bytes]:
    """Write one segment and return its files by extension (the segment id in their names is random)."""
    directory.mkdir()
    ix = windex.create_in(str(directory), make_schema())
    writer = BulkWriter(ix, **WRITER) if bulk else ix.writer(**WRITER)
    for doc in docs:
        writer.add_document(**doc)
    writer.commit()
    (segment,) = ix._segments()
    prefix = f"MAIN_{segment.segid}"
    return {p.name[len(prefix):]: p.read_bytes() for p in directory.iterdir() if p.name.startswith(prefix)}


@pytest.mark.parametrize("corpus", ["starter", "generated"])
def test_bulk_segment_files_equal_the_stock_writers(tmp_path: Path, corpus: str) -> None:
    content = tmp_path / "content"
    if corpus == "starter":
        shutil.copytree(ROOT / "content", content)
    else:
        write_corpus(content, 12)  # enough blocks that common terms fill several 128-posting blocks
    docs = _docs(content, tmp_path)
    stock, bulk = _write(tmp_path / "stock", docs, False), _write(tmp_path / "bulk", docs, True)
    assert {".pst", ".trm", "._stored.col", "._text_len.col"} <= set(stock)
    assert sorted(bulk) == sorted(stock)
    for ext, data in stock.items():
        assert bulk[ext] == data, f"the bulk writer's {ext} differs from Whoosh's"


def test_bulk_writer_refuses_an_index_with_segments(tmp_path: Path) -> None:
    ix = windex.create_in(str(tmp_path), make_schema())
    with ix.writer(**WRITER) as writer:
        writer.add_document(key="a#p-1", slug="a", text="one paragraph")
    with pytest.raises(ValueError, match="new indexes only"):
        BulkWriter(ix, **WRITER)
