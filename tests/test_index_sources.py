"""Everything a reader can read is searched: standing pages, entries' summaries and dated update notes."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from bench import quality
from blog import builds
from blog.index import store
from blog.index.results import Citation
from blog.index.search import Search
from blog.index.sources import page_blocks
from blog.serving.urls import citation_url

FAR = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)

search = Search()  # words only, as a worker whose semantic process has no vectors yet


def _write(path: Path, front: str, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front.strip()}\n---\n\n{body}\n", encoding="utf-8")


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """Return a content tree whose rare words live only in a summary, an update note or a page."""
    root = tmp_path / "content"
    _write(root / "log" / "2026-03-10-burrows.md", """
title: "Burrows"
date: 2026-03-10T10:00:00Z
tags: [tor]
summary: "How the wallaby cache was sized."
updated:
  - date: 2026-03-12T09:00:00Z
    reason: "The platypus figure was wrong."
    note: "It said 40 MB; the numbat run measured 48 MB."
  - date: 2026-03-12T15:00:00Z
    reason: "A second correction the same day about echidna."
""", "A paragraph about caches.")
    _write(root / "log" / "2026-03-11-hidden.md", """
title: "Hidden"
date: 2026-03-11T10:00:00Z
tags: [tor]
summary: "A draft about the marmoset."
draft: true
""", "Not for readers.")
    _write(root / "pages" / "about.md", 'title: "About"\nsummary: "Who keeps the quoll."',
           "This site keeps no visitor addresses in any log.")
    return root


def _top(build: builds.Build, query: str, **kwargs: object) -> Citation:
    return search.find(build, query, now=FAR, **kwargs).citations[0]


def test_questions_about_standing_pages_find_their_pages(starter: builds.Build) -> None:
    for question, slug in (("does this site log visitors' addresses?", "about"),
                           ("which pages should I read first?", "start-here"),
                           ("is this a tutorial site?", "thesis")):
        found = [c for c in search.find(starter, question, limit=5, now=FAR).citations if c.slug == slug]
        assert found, question
        cited = found[0]
        page = starter.site.pages[slug]
        assert cited.source == "page" and cited.title == page.title
        assert cited.anchor in {b.anchor for b in page_blocks(page, starter.page_html(page))}
        assert citation_url("https://log.example", cited.slug, cited.anchor, cited.source) == \
            f"https://log.example/pages/{slug}#{cited.anchor}"


def test_an_entrys_results_say_they_come_from_an_entry(starter: builds.Build) -> None:
    cited = _top(starter, "hs_ed25519_secret_key")
    assert cited.source == "entry" and cited.slug == "onion-key-survives-reinstall"
    assert citation_url("", cited.slug, cited.anchor, cited.source).startswith("/log/onion-key-survives-reinstall#")


def test_summaries_and_update_notes_cite_their_entry(tmp_path: Path, small: Path) -> None:
    build = quality.build_content(small, tmp_path / "data")
    summary = _top(build, "wallaby")
    assert (summary.source, summary.slug, summary.anchor, summary.kind) == ("entry", "burrows", "summary", "summary")
    assert summary.text == "How the wallaby cache was sized."
    for word in ("platypus", "numbat"):
        note = _top(build, word)
        assert (note.slug, note.anchor, note.kind) == ("burrows", "update-2026-03-12", "update")
        assert note.text == ("Updated 2026-03-12: The platypus figure was wrong. — It said 40 MB; the numbat run "
                             "measured 48 MB.")
        assert note.paragraph_changed == dt.datetime(2026, 3, 12, 9, tzinfo=dt.UTC)
    assert _top(build, "echidna").anchor == "update-2026-03-12-2"  # the day's second note
    page = _top(build, "quoll")
    assert (page.source, page.slug, page.anchor) == ("page", "about", "summary")


def test_drafts_stay_hidden_and_filters_narrow_to_entries(tmp_path: Path, small: Path) -> None:
    build = quality.build_content(small, tmp_path / "data")
    assert search.find(build, "marmoset", now=FAR).total == 0  # a draft's summary
    assert search.find(build, "visitor addresses").citations[0].source == "page"
    for narrowed in ({"tag": "tor"}, {"after": "2026-01-01"}, {"before": "2027-01-01"}):
        assert search.find(build, "visitor addresses", **narrowed).total == 0, narrowed
        assert search.find(build, "wallaby", **narrowed).total == 1, narrowed


def test_a_changed_page_is_indexed_again_alone(tmp_path: Path, small: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    old = quality.build_content(small, data)
    about = small / "pages" / "about.md"
    about.write_text(about.read_text().replace("quoll", "wombat"), encoding="utf-8")
    new = builds.make_build(small, data / "builds", old)
    with caplog.at_level(logging.INFO, logger="blog.index.store"):
        new.index_dir = store.update_index(new, data / "index", old)
    assert "re-indexed 1 changed entries and pages, dropped 1" in caplog.text
    assert search.find(new, "quoll", now=FAR).total == 0
    assert _top(new, "wombat").slug == "about" and _top(new, "wallaby").slug == "burrows"
