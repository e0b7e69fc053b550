"""content/published.chain: the lock's revisions as a hash chain, hashes only, one record a line, only appended.

Each record commits to the one before it, so the last record's hash (the head) commits to the whole history:
a revision edited, dropped or reordered in the lock no longer matches the chain (every build refuses it), and a
chain rewritten to match gives another head, which a reader who kept the old one catches (`blog verify
--since`). The format is documented in docs/honesty.md so that anyone can check it without this software.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blog.content import ContentError
from blog.honesty import HonestyError
from blog.honesty.lock import Recorded, write_atomically

log = logging.getLogger(__name__)

CHAIN_NAME = "published.chain"
GENESIS = "0" * 64  # the `prev` of the first record
FIX_LOCK = "restore published.lock and published.chain from git: a published text changes only by a dated update"

Served = Callable[[str], Mapping[str, str]]  # slug -> path -> SHA-256 of the bytes a build serves for it


def canonical(value: Any) -> bytes:
    """Return the bytes a record's hash and a signature cover: JSON, keys sorted, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Record:
    """One revision of one entry, as the chain holds it."""

    seq: int  # 1, 2, ...: the record's place in the chain
    slug: str
    revision: int  # 1 for the text first published, then one per update that changed the text or its files
    date: str  # ISO 8601 UTC: publication for revision 1, the update's date after that
    body: str  # SHA-256 of the Markdown body (stripped), as served at /log/<slug>/revisions/<n>.md
    files: dict[str, str] = field(default_factory=dict)  # path in the content tree -> SHA-256 of the operator's file
    served: dict[str, str] = field(default_factory=dict)  # the same paths -> SHA-256 of the cleaned bytes served
    reason: str = ""  # the update's reason ("" for revision 1)
    prev: str = GENESIS  # the previous record's hash

    def fields(self) -> dict[str, Any]:
        """Return the record's fields as JSON values (asdict's deep copy was most of a 10,000-entry log's time)."""
        return {"seq": self.seq, "slug": self.slug, "revision": self.revision, "date": self.date, "body": self.body,
                "files": dict(self.files), "served": dict(self.served), "reason": self.reason, "prev": self.prev}

    @functools.cached_property
    def hash(self) -> str:
        return hashlib.sha256(canonical(self.fields())).hexdigest()

    def as_json(self) -> dict[str, Any]:
        return {**self.fields(), "hash": self.hash}

    @property
    def name(self) -> str:
        return f"{self.slug} revision {self.revision}"


def head_of(records: tuple[Record, ...] | list[Record]) -> str:
    """Return the chain's head: its last record's hash, or GENESIS for an empty chain."""
    return records[-1].hash if records else GENESIS


def chain_path(content_dir: Path) -> Path:
    return Path(content_dir) / CHAIN_NAME


def parse_record(item: Any) -> Record:
    """Return a Record from its JSON (the `hash` field is checked by chain_problems, not here)."""
    if not isinstance(item, dict):
        raise ValueError("a record is a JSON object")
    fields = {k: v for k, v in item.items() if k != "hash"}
    return Record(**fields)


def read_chain(content_dir: Path) -> tuple[Record, ...] | None:
    """Return the recorded chain, or None when the content tree has none yet."""
    path = chain_path(content_dir)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise HonestyError(f"{path} is unreadable ({exc}): restore it from git") from exc
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            record = parse_record(item)
        except (ValueError, TypeError) as exc:
            raise HonestyError(f"{path}:{number}: not a record ({exc}): restore it from git") from exc
        if item.get("hash") != record.hash:
            raise HonestyError(f"{path}:{number}: record {record.seq} ({record.name}) does not hash to its "
                               "`hash`: it was edited; restore it from git")
        records.append(record)
    return tuple(records)


def write_chain(content_dir: Path, records: tuple[Record, ...]) -> Path:
    """Write the chain atomically, one record a line (appending shows in git as added lines only)."""
    lines = "".join(canonical(record.as_json()).decode("utf-8") + "\n" for record in records)
    path = write_atomically(chain_path(content_dir), lines)
    log.info("wrote %s (%d records)", path, len(records))
    return path


