"""A build: the whole site at one moment, checked and rendered, and how one is made from the content."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blog import __version__
from blog.builds.stores import FileStore, RenderedStore, TextStore
from blog.content import ContentProblems, Entry, Page, Site, load_site, page_key, utcnow
from blog.files import FileSet, collect, place
from blog.render import Rendered, render_many

BUILD_FORMAT = 6  # what a saved build holds; a build of another format is rebuilt, not read
# 3: the content room became a package (blog.content.*), so a format-2 pickle names modules that are gone.
# 4: a build holds the files its pages link (blog.files), cleaned, in files/ beside its renderings.
# 5: a build holds the signed revision log (blog.honesty.revlog), and an SVG image alone in a paragraph
#    renders as a figure with a caption.
# 6: modules were renamed (blog.build -> blog.builds.*, blog.content.model -> blog.content.site,
#    blog.files.model -> blog.files.fileset, blog.honesty.view -> blog.honesty.revlog_view), so a format-5
#    pickle names modules that are gone.



@dataclass
class Build:
    """A validated, rendered site: what every worker serves until the next build is switched in."""

    id: str
    created: dt.datetime
    site: Site
    rendered: Mapping[str, Rendered]  # entry slug, or "page:<slug>"; a RenderedStore once saved
    path: Path = field(default=Path())
    index_dir: Path | None = None
    # Filled by the honesty room at publish time (blog/honesty/annotate.py); see docs/honesty.md.
    revisions: MutableMapping[str, tuple[Any, ...]] = field(default_factory=dict)  # slug -> Revisions
    # (slug, anchor) -> when that block was first shown, for blocks first shown after the entry's date
    paragraph_changed: dict[tuple[str, str], dt.datetime] = field(default_factory=dict)
    upstream: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # slug -> (url, PullState | None)
    texts: TextStore | None = None  # every entry's and page's Markdown, once saved
    files: FileSet = field(default_factory=FileSet)  # what the pages link, served from files/ (blog/files/)
    revlog: Any = None  # the revision log's signed head (blog.honesty.revlog_view.SignedHead), set at publish time
    revlog_answers: FileStore | None = None  # its JSON answers, read on demand (a LogStore once saved)
    format: int = BUILD_FORMAT

    def block_changed(self, slug: str, anchor: str) -> dt.datetime | None:
        """Return when the block at an entry's anchor was first shown, if after the entry's date (else None)."""
        found = self.paragraph_changed.get((slug, anchor))
        entry = self.site.by_slug.get(slug)
        if found is not None or entry is None or slug not in self.revisions:
            return found
        # Blocks first shown with the entry are not listed (they were 290,000 items at 10,000 entries).
        return entry.date if anchor in self.rendered[slug].anchors() else None

    def entry_html(self, entry: Entry) -> Rendered:
        return self.placed(entry.slug)

    def page_html(self, page: Page) -> Rendered:
        return self.placed(page.key)

    def placed(self, key: str, rendered: Rendered | None = None) -> Rendered:
        """Return a rendering (the key's own, or an earlier text's) with its links to files pointing at their
        served URLs (blog.files.place)."""
        folder = self.files.folders.get(key)
        if rendered is None:
            rendered = self.rendered[key]
            if folder is None:
                return rendered  # today's text links no file
        return Rendered(place(rendered.html, folder, self.files), rendered.toc, rendered.blocks)


def content_fingerprint(content_dir: Path) -> str:
    """Hash every content file's path and bytes, and the software version that renders them."""
    digest = hashlib.sha256(f"engineering-log {__version__} build-format {BUILD_FORMAT}".encode())
    for path in sorted(p for p in Path(content_dir).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(content_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def make_build(content_dir: Path, builds_dir: Path, previous: Build | None = None,
               build_id: str | None = None) -> Build:
    """Read, check and render the content into a new build directory (not yet current)."""
    build_id = build_id or content_fingerprint(content_dir)
    site = load_site(content_dir)
    reuse = previous.rendered if previous else {}
    # Unchanged renderings are copied byte for byte from the previous build's file when this one is saved:
    # unpickling and pickling them again was most of a one-entry publish at 10,000 entries.
    keep = reuse.handle if isinstance(reuse, FileStore) else reuse.__getitem__
    # Compared by the hash of the whole file, which an entry keeps in memory when its text is on disk (the
    # body hash ignores surrounding whitespace, and four leading spaces make a Markdown code block).
    old_bodies = {e.slug: e.text.source_digest for e in previous.site.entries} if previous else {}
    old_pages = {p.slug: p.text.source_digest for p in previous.site.pages.values()} if previous else {}
    rendered: dict[str, Rendered] = {}
    todo: dict[str, str] = {}
    for entry in site.entries:
        if old_bodies.get(entry.slug) == entry.text.source_digest and entry.slug in reuse:
            rendered[entry.slug] = keep(entry.slug)
        else:
            todo[entry.slug] = entry.body
    for page in site.pages.values():
        key = page.key
        if old_pages.get(page.slug) == page.text.source_digest and key in reuse:
            rendered[key] = keep(key)
        else:
            todo[key] = page.body
    rendered.update(render_many(todo))  # many at once (a cold start): a second process renders part
    rendered = {key: rendered[key] for key in [e.slug for e in site.entries] + [page_key(p) for p in site.pages]}
    store = RenderedStore(rendered)
    files, problems = collect(site, lambda key: store[key].html, previous.files if previous else None,
                              previous.path if previous else None)
    if problems:  # a missing, unfit or unsafe file: no build, and the site keeps its last good one
        raise ContentProblems(problems)
    builds_dir.mkdir(parents=True, exist_ok=True)
    return Build(build_id, utcnow(), site, store, builds_dir / build_id, files=files)
