"""The one stylesheet, inlined into every page and allowed by its hash in the CSP."""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib import resources

from pygments.formatters import HtmlFormatter


@cache
def stylesheet() -> str:
    """Return the site's CSS with the code-highlighting rules for light and dark schemes."""
    own = resources.files("blog.web").joinpath("static/style.css").read_text(encoding="utf-8")
    light = HtmlFormatter(style="xcode").get_style_defs(".hl")
    dark = HtmlFormatter(style="github-dark").get_style_defs(".hl")
    light = "\n".join(line for line in light.splitlines() if "background" not in line or ".hl " in line)
    dark_rules = "\n".join(line for line in dark.splitlines() if not line.startswith((".hl {", "pre {", "td.linenos")))
    return f"{own}{_strip(light)}\n@media (prefers-color-scheme:dark){{{_strip(dark_rules)}}}"


def _strip(css: str) -> str:
    lines = [line.split("/*")[0].rstrip() for line in css.splitlines()]
    return "\n".join(line for line in lines if line and not line.startswith(("pre {", "td.linenos", "span.linenos")))


@cache
def style_hash() -> str:
    """Return the CSP source expression that allows exactly the inlined stylesheet."""
    digest = hashlib.sha256(stylesheet().encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


@cache
def content_security_policy(images: bool = False) -> str:
    """Return a page's CSP: nothing but our own inline style and forms, and our own images on a page with some.

    `data:` is the empty icon every page declares (base.html), so that no browser asks for /favicon.ico.
    """
    img = "'self' data:" if images else "data:"
    return (
        "default-src 'none'; "
        f"style-src {style_hash()}; "
        f"img-src {img}; "
        "form-action 'self'; "
        "base-uri 'none'; "
        "frame-ancestors 'none'"
    )
