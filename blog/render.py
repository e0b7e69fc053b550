"""Markdown to HTML, with a stable anchor on every citable block; no Flask, no Whoosh."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlsplit

import markdown
from lxml import html as lxml_html
from lxml.etree import ParserError
from markdown.extensions.toc import slugify
from pygments.formatter import Formatter
from pygments.formatters import get_formatter_by_name

from blog import child as python_child

log = logging.getLogger(__name__)

# Why content hashes and not positions: a citation made today must still land on the same paragraph
# after the operator inserts or removes another one. See docs/anchors.md.
PREFIX = {"p": "p", "li": "li", "code": "code", "table": "table", "quote": "p"}
_SPACE = re.compile(r"\s+")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
# Ids the entry and page templates give what they show around the body: the summary, each dated update
# note (update_anchors), the update log and the upstream list. A heading whose slug would be one of them
# gets "-h" after it, so each id on a page names one element. See docs/anchors.md.
SUMMARY_ANCHOR = "summary"
_TEMPLATE_IDS = frozenset({SUMMARY_ANCHOR, "updates", "upstream", "replaced", "revision"})
_UPDATE_ID = re.compile(r"update-\d{4}-\d{2}-\d{2}(?:-\d+)?")
_SCRIPTY = ("script", "iframe", "object", "embed", "frame", "style", "link", "meta", "base", "form")


@dataclass(frozen=True)
class Block:
    """One citable unit of an entry: paragraph, list item, code block, table or heading."""

    anchor: str
    kind: str  # p | li | code | table | h
    text: str
    heading_path: tuple[str, ...]


@dataclass(frozen=True)
class Rendered:
    """An entry's HTML, its table of contents and its citable blocks in document order."""

    html: str
    toc: str
    blocks: tuple[Block, ...]

    def anchors(self) -> list[str]:
        return [b.anchor for b in self.blocks]


def normalise(text: str) -> str:
    """Collapse whitespace so that re-wrapping a paragraph keeps its anchor."""
    # What _SPACE.sub(" ", text).strip() returns (str.split() and \s agree on every code point, which
    # tests/test_render.py checks), at a quarter of the cost: a tenth of rendering was this.
    return " ".join(text.split())


def update_anchors(dates: list[dt.datetime] | tuple[dt.datetime, ...]) -> tuple[str, ...]:
    """Return the anchors of an entry's dated update notes, oldest first: update-YYYY-MM-DD, -2, -3 on one day.

    A later note on the same day gets the next number, so the notes already there keep their anchors.
    """
    seen: dict[str, int] = {}
    out = []
    for moment in dates:
        day = f"update-{moment:%Y-%m-%d}"
        seen[day] = seen.get(day, 0) + 1
        out.append(day if seen[day] == 1 else f"{day}-{seen[day]}")
    return tuple(out)


def _heading_slug(value: str, separator: str) -> str:
    """Return Python-Markdown's slug of a heading, moved aside when a template uses that id."""
    slug = slugify(value, separator)
    return f"{slug}{separator}h" if slug in _TEMPLATE_IDS or _UPDATE_ID.fullmatch(slug) else slug


def anchor_for(kind: str, text: str) -> str:
    """Return the content-derived anchor of a block (before duplicate suffixes)."""
    digest = hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:8]
    return f"{PREFIX[kind]}-{digest}"


_formatters: dict[str, Formatter] = {}
_local = threading.local()


def _formatter(lang_str: str = "", **options: Any) -> Formatter:
    """Return Pygments' HTML formatter for these options, made once: codehilite made one per code block."""
    # lang_str is dropped, as codehilite's default ("html", by name) never passes it
    key = repr(sorted(options.items()))
    formatter = _formatters.get(key)
    if formatter is None:
        formatter = _formatters[key] = get_formatter_by_name("html", **options)
    return formatter


def new_markdown() -> markdown.Markdown:
    """Return a new Markdown converter with the log's extensions."""
    return markdown.Markdown(
        extensions=["fenced_code", "tables", "footnotes", "toc", "codehilite", "sane_lists"],
        extension_configs={
            "codehilite": {"css_class": "hl", "guess_lang": False, "pygments_formatter": _formatter},
            "toc": {"permalink": False, "toc_depth": "2-4", "slugify": _heading_slug},
            "footnotes": {"BACKLINK_TEXT": "↩"},
        },
        output_format="html",
    )


def _markdown() -> markdown.Markdown:
    # Building a converter (six extensions, their patterns) cost a tenth of rendering an entry: each
    # thread keeps one and resets it between documents.
    md = getattr(_local, "md", None)
    if md is None:
        md = _local.md = new_markdown()
    return md


