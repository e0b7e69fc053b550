"""The public revision log: the whole chain with its signed head, one entry's view, and each revision's Markdown.

Everything here is read from the build (the publishing process checked the chain and signed its head); a
worker never sees the onion key. docs/honesty.md describes the format.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort

from blog.content import Entry, utcnow
from blog.web.context import build, cached

bp = Blueprint("revlog", __name__)


def revision_log() -> Any:
    """Return the build's signed head (blog.honesty.revlog_view.SignedHead), or None for a build made without a log."""
    return getattr(build(), "revlog", None)


def _answer(key: str) -> str:
    answers = getattr(build(), "revlog_answers", None)
    if answers is None or key not in answers:
        abort(404)
    return answers[key]


def _entry(slug: str) -> Entry:
    entry = build().site.entry(slug, utcnow())
    if entry is None:
        abort(404)
    return entry


@bp.get("/revisions.json")
def whole():
    """Serve every record of the revision log, its signed head, and which revision each entry shows."""
    def produce():
        return _answer(""), "application/json", build().created

    return cached(produce)


@bp.get("/log/<slug>/revisions.json")
def of_entry(slug: str):
    """Serve one entry's records and what is served of it, under the log's signed head."""
    def produce():
        entry = _entry(slug)
        return _answer(slug), "application/json", entry.last_updated

    return cached(produce)


@bp.get("/log/<slug>/revisions/<int:number>.md")
def text(slug: str, number: int):
    """Serve the Markdown body of one revision exactly as its record hashes it (links as the operator wrote them)."""
    def produce():
        entry = _entry(slug)
        revisions = getattr(build(), "revisions", {}).get(slug, ())
        if not 1 <= number <= len(revisions):
            abort(404)
        return revisions[number - 1].body.strip(), "text/markdown", entry.last_updated

    return cached(produce)


def revision_line(entry: Entry) -> dict[str, Any] | None:
    """Return what an entry page's revision line says: the revision shown, its text's hash, the log's head."""
    revlog = revision_log()
    revisions = getattr(build(), "revisions", {}).get(entry.slug, ())
    if revlog is None or not revisions:
        return None
    return {"number": len(revisions), "recorded": revisions[-1].recorded, "body": entry.body_hash,
            "head": revlog.head, "signed": bool(revlog.signature)}


@bp.app_context_processor
def inject() -> dict[str, object]:
    return {"revision_line": revision_line}
