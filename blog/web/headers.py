"""Security and privacy headers on every response, in one hook (the list itself: blog/serving/headers.py)."""

from __future__ import annotations

from flask import Flask, Response, request

from blog.serving.headers import NEVER, security_headers
from blog.web.assets import content_security_policy
from blog.web.context import canonical_path, is_onion_request, onion_base
from blog.web.files import policy_for


def init_app(app: Flask) -> None:
    """Add the headers hook to the app."""
    page_policy = content_security_policy()
    secured = security_headers(page_policy)

    @app.after_request
    def secure(response: Response) -> Response:
        headers = response.headers
        for name, value in secured:
            headers[name] = value
        headers["Content-Security-Policy"] = policy_for(request.environ, page_policy)
        for name in NEVER:
            headers.pop(name, None)
        onion = onion_base()
        if onion and not is_onion_request() and not request.path.startswith("/mcp"):
            # The part of the query a cached page reads: a replayed answer carries this header too.
            headers["Onion-Location"] = f"{onion}{canonical_path()}"
        return response
