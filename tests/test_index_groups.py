"""Grouped answers (one result per entry or page, headings folded) and spellings offered only when they help."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import quality
from blog.index import groups
from blog.index.search import Search
from blog.index.spelling import inflected
from blog.render import render

search = Search()  # words only, as a worker whose semantic process has no vectors yet

PAGE = """Opening words of the entry.

## Keeping the key

The first paragraph under the key heading.

```console
$ ls hs/
```

### Backups

A paragraph about the encrypted backup.

## Empty section

## Last section

The closing paragraph.
"""


@pytest.fixture(scope="module")
def blocks():
    return render(PAGE).blocks


def anchor(blocks, start: str) -> str:
    return next(b.anchor for b in blocks if b.text.startswith(start))


def test_a_heading_leads_to_the_best_ranked_block_of_its_section(blocks) -> None:
    key, backup = anchor(blocks, "Keeping the key"), anchor(blocks, "A paragraph about the encrypted")
    ranked = [key, anchor(blocks, "Opening words"), backup]
    shown = groups.fold(blocks, ranked)
    # the backup paragraph (a subsection's) stands where the heading ranked, and shows once
    assert [(b.text[:12], stood) for b, stood in shown] == [("A paragraph ", key), ("Opening word", ranked[1])]
    assert shown[0][0].heading_path == ("Keeping the key", "Backups")


def test_a_heading_without_a_ranked_block_leads_to_its_first_and_never_shows_itself(blocks) -> None:
    shown = groups.fold(blocks, [anchor(blocks, "Keeping the key"), anchor(blocks, "Opening words")])
    assert [b.text for b, _ in shown] == ["The first paragraph under the key heading.", "Opening words of the entry."]
    subsection = groups.fold(blocks, [anchor(blocks, "Backups")])
    assert [b.text for b, _ in subsection] == ["A paragraph about the encrypted backup."]
    empty = groups.fold(blocks, [anchor(blocks, "Empty section"), anchor(blocks, "Last section")])
    assert [b.text for b, _ in empty] == ["The closing paragraph."]  # both headings lead to it: shown once
    assert all(b.kind != "h" for b, _ in shown + subsection + empty)


def test_a_grouped_answer_has_each_entry_once_and_pages_that_never_overlap(tmp_path: Path) -> None:
    content = tmp_path / "content"
    for n in range(14):
        path = content / "log" / f"2026-01-{n + 1:02d}-entry-{n}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'---\ntitle: "Entry {n}"\ndate: 2026-01-{n + 1:02d}T10:00:00Z\ntags: [tor]\n'
                        f'summary: "Notes {n}."\n---\n\n## Zebra care\n\nThe first keeper paragraph {n}.\n\n'
                        f"A second paragraph on zebra feeding {n}.\n\nA third one about zebra stripes {n}.\n")
    build = quality.build_content(content, tmp_path / "data")
    one = search.find(build, "zebra", limit=10, grouped=True, now=quality.FAR)
    two = search.find(build, "zebra", limit=10, offset=10, grouped=True, now=quality.FAR)
    assert (one.entries, one.pages, len(one.groups), len(two.groups)) == (14, 0, 10, 4)
    slugs = [g.first.slug for g in one.groups + two.groups]
    assert len(set(slugs)) == 14
    for group in one.groups:  # the heading leads to its section's first paragraph: 3 blocks, none twice
        assert group.found == 3 and len(group.citations) >= groups.LEAST
        assert all(c.kind == "p" and c.heading_path == ("Zebra care",) for c in group.citations)
    # "care" is in the heading alone, and so in what its paragraphs are about: they are found, never the heading
    per_block = search.find(build, "care", limit=10, now=quality.FAR)
    assert per_block.citations and all(c.kind == "p" and c.heading_path == ("Zebra care",)
                                       for c in per_block.citations)  # MCP's answers stay one block each
    care = search.find(build, "care", limit=10, grouped=True, now=quality.FAR)
    assert care.groups and all(c.kind != "h" for c in care.citations)
    assert all(g.citations[0].heading_path == ("Zebra care",) for g in care.groups)


def test_the_source_that_holds_the_best_blocks_shows_more_of_them() -> None:
    keys = [f"a#p-{i}" for i in range(8)] + ["b#p-0", "c#p-0", "b#p-1", "d#p-0"]
    assert groups.shown(keys) == {"a": groups.MOST, "b": groups.LEAST, "c": groups.LEAST}
    assert groups.shown(["a#p-0", "a#p-1", "a#p-2", "b#p-0"]) == {"a": 3, "b": groups.LEAST}


@pytest.mark.parametrize(("word", "other", "same"), [
    ("visitors", "visit", True), ("logging", "logs", True), ("configurations", "configure", True),
    ("onoin", "onion", False), ("permisions", "permissions", False), ("addresss", "address", False),
    ("quokak", "quokka", False), ("stoped", "stopped", False),
])
def test_a_word_with_another_ending_is_not_a_spelling(word: str, other: str, same: bool) -> None:
    assert inflected(word, other) is same
