"""Revisions of published entries: the check that refuses silent edits (text, linked files), history, `blog lock`."""

from __future__ import annotations

import datetime as dt
import difflib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from blog.content import ContentError, Entry, Site
from blog.honesty import HonestyError
from blog.honesty.file_hashes import MISSING, LinkedFile, digests, files_unrecorded, linked_files
from blog.honesty.lock import Recorded, iso, lock_path, read_lock, write_lock
from blog.honesty.updates import new_updates, order_problems
from blog.render import Rendered, render

log = logging.getLogger(__name__)

DIFF_LINES = 24

HtmlOf = Callable[[str], str | None]  # slug -> the entry's rendered HTML when a build has it, else None


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


def file_problems(entry: Entry, recorded: tuple[Recorded, ...], linked: dict[str, LinkedFile],
                  now: dt.datetime) -> list[ContentError]:
    """Return one problem per linked file whose bytes differ from the last recorded revision's."""
    files = recorded[-1].files
    if files is None:
        return []  # recorded before the lock held files: `blog lock` records them, no update needed
    shown = entry.path.parts[0]
    problems: list[ContentError] = []
    for path in sorted(set(files) | set(linked)):
        was, now_linked = files.get(path), linked.get(path)
        digest = now_linked.digest if now_linked else None
        if digest == was:
            continue
        if was is None:
            what = "is newly linked by"
        elif digest is None:
            what = "is no longer linked by"
        elif digest == MISSING:
            what = "was removed, and is linked by"
        else:
            what = "has other bytes than when it was recorded in"
        message = (f"{shown}/{path} {what} a published entry, without a dated update "
                   f"(recorded revision {len(recorded)}): readers would see another file under the same text")
        problems.append(ContentError(entry.path, now_linked.line if now_linked else entry.body_line, message,
                                     _fix(entry, now)))
    return problems


def entry_problems(entry: Entry, recorded: tuple[Recorded, ...], now: dt.datetime,
                   linked: dict[str, LinkedFile] | None = None) -> list[ContentError]:
    """Return what is dishonest about one entry's body and linked files compared with its recorded revisions."""
    if not recorded:
        return []
    last = recorded[-1]
    if len(entry.updates) < last.updates:
        return [ContentError(entry.path, 1, f"the entry had {last.updates} `updated:` item(s) when it was "
                             f"recorded and now has {len(entry.updates)}",
                             "put the removed update back: the update log only grows")]
    order = order_problems(entry, recorded, now)  # each new update dated after what was recorded
    if len(entry.updates) > last.updates:
        return order  # a correction
    problems = order + file_problems(entry, recorded, linked or {}, now)
    if entry.body_hash != last.hash:
        message = (f"the body of a published entry changed without a dated update "
                   f"(recorded revision {len(recorded)}):\n{short_diff(last.body, entry.body)}\n")
        problems.insert(0, ContentError(entry.path, entry.body_line, message, _fix(entry, now)))
    return problems


def check(site: Site, content_dir: Path, now: dt.datetime, html_of: HtmlOf | None = None) -> list[ContentError]:
    """Return one problem per silent change of a published entry: its body, or a file it links."""
    try:
        locked = read_lock(content_dir)
    except HonestyError as exc:
        return [ContentError(lock_path(content_dir), 1, str(exc), "see docs/honesty.md")]
    problems: list[ContentError] = []
    for entry in site.entries:
        recorded = locked.get(entry.slug, ())
        linked = _linked(entry, site, html_of) if recorded and recorded[-1].files is not None else {}
        problems += entry_problems(entry, recorded, now, linked)
    return problems


def _linked(entry: Entry, site: Site, html_of: HtmlOf | None) -> dict[str, LinkedFile]:
    return linked_files(entry, Path(site.root), html_of(entry.slug) if html_of else None)


def unrecorded(site: Site, content_dir: Path, now: dt.datetime) -> list[Entry]:
    """Return published entries (texts, or linked files) the lock does not hold yet: `blog lock` records them."""
    locked = read_lock(content_dir)
    return [e for e in site.published(now)
            if e.slug not in locked or locked[e.slug][-1].hash != e.body_hash
            or locked[e.slug][-1].updates != len(e.updates)
            or files_unrecorded(locked[e.slug][-1].files, digests(_linked(e, site, None)))]


def history(entry: Entry, recorded: tuple[Recorded, ...]) -> tuple[Revision, ...]:
    """Return every text the entry has shown, oldest first, the current text last."""
    revisions = [Revision(n, r.body, r.since_time, r.reason, r.note) for n, r in enumerate(recorded, start=1)]
    if not revisions:
        return (Revision(1, entry.body, entry.date, recorded=False),)
    if recorded[-1].hash != entry.body_hash:
        fresh = new_updates(entry, recorded)
        latest = fresh[-1] if fresh else entry.updates[-1] if entry.updates else None
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
    """Record newly published entries, justified edits and linked files into the lock; return what changed."""
    problems = check(site, content_dir, now)
    if problems:
        raise HonestyError("refusing to record:\n" + "\n".join(str(p) for p in problems))
    locked = dict(read_lock(content_dir))
    changes: list[str] = []
    for entry in site.published(now):
        recorded = locked.get(entry.slug, ())
        linked = _linked(entry, site, None)
        missing = [path for path, item in linked.items() if item.digest == MISSING]
        if missing:
            raise HonestyError(f"refusing to record: {entry.path} links {', '.join(missing)}, which is not there "
                               "(`blog check` says more)")
        files, stamp = digests(linked), iso(now)
        if not recorded:
            locked[entry.slug] = (Recorded(entry.body_hash, entry.body.strip(), iso(entry.date), stamp,
                                           len(entry.updates), files=files,
                                           dates=[iso(u.date) for u in entry.updates]),)
            changes.append(f"{entry.slug}: recorded revision 1 (published {iso(entry.date)})")
            continue
        last = recorded[-1]
        dates = [iso(u.date) for u in entry.updates]
        if last.hash != entry.body_hash or (last.files is not None and last.files != files):
            # check() made sure there is a new update, dated after everything recorded: the revision is the
            # latest new one's, under its own date and reason.
            update = new_updates(entry, recorded)[-1]
            locked[entry.slug] = (*recorded, Recorded(entry.body_hash, entry.body.strip(), iso(update.date), stamp,
                                                      len(entry.updates), update.reason, update.note, files, dates))
            what = "" if last.hash != entry.body_hash else ", linked files only"
            changes.append(f"{entry.slug}: recorded revision {len(recorded) + 1} ({update.reason}{what})")
            continue
        noted = []
        if last.updates != len(entry.updates):
            noted.append(f"noted {len(entry.updates) - last.updates} update(s) without a text change")
        if files_unrecorded(last.files, files):  # an older lock's revision: its files, as they are now
            noted.append(f"recorded {len(files)} linked file(s) of revision {len(recorded)}")
        if noted:
            kept = files if last.files is not None or files else None
            locked[entry.slug] = (*recorded[:-1], Recorded(last.hash, last.body, last.since, last.recorded,
                                                           len(entry.updates), last.reason, last.note, kept, dates))
            changes.append(f"{entry.slug}: {'; '.join(noted)}")
    if changes:
        write_lock(content_dir, locked)
    return changes
