"""The MCP tools' logic: answers built from the current build and the same Search the web page asks."""

from __future__ import annotations

import datetime as dt
import difflib
import logging
from collections.abc import Callable, Mapping

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError

from blog.builds import Build
from blog.content import Entry, Page, utcnow
from blog.files import mirror
from blog.index.results import Citation, SearchError
from blog.index.search import Search
from blog.index.sources import entry_blocks, page_blocks
from blog.mcp.schemas import (
    Anchor,
    CitedParagraph,
    EntryDetail,
    EntryList,
    EntrySummary,
    PageSummary,
    ReadingOrder,
    ReadingStep,
    SearchAnswer,
    UpdateNote,
)
from blog.render import Block
from blog.serving.urls import citation_url

log = logging.getLogger(__name__)

# A base is either fixed (stdio) or chosen per request from its Host header ("" when there is none).
Base = str | Callable[[str], str]


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _header_host(ctx: Context | None) -> str:
    """Return the Host header of the HTTP request behind this call, or '' (stdio, in-process)."""
    if ctx is None:
        return ""
    headers: Mapping[str, str] | None = None
    try:
        headers = ctx.transport.headers
    except (AttributeError, ValueError, RuntimeError):
        headers = None
    if headers is None:
        try:
            request = ctx.request_context.request
        except ValueError:
            request = None
        headers = getattr(request, "headers", None)
    return (headers or {}).get("host", "") if headers is not None else ""


class Links:
    """Absolute URLs for one request: the primary base, and the onion base when it is known."""

    def __init__(self, base: str, onion: str) -> None:
        self.base, self.onion = base.rstrip("/"), onion.rstrip("/")

    def url(self, path: str) -> str:
        return f"{self.base}{path}" if path.startswith("/") else path

    def onion_url(self, path: str) -> str | None:
        return f"{self.onion}{path}" if self.onion and path.startswith("/") else None


def _summary(entry: Entry, links: Links) -> EntrySummary:
    return EntrySummary(slug=entry.slug, title=entry.title, date=_iso(entry.date), tags=list(entry.tags),
                        summary=entry.summary, url=links.url(entry.url), onion_url=links.onion_url(entry.url),
                        updated=bool(entry.updates), last_updated=_iso(entry.last_updated))


def pinned(build: Build, slug: str) -> dict[str, object]:
    """Return the revision, text hash and log head a result about an entry was read from ({} for a page)."""
    revisions = getattr(build, "revisions", {}).get(slug, ())
    entry = build.site.by_slug.get(slug)
    revlog = getattr(build, "revlog", None)
    if not revisions or entry is None:
        return {}
    return {"revision": len(revisions), "body_sha256": entry.body_hash,
            "log_head": revlog.head if revlog is not None else None}


def _anchors(blocks: tuple[Block, ...], slug: str, source: str, links: Links) -> list[Anchor]:
    return [Anchor(anchor=b.anchor, kind=b.kind, heading_path=list(b.heading_path),
                   url=citation_url(links.base, slug, b.anchor, source)) for b in blocks]


