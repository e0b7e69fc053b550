"""The reader's website: a Flask app factory over the current build."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Flask
from markupsafe import Markup

from blog.config import Config, load_config
from blog.index import semantic
from blog.mcp import front
from blog.mcp.http import McpBridge
from blog.render import inline, update_anchors
from blog.serving.current import SiteState
from blog.web import errors, fastpath, feeds, files, headers, pages, revisions, revlog
from blog.web import search as search_page
from blog.web.assets import stylesheet
from blog.web.cache import PageCache
from blog.web.context import AppSearch

if TYPE_CHECKING:
    from blog.index.search import Search

log = logging.getLogger(__name__)


def create_app(config: Config | None = None, state: SiteState | None = None, fast_path: bool = True,
               search: Search | None = None) -> Flask:
    """Create the app over the current build (workers only read it), register the page families.

    The preview (blog/web/preview.py) hands in a state it fills itself, and goes without the fast path.
    `search` is what /search and /mcp ask; by default one made at the first search that asks the semantic
    process of this data directory (blog.index.semantic.connect), ranking by words until the process answers.
    """
    config = config or load_config()
    app = Flask(__name__)
    app.config.update(SESSION_COOKIE_NAME=None, MAX_CONTENT_LENGTH=64 * 1024, JSON_SORT_KEYS=False)
    app.url_map.strict_slashes = False
    if state is None:
        state = SiteState(config)
        state.start()
    app.extensions["blog.state"] = state
    app.extensions["blog.search"] = AppSearch(semantic.connect(config), search)
    app.extensions["blog.cache"] = PageCache()

    css = stylesheet()

    @app.context_processor
    def inject() -> dict[str, object]:
        return {"css": css, "update_anchors": update_anchors}

    @app.template_filter("inline")
    def inline_markdown(text: str) -> Markup:
        """Render an update note's inline Markdown; raw HTML in it is escaped (blog.render.inline)."""
        return Markup(inline(text))  # noqa: S704 - inline() escapes everything but the Markdown it renders

    headers.init_app(app)
    errors.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(search_page.bp)
    app.register_blueprint(revisions.bp)
    app.register_blueprint(revlog.bp)
    app.register_blueprint(files.bp)
    mount_mcp(app, config)
    if fast_path:
        fastpath.init_app(app)
    # What gunicorn's asyncio worker runs, given the app on its thread pool (blog/gunicorn_conf.py).
    app.extensions["blog.asgi_front"] = lambda pool: front.front(app.extensions.get("blog.mcp"), pool)
    return app


def mount_mcp(app: Flask, config: Config) -> None:
    """Serve MCP at /mcp on this app (stateless, JSON responses), unless mcp_enabled is off."""
    if not config.mcp_enabled:
        return
    bridge = McpBridge(app.wsgi_app, app.extensions["blog.state"], app.extensions["blog.search"].get, config)
    app.extensions["blog.mcp"] = bridge
    app.wsgi_app = bridge  # type: ignore[method-assign]
