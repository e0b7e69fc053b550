"""Error pages in the site's own style, with one shape for every status."""

from __future__ import annotations

import logging

from flask import Flask, Response, render_template
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

MESSAGES = {
    400: "That request could not be understood.",
    404: "There is no page at this address. The log, the tags and the archive are linked above.",
    405: "That method is not allowed here.",
    500: "Something broke on our side. It has been logged; the rest of the log still works.",
}


def init_app(app: Flask) -> None:
    """Render every HTTP error with the error template."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int] | Response:
        if error.code and error.code < 400:
            return error.get_response()
        return _page(error.code or 500, error.description if error.code == 400 else None)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[str, int]:
        log.exception("unhandled error: %s", type(error).__name__)
        return _page(InternalServerError.code, None)


def _page(code: int, detail: str | None) -> tuple[str, int]:
    from blog.web.context import config

    message = detail or MESSAGES.get(code, "That did not work.")
    return render_template("error.html", code=code, message=message, cfg=config(), onion="", base=""), code
