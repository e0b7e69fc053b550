"""Revisions of published entries: the check that refuses silent edits, the history pages, `blog lock`."""

from __future__ import annotations

import datetime as dt
import difflib
import logging
from dataclasses import dataclass
from pathlib import Path

from blog.content import ContentError, Entry, Site
from blog.honesty import HonestyError
from blog.honesty.lock import Recorded, iso, lock_path, read_lock, write_lock
from blog.render import Rendered, render

log = logging.getLogger(__name__)

DIFF_LINES = 24


@dataclass(frozen=True)
class Revision:
    """One text an entry has shown readers, numbered from 1 (the text first published)."""

    number: int
    body: str
    since: dt.datetime
    reason: str = ""
    note: str = ""
    recorded: bool = True  # False: the current text, justified by an update but not yet in the lock


def short_diff(old: str, new: str, limit: int = DIFF_LINES) -> str:
    """Return a unified diff of two bodies, cut to a few lines."""
    lines = list(difflib.unified_diff(old.strip().splitlines(), new.strip().splitlines(), "published", "now",
                                      lineterm="", n=1))
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more diff lines)"]
    return "\n".join(lines)


def _fix(entry: Entry, now: dt.datetime) -> str:
    item = f'  - {{date: {iso(now)}, reason: "one line: what changed and why"}}'
    if entry.updates:
        return f"add an item under the existing `updated:` list in the front matter:\n{item}"
    return f"add to the front matter (a note is optional: note: \"...\"):\nupdated:\n{item}"


def entry_problems(entry: Entry, recorded: tuple[Recorded, ...], now: dt.datetime) -> list[ContentError]:
    """Return what is dishonest about one entry's body compared with its recorded revisions."""
    if not recorded:
        return []
    last = recorded[-1]
    if len(entry.updates) < last.updates:
        return [ContentError(entry.path, 1, f"the entry had {last.updates} `updated:` item(s) when it was "
                             f"recorded and now has {len(entry.updates)}",
                             "put the removed update back: the update log only grows")]
    if entry.body_hash == last.hash or len(entry.updates) > last.updates:
        return []
    message = (f"the body of a published entry changed without a dated update "
               f"(recorded revision {len(recorded)}):\n{short_diff(last.body, entry.body)}\n")
    return [ContentError(entry.path, entry.body_line, message, _fix(entry, now))]


def check(site: Site, content_dir: Path, now: dt.datetime) -> list[ContentError]:
    """Return one problem per published entry whose body changed without an update."""
    try:
        locked = read_lock(content_dir)
    except HonestyError as exc:
        return [ContentError(lock_path(content_dir), 1, str(exc), "see docs/honesty.md")]
    problems: list[ContentError] = []
    for entry in site.entries:
        problems += entry_problems(entry, locked.get(entry.slug, ()), now)
    return problems


def unrecorded(site: Site, content_dir: Path, now: dt.datetime) -> list[Entry]:
    """Return published entries (or texts) the lock does not hold yet: `blog lock` records them."""
    locked = read_lock(content_dir)
    return [e for e in site.published(now)
            if e.slug not in locked or locked[e.slug][-1].hash != e.body_hash
            or locked[e.slug][-1].updates != len(e.updates)]


def history(entry: Entry, recorded: tuple[Recorded, ...]) -> tuple[Revision, ...]:
    """Return every text the entry has shown, oldest first, the current text last."""
    revisions = [Revision(n, r.body, r.since_time, r.reason, r.note) for n, r in enumerate(recorded, start=1)]
    if not revisions:
        return (Revision(1, entry.body, entry.date, recorded=False),)
    if recorded[-1].hash != entry.body_hash:
        latest = entry.updates[-1] if entry.updates else None
        revisions.append(Revision(len(revisions) + 1, entry.body, latest.date if latest else entry.date,
                                  latest.reason if latest else "", latest.note if latest else "", recorded=False))
    return tuple(revisions)


def paragraph_changed(revisions: tuple[Revision, ...],
                      rendered: Rendered | None = None) -> dict[str, dt.datetime]:
    """Return, for each anchor of the current text, when that exact block was first shown."""
    since: dict[str, dt.datetime] = {}
    for revision in revisions:
        # The build has rendered the current text already; rendering (codehilite) is the slow part.
        same = rendered is not None and revision is revisions[-1]
        anchors = set((rendered if same and rendered else render(revision.body)).anchors())
        since = {a: since.get(a, revision.since) for a in anchors}
    return since


def record(site: Site, content_dir: Path, now: dt.datetime) -> list[str]:
    """Record newly published entries and justified edits into the lock; return what changed."""
    problems = check(site, content_dir, now)
    if problems:
        raise HonestyError("refusing to record:\n" + "\n".join(str(p) for p in problems))
    locked = dict(read_lock(content_dir))
    changes: list[str] = []
    for entry in site.published(now):
        recorded = locked.get(entry.slug, ())
        stamp = iso(now)
        if not recorded:
            locked[entry.slug] = (Recorded(entry.body_hash, entry.body.strip(), iso(entry.date), stamp,
                                           len(entry.updates)),)
            changes.append(f"{entry.slug}: recorded revision 1 (published {iso(entry.date)})")
        elif recorded[-1].hash != entry.body_hash:
            update = entry.updates[-1]
            locked[entry.slug] = (*recorded, Recorded(entry.body_hash, entry.body.strip(), iso(update.date), stamp,
                                                      len(entry.updates), update.reason, update.note))
            changes.append(f"{entry.slug}: recorded revision {len(recorded) + 1} ({update.reason})")
        elif recorded[-1].updates != len(entry.updates):
            last = recorded[-1]
            locked[entry.slug] = (*recorded[:-1], Recorded(last.hash, last.body, last.since, last.recorded,
                                                           len(entry.updates), last.reason, last.note))
            changes.append(f"{entry.slug}: noted {len(entry.updates) - last.updates} update(s) without a text change")
    if changes:
        write_lock(content_dir, locked)
    return changes
