"""Which links of a page name a file beside it, where that file is, and on which line the Markdown names it."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from urllib.parse import unquote, urlsplit

from lxml import html as lxml_html
from lxml.etree import ParserError

__all__ = [
    "FileLink",
    "LinkLines",
    "browser_url",
    "content_path",
    "folder_of",
    "html_may_link_files",
    "is_file_url",
    "links_in",
    "may_link_files",
    "script_url",
]

# A link destination that is neither absolute (a scheme, //host, /path) nor within the page (#, ?): the only
# kind that can name a file. Most pages have none, and are never parsed for links.
_NOT_FILE = r"(?![a-zA-Z][a-zA-Z0-9+.-]*:|[/#?])"
_MARKDOWN = re.compile(r"(?:\]\(|\]:|\b(?:src|href)\s*=)\s*[<\"']?\s*" + _NOT_FILE)
_HTML = re.compile(r"\b(?:src|href)=[\"']?" + _NOT_FILE)
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_OPENER = re.compile(r"[(<:=\"']\s*")  # what comes before a URL written as a link
_BARE_IMAGE = re.compile(r"!\[\s*\]\(\s*<?")  # an image without alt text


@dataclass(frozen=True)
class FileLink:
    """A link in a page's HTML that names a file: the URL as written, and whether it shows an image."""

    url: str
    image: bool
    alt: str | None = None


def folder_of(path: PurePath) -> str:
    """Return where a page's Markdown sits in the content tree (its path without the tree's own folder)."""
    return PurePosixPath(*path.parts[1:]).parent.as_posix()


def may_link_files(markdown: str) -> bool:
    """Tell whether a page's Markdown may link a file beside it (a relative link destination)."""
    return bool(_MARKDOWN.search(markdown))


def html_may_link_files(html: str) -> bool:
    """Tell whether rendered HTML has a relative src or href."""
    return bool(_HTML.search(html))


_AROUND = "".join(map(chr, range(0x21)))  # C0 controls and space: a browser's URL parser drops them around a URL
_UNSEEN = dict.fromkeys(map(ord, _AROUND))


def browser_url(value: str) -> str:
    """Return a URL as a browser reads it: without C0 controls and spaces around it, tabs and newlines in it,
    and with backslashes as slashes (what the URL standard does for http and https URLs)."""
    return value.strip(_AROUND).translate({9: None, 10: None, 13: None}).replace("\\", "/")


def script_url(value: str) -> bool:
    """Tell whether a value names a script URL, however it is split by spaces or control characters."""
    squeezed = value.translate(_UNSEEN).lower()
    return "javascript:" in squeezed or "vbscript:" in squeezed


def is_file_url(url: str) -> bool:
    """Tell whether a link names a file beside the page: relative, and its last segment has an extension."""
    parts = urlsplit(browser_url(url))
    return not parts.scheme and not parts.netloc and bool(parts.path) and not parts.path.startswith("/") \
        and "." in posixpath.basename(parts.path).strip(".")


def links_in(html: str) -> list[FileLink]:
    """Return the links of rendered HTML that name files (images first seen first), in document order."""
    if not html_may_link_files(html):
        return []
    try:
        root = lxml_html.fragment_fromstring(html, create_parent="div")
    except ParserError:
        return []
    found = []
    for element in root.iter("img", "a"):
        url = element.get("src" if element.tag == "img" else "href")
        if url and is_file_url(url):
            found.append(FileLink(url.strip(), element.tag == "img", element.get("alt")))
    return found


def content_path(folder: str, url: str) -> str | None:
    """Return the path within the content tree a relative URL names from a page in `folder`; None if it leaves it."""
    path = posixpath.normpath(posixpath.join(folder, unquote(urlsplit(url.strip()).path)))
    return None if path == ".." or path.startswith(("../", "/")) else path


class LinkLines:
    """Where a page's Markdown names each of its links' URLs: found in one pass, however many links it has.

    A URL counts where it follows `(`, `<`, `:`, `=` or a quote (a link, a reference definition, an HTML
    attribute); `![](url` is kept apart for images without alt text. Lines inside fenced code are skipped.
    """

    def __init__(self, markdown: str, first_line: int, urls: Iterable[str]) -> None:
        self.first_line = first_line
        wanted = set(urls)
        lengths = sorted({len(url) for url in wanted})
        self.lines: list[str | None] = []  # None: inside fenced code
        self.linked: dict[str, list[int]] = {}
        self.bare: dict[str, list[int]] = {}
        fence: str | None = None
        for offset, line in enumerate(markdown.splitlines()):
            marker = _FENCE.match(line)
            if marker:
                token = marker.group(1)[0] * 3
                fence = None if fence == token else fence or token
            shown = None if marker or fence is not None else line
            self.lines.append(shown)
            if shown is None or not wanted:
                continue
            for found, opener in ((self.linked, _OPENER), (self.bare, _BARE_IMAGE)):
                for start in (match.end() for match in opener.finditer(line)):
                    for length in lengths:
                        if line[start:start + length] in wanted:
                            found.setdefault(line[start:start + length], []).append(first_line + offset)

    def line(self, url: str, nth: int = 0, no_alt: bool = False) -> int:
        """Return the line where the body names the URL as a link for the nth time (from the file's first line).

        `no_alt`: the link is an image without alt text, so `![](url` comes first. Without such a line: the first
        line that mentions the URL at all, else the body's first line.
        """
        if no_alt and url in self.bare:
            return self.bare[url][0]
        linked = self.linked.get(url)
        if linked:
            return linked[nth] if nth < len(linked) else linked[0]
        mentioned = next((offset for offset, line in enumerate(self.lines) if line is not None and url in line), 0)
        return self.first_line + mentioned