def _text(element: lxml_html.HtmlElement) -> str:
    """Return the readable text of a block, without footnote markers."""
    parts = [element.text or ""]
    for child in element:
        if not (child.tag == "sup" and (child.get("id") or "").startswith("fnref")):
            parts.append(child.text_content())
        parts.append(child.tail or "")
    return normalise("".join(parts))


def _own_text(element: lxml_html.HtmlElement) -> str:
    """Return an element's text without the text of nested lists."""
    parts = [element.text or ""]
    for child in element:
        if child.tag not in ("ul", "ol"):
            parts.append(child.text_content())
        parts.append(child.tail or "")
    return normalise("".join(parts))


def _permalink(anchor: str) -> lxml_html.HtmlElement:
    link = lxml_html.Element("a", {"class": "pl", "href": f"#{anchor}", "aria-label": "Permalink"})
    link.text = "¶"
    return link


class _Anchorer:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.seen: dict[str, int] = {}
        self.path: list[tuple[int, str]] = []

    def unique(self, anchor: str) -> str:
        count = self.seen.get(anchor, 0) + 1
        self.seen[anchor] = count
        return anchor if count == 1 else f"{anchor}-{count}"

    def add(self, element: lxml_html.HtmlElement, kind: str, text: str) -> None:
        if not text:
            return
        anchor = self.unique(anchor_for(kind, text))
        element.set("id", anchor)
        heading_path = tuple(title for _, title in self.path)
        self.blocks.append(Block(anchor, kind, text, heading_path))
        if kind in ("code", "table"):
            element.insert(0, _permalink(anchor))
        elif kind == "li" and any(c.tag in ("ul", "ol") for c in element):
            nested = next(i for i, c in enumerate(element) if c.tag in ("ul", "ol"))
            link = _permalink(anchor)
            link.tail = "\n"
            element.insert(nested, link)
        else:
            link = _permalink(anchor)
            if len(element):
                element[-1].tail = (element[-1].tail or "") + " "
            else:
                element.text = (element.text or "") + " "
            element.append(link)

    def heading(self, element: lxml_html.HtmlElement) -> None:
        level = int(element.tag[1])
        title = normalise(element.text_content())
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        anchor = element.get("id") or self.unique(anchor_for("p", title))
        element.set("id", anchor)
        self.blocks.append(Block(anchor, "h", title, tuple(t for _, t in self.path)))
        self.path.append((level, title))
        element.append(_permalink(anchor))

    def walk(self, element: lxml_html.HtmlElement) -> None:
        tag = element.tag
        if not isinstance(tag, str):
            return
        if tag in _HEADINGS:
            self.heading(element)
        elif tag == "p":
            if not _svg_figure(element):
                self.add(element, "p", _text(element))
        elif tag in ("ul", "ol"):
            for item in element:
                if item.tag == "li":
                    self.add(item, "li", _own_text(item))
                    for nested in item:
                        if nested.tag in ("ul", "ol"):
                            self.walk(nested)
        elif tag == "div" and "hl" in (element.get("class") or "").split():
            self.add(element, "code", element.text_content().strip("\n"))
        elif tag == "pre":
            self.add(element, "code", element.text_content().strip("\n"))
        elif tag == "table":
            rows = [" | ".join(normalise(c.text_content()) for c in row) for row in element.iter("tr")]
            wrapper = lxml_html.Element("div", {"class": "table"})
            element.addprevious(wrapper)
            wrapper.tail, element.tail = element.tail, None
            wrapper.append(element)
            self.add(wrapper, "table", "\n".join(rows))
        elif tag == "blockquote":
            for child in element:
                self.walk(child)
        # footnotes keep their own ids (fn:1); hr and the rest carry nothing to cite


def _svg_figure(paragraph: lxml_html.HtmlElement) -> bool:
    """Make a paragraph that is one SVG image alone a figure whose caption is the image's alt text.

    Tor Browser's Safest mode shows no SVG (and runs no script), so a diagram would say nothing there; the
    caption says what it shows in every browser. Screen readers read the alt text, so they skip the caption
    that repeats it. Return whether the paragraph was one.
    """
    if len(paragraph) != 1 or (paragraph.text or "").strip() or (paragraph[0].tail or "").strip():
        return False
    image = paragraph[0]
    alt = normalise(image.get("alt") or "")
    if image.tag != "img" or not alt or not urlsplit(image.get("src") or "").path.lower().endswith(".svg"):
        return False
    figure = lxml_html.Element("figure", {"class": "svg"})
    figure.tail, image.tail = paragraph.tail, None
    figure.append(image)
    caption = lxml_html.Element("figcaption", {"aria-hidden": "true"})
    caption.text = alt
    figure.append(caption)
    paragraph.getparent().replace(paragraph, figure)
    return True


