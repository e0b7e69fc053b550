"""The content tree read strictly: every file parsed and checked, every problem collected with its line."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from blog.content.check import ContentError, ContentProblems, unsafe_html_problems
from blog.content.read import Reader, key_line, regular_bytes
from blog.content.site import Entry, Page, ReadingItem, Site, Update
from blog.content.text import Text

__all__ = ["check_site", "load_site"]

ENTRY_NAME = re.compile(r"^(?P<day>\d{4}-\d{2}-\d{2})-(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*)\.md$")
PAGE_NAME = re.compile(r"^(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*)\.md$")
FOLDER_INDEX = "index.md"  # an entry or page as a folder: <name>/index.md, with the files it links beside it
TAG = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
READING_ORDER = "reading-order.yml"

# One table of what front matter may hold: key -> (required, description used in messages).
ENTRY_KEYS: dict[str, tuple[bool, str]] = {
    "title": (True, 'a quoted string, e.g. title: "Keeping one onion address"'),
    "date": (True, "an ISO 8601 time in UTC, e.g. date: 2026-11-25T16:05:00Z"),
    "tags": (True, "a list of lowercase words, e.g. tags: [tor, stem]"),
    "summary": (True, 'one sentence, e.g. summary: "What broke and what fixed it."'),
    "draft": (False, "true or false"),
    "series": (False, 'a string, e.g. series: "building-the-log"'),
    "updated": (False, "a list of {date, reason, note} items"),
    "upstream": (False, "a list of pull or merge request URLs, or {url, merged} items"),
}
PAGE_KEYS: dict[str, tuple[bool, str]] = {
    "title": (True, 'a quoted string, e.g. title: "Start here"'),
    "summary": (True, "one sentence"),
}


def _name(path: Path, root: Path) -> str:
    """Return the name a file gives its entry or page: its own, or its folder's for a folder's index.md."""
    return f"{path.parent.name}.md" if path.parent.parent.parent == root else path.name


def _documents(folder: Path) -> list[Path]:
    """Return the Markdown files of log/ or pages/: NAME.md, and NAME/index.md for an entry with its files."""
    return sorted([*folder.glob("*.md"), *folder.glob(f"*/{FOLDER_INDEX}")])


def _folders_without_index(folder: Path, rel: Path) -> list[ContentError]:
    return [ContentError(rel / child.name, 0, "a folder without index.md",
                         f"put the entry's Markdown in {rel / child.name / FOLDER_INDEX}, or move the folder out")
            for child in sorted(folder.iterdir())
            if child.is_dir() and not child.name.startswith(".") and not (child / FOLDER_INDEX).is_file()] \
        if folder.is_dir() else []


def _read_entry(path: Path, root: Path) -> tuple[Entry | None, list[ContentError]]:
    rel = path.relative_to(root.parent) if root.parent in path.parents else path
    reader = Reader(path, rel, ENTRY_KEYS)
    name = ENTRY_NAME.match(_name(path, root))
    if not name:
        reader.problem(1, "entry file name must be YYYY-MM-DD-slug.md (or YYYY-MM-DD-slug/index.md)",
                       "rename it, e.g. 2026-11-25-onion-key.md")
    parsed = reader.read()
    if parsed is None or not name:
        return None, reader.problems
    meta, body, body_line, text = parsed
    title = reader.string(meta, "title")
    summary = reader.string(meta, "summary")
    series = reader.string(meta, "series")
    date = reader.time(meta.get("date"), key_line(reader.fm_text, "date"), "date") if "date" in meta else None
    if date and date.date().isoformat() != name["day"]:
        reader.problem(key_line(reader.fm_text, "date"),
                       f"date {date.date()} differs from the file name's {name['day']}",
                       "make the file name's date match the entry's date (UTC)")
    tags = meta.get("tags", [])
    if "tags" in meta and (not isinstance(tags, list) or not all(isinstance(t, str) and TAG.match(t) for t in tags)):
        reader.problem(key_line(reader.fm_text, "tags"), f"tags must be a list of lowercase words, got {tags!r}",
                       ENTRY_KEYS["tags"][1])
        tags = []
    draft = meta.get("draft", False)
    if not isinstance(draft, bool):
        reader.problem(key_line(reader.fm_text, "draft"), f"draft must be true or false, got {draft!r}",
                       "write draft: true")
        draft = False
    updates = _updates(reader, meta.get("updated"))
    upstream = meta.get("upstream") or []
    if not isinstance(upstream, list):
        reader.problem(key_line(reader.fm_text, "upstream"), "upstream must be a list", ENTRY_KEYS["upstream"][1])
        upstream = []
    reader.problems.extend(unsafe_html_problems(rel, body, body_line))
    if reader.problems or date is None:
        return None, reader.problems
    entry = Entry(slug=name["slug"], title=title, date=date, tags=tuple(tags), summary=summary,
                  text=Text(body, text), path=rel, body_line=body_line, draft=draft, series=series,
                  updates=updates, upstream=tuple(upstream))
    return entry, []


def _updates(reader: Reader, value: Any) -> tuple[Update, ...]:
    if value is None:
        return ()
    line = key_line(reader.fm_text, "updated")
    if not isinstance(value, list):
        reader.problem(line, "updated must be a list", "write updated: [{date: ..., reason: ...}]")
        return ()
    updates = []
    lines = item_lines(reader.fm_text, "updated", len(value)) or [line] * len(value)
    for item, item_line in zip(value, lines, strict=True):
        if not isinstance(item, dict) or not {"date", "reason"} <= set(item) or set(item) - {"date", "reason", "note"}:
            reader.problem(line, f"update {item!r} needs date and reason (and optionally note), nothing else",
                           "write - {date: 2026-11-25T17:00:00Z, reason: \"what changed\"}")
            continue
        when = reader.time(item["date"], line, "update date")
        if when:
            updates.append(Update(when, str(item["reason"]).strip(), str(item.get("note") or "").strip(),
                                  item_line))
    return tuple(sorted(updates, key=lambda u: u.date))


def item_lines(fm_text: str, key: str, count: int) -> list[int]:
    """Return the file line of each item of a top-level list in the front matter ([] when it cannot tell)."""
    try:
        root = yaml.compose(fm_text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    for name, node in getattr(root, "value", ()) if isinstance(root, yaml.MappingNode) else ():
        if name.value == key and isinstance(node, yaml.SequenceNode) and len(node.value) == count:
            return [item.start_mark.line + 2 for item in node.value]  # the front matter starts on line 2
    return []


def _read_page(path: Path, root: Path) -> tuple[Page | None, list[ContentError]]:
    rel = path.relative_to(root.parent) if root.parent in path.parents else path
    reader = Reader(path, rel, PAGE_KEYS)
    name = PAGE_NAME.match(_name(path, root))
    if not name:
        reader.problem(1, "page file name must be lowercase-with-hyphens.md (or a folder of that name with "
                       "index.md)", "rename it, e.g. start-here.md")
    parsed = reader.read()
    if parsed is None or not name:
        return None, reader.problems
    meta, body, body_line, text = parsed
    title, summary = reader.string(meta, "title"), reader.string(meta, "summary")
    reader.problems.extend(unsafe_html_problems(rel, body, body_line))
    if reader.problems:
        return None, reader.problems
    return Page(name["slug"], title, summary, Text(body, text), rel, body_line), []


def _reading_order(
    root: Path, entries: Iterable[Entry], pages: dict[str, Page]
) -> tuple[tuple[ReadingItem, ...], list[ContentError]]:
    path = root / READING_ORDER
    rel = Path(root.name) / READING_ORDER
    if not path.exists():
        return (), []
    try:
        raw = regular_bytes(path)
    except OSError as exc:
        return (), [ContentError(rel, 1, f"cannot be read ({exc.strerror or exc})", "make it a readable YAML file")]
    if raw is None:
        return (), [ContentError(rel, 1, "is not a regular file (a folder, a pipe or a device)",
                                 "replace it with a plain YAML file, or remove it")]
    try:
        text = raw.decode("utf-8")
        data = yaml.safe_load(text) or []
    except UnicodeDecodeError:
        return (), [ContentError(rel, 1, "not UTF-8", "save the file as UTF-8")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return (), [ContentError(rel, mark.line + 1 if mark else 1, "not valid YAML", "check quoting and indentation")]
    slugs = {e.slug for e in entries}
    items, problems = [], []
    lines = text.splitlines()
    for index, item in enumerate(data if isinstance(data, list) else [data]):
        kind = next((k for k in ("page", "entry") if isinstance(item, dict) and k in item), None)
        starts = [n for n, line in enumerate(lines, 1) if line.lstrip().startswith("- ")]
        line = starts[index] if index < len(starts) else 1
        if kind is None:
            problems.append(ContentError(rel, line, f"item {item!r} names neither a page nor an entry",
                                         "write - page: start-here   or   - entry: <slug>"))
            continue
        slug = str(item[kind])
        folder = "pages" if kind == "page" else "log"
        if (kind == "page" and slug not in pages) or (kind == "entry" and slug not in slugs):
            problems.append(ContentError(rel, line, f"{kind} '{slug}' does not exist",
                                         f"use the slug of a file under content/{folder}/"))
            continue
        items.append(ReadingItem(kind, slug, str(item.get("note") or "")))
    return tuple(items), problems


def check_site(root: Path) -> tuple[Site | None, list[ContentError]]:
    """Read everything under root; return the site (None if anything is wrong) and every problem."""
    root = Path(root)
    problems: list[ContentError] = []
    entries: list[Entry] = []
    seen: dict[str, Path] = {}
    for path in _documents(root / "log"):
        entry, found = _read_entry(path, root)
        problems.extend(found)
        if entry is None:
            continue
        if entry.slug in seen:
            problems.append(ContentError(entry.path, 1, f"slug '{entry.slug}' is also used by {seen[entry.slug]}",
                                         "rename one of the two files"))
            continue
        seen[entry.slug] = entry.path
        entries.append(entry)
    pages: dict[str, Page] = {}
    for path in _documents(root / "pages"):
        page, found = _read_page(path, root)
        problems.extend(found)
        if page is not None and page.slug in pages:
            problems.append(ContentError(page.path, 1, f"page '{page.slug}' is also {pages[page.slug].path}",
                                         "keep one of the two"))
        elif page is not None:
            pages[page.slug] = page
    for folder in ("log", "pages"):
        problems.extend(_folders_without_index(root / folder, Path(root.name) / folder))
    order, found = _reading_order(root, entries, pages)
    problems.extend(found)
    if not (root / "log").is_dir():
        problems.append(ContentError(root, 0, "no log/ folder", f"create {root}/log/ and put entries in it"))
    if problems:
        return None, problems
    entries.sort(key=lambda e: (e.date, e.slug), reverse=True)
    return Site(tuple(entries), pages, order, root), []


def load_site(root: Path) -> Site:
    """Read the content tree, raising ContentProblems with every problem found."""
    site, problems = check_site(root)
    if site is None:
        raise ContentProblems(problems)
    return site
