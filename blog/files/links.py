"""Which links of a page name a file beside it, where that file is, and on which line the Markdown names it."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from urllib.parse import unquote, urlsplit

from lxml import html as lxml_html
from lxml.etree import ParserError

__all__ = ["Link", "folder_of", "html_may_link_files", "is_file_url", "line_of", "links_in", "may_link_files",
           "resolve"]

# A link destination that is neither absolute (a scheme, //host, /path) nor within the page (#, ?): the only
# kind that can name a file. Most pages have none, and are never parsed for links.
_NOT_FILE = r"(?![a-zA-Z][a-zA-Z0-9+.-]*:|[/#?])"
_MARKDOWN = re.compile(r"(?:\]\(|\]:|\b(?:src|href)\s*=)\s*[<\"']?\s*" + _NOT_FILE)
_HTML = re.compile(r"\b(?:src|href)=[\"']?" + _NOT_FILE)
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


@dataclass(frozen=True)
class Link:
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


def is_file_url(url: str) -> bool:
    """Tell whether a link names a file beside the page: relative, and its last segment has an extension."""
    parts = urlsplit(url.strip())
    return not parts.scheme and not parts.netloc and bool(parts.path) and not parts.path.startswith("/") \
        and "." in posixpath.basename(parts.path).strip(".")


def links_in(html: str) -> list[Link]:
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
            found.append(Link(url.strip(), element.tag == "img", element.get("alt")))
    return found


def resolve(folder: str, url: str) -> str | None:
    """Return the path within the content tree a relative URL names from a page in `folder`; None if it leaves it."""
    path = posixpath.normpath(posixpath.join(folder, unquote(urlsplit(url.strip()).path)))
    return None if path == ".." or path.startswith(("../", "/")) else path


def line_of(markdown: str, first_line: int, url: str, nth: int = 0, no_alt: bool = False) -> int:
    """Return the line (counted from the file's first) where the body names the URL for the nth time as a link.

    `no_alt`: the link is an image without alt text, so look for `![](url` first. Lines inside fenced code are
    skipped. Without such a line: the first line that mentions the URL at all, else the body's first line.
    """
    fence: str | None = None
    before = r"!\[\s*\]\(\s*<?" if no_alt else r"[(<:=\"']\s*"
    as_link = re.compile(before + re.escape(url))
    linked: list[int] = []
    mentioned = 0
    for offset, line in enumerate(markdown.splitlines()):
        marker = _FENCE.match(line)
        if marker:
            token = marker.group(1)[0] * 3
            fence = None if fence == token else fence or token
            continue
        if fence is None and url in line:
            linked.extend([first_line + offset] * len(as_link.findall(line)))
            mentioned = mentioned or first_line + offset
    if linked:
        return linked[nth] if nth < len(linked) and not no_alt else linked[0]
    return line_of(markdown, first_line, url, nth) if no_alt else mentioned or first_line
