"""Per-request helpers shared by the blueprints: the build, the host's base URL, cached responses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import Response, current_app, render_template, request

from blog.build import Build
from blog.config import Config
from blog.web.cache import CachedPage, PageCache
from blog.web.fastpath import MARK
from blog.web.state import SiteState

Producer = Callable[[], tuple[str, str, dt.datetime]]  # (text, mimetype, last modified)


def state() -> SiteState:
    return current_app.extensions["blog.state"]


def config() -> Config:
    return state().config


def build() -> Build:
    return state().snapshot.build


def request_host() -> str:
    return request.host.rsplit(":", 1)[0].lower() if request.host else ""


def is_onion_request() -> bool:
    """Tell whether the request came to an onion host (the only case with no clearnet URL allowed)."""
    return request_host().endswith(".onion")


def base_url() -> str:
    """Return the absolute base for links that must be absolute: the onion host, or the clearnet one."""
    if is_onion_request():
        return f"http://{request.host}"
    return config().base_url.rstrip("/") or request.host_url.rstrip("/")


def onion_base() -> str:
    """Return the site's onion base URL when the address is known, else ''."""
    address = state().onion_address
    return f"http://{address}" if address else ""


def cached(name: str, produce: Producer, status: int = 200) -> Response:
    """Serve a response from this build's cache, producing it once on a miss."""
    snapshot = state().snapshot
    key = (snapshot.build.id, snapshot.epoch, base_url(), onion_base(), name, request.full_path)
    cache: PageCache = current_app.extensions["blog.cache"]
    page = cache.get(key)
    if page is None:
        text, mimetype, modified = produce()
        page = CachedPage.make(text, mimetype, modified, status)
        cache.put(key, page)
    request.environ[MARK] = page.etag  # the fast path may replay this answer
    return page.respond(request)


def page(template: str, **context: object) -> str:
    """Render an HTML template with what every page needs."""
    return render_template(template, cfg=config(), onion=onion_base(), base=base_url(), **context)
