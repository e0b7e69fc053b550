"""One content file read strictly: front matter and body, with every problem in it collected, each with its line."""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import stat
from pathlib import Path
from typing import Any

import frontmatter
import yaml

from blog.content.check import ContentError

__all__ = ["Reader", "as_time", "key_line", "regular_bytes"]


def regular_bytes(path: Path) -> bytes | None:
    """Return a regular file's bytes, or None for anything else: a FIFO named *.md is never opened (it would hang)."""
    if not stat.S_ISREG(path.stat().st_mode):
        return None
    with open(path, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NONBLOCK)) as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped since it was looked at
            return None
        return handle.read()


def key_line(fm_text: str, key: str) -> int:
    """Return the 1-based line of a top-level key within the file (front matter starts on line 2)."""
    for number, line in enumerate(fm_text.splitlines(), start=2):
        if re.match(rf"^{re.escape(key)}\s*:", line):
            return number
    return 1


def as_time(value: Any) -> dt.datetime:
    """Parse a front-matter time; naive times are taken as UTC."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


class Reader:
    """Collects every problem in one file instead of stopping at the first."""

    def __init__(self, path: Path, rel: Path, keys: dict[str, tuple[bool, str]]) -> None:
        self.path, self.rel, self.keys = path, rel, keys
        self.problems: list[ContentError] = []
        self.fm_text = ""

    def problem(self, line: int, message: str, fix: str) -> None:
        self.problems.append(ContentError(self.rel, line, message, fix))

    def read(self) -> tuple[dict[str, Any], str, int, str] | None:
        try:
            raw = regular_bytes(self.path)
        except OSError as exc:  # a link to nothing, no permission
            self.problem(1, f"cannot be read ({exc.strerror or exc})", "make it a readable Markdown file")
            return None
        if raw is None:
            self.problem(1, "is not a regular file (a folder, a pipe or a device)",
                         "replace it with a plain Markdown file, or move it out of the content folder")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            self.problem(line, f"not UTF-8 (byte 0x{raw[exc.start]:02x})", "save the file as UTF-8")
            return None
        if not text.startswith("---"):
            self.problem(1, "no front matter", "start the file with a '---' line, the fields, and '---'")
            return None
        parts = text.split("\n---", 1)
        self.fm_text = parts[0][3:].lstrip("\n") if len(parts) == 2 else ""
        try:
            post = frontmatter.loads(text)
        except yaml.YAMLError as exc:
            # Point at where the broken construct began (an unclosed quote or bracket), not where
            # the parser gave up, which is often the closing '---'.
            mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
            line = mark.line + 2 if mark else 1
            what = " ".join(filter(None, [getattr(exc, "problem", None), getattr(exc, "context", None)]))
            self.problem(line, f"front matter is not valid YAML: {what or exc}",
                         "check quoting and brackets on this line")
            return None
        meta = dict(post.metadata)
        lines = text.splitlines()
        close = next((i for i, line in enumerate(lines[1:], 1) if line.rstrip() == "---"), len(lines))
        body = "\n".join(lines[close + 1 :]).strip("\n")
        # The blank lines before the body (counting from the end was off by one when the file ended in a blank line)
        skipped = next((index for index, line in enumerate(lines[close + 1 :]) if line), 0)
        body_line = close + 2 + skipped
        for key in meta:
            if key not in self.keys:
                close = difflib.get_close_matches(str(key), list(self.keys), n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(self.keys)}"
                self.problem(key_line(self.fm_text, str(key)), f"unknown front-matter key '{key}'", hint)
        for key, (required, how) in self.keys.items():
            if required and key not in meta:
                self.problem(1, f"missing required field '{key}'", f"add {how}")
        return meta, body, body_line, text

    def string(self, meta: dict[str, Any], key: str) -> str:
        value = meta.get(key)
        if value is None:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.problem(key_line(self.fm_text, key), f"'{key}' must be a non-empty string", self.keys[key][1])
            return ""
        return value.strip()

    def time(self, value: Any, line: int, what: str) -> dt.datetime | None:
        try:
            return as_time(value)
        except (TypeError, ValueError):
            self.problem(line, f"{what} {value!r} is not a date", "use ISO 8601 in UTC, e.g. 2026-11-25T16:05:00Z")
            return None
