"""Security and privacy headers on every response, in one hook."""

from __future__ import annotations

from flask import Flask, Response, request

from blog.web.assets import content_security_policy
from blog.web.context import canonical_path, is_onion_request, onion_base


def init_app(app: Flask) -> None:
    """Add the headers hook to the app."""
    csp = content_security_policy()

    @app.after_request
    def secure(response: Response) -> Response:
        headers = response.headers
        headers["Content-Security-Policy"] = csp
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        headers["Cross-Origin-Resource-Policy"] = "same-origin"
        headers["Permissions-Policy"] = "interest-cohort=(), browsing-topics=()"
        headers.pop("Server", None)
        headers.pop("Set-Cookie", None)
        onion = onion_base()
        if onion and not is_onion_request() and not request.path.startswith("/mcp"):
            # The part of the query a cached page reads: a replayed answer carries this header too.
            headers["Onion-Location"] = f"{onion}{canonical_path()}"
        return response
