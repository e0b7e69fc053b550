"""The /search page on a copy of the starter log: results, anchors, paging, errors, a damaged index."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from markupsafe import escape
from whoosh.analysis import StemmingAnalyzer

from blog import index
from blog.index.sources import PAGE, parts_of
from blog.serving.urls import citation_url
from blog.web.context import build as current_build
from tests.conftest import ROOT, make_app, make_config
from tests.tor_helpers import wait_for


@pytest.fixture
def site(content_copy: Path, tmp_path: Path):
    app = make_app(make_config(content_copy, tmp_path / "data"))
    return app, app.test_client()


def _result_links(body: str) -> list[str]:
    return re.findall(r'<h2 class="rt"><a href="([^"]+)"', body)


def _unique_words(build, kinds: tuple[str, ...] = ("p",)) -> dict[str, str]:
    """Return words (8+ letters) whose stem occurs in exactly one block of what a reader can read (the
    published entries, their summaries and update notes, the pages) and in no title, with the link to that
    block, when it is of one of these kinds: the search stems, so "blocking" also finds "blocks"."""
    stem = StemmingAnalyzer()
    seen: dict[str, set[str]] = {}
    words: dict[str, str] = {}
    published = {e.slug for e in build.site.published()}
    for (key, _, _, title), blocks in parts_of(build.site, build.rendered):
        if not key.startswith(PAGE) and key not in published:
            continue
        source, slug = ("page", key[len(PAGE):]) if key.startswith(PAGE) else ("entry", key)
        texts = [(title, "-")] + [(b.text, citation_url("", slug, b.anchor, source) if b.kind in kinds else "-")
                                  for b in blocks]
        for text, link in texts:
            for word in set(re.findall(r"[A-Za-z]+", text.lower())):
                root = next((t.text for t in stem(word)), word)
                seen.setdefault(root, set()).add(link)
                if len(word) >= 8:
                    words.setdefault(root, word)
    return {words[r]: next(iter(a)) for r, a in seen.items() if r in words and len(a) == 1 and "-" not in a}


def _leads_to(client, word: str, link: str) -> None:
    """Search for a word: the first result links to this block, whose page has its anchor."""
    page = client.get(f"/search?q={word}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    first = _result_links(body)[0]
    assert first == link, (word, first)
    path, anchor = first.split("#")
    assert f'id="{anchor}"' in client.get(path).get_data(as_text=True)
    assert "<mark" in body and f'value="{word}"' in body


def test_a_paragraphs_words_lead_to_that_paragraph(site: tuple) -> None:
    app, client = site
    with app.test_request_context():
        unique = sorted(_unique_words(current_build()).items())[:12]
    assert len(unique) >= 5
    for word, link in unique:
        _leads_to(client, word, link)


def test_words_of_a_summary_or_an_update_note_lead_to_it_on_the_entry(site: tuple) -> None:
    app, client = site
    with app.test_request_context():
        unique = _unique_words(current_build(), ("summary", "update"))
        entries = current_build().site.published()
    notes = sorted((w, link) for w, link in unique.items() if "#update-" in link)
    assert len(notes) >= 2
    for word, link in notes:
        _leads_to(client, word, link)
    for entry in entries:  # a summary repeats its entry's words, so look for it as a phrase
        body = client.get("/search", query_string={"q": f'"{entry.summary}"'}).get_data(as_text=True)
        assert _result_links(body)[0] == f"/log/{entry.slug}#summary", entry.slug
        assert f'<p class="summary" id="summary">{escape(entry.summary)}</p>' in \
            client.get(entry.url).get_data(as_text=True)


def test_a_question_about_the_site_finds_a_standing_page(site: tuple) -> None:
    app, client = site
    body = client.get("/search", query_string={"q": "which pages should I read first?"}).get_data(as_text=True)
    first = _result_links(body)[0]
    assert first.startswith("/pages/start-here#p-"), first
    result = body[body.index('<article class="result">'):]
    assert '<span class="source">page</span>' in result[:result.index("</article>")]
    path, anchor = first.split("#")
    assert f'id="{anchor}"' in client.get(path).get_data(as_text=True)
    with app.test_request_context():
        page = current_build().site.pages["about"]
    assert f'<p class="summary" id="summary">{escape(page.summary)}</p>' in \
        client.get("/pages/about").get_data(as_text=True)


@pytest.mark.parametrize("query", ["ADD_ONION", "how do I keep the same onion address after a reinstall?",
                                   "tor -stem", '"verify-config" tag:tor'])
def test_page_and_search_agree(site: tuple, query: str) -> None:
    app, client = site
    body = client.get("/search", query_string={"q": query}).get_data(as_text=True)
    with app.test_request_context():
        citations = index.search(current_build(), query, limit=10).citations
    expected = [citation_url("", c.slug, c.anchor) for c in citations]
    assert expected and _result_links(body) == [html.escape(u) for u in expected]


def test_paging(site: tuple) -> None:
    _, client = site
    one = client.get("/search?q=tor").get_data(as_text=True)
    two = client.get("/search?q=tor&page=2").get_data(as_text=True)
    assert 'rel="next"' in one and 'rel="prev"' in two
    assert not set(_result_links(one)) & set(_result_links(two))


def test_spelling_suggestion_on_no_results(site: tuple) -> None:
    _, client = site
    body = client.get("/search?q=permisions").get_data(as_text=True)
    assert "No paragraph matches" in body and "Did you mean" in body and "permissions" in body


@pytest.mark.parametrize("url", ["/search?q=%22open", "/search?q=" + "a" * 201, "/search?q=tor&page=0",
                                 "/search?q=tor&page=abc", "/search?q=tor&page=100000000000000000000",
                                 "/search?q=after:someday+tor", "/search?q=the"])
def test_malformed_queries_get_a_400_with_a_message(site: tuple, url: str) -> None:
    _, client = site
    page = client.get(url)
    assert page.status_code == 400
    text = page.get_data(as_text=True)
    assert "could not be understood" not in text and re.search(r"<p>[^<]{20,}</p>", text)


def test_search_pages_are_not_stored(site: tuple) -> None:
    _, client = site
    assert "no-store" in client.get("/search?q=tor").headers["Cache-Control"]


@pytest.fixture
def builder(content_copy: Path, tmp_path: Path):
    """The builder process a served site runs beside its workers (blog/builder.py), for the in-process app."""
    env = dict(os.environ, BLOG_CONTENT_DIR=str(content_copy), BLOG_DATA_DIR=str(tmp_path / "data"),
               BLOG_TOR_MODE="off")
    env.pop("BLOG_CONFIG", None)
    process = subprocess.Popen([sys.executable, "-m", "blog.builder", "--parent", str(os.getpid())], env=env,
                               cwd=ROOT)
    try:
        wait_for(lambda: (tmp_path / "data" / "builder.pid").exists(), what="the builder")
        yield process
    finally:
        process.terminate()
        process.wait(10)


def test_damaged_index_answers_503_then_is_rebuilt(site: tuple, builder: subprocess.Popen[bytes]) -> None:
    app, client = site
    with app.test_request_context():
        damaged = current_build().index_dir
    index.store.close_all()
    for path in damaged.iterdir():
        if path.name != "manifest.json":
            path.unlink()
    page = client.get("/search?q=onion")
    assert page.status_code == 503 and "rebuilt" in page.get_data(as_text=True)
    assert client.get("/").status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = client.get("/search?q=onion")
        if page.status_code == 200:
            break
        time.sleep(0.3)
    assert page.status_code == 200 and _result_links(page.get_data(as_text=True))


def test_index_dir_lives_in_the_data_dir(site: tuple, content_copy: Path, tmp_path: Path) -> None:
    app, _ = site
    with app.test_request_context():
        where = current_build().index_dir
    assert tmp_path / "data" in where.parents and content_copy not in where.parents