class BlogTools:
    """The tools' logic over whatever build is current when a call arrives."""

    def __init__(self, get_build: Callable[[], Build], search: Search, base_url: Base, onion_base: Base) -> None:
        self.get_build, self._search, self._base, self._onion = get_build, search, base_url, onion_base

    def links(self, ctx: Context | None) -> Links:
        host = _header_host(ctx)
        base = self._base(host) if callable(self._base) else self._base
        onion = self._onion(host) if callable(self._onion) else self._onion
        return Links(base, onion)

    def _entry(self, build: Build, slug: str) -> Entry:
        entry = build.site.entry(slug.strip())
        if entry is None:
            known = [e.slug for e in build.site.published()]
            close = difflib.get_close_matches(slug, known, n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ToolError(f"no published entry with slug {slug!r}: {hint}call list_entries or search_blog "
                            "to find the right slug")
        return entry

    def search(self, ctx: Context | None, query: str, limit: int, tag: str | None, after: str | None,
               before: str | None) -> SearchAnswer:
        if not query.strip():
            raise ToolError("query is empty: pass a few words, e.g. 'onion key backup'")
        build, links = self.get_build(), self.links(ctx)
        try:
            results = self._search.find(build, query, limit=limit, tag=tag or None, after=after or None,
                                        before=before or None)
        except SearchError as exc:
            raise ToolError(str(exc)) from exc
        entries = {e.slug: e for e in build.site.entries}
        cited = [self._cite(c, entries.get(c.slug) if c.source == "entry" else None, links, build)
                 for c in results.citations if c.source == "page" or c.slug in entries]
        return SearchAnswer(query=results.query, total=results.total, results=cited[:limit],
                            corrected=results.corrected or None,
                            ranking="words+meaning" if results.semantic else "words",
                            ranking_note=results.without_meaning)

    def _cite(self, citation: Citation, entry: Entry | None, links: Links, build: Build) -> CitedParagraph:
        def url(base: str) -> str:
            return citation_url(base, citation.slug, citation.anchor, citation.source)

        updates = entry.updates if entry is not None else ()
        return CitedParagraph(
            source=citation.source, title=citation.title, slug=citation.slug, date=_iso(citation.date),
            url=url(links.base), onion_url=url(links.onion) if links.onion else None, anchor=citation.anchor,
            heading_path=list(citation.heading_path), kind=citation.kind, text=citation.text,
            score=round(float(citation.score), 4),
            updated=bool(updates), last_updated=_iso(citation.last_updated),
            latest_update=updates[-1].reason if updates else None,
            paragraph_changed=_iso(citation.paragraph_changed) if citation.paragraph_changed else None,
            **(pinned(build, citation.slug) if entry is not None else {}))

    def entry(self, ctx: Context | None, slug: str) -> EntryDetail:
        build, links = self.get_build(), self.links(ctx)
        page = build.site.pages.get(slug.strip())
        if page is not None and build.site.entry(slug.strip()) is None:
            return self._page(build, page, links)
        entry = self._entry(build, slug)
        return EntryDetail(
            **_summary(entry, links).model_dump(), kind="entry",
            markdown=mirror(entry.body, entry.slug, build.files, links.base),
            anchors=_anchors(entry_blocks(entry, build.entry_html(entry)), entry.slug, "entry", links),
            updates=[UpdateNote(date=_iso(u.date), reason=u.reason, note=u.note) for u in entry.updates],
            **pinned(build, entry.slug))

    def _page(self, build: Build, page: Page, links: Links) -> EntryDetail:
        return EntryDetail(
            slug=page.slug, title=page.title, date=_iso(build.created), tags=[], summary=page.summary,
            url=links.url(page.url), onion_url=links.onion_url(page.url), updated=False,
            last_updated=_iso(build.created), kind="page", updates=[],
            markdown=mirror(page.body, page.key, build.files, links.base),
            anchors=_anchors(page_blocks(page, build.page_html(page)), page.slug, "page", links))

    def entries(self, ctx: Context | None, tag: str | None, year: int | None, limit: int,
                cursor: str | None) -> EntryList:
        try:
            start = int(cursor) if cursor else 0
        except ValueError:
            raise ToolError(f"cursor {cursor!r} is not one this server gave out: pass next_cursor from the "
                            "previous answer, or leave it out for the first page") from None
        if start < 0:
            raise ToolError("cursor must come from next_cursor; leave it out for the first page")
        build, links = self.get_build(), self.links(ctx)
        chosen = [e for e in build.site.published(utcnow())
                  if (not tag or tag in e.tags) and (year is None or e.date.year == year)]
        chosen.sort(key=lambda e: e.date, reverse=True)
        page = chosen[start:start + limit]
        after = start + len(page)
        pages = [] if start or tag or year is not None else [
            PageSummary(slug=p.slug, title=p.title, summary=p.summary, url=links.url(p.url),
                        onion_url=links.onion_url(p.url)) for p in build.site.pages.values()]
        return EntryList(entries=[_summary(e, links) for e in page], total=len(chosen),
                         next_cursor=str(after) if after < len(chosen) else None, pages=pages)

    def reading(self, ctx: Context | None) -> ReadingOrder:
        build, links = self.get_build(), self.links(ctx)
        steps: list[ReadingStep] = []
        for item in build.site.reading_order:
            target: Entry | Page | None = (build.site.pages.get(item.slug) if item.kind == "page"
                                           else build.site.entry(item.slug))
            if target is None:
                continue  # a scheduled entry not yet live, or a page removed since
            steps.append(ReadingStep(kind=item.kind, slug=target.slug, title=target.title,
                                     summary=target.summary, url=links.url(target.url),
                                     onion_url=links.onion_url(target.url), note=item.note))
        return ReadingOrder(steps=steps)

    def markdown(self, slug: str) -> str:
        entry = self.get_build().site.entry(slug)
        if entry is None:
            raise ResourceNotFoundError(f"no published entry {slug!r}; list the resources for valid URIs")
        return f"# {entry.title}\n\n_{_iso(entry.date)}_ · {', '.join(entry.tags)}\n\n{entry.body}\n"
