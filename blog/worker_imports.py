"""What every worker imports, imported once by the gunicorn master so that the workers share it.

A worker imports Flask, Whoosh, numpy, pydantic and the MCP SDK to serve pages, search and /mcp: about
90 MB of a Python heap, the same in every worker. Imported in the master before it forks them, those pages
are shared copy-on-write, and gc.freeze() keeps the collector from writing to them (a write copies a page).

The master imports the libraries only, never the site's own modules (blog.*): a worker imports those
afresh, so a HUP serves upgraded code as before. Which libraries those are is asked of a child process,
`python -m blog.worker_imports`, which imports what a worker serves with and names every other module it
then holds: the list stays right when the site's imports change, and the master never runs the site's code.
"""

from __future__ import annotations

import gc
import importlib
import logging
import subprocess
import sys

log = logging.getLogger(__name__)

# What a worker imports to serve pages, feeds, search and /mcp (the MCP transport is imported after the
# worker's first page, blog/mcp/front.py).
SERVES = ("blog.web", "blog.mcp.server", "blog.mcp.front", "mcp.server.streamable_http_manager",
          "mcp.server.transport_security")
ASK_WITHIN = 60.0  # seconds the child has to import them and answer; without an answer nothing is shared


def ask() -> subprocess.Popen[str]:
    """Start the child that names the libraries; read its answer with share()."""
    return subprocess.Popen([sys.executable, "-m", __name__], stdout=subprocess.PIPE, text=True)


def share(child: subprocess.Popen[str]) -> int:
    """Import the libraries the child named and freeze them out of the collector; return how many."""
    try:
        names, _ = child.communicate(timeout=ASK_WITHIN)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        log.warning("the workers' libraries were not named within %.0f s; each worker imports its own", ASK_WITHIN)
        return 0
    imported = 0
    for name in names.split():
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # a worker imports it again itself, and says so with a request
            log.debug("not shared with the workers: %s (%s)", name, exc)
            continue
        imported += 1
    gc.collect()
    gc.freeze()
    return imported


def _libraries() -> list[str]:
    before = set(sys.modules)
    for name in SERVES:
        importlib.import_module(name)
    return sorted(name for name in sys.modules
                  if name not in before and name.split(".")[0] != "blog" and not name.startswith("_"))


if __name__ == "__main__":
    print("\n".join(_libraries()))
