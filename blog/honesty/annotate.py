"""What a build carries for the honest log: each entry's revisions, block dates and upstream states."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from blog.builds import Build
from blog.content import ContentError, ContentProblems, Site
from blog.honesty import HonestyError
from blog.honesty.claims import PullState, claim_problems, entry_claims, read_cache
from blog.honesty.lock import lock_path, read_lock
from blog.honesty.revisions import HtmlOf, check, history, paragraph_changed

log = logging.getLogger(__name__)


def problems(site: Site, content_dir: Path, now: dt.datetime, html_of: HtmlOf | None = None) -> list[ContentError]:
    """Return every honesty problem `blog check` and every build refuse: silent edits, bad upstream items."""
    return check(site, content_dir, now, html_of) + claim_problems(site)


def _html(build: Build, slug: str) -> str | None:
    rendered = build.rendered.get(slug)
    return rendered.html if rendered else None


def annotate(build: Build, content_dir: Path, now: dt.datetime) -> None:
    """Refuse silent edits (ContentProblems), then attach revisions, block dates and upstream states."""
    found = problems(build.site, content_dir, now, lambda slug: _html(build, slug))
    if found:
        raise ContentProblems(found)
    try:
        locked = read_lock(content_dir)
        cache = read_cache(content_dir)
    except HonestyError as exc:
        raise ContentProblems([ContentError(lock_path(content_dir), 1, str(exc), "see docs/honesty.md")]) from exc
    for entry in build.site.entries:
        revisions = history(entry, locked.get(entry.slug, ()))
        build.revisions[entry.slug] = revisions
        # Blocks first shown with the entry are not listed: readers of block_changed() fall back to the
        # entry's date, and an entry never revised needs no rendering read back here.
        if len(revisions) > 1 or revisions[0].since != entry.date:
            for anchor, since in paragraph_changed(revisions, build.rendered.get(entry.slug)).items():
                if since != entry.date:
                    build.paragraph_changed[(entry.slug, anchor)] = since
        states: list[tuple[str, PullState | None]] = []
        for claim in entry_claims(entry)[0]:
            states.append((claim.pull.url, cache.get(claim.pull.url)))
        build.upstream[entry.slug] = tuple(states)
    log.info("recorded history of %d entries", len(build.revisions))
