"""The public revision log: the whole chain with its signed head, one entry's view, and each revision's Markdown.

Everything here is read from the build (the publishing process checked the chain and signed its head); a
worker never sees the onion key. docs/honesty.md describes the format.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort

from blog.content import Entry, utcnow
from blog.web.context import build, cached

bp = Blueprint("revlog", __name__)


def revision_log() -> Any:
    """Return the build's revision log (blog.honesty.view.RevisionLog), or None for a build made without one."""
    return getattr(build(), "revlog", None)


def _json(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


def _entry(slug: str) -> Entry:
    entry = build().site.entry(slug, utcnow())
    if entry is None:
        abort(404)
    return entry


@bp.get("/revisions.json")
def whole():
    """Serve every record of the revision log, its signed head, and which revision each entry shows."""
    def produce():
        revlog = revision_log()
        if revlog is None:
            abort(404)
        return _json(revlog.as_json()), "application/json", build().created

    return cached(produce)


@bp.get("/log/<slug>/revisions.json")
def of_entry(slug: str):
    """Serve one entry's records and what is served of it, under the log's signed head."""
    def produce():
        entry, revlog = _entry(slug), revision_log()
        if revlog is None or slug not in revlog.shown:
            abort(404)
        return _json(revlog.entry_json(slug)), "application/json", entry.last_updated

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