def _defang(root: lxml_html.HtmlElement) -> None:
    """Drop anything script-capable that slipped past `blog check` (the CSP would block it anyway)."""
    for bad in list(root.iter(*_SCRIPTY)):
        bad.drop_tree()
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in list(element.attrib.items()):
            if name.lower().startswith("on") or "javascript:" in value.lower().replace(" ", ""):
                del element.attrib[name]


def render(text: str, md: markdown.Markdown | None = None) -> Rendered:
    """Render an entry's Markdown into HTML with anchored blocks (with this thread's converter by default)."""
    md = md or _markdown()
    md.reset()
    body = md.convert(text)
    toc = md.toc if md.toc_tokens else ""  # type: ignore[attr-defined]
    if not body.strip():
        return Rendered("", "", ())
    try:
        root = lxml_html.fragment_fromstring(body, create_parent="div")
    except ParserError:
        return Rendered(body, toc, ())
    _defang(root)
    anchorer = _Anchorer()
    for child in root:
        anchorer.walk(child)
    inner = (root.text or "") + "".join(lxml_html.tostring(c, encoding="unicode") for c in root)
    return Rendered(inner, toc, tuple(anchorer.blocks))


# Update notes are one line of inline Markdown (code spans, emphasis, links): no blocks, no images, no raw HTML.
_NOT_INLINE = ("indent", "code", "hashheader", "setextheader", "hr", "olist", "ulist", "quote", "reference")


def _inline_markdown() -> markdown.Markdown:
    md = getattr(_local, "inline", None)
    if md is None:
        md = _local.inline = markdown.Markdown(output_format="html")
        for name in _NOT_INLINE:
            md.parser.blockprocessors.deregister(name)
        md.preprocessors.deregister("html_block")
        for name in ("html", "image_link", "image_reference", "short_image_ref"):
            md.inlinePatterns.deregister(name)  # raw HTML is shown as text; an image would be a request
    return md


def inline(text: str) -> str:
    """Render one line of inline Markdown (an update note) to HTML; raw HTML in it is shown, never run."""
    md = _inline_markdown()
    md.reset()
    body = md.convert(normalise(text))
    if not body:
        return ""
    root = lxml_html.fragment_fromstring(body, create_parent="div")
    _defang(root)  # a javascript: link
    paragraph = root[0] if len(root) == 1 and root[0].tag == "p" else root
    lead = escape(paragraph.text or "", quote=False)  # lxml hands back the text before the first tag unescaped
    return lead + "".join(lxml_html.tostring(c, encoding="unicode") for c in paragraph)


def inline_text(text: str) -> str:
    """Return what a reader reads of an inline-Markdown line: its text, without the Markdown."""
    html = inline(text)
    return normalise(lxml_html.fragment_fromstring(html, create_parent="div").text_content()) if html else ""


PARALLEL_FROM = 200  # documents; below this, starting a Python process costs more than it saves
CHILD_SHARE = 0.47  # of the Markdown, by length: the child spends about 0.3 s starting


def render_all(bodies: dict[str, str]) -> dict[str, Rendered]:
    """Render every document, keyed as given (in this process)."""
    return {key: render(body) for key, body in bodies.items()}


def render_many(bodies: dict[str, str]) -> dict[str, Rendered]:
    """Render many documents, keyed as given; from PARALLEL_FROM on, a child Python renders part of them."""
    keys = list(bodies)
    if len(keys) < PARALLEL_FROM:
        return render_all(bodies)
    total, share, cut = sum(map(len, bodies.values())), 0, 0
    while cut < len(keys) and share < total * CHILD_SHARE:
        share += len(bodies[keys[cut]])
        cut += 1
    done: dict[str, Rendered] = {}
    try:
        with python_child.start("blog.render:render_all") as worker:
            worker.send({key: bodies[key] for key in keys[:cut]})
            done.update(render_all({key: bodies[key] for key in keys[cut:]}))
            done.update(worker.result())
    except python_child.ChildFailed as exc:
        log.warning("rendering in a second process failed (%s); rendering everything here", exc)
    done.update(render_all({key: bodies[key] for key in keys if key not in done}))
    return {key: done[key] for key in keys}
