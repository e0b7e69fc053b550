"""Revision pages: what an entry said before each dated update, with every old block at its old anchor."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort

from blog.content import Entry, utcnow
from blog.render import Rendered, render
from blog.web.context import build, cached, page

bp = Blueprint("revisions", __name__)


@dataclass(frozen=True)
class Moved:
    """A block an update replaced: its old anchor, where its text still stands, and until when."""

    anchor: str
    revision: int
    text: str
    until: Any  # datetime


def _revisions(slug: str) -> tuple[Any, ...]:
    return getattr(build(), "revisions", {}).get(slug, ())


def _entry(slug: str) -> Entry:
    entry = build().site.entry(slug, utcnow())
    if entry is None:
        abort(404)
    return entry


def replaced_blocks(revisions: tuple[Any, ...]) -> list[Moved]:
    """Return every anchor of an earlier text that the current text no longer has, newest text first."""
    if len(revisions) < 2:
        return []
    current = set(render(revisions[-1].body).anchors())
    moved: dict[str, Moved] = {}
    for before, after in zip(revisions[-2::-1], revisions[:0:-1], strict=True):
        for block in render(before.body).blocks:
            if block.anchor not in current and block.anchor not in moved:
                text = block.text if len(block.text) <= 90 else block.text[:89] + "…"
                moved[block.anchor] = Moved(block.anchor, before.number, text, after.since)
    return list(moved.values())


def honesty(entry: Entry) -> dict[str, Any]:
    """Return what the entry page shows about revisions and upstream links."""
    revisions = _revisions(entry.slug)
    return {"revisions": revisions if len(revisions) > 1 else (),
            "replaced": replaced_blocks(revisions),
            "upstream": getattr(build(), "upstream", {}).get(entry.slug, ())}


@bp.app_context_processor
def inject() -> dict[str, object]:
    return {"honesty": honesty}


def _diff(old: str, new: str) -> list[tuple[str, str]]:
    """Return (kind, line) pairs of a line diff: ' ' kept, '-' removed, '+' added."""
    return [(line[0], line[2:]) for line in difflib.ndiff(old.strip().splitlines(), new.strip().splitlines())
            if line[:1] in " -+"]


@bp.get("/log/<slug>/revisions")
def listing(slug: str):
    """List every text an entry has shown, with the update that replaced each."""
    def produce():
        entry = _entry(slug)
        html = page("revisions/list.html", entry=entry, revisions=_revisions(slug))
        return html, "text/html", entry.last_updated

    return cached(produce)


@bp.get("/log/<slug>/revisions/<int:number>")
def revision(slug: str, number: int):
    """Show an entry as it read in one revision, with its old anchors and the change the next update made."""
    def produce():
        entry = _entry(slug)
        revisions = _revisions(slug)
        if not 1 <= number <= len(revisions):
            abort(404)
        shown = revisions[number - 1]
        following = revisions[number] if number < len(revisions) else None
        rendered: Rendered = build().placed(slug, render(shown.body))
        diff = _diff(shown.body, following.body) if following else []
        html = page("revisions/revision.html", entry=entry, shown=shown, following=following, rendered=rendered,
                    diff=diff, total=len(revisions))
        return html, "text/html", entry.last_updated

    return cached(produce)
