"""Content problems, and the raw-HTML checks that keep script out of the operator's Markdown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ContentError:
    """One problem in one file: where, what is wrong, and how to fix it."""

    path: Path
    line: int
    message: str
    fix: str

    def __str__(self) -> str:
        return _printable(f"{self.path}:{self.line}: {self.message} ({self.fix})")


# Control characters a problem may quote from a file (a NUL in a front-matter key, an escape in a file name):
# shown as \xNN, never written to the operator's terminal (tabs and line breaks stay: a diff has them).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


class ContentProblems(Exception):
    """The content has problems; nothing was built from it."""

    def __init__(self, problems: list[ContentError]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


LOCAL_IMAGE_FIX = ("copy the image beside the entry (make it a folder: log/<name>/index.md and the image) and link it "
                "relatively, ![what it shows](plot.png): readers make no third-party requests (docs/files.md)")
# Each rule: a pattern over one source line, what it is, and how to fix it.
_RULES = [
    (re.compile(r"<\s*script\b", re.I), "raw <script> element", "remove it: the site ships no JavaScript"),
    (re.compile(r"<\s*(iframe|object|embed|frame)\b", re.I), "embedded frame or object",
     "link to the page instead of embedding it"),
    (re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I), "event-handler attribute (on...=)", "remove the attribute"),
    (re.compile(r"javascript\s*:", re.I), "javascript: URL", "use a plain https:// or relative link"),
    (re.compile(r"<\s*img\b[^>]*\bsrc\s*=\s*[\"']?\s*(https?:)?//", re.I), "remote image", LOCAL_IMAGE_FIX),
    (re.compile(r"!\[[^\]]*\]\(\s*(https?:)?//", re.I), "remote image", LOCAL_IMAGE_FIX),
    (re.compile(r"<\s*(link|meta|base|form|style)\b", re.I), "raw <link>/<meta>/<base>/<form>/<style> element",
     "remove it: pages carry only the site's own head and style"),
]
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")


def _may_match(text: str) -> bool:
    """Tell whether any rule could match: each needs a "<", a "![" or the word javascript."""
    return "<" in text or "![" in text or "javascript" in text.lower()


def unsafe_html_problems(path: Path, body: str, first_line: int) -> list[ContentError]:
    """Return one problem per line of the body that carries script-capable raw HTML."""
    problems: list[ContentError] = []
    if not _may_match(body):
        return problems  # most entries: no rule can match, and 7 patterns a line cost 0.4 s a 1,000 entries
    fence: str | None = None
    for offset, line in enumerate(body.splitlines()):
        marker = _FENCE.match(line) if line.lstrip()[:1] in ("`", "~") else None
        if marker:
            token = marker.group(1)[0] * 3
            if fence is None:
                fence = token
                continue
            if token == fence:
                fence = None
                continue
        if fence is not None or not _may_match(line):
            continue  # fenced code is shown, not run
        visible = _CODE_SPAN.sub("", line)
        for pattern, what, fix in _RULES:
            if pattern.search(visible):
                problems.append(ContentError(path, first_line + offset, what, fix))
                break
    return problems
