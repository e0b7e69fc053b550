"""`blog preview`: the operator's site with its drafts, on loopback, built again within a second of each save.

One process: a threaded loopback HTTP server (werkzeug's, which Flask brings) serving the site's app over a
PreviewState, and a watcher thread (blog/cli/watch.py) that publishes each burst of saves into a data directory
of the preview's own (`<data_dir>/preview`) and hands the build, or its problems, to the state. The real site's
builds, its `current` pointer and its index are never touched. No JavaScript, so no live reload: the writer
reloads the page.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import click
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from blog import builds, pipeline
from blog.builds import BuildError
from blog.cli.common import config_of, echo_problems
from blog.cli.watch import Watcher
from blog.config import Config
from blog.content import ContentError, ContentProblems, utcnow
from blog.index.results import SearchError
from blog.web.preview import PreviewState, create_preview_app

log = logging.getLogger(__name__)

DEFAULT_BIND = "127.0.0.1:8001"  # beside `blog serve`'s 8000
REQUEST_TIMEOUT = 10.0  # seconds a connection may stay silent before the server drops it
PREVIEW_DIR = "preview"  # under the site's data directory: the preview's builds and index


def preview_config(config: Config) -> Config:
    """Return the settings the preview builds and serves with: its own data directory, links to itself."""
    return config.replace(data_dir=config.data_dir / PREVIEW_DIR, base_url="", onion_address="",
                          mcp_enabled=False, semantic=False)


def loopback(bind: str) -> tuple[str, int]:
    """Return (host, port) of a loopback HOST:PORT; anything else is refused with the way to look from afar."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    try:
        number = int(port)
        is_loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        number, is_loopback = -1, False
    if not is_loopback or not 0 <= number <= 65535:
        raise click.ClickException(
            f"refusing to preview on {bind!r}: the preview shows drafts, so it listens on loopback only "
            f"(e.g. {DEFAULT_BIND}). To look from another machine, forward the port: "
            "ssh -L 8001:127.0.0.1:8001 this-host")
    return ("127.0.0.1" if host == "localhost" else host), number


class Rebuilder:
    """Publish the content into the preview's data directory and hand the build, or its problems, to the state."""

    def __init__(self, config: Config, state: PreviewState) -> None:
        self.config, self.state = config, state
        self.last_seconds = 0.0  # how long the last build took, for the log line
        self.seen = ""  # the content's fingerprint when the last build began

    def rebuild(self, changed: Sequence[Path] = ()) -> bool:
        """Build now; return whether the site is shown (False: its problems are)."""
        started = time.monotonic()
        try:
            self.seen = builds.content_fingerprint(self.config.content_dir)
            build = pipeline.publish(self.config)
        except ContentProblems as problems:
            return self._fail(problems.problems, started)
        except (BuildError, SearchError) as exc:  # a full or read-only disk
            return self._fail([ContentError(self.config.data_dir, 0, str(exc),
                                            "free some space or make the data directory writable, then save again")],
                              started)
        except Exception as exc:  # a bug must not end the watcher: show it, the traceback goes to the terminal
            log.exception("the preview's build failed")
            return self._fail([ContentError(self.config.content_dir, 0, f"the build failed: {type(exc).__name__}: "
                                            f"{exc}", "see the terminal for the traceback; save again to retry")],
                              started)
        self.state.show(build)
        self.last_seconds = time.monotonic() - started
        entries, now = build.site.entries, utcnow()
        drafts = sum(e.draft for e in entries)
        scheduled = sum(1 for e in entries if not e.draft and e.date > now)
        saved = [p.name for p in changed if p.is_file()]  # not an editor's temporary file, gone by now
        what = f" ({', '.join(saved[:3])}{', ...' if len(saved) > 3 else ''})" if saved else ""
        click.echo(f"{_clock()} built in {self.last_seconds * 1000:.0f} ms{what}: {len(entries)} entries "
                   f"({drafts} draft{'' if drafts == 1 else 's'}, {scheduled} scheduled), "
                   f"{len(build.site.pages)} pages", err=True)
        return True

    def rebuild_if_changed(self) -> None:
        """Build again when the content changed since the last build began (a save before the watch began)."""
        try:
            changed = builds.content_fingerprint(self.config.content_dir) != self.seen
        except OSError:
            changed = True
        if changed:
            self.rebuild()

    def _fail(self, problems: Sequence[ContentError], started: float) -> bool:
        self.state.fail(problems)
        self.last_seconds = time.monotonic() - started
        click.echo(f"{_clock()} {len(problems)} problem(s); the preview shows them until they are fixed:", err=True)
        echo_problems(problems)
        return False


def _clock() -> str:
    return f"{utcnow():%H:%M:%S}Z"


class QuietHandler(WSGIRequestHandler):
    """Werkzeug's handler without a Server banner, with a deadline per connection, logging no client address."""

    timeout = REQUEST_TIMEOUT

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s %s", self.command, getattr(self, "path", "-")[:200], code)

    def log(self, type: str, message: str, *args: object) -> None:
        log.warning("preview server: %s", (message % args if args else message)[:300])


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@click.command()
@click.option("--bind", default=DEFAULT_BIND, show_default=True, help="Loopback address and port to listen on.")
@click.pass_context
def preview(ctx: click.Context, bind: str) -> None:
    """Serve the site with its drafts on loopback, built again within a second of each saved file."""
    cfg = config_of(ctx)
    host, port = loopback(bind)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # one line a build is enough, unless -v
        for name in ("blog.pipeline", "blog.index", "blog.honesty", "watchfiles"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if not cfg.content_dir.is_dir():
        raise click.ClickException(f"{cfg.content_dir} is not a folder: set content_dir in blog.toml")
    settings = preview_config(cfg)
    state = PreviewState(settings)
    # Bound first (a port in use fails before any work); requests wait in the backlog until the first build.
    server: BaseWSGIServer = make_server(host, port, create_preview_app(settings, state, host), threaded=True,
                                         request_handler=QuietHandler)
    rebuilder = Rebuilder(settings, state)
    rebuilder.rebuild()
    watcher = Watcher(cfg.content_dir, rebuilder.rebuild, on_ready=rebuilder.rebuild_if_changed,
                      ignore=[cfg.data_dir])
    watcher.start()
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"preview: http://{shown}:{server.port}/ (drafts and scheduled entries shown and marked; "
               f"builds in {settings.data_dir}). Save a file, then reload the page. Ctrl-C stops.")
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        if not watcher.stop():
            click.echo("the watcher did not stop in time (a build was running); leaving it", err=True)
        server.server_close()
    sys.exit(0)


def register(cli: click.Group) -> None:
    """Add `blog preview` to the blog CLI."""
    cli.add_command(preview)
