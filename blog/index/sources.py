"""Everything a reader can read, as citable blocks: entries, their summaries and update notes, and pages.

An entry's blocks are its summary (anchor `summary`), its dated update notes (`update-YYYY-MM-DD`) and the
blocks of its body, in the order the entry page shows them. A standing page's are its summary and its body.
In the index a page's documents carry the slug "page:<slug>" (blog.content.page_key), the key its rendering
has in the build, so a page never shares a slug with an entry and is never hidden as a draft. See
docs/search.md and docs/anchors.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from blog.content import Entry, Page, Site, Update, page_slug
from blog.index.schema import Fields, Part
from blog.render import SUMMARY_ANCHOR, Block, Rendered, inline_text, normalise, update_anchors

if TYPE_CHECKING:  # the writing side (engine/full.py, also run in a child) needs no build
    from blog.builds import Build

def summary_block(summary: str) -> tuple[Block, ...]:
    """Return the block of a summary (none when it is empty)."""
    text = normalise(summary)
    return (Block(SUMMARY_ANCHOR, "summary", text, ()),) if text else ()


def update_text(update: Update) -> str:
    """Return an update note's text as the entry page shows it."""
    note = f" — {inline_text(update.note)}" if update.note else ""
    return normalise(f"Updated {update.date:%Y-%m-%d}: {inline_text(update.reason)}{note}")


def entry_blocks(entry: Entry, rendered: Rendered) -> tuple[Block, ...]:
    """Return an entry's citable blocks: summary, update notes, then its body's blocks."""
    anchors = update_anchors(tuple(u.date for u in entry.updates))
    notes = tuple(Block(anchor, "update", update_text(u), ("Update log",))
                  for anchor, u in zip(anchors, entry.updates, strict=True))
    return (*summary_block(entry.summary), *notes, *rendered.blocks)


def page_blocks(page: Page, rendered: Rendered) -> tuple[Block, ...]:
    """Return a standing page's citable blocks: its summary, then its body's blocks."""
    return (*summary_block(page.summary), *rendered.blocks)


def entry_fields(entry: Entry) -> Fields:
    """Return what every block document of an entry shares (blog.index.schema.Fields)."""
    return entry.slug, ",".join(entry.tags), int(entry.date.timestamp()), entry.title


def page_fields(page: Page) -> Fields:
    """Return what every block document of a page shares: no tags and no date."""
    return page.key, "", None, page.title


def digests(site: Site) -> Iterator[tuple[str, str]]:
    """Yield each entry's and page's index slug with the hash of its whole file (front matter included)."""
    for entry in site.entries:
        yield entry.slug, entry.text.source_digest
    for page in site.pages.values():
        yield page.key, page.text.source_digest


def part(site: Site, rendered: Mapping[str, Rendered], key: str) -> tuple[Fields, tuple[Block, ...]]:
    """Return what the index holds of one entry or page, by its index slug: every block but the headings.

    A heading is not an answer: its words are in the `about` field of every block under it, and in the
    text embedded for each (blog/index/semantic/vectors.py), so they count for the paragraphs of its section.
    """
    if (slug := page_slug(key)) is not None:
        page = site.pages[slug]
        fields, blocks = page_fields(page), page_blocks(page, rendered[key])
    else:
        entry = site.by_slug[key]
        fields, blocks = entry_fields(entry), entry_blocks(entry, rendered[key])
    return fields, tuple(b for b in blocks if b.kind != "h")


def parts_of(site: Site, rendered: Mapping[str, Rendered]) -> Part:
    """Return what the index holds of every entry, then every page."""
    return [part(site, rendered, key) for key, _ in digests(site)]


def find_block(build: Build, key: str, anchor: str) -> Block | None:
    """Return the block an index key (slug or "page:<slug>", and anchor) names in the build, if any."""
    if (slug := page_slug(key)) is not None:
        page = build.site.pages.get(slug)
        extra = summary_block(page.summary) if page is not None else None
    else:
        entry = build.site.by_slug.get(key)
        extra = entry_blocks(entry, _NOTHING) if entry is not None else None
    if extra is None:
        return None
    found = next((b for b in extra if b.anchor == anchor), None)
    return found or next((b for b in build.rendered[key].blocks if b.anchor == anchor), None)


_NOTHING = Rendered("", "", ())
