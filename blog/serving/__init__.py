"""What every front end that follows `current` shares, below web and mcp alike.

`current` holds the build a process serves and swaps in the next one; `urls` resolves where a request's
absolute links point; `headers` is the one list of security headers every answer carries. Nothing here
imports web, mcp or tor; the package imports nothing itself, so that gunicorn's config can read the
headers without loading a build.
"""
