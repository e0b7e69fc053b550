"""The render room: Markdown features and anchors that survive edits elsewhere in the entry."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path

import pytest

from blog.render import anchor_for, inline, inline_text, render, update_anchors
from tests.conftest import ROOT

ENTRY = """## Setup

First paragraph about tor.

Second paragraph about stem.

- an item
- another item

```python
print("hello")
```

| a | b |
|---|---|
| 1 | 2 |
"""


def test_every_block_gets_an_anchor_and_a_permalink() -> None:
    rendered = render(ENTRY)
    kinds = [b.kind for b in rendered.blocks]
    assert kinds == ["h", "p", "p", "li", "li", "code", "table"]
    for block in rendered.blocks:
        assert f'id="{block.anchor}"' in rendered.html
        assert f'href="#{block.anchor}"' in rendered.html
    assert rendered.blocks[1].heading_path == ("Setup",)
    assert 'class="hl"' in rendered.html and "<script" not in rendered.html


def test_anchor_is_stable_when_other_paragraphs_change() -> None:
    before = {b.text: b.anchor for b in render(ENTRY).blocks}
    edited = ENTRY.replace("First paragraph about tor.", "A new opening.\n\nFirst paragraph about tor.")
    edited = edited.replace("- another item\n", "")
    after = {b.text: b.anchor for b in render(edited).blocks}
    for text in ("First paragraph about tor.", "Second paragraph about stem.", "an item"):
        assert before[text] == after[text]


def test_rewrapping_keeps_the_anchor_and_editing_changes_it() -> None:
    one = render("A paragraph that\nwraps here.").blocks[0].anchor
    two = render("A paragraph that wraps\nhere.").blocks[0].anchor
    three = render("A paragraph that wraps there.").blocks[0].anchor
    assert one == two == anchor_for("p", "A paragraph that wraps here.")
    assert three != one


def test_identical_paragraphs_get_distinct_anchors() -> None:
    anchors = render("Same.\n\nSame.\n\nSame.").anchors()
    assert anchors[1] == anchors[0] + "-2" and anchors[2] == anchors[0] + "-3"


def test_footnotes_tables_and_toc() -> None:
    rendered = render("## One\n\nText.[^n]\n\n## Two\n\n[^n]: The note.")
    assert 'class="footnote"' in rendered.html
    assert 'href="#one"' in rendered.toc and 'href="#two"' in rendered.toc
    assert rendered.blocks[1].text == "Text."


def test_script_that_slips_through_is_removed() -> None:
    rendered = render('Hi <b onclick="x()">there</b>.\n\n<iframe src="https://x"></iframe>\n\n[a](javascript:alert(1))')
    assert "onclick" not in rendered.html
    assert "<iframe" not in rendered.html
    assert "javascript:" not in rendered.html


def _bodies(tmp_path: Path) -> list[str]:
    from bench.corpus import write_corpus
    from blog.content import load_site

    write_corpus(tmp_path / "gen", 20)
    bodies: list[str] = []
    for root in (ROOT / "content", tmp_path / "gen"):
        site = load_site(root)
        bodies += [e.body for e in site.entries] + [p.body for p in site.pages.values()]
    return [*bodies, ENTRY, "", "Only a footnote[^1].\n\n[^1]: Here.", "# Title\n\n## Same\n\n## Same\n"]


def test_a_reused_converter_renders_what_a_new_one_does(tmp_path: Path) -> None:
    from blog.render import new_markdown

    bodies = _bodies(tmp_path)
    fresh = [render(body, new_markdown()) for body in bodies]
    assert [render(body) for body in bodies] == fresh
    assert [render(body) for body in reversed(bodies)] == fresh[::-1]  # no state carried between documents


def test_render_many_in_two_processes_renders_what_render_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from blog import render as render_module

    bodies = {f"doc-{i}": body for i, body in enumerate(_bodies(tmp_path))}
    monkeypatch.setattr(render_module, "PARALLEL_FROM", 2)
    with caplog.at_level(logging.WARNING, logger="blog.render"):
        many = render_module.render_many(bodies)
    assert "failed" not in caplog.text
    assert list(many) == list(bodies)
    assert many == {key: render(body) for key, body in bodies.items()}


def test_render_many_renders_here_when_the_child_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    from blog import render as render_module

    bodies = {f"doc-{i}": body for i, body in enumerate(_bodies(tmp_path))}
    monkeypatch.setattr(render_module, "PARALLEL_FROM", 2)
    monkeypatch.setattr(sys, "executable", "/bin/false")  # blog/child.py starts sys.executable
    with caplog.at_level(logging.WARNING, logger="blog.render"):
        many = render_module.render_many(bodies)
    assert "rendering in a second process failed (exit status 1" in caplog.text
    assert many == {key: render(body) for key, body in bodies.items()}


def test_normalise_collapses_exactly_what_the_whitespace_regex_does() -> None:
    import re
    import sys

    from blog.render import _SPACE, normalise

    space = re.compile(r"\s")
    assert all(bool(space.fullmatch(chr(c))) == chr(c).isspace() for c in range(sys.maxunicode + 1))
    for text in ["", " ", " a  b\n\tc ", "x\u00a0\u2003y\u3000", "\x1c\x1dz\x85", "one\r\ntwo"]:
        assert normalise(text) == _SPACE.sub(" ", text).strip(), repr(text)


def test_the_ids_around_the_body_stay_the_templates() -> None:
    """A heading never takes an id the entry page gives its summary, update notes or sections."""
    text = "## Summary\n\nOne.\n\n## Update 2026-11-25\n\nTwo.\n\n## Updates\n\nThree.\n\n## Summary of runs\n\nFour."
    headings = [b.anchor for b in render(text).blocks if b.kind == "h"]
    assert headings == ["summary-h", "update-2026-11-25-h", "updates-h", "summary-of-runs"]


def test_update_notes_are_anchored_by_day_in_order() -> None:
    days = [dt.datetime(2026, 3, d, h, tzinfo=dt.UTC) for d, h in ((12, 9), (12, 15), (14, 8))]
    assert update_anchors(days[:1]) == ("update-2026-03-12",)  # a later note leaves the earlier ones be
    assert update_anchors(days) == ("update-2026-03-12", "update-2026-03-12-2", "update-2026-03-14")


@pytest.mark.parametrize(("note", "html"), [
    ("re-ran `-k sync` alone", "re-ran <code>-k sync</code> alone"),
    ("*one* **two** [docs](https://example.org/x)", '<em>one</em> <strong>two</strong> <a href="https://example.org/x">docs</a>'),
    ("<script>alert(1)</script> <b>x</b>", "&lt;script&gt;alert(1)&lt;/script&gt; &lt;b&gt;x&lt;/b&gt;"),
    ("tor's & co <x", "tor's &amp; co &lt;x"),
    ("[see](javascript:alert(1))", "<a>see</a>"),
    ("![plot](https://example.org/p.png)", "![plot](https://example.org/p.png)"),  # an image would be a request
    ("1. not a list", "1. not a list"),
    ("# not a heading", "# not a heading"),
    ("> not a quote", "&gt; not a quote"),
    ("`<b>` in code", "<code>&lt;b&gt;</code> in code"),
    ("", ""),
])
def test_inline_renders_update_notes_markdown_and_shows_raw_html_as_text(note: str, html: str) -> None:
    assert inline(note) == html


def test_inline_text_is_what_a_reader_reads() -> None:
    assert inline_text("re-ran `-k sync` *alone* <b>") == "re-ran -k sync alone <b>"


def test_an_svg_alone_in_its_paragraph_is_a_figure_captioned_by_its_alt_text() -> None:
    """Safest mode shows no SVG: the caption says what it shows; screen readers read the alt text once."""
    rendered = render("![Three boxes, left to right](plots/flow.svg)\n\n![A photo](rack.jpg)\n\n"
                      "An inline ![icon](dot.svg) in a sentence.\n")
    assert ('<figure class="svg"><img alt="Three boxes, left to right" src="plots/flow.svg">'
            '<figcaption aria-hidden="true">Three boxes, left to right</figcaption></figure>') in rendered.html
    assert '<p><img alt="A photo" src="rack.jpg"></p>' in rendered.html  # a raster image is shown in Safest mode
    assert rendered.html.count("<figure") == 1 and [b.text for b in rendered.blocks] == ["An inline in a sentence."]
