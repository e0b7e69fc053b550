"""A page's links to its files pointed at their served URLs: in its HTML, its Markdown mirror and its feeds."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from lxml import html as lxml_html
from lxml.etree import ParserError

from blog.files.fileset import FileSet
from blog.files.links import content_path, html_may_link_files, is_file_url

__all__ = ["absolute", "mirror", "place"]


def place(html: str, folder: str | None, files: FileSet) -> str:
    """Point a page's file links at their served URLs; give each image its size and lazy loading.

    `folder` is where the page's Markdown is (None when it links no file today). A link to a file this
    build does not serve (only an earlier revision's text has one) becomes plain text, and an image its alt.
    """
    if not html_may_link_files(html):
        return html
    try:
        root = lxml_html.fragment_fromstring(html, create_parent="div")
    except ParserError:
        return html
    changed = False
    for element in list(root.iter("img", "a")):
        attribute = "src" if element.tag == "img" else "href"
        url = element.get(attribute)
        if not url or not is_file_url(url):
            continue
        changed = True
        path = content_path(folder, url) if folder is not None else None
        asset = files.assets.get(path) if path else None
        if asset is None:
            _unlink(element, attribute)
            continue
        fragment = urlsplit(url.strip()).fragment
        element.set(attribute, asset.url + (f"#{fragment}" if fragment and attribute == "href" else ""))
        if element.tag == "img":
            if asset.width and asset.height:
                element.set("width", str(asset.width))
                element.set("height", str(asset.height))
            element.set("loading", "lazy")
    if not changed:
        return html
    return (root.text or "") + "".join(lxml_html.tostring(child, encoding="unicode") for child in root)


def _unlink(element: lxml_html.HtmlElement, attribute: str) -> None:
    if element.tag == "a":
        del element.attrib[attribute]
        return
    text = lxml_html.Element("em")
    text.text = f"[{(element.get('alt') or 'image').strip()}: no longer published]"
    text.tail = element.tail
    element.getparent().replace(element, text)


def mirror(markdown: str, key: str, files: FileSet, base: str) -> str:
    """Return a page's Markdown with its links to files made absolute on `base` (the .md mirror, llms-full.txt)."""
    urls = files.links.get(key)
    if not urls:
        return markdown
    folder = files.folders[key]
    for url in sorted(urls, key=len, reverse=True):
        asset = files.assets.get(content_path(folder, url) or "")
        if asset is None:
            continue
        fragment = urlsplit(url).fragment
        served = f"{base}{asset.url}" + (f"#{fragment}" if fragment else "")
        pattern = re.compile(r"(\]\(\s*<?|^\s*\[[^\]]+\]:[ \t]*<?|\b(?:src|href)\s*=\s*[\"']?)" + re.escape(url) +
                             r"(?=[\s)>\"']|$)", re.M)
        markdown = pattern.sub(lambda found, served=served: found.group(1) + served, markdown)
    return markdown


def absolute(html: str, base: str) -> str:
    """Return HTML whose links to served files are absolute on `base` (a feed's entries are read elsewhere)."""
    return html.replace('="/files/', f'="{base}/files/') if '="/files/' in html else html