def chain_problems(records: tuple[Record, ...] | list[Record]) -> list[tuple[Record, str]]:
    """Return what is wrong inside a chain: numbering, links, each entry's revisions in order and dated in order."""
    problems: list[tuple[Record, str]] = []
    prev = GENESIS
    seen: dict[str, Record] = {}
    for place, record in enumerate(records, start=1):
        if record.seq != place:
            problems.append((record, f"is numbered {record.seq} at place {place}: a record was dropped or moved"))
        if record.prev != prev:
            problems.append((record, "does not follow the record before it (its `prev` is another hash): "
                                     "a record before it was edited, dropped or moved"))
        before = seen.get(record.slug)
        expected = before.revision + 1 if before else 1
        if record.revision != expected:
            problems.append((record, f"comes where revision {expected} of {record.slug} should: "
                                     "a revision was dropped or reordered"))
        elif before and record.date <= before.date:
            problems.append((record, f"is dated {record.date}, not after revision {before.revision} "
                                     f"({before.date}): corrections are dated in order"))
        seen[record.slug] = record
        prev = record.hash
    return problems


def from_lock(locked: Mapping[str, tuple[Recorded, ...]], served: Served,
              start: tuple[Record, ...] = ()) -> tuple[Record, ...]:
    """Return `start` extended by every lock revision it lacks, in the order they were recorded."""
    have = {(r.slug, r.revision) for r in start}
    todo = sorted(((rec.recorded, rec.since, slug, number, rec) for slug, revisions in locked.items()
                   for number, rec in enumerate(revisions, start=1) if (slug, number) not in have),
                  key=lambda item: item[:4])
    # Within one entry, revisions go in their own order whatever the recorded stamps say.
    by_slug: dict[str, list[tuple[int, Recorded]]] = {}
    for item in todo:
        by_slug.setdefault(item[2], []).append((item[3], item[4]))
    for revisions in by_slug.values():
        revisions.sort(key=lambda pair: pair[0])
    records = list(start)
    for _recorded, _since, slug, _number, _rec in todo:
        number, rec = by_slug[slug].pop(0)
        latest = number == len(locked[slug])
        record = Record(len(records) + 1, slug, number, rec.since, rec.hash, dict(rec.files or {}),
                        dict(served(slug)) if latest else {}, rec.reason, head_of(records))
        records.append(record)
    return tuple(records)


def lock_problems(records: tuple[Record, ...], locked: Mapping[str, tuple[Recorded, ...]],
                  content_dir: Path) -> list[ContentError]:
    """Return one problem per difference between the lock's revisions and the chain's records."""
    path = Path(content_dir.name) / CHAIN_NAME
    problems = [ContentError(path, r.seq, f"record {r.seq} ({r.name}) {what}", FIX_LOCK)
                for r, what in chain_problems(records)]
    recorded = {(r.slug, r.revision): r for r in records}
    for record in records:
        revisions = locked.get(record.slug, ())
        if record.revision > len(revisions):
            problems.append(ContentError(path, record.seq, f"{record.name} is in the chain but not in "
                                         "published.lock: a revision was dropped from the lock", FIX_LOCK))
            continue
        rec = revisions[record.revision - 1]
        files_same = rec.files is None or not record.files or rec.files == record.files  # None, {}: not recorded
        body_same = rec.hash == record.body == hashlib.sha256(rec.body.encode("utf-8")).hexdigest()
        differs = [what for what, same in (("body", body_same), ("date", rec.since == record.date),
                                           ("reason", rec.reason == record.reason), ("linked files", files_same))
                   if not same]
        if differs:
            problems.append(ContentError(path, record.seq, f"{record.name} in published.lock has another "
                                         f"{' and '.join(differs)} than the chain recorded (record {record.seq}): "
                                         "the lock was edited after it was recorded", FIX_LOCK))
    for slug, revisions in sorted(locked.items()):
        for number in range(1, len(revisions) + 1):
            if (slug, number) not in recorded:
                problems.append(ContentError(path, len(records) + 1, f"{slug} revision {number} is in "
                                             "published.lock but not in the chain", "run `blog lock` to record it"))
    return problems
