"""content/published.lock: every published entry's body and linked files, one item per revision, by `blog lock`."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from blog.honesty import HonestyError

log = logging.getLogger(__name__)

LOCK_NAME = "published.lock"
FORMAT = 1


@dataclass(frozen=True)
class Recorded:
    """One recorded text of an entry: its body, since when readers saw it, and the update that made it."""

    hash: str
    body: str
    since: str  # ISO 8601 UTC: publication time for the first revision, the update's date after that
    recorded: str  # ISO 8601 UTC: when `blog lock` wrote it
    updates: int  # how many `updated:` items the entry carried when this text was recorded
    reason: str = ""
    note: str = ""
    # The files the entry linked with this text: path in the content tree -> SHA-256 of the operator's bytes.
    # None: recorded before the lock held files (an older lock); `blog lock` fills it in without an update.
    files: dict[str, str] | None = None
    # The date of every `updated:` item the entry carried when this was recorded, so that a later item dated
    # before them is seen as backdated. None: recorded by an older `blog lock` (blog/honesty/updates.py copes).
    dates: list[str] | None = None

    @property
    def since_time(self) -> dt.datetime:
        return parse_time(self.since)


def iso(when: dt.datetime) -> str:
    """Format a time as ISO 8601 UTC with a Z, to the second."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    """Parse an ISO 8601 UTC time written by iso()."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def lock_path(content_dir: Path) -> Path:
    """Return where the lock of a content tree lives."""
    return Path(content_dir) / LOCK_NAME


def read_lock(content_dir: Path) -> dict[str, tuple[Recorded, ...]]:
    """Return the recorded revisions by slug; an absent lock means nothing is recorded yet."""
    path = lock_path(content_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise HonestyError(f"{path} is unreadable ({exc}): restore it from git (`git checkout -- {path}`)") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
        raise HonestyError(f"{path} is not a format-{FORMAT} lock: restore it from git, "
                           "or delete it and run `blog lock`")
    try:
        return {slug: tuple(Recorded(**item) for item in items) for slug, items in data["entries"].items()}
    except TypeError as exc:
        raise HonestyError(f"{path} has a malformed revision ({exc}): restore it from git") from exc


def write_lock(content_dir: Path, entries: dict[str, tuple[Recorded, ...]]) -> Path:
    """Write the lock atomically (temp file, then rename), slugs sorted so git diffs stay small."""
    data = {"format": FORMAT, "entries": {slug: [asdict(r) for r in entries[slug]] for slug in sorted(entries)}}
    path = write_atomically(lock_path(content_dir), json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    log.info("wrote %s (%d entries)", path, len(entries))
    return path


def write_atomically(path: Path, text: str) -> Path:
    """Write a file of the content tree (mode 0644) through a temp file and a rename: never half written."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise HonestyError(f"cannot write {path}: {exc} (is the content folder writable?)") from exc
    return path
