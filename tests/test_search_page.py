"""The /search page on a copy of the starter log: results, anchors, paging, errors, a damaged index."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from markupsafe import escape
from whoosh.analysis import StemmingAnalyzer

from blog.content import page_slug
from blog.index import groups, semantic, store
from blog.index.search import Search
from blog.index.sources import parts_of
from blog.serving.urls import citation_url
from blog.web import create_app
from blog.web.context import build as current_build
from blog.web.context import searcher
from tests.conftest import ROOT, make_app, make_config
from tests.tor_helpers import wait_for


@pytest.fixture
def site(content_copy: Path, tmp_path: Path):
    app = make_app(make_config(content_copy, tmp_path / "data"))
    return app, app.test_client()


def _results(body: str) -> list[tuple[str, list[str]]]:
    """Return each result of a search page: the link to its entry or page, and its paragraphs' links."""
    out = []
    for article in re.findall(r'<article class="result">(.*?)</article>', body, re.S):
        title = re.search(r'<h2 class="rt"><a href="([^"]+)"', article).group(1)
        out.append((title, re.findall(r'<a class="pl" href="([^"]+)"', article)))
    return out


def _result_links(body: str) -> list[str]:
    """Return the links to the paragraphs a search page shows, in order."""
    return [link for _, links in _results(body) for link in links]


def _unique_words(build, kinds: tuple[str, ...] = ("p",)) -> dict[str, str]:
    """Return words (8+ letters) whose stem occurs in exactly one block of what a reader can read (the
    published entries, their summaries and update notes, the pages) and in no title, with the link to that
    block, when it is of one of these kinds: the search stems, so "blocking" also finds "blocks"."""
    stem = StemmingAnalyzer()
    seen: dict[str, set[str]] = {}
    words: dict[str, str] = {}
    published = {e.slug for e in build.site.published()}
    for (key, _, _, title), blocks in parts_of(build.site, build.rendered):
        if page_slug(key) is None and key not in published:
            continue
        source, slug = ("entry", key) if page_slug(key) is None else ("page", page_slug(key))
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
        citations = searcher().find(current_build(), query, limit=10, grouped=True).citations
    expected = [citation_url("", c.slug, c.anchor, c.source) for c in citations]
    assert expected and _result_links(body) == [html.escape(u) for u in expected]


def test_paging(site: tuple) -> None:
    """A page is page_size entries and pages; the next one holds the next ones, none of them again."""
    app, client = site
    one = client.get("/search?q=tor").get_data(as_text=True)
    two = client.get("/search?q=tor&page=2").get_data(as_text=True)
    assert 'rel="next"' in one and 'rel="prev"' in two
    # each result is an entry or a page: its title links to it, not to one of its paragraphs
    first, second = [title.split("#")[0] for title, _ in _results(one)], [t.split("#")[0] for t, _ in _results(two)]
    assert len(set(first)) == app.extensions["blog.state"].config.page_size and second
    assert not set(first) & set(second)


def test_spelling_suggestion_on_no_results(site: tuple) -> None:
    _, client = site
    body = client.get("/search?q=permisions").get_data(as_text=True)
    assert "No paragraph matches" in body and "Did you mean" in body and "permissions" in body


@pytest.mark.parametrize(("query", "offered"), [
    ("does this site log visitors addresses", None),  # the log says "visit": the reader's word, cut short
    ("onoin", "onion"), ("how do I keep the same onoin address", "how do I keep the same onion address"),
    ("onoin tag:no-such-tag", None),  # "onion" would find nothing there either
])
def test_did_you_mean_only_when_it_helps(site: tuple, query: str, offered: str | None) -> None:
    _, client = site
    body = client.get("/search", query_string={"q": query}).get_data(as_text=True)
    suggested = re.search(r'Did you mean <a href="[^"]+">([^<]+)</a>', body)
    assert (html.unescape(suggested.group(1)) if suggested else None) == offered, body[:3000]


QUESTION = "how do I keep the same onion address"
ANSWER = "restoring one 96-byte file is enough to keep the address"


@pytest.fixture(scope="module")
def served_site(tmp_path_factory: pytest.TempPathFactory):
    """The demo log's app, searching by words and by meaning over its vectors (the model in var/model)."""
    from blog.builder import prepare

    tmp = tmp_path_factory.mktemp("served")
    shutil.copytree(ROOT / "content", tmp / "content")
    config = make_config(tmp / "content", tmp / "data", semantic=True, model_dir=ROOT / "var" / "model")
    assert semantic.embed(config, prepare(config)), "the model is missing: make model"
    meaning = semantic.load_local(config)
    assert not isinstance(meaning, semantic.WordsOnly), "the model is missing: make model"
    return create_app(config, search=Search(meaning))


@pytest.fixture
def served(served_site):
    """The demo log as a served site answers: ranked by words and by meaning."""
    return served_site.test_client()


def _text(html_text: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", html_text)).split())


def test_a_question_shows_its_answer_in_the_first_result_each_entry_once_and_no_heading(served) -> None:
    body = served.get("/search", query_string={"q": QUESTION}).get_data(as_text=True)
    assert "and by meaning" in body
    results = _results(body)
    first = body[body.index('<article class="result">'):body.index("</article>")]
    assert ANSWER in _text(first), _text(first)[:600]
    titles = [title for title, _ in results]
    assert len(titles) == len(set(titles)) == 10, titles
    for title, links in results:
        assert 1 <= len(links) <= groups.MOST and all(link.startswith(f"{title}#") for link in links)
        page = served.get(title).get_data(as_text=True)
        for link in links:
            anchor = link.split("#", 1)[1]
            tag = re.search(rf'<(\w+)[^>]*\bid="{re.escape(anchor)}"', page).group(1)
            assert tag not in ("h1", "h2", "h3", "h4", "h5", "h6"), f"{link} is a heading"
    count = re.search(r'<p class="meta">([\d,]+) paragraphs in (\d+) entries and (\d+) pages', body)
    assert count and int(count.group(2)) + int(count.group(3)) > len(titles), body[:2000]


def test_a_page_ranked_by_words_alone_asks_for_the_next_by_words(served, served_site) -> None:
    """Page 2 comes from the ranking page 1 came from, so it repeats none of its entries, with no script."""
    one = served.get("/search", query_string={"q": QUESTION}).get_data(as_text=True)
    assert re.search(r'rel="next" href="/search\?q=[^"&]+&amp;page=2"', one)
    # the ranking by meaning is not there (yet), as in a worker whose semantic process is still embedding:
    # page 1 is ranked by words alone
    state = served_site.extensions["blog.state"]
    waiting = create_app(state.config, state=state, search=Search())
    alone = waiting.test_client().get("/search", query_string={"q": QUESTION}).get_data(as_text=True)
    assert "and by meaning" not in alone and _results(alone) != _results(one)
    assert re.search(r'rel="next" href="/search\?q=[^"&]+&amp;by=words&amp;page=2"', alone)
    two = served.get("/search", query_string={"q": QUESTION, "by": "words", "page": 2}).get_data(as_text=True)
    assert "and by meaning" not in two and _results(two)
    assert not {t for t, _ in _results(two)} & {t for t, _ in _results(alone)}
    back = served.get("/search", query_string={"q": QUESTION, "by": "words"}).get_data(as_text=True)
    assert _results(back) == _results(alone)


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
    store.close_all()
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
