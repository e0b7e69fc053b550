"""The files pages link, served from the current build at /files/<hash>/<name>: immutable, typed, sandboxed."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, request, send_file

from blog.files import absolute, mirror
from blog.web.assets import content_security_policy
from blog.web.context import base_url, build
from blog.web.fastpath import MARK

bp = Blueprint("files", __name__)

POLICY = "blog.policy"  # in the WSGI environ: the Content-Security-Policy a view chose for its answer
# A file at its own URL loads nothing and runs nothing: an SVG opened in a tab is sandboxed, without script.
FILE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'"
YEAR = 365 * 24 * 3600  # the URL names the bytes: a new file is a new URL, so a copy never goes stale


@bp.get("/files/<digest>/<name>")
def served(digest: str, name: str) -> Response:
    """Serve one cleaned file of the current build; its URL changes whenever its bytes do."""
    current = build()
    asset = current.files.served.get((digest, name))
    if asset is None:
        abort(404)
    response = send_file(current.path / asset.stored, mimetype=asset.media_type, conditional=True,
                         etag=asset.digest, max_age=YEAR)
    response.headers["Content-Type"] = asset.media_type  # as the allowlist says it (send_file adds a charset)
    response.cache_control.public = True
    response.cache_control.immutable = True
    request.environ[POLICY] = FILE_POLICY
    return response


def policy_for(environ: dict[str, Any], default: str) -> str:
    """Return the answer's policy: a view's own, a page's that shows images (`img-src 'self'`), or `default`."""
    chosen = environ.get(POLICY)
    if chosen:
        return chosen
    mark = environ.get(MARK)  # a cached page: its body says whether it shows an image
    if mark is not None and mark[1].mimetype == "text/html" and b"<img " in mark[1].body:
        return content_security_policy(images=True)
    return default


def with_files(key: str, markdown: str) -> str:
    """Return a page's Markdown (the .md mirror, llms-full.txt) with its files linked by absolute URLs."""
    return mirror(markdown, key, build().files, base_url())


def in_feed(html: str) -> str:
    """Return an entry's HTML for a feed: links to its files absolute on this request's base (onion or clearnet)."""
    return absolute(html, base_url())
