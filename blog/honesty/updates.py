"""Corrections in order: which `updated:` items the lock has not seen yet, and whether each is dated after it."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from blog.content import ContentError, Entry, Update
from blog.honesty.lock import Recorded, iso


def new_updates(entry: Entry, recorded: tuple[Recorded, ...]) -> tuple[Update, ...]:
    """Return the entry's update items the last recorded revision did not know, oldest first."""
    if not recorded:
        return ()
    last = recorded[-1]
    if last.dates is not None:  # the lock names every update it saw: exactly the others are new
        known = Counter(last.dates)
        fresh = []
        for update in entry.updates:
            if known[iso(update.date)]:
                known[iso(update.date)] -= 1
            else:
                fresh.append(update)
        return tuple(fresh)
    # A lock written before it named its updates: the updates that made revisions are known by date and
    # reason; of the others, the latest are new (the earliest were notes recorded without a text change).
    made = Counter((r.since, r.reason) for r in recorded[1:])
    others = []
    for update in entry.updates:
        if made[(iso(update.date), update.reason)]:
            made[(iso(update.date), update.reason)] -= 1
        else:
            others.append(update)
    extra = len(entry.updates) - last.updates
    return tuple(others[-extra:]) if extra > 0 else ()


def latest_known(recorded: tuple[Recorded, ...]) -> dt.datetime:
    """Return the latest time the lock knows of an entry: its last revision's, or its latest recorded update's."""
    last = recorded[-1]
    times = [last.since_time, *(r.since_time for r in recorded)]
    if last.dates:
        times += [dt.datetime.fromisoformat(d.replace("Z", "+00:00")) for d in last.dates]
    return max(times)


def order_problems(entry: Entry, recorded: tuple[Recorded, ...], now: dt.datetime) -> list[ContentError]:
    """Return one problem per new update dated at or before what the lock recorded, or in the future."""
    if not recorded:
        return []
    problems: list[ContentError] = []
    last = recorded[-1]
    if last.dates is not None:
        present = Counter(iso(u.date) for u in entry.updates)
        gone = sorted((Counter(last.dates) - present).elements())
        for date in gone:
            problems.append(ContentError(entry.path, _updated_line(entry), f"the update dated {date} was recorded "
                                         "in published.lock and is no longer in the entry (or its date changed)",
                                         f"put it back with its date {date}: the update log only grows"))
    floor = latest_known(recorded)
    for update in new_updates(entry, recorded):
        if update.date > now:
            problems.append(ContentError(entry.path, update.line or _updated_line(entry),
                                         f"the update dated {iso(update.date)} is in the future (now {iso(now)})",
                                         f"date it when the correction is made: date: {iso(now)}"))
        elif update.date <= floor:
            problems.append(ContentError(
                entry.path, update.line or _updated_line(entry),
                f"the new update dated {iso(update.date)} ({update.reason}) is dated before what published.lock "
                f"recorded last ({iso(floor)}, revision {len(recorded)}): corrections are recorded in order",
                f"date it after {iso(floor)}, when the correction is made: date: {iso(now)}"))
    return problems


def _updated_line(entry: Entry) -> int:
    return min((u.line for u in entry.updates if u.line), default=entry.body_line)
