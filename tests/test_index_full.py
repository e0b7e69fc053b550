"""Full index builds in two processes: the same postings, lengths, stored fields and answers as one."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from whoosh import index as windex

from bench.corpus import write_corpus
from bench.search import queries
from blog import builds
from blog.index.engine import full
from blog.index.search import Search
from blog.index.sources import parts_of

ENTRIES = 30


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> builds.Build:
    """Return a rendered build of generated entries (no index yet)."""
    tmp = tmp_path_factory.mktemp("full")
    write_corpus(tmp / "content", ENTRIES)
    return builds.make_build(tmp / "content", tmp / "builds")


def _write(build: builds.Build, directory: Path, parallel_from: int, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(full, "PARALLEL_FROM", parallel_from)
    count = len(build.site.entries) + len(build.site.pages)
    return full.write_full(lambda: parts_of(build.site, build.rendered), count, directory)


def _contents(directory: Path) -> dict[str, object]:
    """Return everything a search reads from an index, by global document number."""
    with windex.open_dir(str(directory)).reader() as reader:
        postings = {}
        for field, term in reader.all_terms():
            matcher = reader.postings(field, term)
            items = []
            while matcher.is_active():
                items.append((matcher.id(), matcher.weight(), matcher.value()))
                matcher.next()
            postings[field, term] = (reader.doc_frequency(field, term), reader.frequency(field, term), items)
        lengths = {f: [reader.doc_field_length(d, f) for d in range(reader.doc_count_all())]
                   for f in ("text", "ident", "about")}
        totals = {f: reader.field_length(f) for f in ("text", "ident", "about")}
        return {"segments": len(list(reader.leaf_readers())), "stored": list(reader.all_stored_fields()),
                "postings": postings, "lengths": lengths, "totals": totals}


@pytest.fixture(scope="module")
def written(corpus: builds.Build, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Write the corpus's index once in one process and once in two (each write takes seconds): name ->
    (its directory, what write_full said)."""
    tmp = tmp_path_factory.mktemp("written")
    done = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, parallel_from in (("one", 10**9), ("two", 1)):
            done[name] = (tmp / name, _write(corpus, tmp / name, parallel_from, monkeypatch))
    return done


def test_two_processes_write_what_one_writes(corpus: builds.Build, written: dict[str, tuple[Path, str]]) -> None:
    assert "two processes" in written["two"][1]
    assert "two processes" not in written["one"][1]
    two, one = _contents(written["two"][0]), _contents(written["one"][0])
    assert (two.pop("segments"), one.pop("segments")) == (2, 1)
    assert len(one["stored"]) == sum(len(blocks) for _, blocks in parts_of(corpus.site, corpus.rendered))
    for key in one:
        assert two[key] == one[key], key
    assert not list(written["two"][0].parent.glob("*.part")), "the child's directory was left behind"


def test_two_processes_answer_every_query_alike(corpus: builds.Build, written: dict[str, tuple[Path, str]]) -> None:
    answers = {}
    search = Search()
    for name in ("two", "one"):
        corpus.index_dir = written[name][0]
        search.forget_answers()
        answers[name] = [[(c.anchor, round(c.score, 9)) for c in search.find(corpus, q, limit=10).citations]
                         for q in queries()]
    assert sum(map(bool, answers["one"])) > 150
    assert answers["two"] == answers["one"]


def test_a_failing_child_falls_back_to_one_process(corpus: builds.Build, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")  # blog/child.py starts sys.executable
    with caplog.at_level(logging.WARNING, logger="blog.index.engine.full"):
        done = _write(corpus, tmp_path / "ix", 1, monkeypatch)
    assert "two processes" not in done
    assert "writing the index in two processes failed (exit status 1" in caplog.text
    assert _contents(tmp_path / "ix")["segments"] == 1
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("parallel_from", [1, 10**9])
def test_a_postings_limit_splits_segments_and_changes_nothing_else(corpus: builds.Build, tmp_path: Path,
                                                                    written: dict[str, tuple[Path, str]],
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    parallel_from: int) -> None:
    monkeypatch.setattr(full, "SEGMENT_POSTINGS", 5_000)  # the child is told the limit too
    _write(corpus, tmp_path / "split", parallel_from, monkeypatch)
    split, whole = _contents(tmp_path / "split"), _contents(written["one"][0])
    assert split.pop("segments") >= 4 and whole.pop("segments") == 1
    for key in whole:
        assert split[key] == whole[key], key
