"""The operator's content: entries, pages and the reading order, parsed and checked strictly.

`site` holds what is written (the `Site`, its entries and pages), `load` reads a content tree, `read`
one file, `check` the problems and the raw-HTML rules, `text` an entry's Markdown (in memory, or read back
from its saved build).
"""

from blog.content.check import ContentError, ContentProblems, unsafe_html_problems
from blog.content.load import check_site, load_site
from blog.content.site import (
    PAGE_KEY,
    Entry,
    Page,
    ReadingItem,
    Site,
    Update,
    entry_path,
    page_key,
    page_path,
    page_slug,
    utcnow,
)
from blog.content.text import Text, Written

__all__ = [
    "PAGE_KEY",
    "ContentError",
    "ContentProblems",
    "Entry",
    "Page",
    "ReadingItem",
    "Site",
    "Text",
    "Update",
    "Written",
    "check_site",
    "entry_path",
    "load_site",
    "page_key",
    "page_path",
    "page_slug",
    "unsafe_html_problems",
    "utcnow",
]
