"""Reader pages: the log, entries, tags, the archive and the standing pages."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

from flask import Blueprint, abort, request

from blog.content import Entry, utcnow
from blog.web.context import build, cached, config, page
from blog.web.files import with_files

bp = Blueprint("pages", __name__)

MAX_PAGE = 10_000


def _published() -> list[Entry]:
    return build().site.published(utcnow())


def _latest(entries: list[Entry]) -> dt.datetime:
    return max((e.last_updated for e in entries), default=build().created)


def _page_number() -> int:
    raw = request.args.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        abort(404)
    return int(raw)


@bp.get("/")
def home():
    """Show the log, newest first, with the reading order for first-time readers."""
    number = _page_number()

    def produce():
        entries = _published()
        size = config().page_size
        pages = max(1, -(-len(entries) // size))
        if number > pages:
            abort(404)
        chunk = entries[(number - 1) * size: number * size]
        site = build().site
        order = []
        for item in site.reading_order:
            target = site.pages.get(item.slug) if item.kind == "page" else site.entry(item.slug)
            if target is not None:
                order.append((target, item.note or getattr(target, "summary", "")))
        html = page("home.html", entries=chunk, number=number, pages=pages,
                    reading=order if number == 1 else [])
        return html, "text/html", _latest(entries)

    return cached(produce, params=("page",))


@bp.get("/log/<slug>")
def entry(slug: str):
    """Show one entry with its update log and its neighbours."""
    def produce():
        entries = _published()
        index = next((i for i, e in enumerate(entries) if e.slug == slug), None)
        if index is None:
            abort(404)
        current = entries[index]
        newer = entries[index - 1] if index > 0 else None
        older = entries[index + 1] if index + 1 < len(entries) else None
        html = page("entry.html", entry=current, rendered=build().entry_html(current), newer=newer, older=older)
        return html, "text/html", current.last_updated

    return cached(produce)


@bp.get("/log/<slug>.md")
def entry_source(slug: str):
    """Serve the Markdown source of an entry, front matter included."""
    def produce():
        current = build().site.entry(slug, utcnow())
        if current is None:
            abort(404)
        return with_files(current.slug, current.source), "text/markdown", current.last_updated

    return cached(produce)


@bp.get("/tags")
def tags():
    """List every tag with how many entries carry it."""
    def produce():
        entries = _published()
        counts = Counter(t for e in entries for t in e.tags)
        return page("tags.html", counts=sorted(counts.items())), "text/html", _latest(entries)

    return cached(produce)


@bp.get("/tags/<tag>")
def tag(tag: str):
    """List the entries with one tag."""
    def produce():
        entries = [e for e in _published() if tag in e.tags]
        if not entries:
            abort(404)
        html = page("list.html", heading=f"Tagged “{tag}”", entries=entries)
        return html, "text/html", _latest(entries)

    return cached(produce)


@bp.get("/archive")
def archive():
    """List every entry by year and month."""
    def produce():
        entries = _published()
        grouped: dict[int, dict[int, list[Entry]]] = defaultdict(lambda: defaultdict(list))
        for e in entries:
            grouped[e.date.year][e.date.month].append(e)
        years = [(y, sorted(months.items(), reverse=True)) for y, months in sorted(grouped.items(), reverse=True)]
        return page("archive.html", years=years), "text/html", _latest(entries)

    return cached(produce)


@bp.get("/archive/<int:year>")
@bp.get("/archive/<int:year>/<int:month>")
def archive_period(year: int, month: int | None = None):
    """List the entries of one year or one month."""
    def produce():
        entries = [e for e in _published() if e.date.year == year and (month is None or e.date.month == month)]
        if not entries:
            abort(404)
        label = f"{year}" if month is None else f"{year}-{month:02d}"
        return page("list.html", heading=f"Entries from {label}", entries=entries), "text/html", _latest(entries)

    return cached(produce)


@bp.get("/pages/<slug>")
def standing_page(slug: str):
    """Show a standing page (start here, thesis, honesty, roadmap, about)."""
    def produce():
        current = build().site.pages.get(slug)
        if current is None:
            abort(404)
        html = page("page.html", item=current, rendered=build().page_html(current))
        return html, "text/html", build().created

    return cached(produce)
