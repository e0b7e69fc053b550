"""The preview's website: every entry readable and marked, or a page of the problems that stopped the build.

`blog preview` (blog/cli/preview.py) builds the operator's content into a data directory of its own each time
a file is saved and hands the build, or the problems that stopped it, to a PreviewState. The app reads that
state directly: no `current` pointer to poll, so a build is served from the next request on. Drafts and
scheduled entries are shown (lists, feeds and search of the preview include them), each marked; the real
site's builds, and so its feeds, sitemap and search, never see the preview's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from flask import Flask, Response, render_template, request

from blog.builds import Build
from blog.config import Config
from blog.content import ContentError, Entry, Site, utcnow
from blog.mcp.hosts import HostPolicy
from blog.serving.current import SiteState, Snapshot
from blog.serving.headers import NO_STORE
from blog.web import create_app

PROBLEMS_STATUS = 500  # the site as written cannot be shown; `curl -f` and monitors see it too


@dataclasses.dataclass(frozen=True)
class PreviewEntry(Entry):
    """An entry as the preview shows it: readable whatever its date or draft flag (the marks still say which)."""

    def is_published(self, now: dt.datetime) -> bool:
        return True


def with_drafts(site: Site) -> Site:
    """Return the site with every entry readable: drafts and scheduled ones too, newest first as before."""
    entries = tuple(PreviewEntry(**{f.name: getattr(e, f.name) for f in dataclasses.fields(e)}) for e in site.entries)
    return dataclasses.replace(site, entries=entries)


def mark(entry: Entry, now: dt.datetime) -> str:
    """Return what the preview marks an entry with: 'draft', 'scheduled for ...', or '' when readers see it."""
    if entry.draft:
        return "draft"
    if entry.date > now:
        return f"scheduled for {entry.date:%Y-%m-%d %H:%M} UTC"
    return ""


class PreviewState(SiteState):
    """What the preview serves: the last build handed to it, or the problems that stopped the next one."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.problems: tuple[ContentError, ...] = ()

    def start(self) -> None:
        """Load nothing: the preview hands each build in as it makes it (show)."""

    def show(self, build: Build) -> None:
        """Serve this build, with its drafts and scheduled entries, from the next request on."""
        # A draft's own files too, which a served site keeps back (blog.files.FileSet.drafts).
        files = dataclasses.replace(build.files, drafts=set())
        shown = dataclasses.replace(build, site=with_drafts(build.site), files=files)
        # Not SiteState._install: freezing the heap costs a full collection (80-130 ms here, most of a build),
        # which pays off in a worker that serves one build for hours, not in a preview built at every save.
        self._snapshot = Snapshot(shown, self._epoch(shown))
        self.problems = ()

    def fail(self, problems: Iterable[ContentError]) -> None:
        """Answer every request with these problems until the next build succeeds."""
        self.problems = tuple(problems)

    def _refresh(self) -> None:
        # No pointer to follow; only a scheduled entry's time coming changes what is marked.
        current = self._snapshot
        if current is not None and self._epoch(current.build) != current.epoch:
            self._snapshot = Snapshot(current.build, self._epoch(current.build))

    def _epoch(self, build: Build) -> int:
        now = utcnow()
        return sum(1 for e in build.site.entries if not e.draft and e.date <= now)


class Marks:
    """The templates' `preview`: an entry's mark (called with the entry), or a search result's (`slug`)."""

    def __init__(self, state: PreviewState) -> None:
        self.state, self.now = state, utcnow()

    def __call__(self, entry: Entry) -> str:
        return mark(entry, self.now)

    def slug(self, slug: str) -> str:
        found = self.state.snapshot.build.site.by_slug.get(slug)
        return mark(found, self.now) if found is not None else ""


def init_app(app: Flask, state: PreviewState, bound: str = "127.0.0.1") -> None:
    """Refuse a Host that is not loopback; answer with the problems page while there are problems; mark pages."""
    # The preview shows unpublished text. A page the operator visits can point its own name at 127.0.0.1
    # (DNS rebinding) and read the preview as same-origin: only loopback names are answered, as on /mcp.
    hosts = HostPolicy(state.config, lambda: "", also=(bound,))

    @app.before_request
    def loopback_hosts_only() -> Response | None:
        refused = hosts.refusal(request.environ.get("HTTP_HOST", ""))
        if refused is None:
            return None
        status = 400 if "HTTP_HOST" not in request.environ else refused[0]
        text = (f"{status} {'Bad Request' if status == 400 else 'Misdirected Request'}: the preview answers "
                f"only on loopback names ({hosts.names()}); open it as http://127.0.0.1:<port>/\n")
        response = Response(text, status, mimetype="text/plain")
        response.headers[NO_STORE[0]] = NO_STORE[1]
        return response

    @app.before_request
    def problems_first() -> Response | None:
        problems = state.problems
        if not problems:
            return None
        html = render_template("preview/problems.html", problems=problems, cfg=state.config, onion="", base="")
        response = Response(html, PROBLEMS_STATUS, mimetype="text/html")
        response.headers[NO_STORE[0]] = NO_STORE[1]
        return response

    @app.context_processor
    def marks() -> dict[str, object]:
        return {"preview": Marks(state)}


def create_preview_app(config: Config, state: PreviewState, bound: str = "127.0.0.1") -> Flask:
    """Create the site's app over the preview's state: no fast path (the problems page must never be bypassed).

    bound: the loopback address the preview listens on, answered as a Host beside 127.0.0.1 and localhost.
    """
    app = create_app(config, state=state, fast_path=False)
    init_app(app, state, bound)
    return app
