"""Link checking: find the external links in content/ and check which are dead, through a client the caller gives."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx2

log = logging.getLogger(__name__)

# Inline [text](url "title"), autolinks <url>, reference definitions [id]: url, and bare URLs in prose.
_URL = re.compile(r"""https?://[^\s<>()"'`\]]+""")
_TRAILING = ".,;:!?*_"
_FENCE = re.compile(r"^\s*(```|~~~)")
WORKERS = 8


@dataclass(frozen=True)
class ExternalLink:
    """One external link: where it is written and where it points."""

    path: Path
    line: int
    url: str


@dataclass(frozen=True)
class LinkResult:
    """The outcome of checking one URL."""

    url: str
    ok: bool
    detail: str  # "200", "404", or the transport error


def extract_links(content_dir: Path) -> list[ExternalLink]:
    """Return every http(s) link in the Markdown files under content_dir, outside fenced code."""
    links = []
    for path in sorted(content_dir.rglob("*.md")):
        in_fence = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if _FENCE.match(line):
                in_fence = not in_fence
                continue
            if in_fence:  # commands and sample output, not citations
                continue
            for match in _URL.finditer(re.sub(r"`[^`]*`", "", line)):
                links.append(ExternalLink(path, number, match.group(0).rstrip(_TRAILING)))
    return links


def check_url(client: httpx2.Client, url: str) -> LinkResult:
    """Check one URL with HEAD, falling back to GET for servers that refuse HEAD."""
    try:
        response = client.head(url, follow_redirects=True)
        if response.status_code in (403, 405, 501):
            response = client.get(url, follow_redirects=True)
    except httpx2.HTTPError as exc:
        return LinkResult(url, False, f"{type(exc).__name__}: {exc}")
    return LinkResult(url, response.status_code < 400, str(response.status_code))


def check_links(
    links: Iterable[ExternalLink], client: httpx2.Client, on_result: Callable[[LinkResult], None] | None = None
) -> dict[str, LinkResult]:
    """Check each distinct URL once, a few at a time; return the results by URL."""
    urls = sorted({link.url for link in links})
    results: dict[str, LinkResult] = {}
    # Tor round trips take seconds; a small pool keeps a long list bounded without hammering any exit.
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="links") as pool:
        for result in pool.map(lambda url: check_url(client, url), urls):
            results[result.url] = result
            if on_result is not None:
                on_result(result)
    return results


def dead_links(links: Iterable[ExternalLink], results: dict[str, LinkResult]) -> list[tuple[ExternalLink, LinkResult]]:
    """Pair every dead link occurrence with its result, in file and line order."""
    return [(link, results[link.url]) for link in links if not results[link.url].ok]
