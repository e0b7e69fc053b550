"""Machine-readable views: Atom and RSS feeds, sitemap, robots.txt, llms.txt."""

from __future__ import annotations

from feedgen.feed import FeedGenerator
from flask import Blueprint

from blog.content import Entry, utcnow
from blog.mcp.catalog import TOOLS
from blog.web.context import base_url, build, cached, config
from blog.web.files import in_feed, with_files

bp = Blueprint("feeds", __name__)

FEED_SIZE = 50


def _entries() -> list[Entry]:
    return build().site.published(utcnow())


def _feed() -> FeedGenerator:
    cfg, base, entries = config(), base_url(), _entries()
    feed = FeedGenerator()
    feed.id(f"{base}/")
    feed.title(cfg.title)
    feed.subtitle(cfg.description + _head_note())
    feed.author({"name": cfg.author})
    feed.link(href=f"{base}/", rel="alternate")
    feed.language("en")
    feed.updated(max((e.last_updated for e in entries), default=build().created))
    for entry in reversed(entries[:FEED_SIZE]):
        item = feed.add_entry()
        url = f"{base}{entry.url}"
        item.id(url)
        item.guid(url, permalink=True)
        item.title(entry.title)
        item.link(href=url)
        item.published(entry.date)
        # Corrections change `updated`, never the id: readers see an update, not a new post.
        item.updated(entry.last_updated)
        item.summary(entry.summary)
        item.content(in_feed(build().entry_html(entry).html), type="html")
        for tag in entry.tags:
            item.category(term=tag)
    return feed


@bp.get("/feed.atom")
def atom():
    """Serve the Atom feed with full content."""
    def produce():
        feed = _feed()
        feed.link(href=f"{base_url()}/feed.atom", rel="self")
        return feed.atom_str(pretty=True).decode(), "application/atom+xml", _latest()

    return cached(produce)


@bp.get("/feed.rss")
def rss():
    """Serve the RSS 2.0 feed with full content."""
    def produce():
        feed = _feed()
        feed.link(href=f"{base_url()}/feed.rss", rel="self")
        feed.description(config().description + _head_note())
        return feed.rss_str(pretty=True).decode(), "application/rss+xml", _latest()

    return cached(produce)


def _head_note() -> str:
    """Return the sentence that puts the revision log's head where feed readers look."""
    revlog = getattr(build(), "revlog", None)
    if revlog is None:
        return ""
    signed = f"signed by {revlog.address}.onion" if revlog.signature else "unsigned"
    return f" Revision log head {revlog.head} ({signed}; {base_url()}/revisions.json)."


def _latest():
    return max((e.last_updated for e in _entries()), default=build().created)


@bp.get("/sitemap.xml")
def sitemap():
    """List every page for crawlers."""
    def produce():
        base = base_url()
        urls = [("/", _latest())] + [(e.url, e.last_updated) for e in _entries()]
        urls += [(p.url, build().created) for p in build().site.pages.values()]
        body = ['<?xml version="1.0" encoding="UTF-8"?>',
                '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
        for path, modified in urls:
            body.append(f"<url><loc>{base}{path}</loc><lastmod>{modified.strftime('%Y-%m-%dT%H:%M:%SZ')}</lastmod></url>")
        body.append("</urlset>")
        return "\n".join(body) + "\n", "application/xml", _latest()

    return cached(produce)


@bp.get("/robots.txt")
def robots():
    """Welcome crawlers and point them at the sitemap."""
    def produce():
        return f"User-agent: *\nAllow: /\nSitemap: {base_url()}/sitemap.xml\n", "text/plain", build().created

    return cached(produce)


@bp.get("/llms.txt")
def llms():
    """Describe the log for language models (llmstxt.org format)."""
    def produce():
        cfg, base, site = config(), base_url(), build().site
        lines = [f"# {cfg.title}", "", f"> {cfg.description}", "",
                 "Every paragraph has a stable anchor; cite the paragraph URL. Corrections are dated "
                 "updates, never silent edits.", "",
                 "## MCP", "",
                 f"- [MCP endpoint]({base}/mcp): Streamable HTTP (stateless, JSON). Tools: "
                 + "; ".join(f"{t.name} ({t.title.lower()})" for t in TOOLS)
                 + ". Each result carries the entry's revision, the SHA-256 of its text and the revision "
                 "log's head.", "",
                 *_log_lines(base),
                 "## Start here", ""]
        for item in site.reading_order:
            target = site.pages.get(item.slug) if item.kind == "page" else site.entry(item.slug)
            if target is not None:
                lines.append(f"- [{target.title}]({base}{target.url}.md): {item.note or target.summary}"
                             if item.kind == "entry" else f"- [{target.title}]({base}{target.url}): {target.summary}")
        lines += ["", "## Entries", ""]
        lines += [f"- [{e.title}]({base}{e.url}.md): {e.date:%Y-%m-%d}. {e.summary}" for e in _entries()]
        lines += ["", "## Optional", "", f"- [Full text]({base}/llms-full.txt): every entry's Markdown",
                  f"- [Atom feed]({base}/feed.atom)"]
        return "\n".join(lines) + "\n", "text/plain", _latest()

    return cached(produce)


def _log_lines(base: str) -> list[str]:
    """Return llms.txt's section on the revision log: where it is, its head, who signed it."""
    revlog = getattr(build(), "revlog", None)
    if revlog is None:
        return []
    signed = (f"signed with the key of {revlog.address}.onion (ed25519; the address is the key)"
              if revlog.signature else f"not signed ({revlog.unsigned})")
    return ["## Revision log", "",
            f"- [Revision log]({base}/revisions.json): every revision of every entry as a hash chain (SHA-256 of "
            f"each text and linked file, the update's reason, the previous record's hash). Head {revlog.head} "
            f"({revlog.size} records), {signed}.",
            f"- One entry's records: {base}/log/<slug>/revisions.json; the Markdown of revision n, exactly as its "
            f"record hashes it: {base}/log/<slug>/revisions/<n>.md",
            "- Check it all through Tor with `blog verify ADDRESS`; keep the head and pass it as `--since` next "
            "time to check the log was only appended to.", ""]


@bp.get("/llms-full.txt")
def llms_full():
    """Serve every published entry's Markdown in one file."""
    def produce():
        base = base_url()
        parts = [f"# {config().title}\n"]
        for e in _entries():
            body = with_files(e.slug, e.body)
            parts.append(f"\n---\n\n# {e.title}\n\nDate: {e.date:%Y-%m-%d %H:%M} UTC\nURL: {base}{e.url}\n\n{body}\n")
        return "".join(parts), "text/plain", _latest()

    return cached(produce)
