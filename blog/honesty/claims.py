"""Upstream claims in front matter, the cache of what the forges said, and where the two disagree."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blog.content import ContentError, Entry, Site
from blog.honesty import HonestyError
from blog.honesty.forges import STATES, PullRequest, parse_url
from blog.honesty.lock import iso, parse_time

CACHE_NAME = "upstream.json"
FORMAT = 1


@dataclass(frozen=True)
class Claim:
    """One upstream link of an entry, with the merge date the operator claims, if any."""

    pull: PullRequest
    merged: dt.date | None = None


@dataclass(frozen=True)
class PullState:
    """What a forge said about a pull request, and when it was asked."""

    url: str
    state: str  # merged | open | closed
    merged_at: dt.datetime | None
    checked: dt.datetime

    def label(self) -> str:
        """Say it the way the entry page does."""
        if self.state == "merged":
            when = f"on {self.merged_at:%Y-%m-%d} " if self.merged_at else ""
            return f"merged {when}(checked {self.checked:%Y-%m-%d})"
        text = "open" if self.state == "open" else "closed unmerged"
        return f"{text} (checked {self.checked:%Y-%m-%d})"


def _line_of(entry: Entry, text: str) -> int:
    for number, line in enumerate(entry.source.splitlines(), start=1):
        if text in line:
            return number
    return 1


def _claimed_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip())


def entry_claims(entry: Entry) -> tuple[list[Claim], list[ContentError]]:
    """Parse an entry's `upstream:` items; return the claims and one problem per malformed item."""
    claims, problems = [], []
    for item in entry.upstream:
        url = item.get("url") if isinstance(item, dict) else item
        extra = set(item) - {"url", "merged"} if isinstance(item, dict) else set()
        if not isinstance(url, str) or extra:
            fix = "write - https://github.com/o/r/pull/1 or - {url: https://github.com/o/r/pull/1, merged: 2026-03-02}"
            problems.append(ContentError(entry.path, _line_of(entry, "upstream"),
                                         f"upstream item {item!r} is not a URL or {{url, merged}}", fix))
            continue
        try:
            pull = parse_url(url)
            merged = _claimed_date(item["merged"]) if isinstance(item, dict) and "merged" in item else None
        except HonestyError as exc:
            problems.append(ContentError(entry.path, _line_of(entry, url), str(exc), "fix the URL"))
            continue
        except ValueError:
            problems.append(ContentError(entry.path, _line_of(entry, url), f"merged: {item['merged']!r} is not a date",
                                         "write merged: YYYY-MM-DD (the UTC day the forge merged it)"))
            continue
        claims.append(Claim(pull, merged))
    return claims, problems


def claim_problems(site: Site) -> list[ContentError]:
    """Return every malformed upstream item in the site (part of every `blog check`)."""
    return [p for entry in site.entries for p in entry_claims(entry)[1]]


def disagreements(site: Site, states: dict[str, PullState]) -> list[ContentError]:
    """Return one problem per merge claim the forge does not confirm (`blog check --upstream`)."""
    problems = []
    for entry in site.entries:
        for claim in entry_claims(entry)[0]:
            if claim.merged is None:
                continue
            state = states.get(claim.pull.url)
            line = _line_of(entry, claim.pull.url)
            if state is None:
                problems.append(ContentError(entry.path, line, f"{claim.pull.url} was never checked",
                                             "run `blog upstream verify` (through tor)"))
            elif state.state != "merged":
                problems.append(ContentError(entry.path, line, f"claims {claim.pull.url} merged on {claim.merged}, "
                                             f"but the forge says {state.label()}",
                                             "remove merged: from the claim until it is merged"))
            elif state.merged_at and state.merged_at.date() != claim.merged:
                problems.append(ContentError(entry.path, line, f"claims {claim.pull.url} merged on {claim.merged}, "
                                             f"but the forge says {state.label()}",
                                             f"write merged: {state.merged_at:%Y-%m-%d}"))
    return problems


def cache_path(content_dir: Path) -> Path:
    return Path(content_dir) / CACHE_NAME


def read_cache(content_dir: Path) -> dict[str, PullState]:
    """Return the last checked state of each upstream URL; none when nothing was checked yet."""
    path = cache_path(content_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {url: PullState(url, item["state"], parse_time(item["merged_at"]) if item["merged_at"] else None,
                               parse_time(item["checked"])) for url, item in data["checks"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise HonestyError(f"{path} is unreadable ({exc}): delete it and run `blog upstream verify`") from exc


def write_cache(content_dir: Path, states: dict[str, PullState]) -> Path:
    """Write the checked states atomically, URLs sorted."""
    path = cache_path(content_dir)
    checks = {url: {"state": s.state, "merged_at": iso(s.merged_at) if s.merged_at else None,
                    "checked": iso(s.checked)} for url, s in sorted(states.items()) if s.state in STATES}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upstream-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"format": FORMAT, "checks": checks}, handle, indent=1)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise HonestyError(f"cannot write {path}: {exc} (is the content folder writable?)") from exc
    return path
