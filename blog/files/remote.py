"""What a page would make a reader's client fetch from another site: refused, at the line of the Markdown.

A page's policy keeps a browser from loading anything from elsewhere, but a feed (Atom, RSS) or
`llms-full.txt` carries the same HTML to readers and agents that apply no policy: an image from a tracker
there tells the tracker who reads the log, and when. So the check reads the HTML the renderer produced, as a
browser would (entities decoded, a multi-line tag as one, reference links resolved), and refuses every
attribute that fetches a URL outside the site: `src`, `srcset`, `poster`, `data`, `background`, `ping`, an
`href` on anything but a link (SVG's `<image>` and `<use>`), and `url()` in a `style`. It refuses script
URLs too, however control characters split them. Relative URLs, `/paths` and `data:` stay on the site.
"""

from __future__ import annotations

import html as html_text
import re
from collections.abc import Iterator

from lxml import html as lxml_html
from lxml.etree import ParserError

from blog.content import ContentError, Written
from blog.content.check import LOCAL_IMAGE_FIX
from blog.files.links import browser_url, script_url

__all__ = ["may_fetch", "remote_problems"]

# Attributes whose URL a client fetches on its own, on any element (lists: srcset, ping, archive).
_FETCH = {"src", "srcset", "poster", "data", "background", "lowsrc", "dynsrc", "ping", "archive", "codebase",
          "imagesrcset", "longdesc", "icon", "manifest"}
_LISTS = {"srcset": ",", "imagesrcset": ",", "ping": " ", "archive": " "}
_FOLLOWED = {"a", "area"}  # an href a reader follows, not one the client fetches
# Attributes that hold a URL (or, in SVG animations, a value that becomes one): where a script URL would run.
_URL_VALUED = {*_FETCH, "href", "xlink:href", "action", "formaction", "values", "to", "from", "by"}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})\s?|(.))", re.S)
_CSS_URL = re.compile(r"""(?:url\(\s*["']?|["'])([^"')\s]*)""", re.I)
_SUSPECT_MARKDOWN = re.compile(r"!\[|<[A-Za-z]")  # an image, or raw HTML: nothing else can fetch
_SUSPECT_HTML = re.compile(r"\b(?:src|srcset|poster|data|background|lowsrc|dynsrc|ping|archive|codebase|"
                           r"imagesrcset|longdesc|icon|manifest|style|xlink:href)\s*=|<(?!a\b|area\b)[a-z][^>]*\bhref"
                           r"\s*=|script\s*:|&#", re.I)
_SCRIPT_FIX = "use a plain https:// or relative link: pages of this site run no script"
_PING_FIX = "remove the ping attribute: a link may lead elsewhere, but following it tells no one"
_OTHER_FIX = ("copy what it loads beside the entry and link it relatively, or remove it: readers make no "
              "third-party requests (docs/files.md)")


def may_fetch(markdown: str) -> bool:
    """Tell whether a page's Markdown could make a client fetch anything (an image or raw HTML)."""
    return bool(_SUSPECT_MARKDOWN.search(markdown))


def is_remote(url: str) -> bool:
    """Tell whether a client would fetch a URL from another site (a scheme other than data:, or //host)."""
    seen = browser_url(url)
    scheme = _SCHEME.match(seen)
    return seen.startswith("//") if scheme is None else scheme[1].lower() != "data"


def _urls(name: str, value: str) -> list[str]:
    if name == "style":
        plain = _CSS_ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else m[2], value)  # u\72l( is url(
        return _CSS_URL.findall(plain)
    if name in _LISTS:
        return [part.strip().split(" ")[0] for part in value.split(_LISTS[name]) if part.strip()]
    return [value]


def _offenders(html: str) -> Iterator[tuple[str, str, str, bool]]:
    """Yield (tag, attribute, URL, is a script URL) for each attribute that fetches or runs something."""
    try:
        root = lxml_html.fragment_fromstring(html, create_parent="div")
    except ParserError:
        return
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        tag = element.tag.split("}")[-1].lower()
        for name, value in element.attrib.items():
            name = name.split("}")[-1].lower()
            if name in _URL_VALUED and script_url(value):
                yield tag, name, value, True
            elif name in _FETCH or name == "style" or (name.endswith("href") and tag not in _FOLLOWED):
                for url in _urls(name, value):
                    if is_remote(url):
                        yield tag, name, url, False


class _Locator:
    """Finds the Markdown line an offending attribute came from, each occurrence once, outside fenced code."""

    def __init__(self, document: Written) -> None:
        self.first, self.used = document.body_line, set[int]()
        fence: str | None = None
        self.lines: list[str] = []
        for line in document.body.splitlines():
            marker = re.match(r"^\s*(`{3,}|~{3,})", line)
            if marker:
                token = marker.group(1)[0] * 3
                fence = None if fence == token else fence or token
            self.lines.append("" if marker or fence else line.lower())

    def line(self, tag: str, name: str, url: str) -> int:
        for needles in ([url.lower()], [html_text.escape(url).lower()], [f"{name}=", f"<{tag}"], [f"<{tag}"],
                        [url.lower().split("//")[-1]]):
            found = [n for n, text in enumerate(self.lines) if all(needle in text for needle in needles)]
            if found:
                fresh = [n for n in found if n not in self.used] or found
                self.used.add(fresh[0])
                return self.first + fresh[0]
        return self.first


def remote_problems(document: Written, html: str) -> list[ContentError]:
    """Return one problem for each thing the page's HTML would fetch from elsewhere or run, at its line."""
    if not _SUSPECT_HTML.search(html):
        return []
    problems, where = [], _Locator(document)
    for tag, name, url, script in _offenders(html):
        line = where.line(tag, name, url)
        shown = url.encode("unicode_escape").decode("ascii")[:200]
        if script:
            problems.append(ContentError(document.path, line, f"a script URL in <{tag} {name}>: {shown}",
                                         _SCRIPT_FIX))
        else:
            image = tag in ("img", "image", "picture", "source")
            what = "remote image" if image else f"remote <{tag} {name}>"
            fix = LOCAL_IMAGE_FIX if image else _PING_FIX if name == "ping" else _OTHER_FIX
            problems.append(ContentError(document.path, line, f"{what} {shown}: readers' clients would fetch it "
                                         "from another site", fix))
    return problems
