"""One result per entry or page: how the search page shapes Search.find()'s ranking of single blocks.

Search.find() ranks blocks: paragraphs, list items, code, tables, summaries, update notes, and headings. A reader
asking a question wants the places that answer it, each once, with the paragraphs that do: so a grouped
answer (search(..., grouped=True)) has one result per entry or page, in the order of its best block, and
under it that source's blocks best first. A heading is never shown on its own: its words say what its
section is about, so a heading leads to a block of its section and shows as that block's heading path.

Which entries and pages a page of results holds depends on the slugs of the ranked keys alone, never on
what their blocks are, so the groups are decided without reading any entry's rendering (a few hundred
sources a query at 1,000 entries): only the groups shown are read, to fold their headings and cite them.
Paging is by groups over one ranking of fixed depth, the same for every page, so page 2 never repeats an
entry of page 1 (docs/search.md, "Results by entry and page").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from blog.render import Block

DEPTH = 150  # blocks of the ranking the groups are formed from: the best 150, whatever the page
# Blocks shown under an entry or page: every one it has among the ranking's best LEAD, at least LEAST and at
# most MOST. One entry that holds most of the best blocks shows them (its fourth may be the answer); the others
# show their best two.
LEAD, LEAST, MOST = 10, 2, 6


def by_source(keys: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Return each source's anchors in rank order, the sources in the order of their best block.

    A key is "slug#anchor" (an entry's slug, or "page:<slug>" for a standing page).
    """
    order: dict[str, list[str]] = {}
    for key in keys:
        slug, anchor = key.split("#", 1)
        order.setdefault(slug, []).append(anchor)
    return list(order.items())


def shown(keys: Sequence[str]) -> dict[str, int]:
    """Return how many blocks each source shows (LEAD, LEAST, MOST above); a source not named shows LEAST."""
    lead = Counter(key.split("#", 1)[0] for key in keys[:LEAD])
    return {slug: min(MOST, max(LEAST, count)) for slug, count in lead.items()}


def paragraphs(keys: Sequence[str], kinds: Mapping[str, str]) -> int:
    """Count the ranked blocks that are not headings (a block found by meaning alone counts as one)."""
    return sum(1 for key in keys if kinds.get(key) != "h")


def fold(blocks: Sequence[Block], ranked: Sequence[str]) -> list[tuple[Block, str]]:
    """Return what a source shows for its ranked anchors, best first, each block once and no heading.

    Each block comes with the ranked anchor it stands for: its own, or a heading's. A heading stands for
    the best-ranked block of its section (everything under it up to the next heading of its level or
    above, subsections included) that the ranking holds and that is not shown yet; when the ranking holds
    none of them, for the first block of its section; when its section is empty, for the next block of the
    page. An anchor the source no longer has is skipped.
    """
    where = {block.anchor: i for i, block in enumerate(blocks)}
    rank = {anchor: r for r, anchor in enumerate(ranked)}
    shown: list[tuple[Block, str]] = []
    seen: set[str] = set()
    for anchor in ranked:
        i = where.get(anchor)
        if i is None:
            continue  # the index and the build disagree only during a switch
        block = blocks[i] if blocks[i].kind != "h" else _lead(blocks, i, rank, seen)
        if block is not None and block.anchor not in seen:
            seen.add(block.anchor)
            shown.append((block, anchor))
    return shown


def _lead(blocks: Sequence[Block], i: int, rank: Mapping[str, int], seen: set[str]) -> Block | None:
    """Return the block a heading leads to (see fold), or None when its section is shown already."""
    under = section(blocks, i)
    fresh = [b for b in under if b.anchor not in seen]
    ranked = [b for b in fresh if b.anchor in rank]
    if ranked:
        return min(ranked, key=lambda b: rank[b.anchor])
    if fresh:
        return fresh[0]
    if under:
        return None
    return next((b for b in blocks[i + 1:] if b.kind != "h" and b.anchor not in seen), None)


def section(blocks: Sequence[Block], i: int) -> list[Block]:
    """Return the blocks under the heading at i, headings left out, in page order."""
    heading = blocks[i]
    path = (*heading.heading_path, heading.text)
    under = []
    for block in blocks[i + 1:]:
        if block.heading_path[:len(path)] != path:
            break
        if block.kind != "h":
            under.append(block)
    return under
