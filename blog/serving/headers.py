"""The security and privacy headers every answer carries, whoever gives it: pages, /mcp, gunicorn itself."""

from __future__ import annotations

# Never sent: a banner tells a scanner what to try, and the site sets no cookie.
NEVER = ("Server", "Set-Cookie")

# The policy of an answer that is not one of the site's pages (JSON, plain text, gunicorn's own errors):
# it loads nothing and nothing may frame it. Pages allow their inlined stylesheet (blog/web/assets.py).
BARE_POLICY = "default-src 'none'; frame-ancestors 'none'"

SECURITY = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "interest-cohort=(), browsing-topics=()"),
)

NO_STORE = ("Cache-Control", "no-store")  # answers that are never the same twice: JSON-RPC, errors


def security_headers(policy: str = BARE_POLICY) -> list[tuple[str, str]]:
    """Return the headers every answer carries, with `policy` as its Content-Security-Policy."""
    return [("Content-Security-Policy", policy), *SECURITY]
