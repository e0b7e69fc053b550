"""The one builder of a running site: it publishes before the workers start, then repairs and republishes.

Request workers only read `current`. Everything a running site writes under the data directory is done
here, in a process of its own that the gunicorn master starts and supervises (blog/gunicorn_conf.py):

- before any worker starts, `prepare()` publishes changed content or keeps the last good build;
- while the site runs, a worker that finds the index missing or damaged answers 503 with Retry-After and
  asks the builder (a signal, see `builds.ask_for_repair`), which rebuilds it at once; the builder also
  looks at the index every half minute by itself, so damage nobody searched into is repaired too;
- when gunicorn replaces a worker or reloads (HUP), the master nudges the builder, which publishes changed
  content as a new worker used to do at its start.

- when `blog serve` asks for the onion service (ONION_TARGET in its environment), the builder publishes it
  and holds tor's control connection (a tor it launched lives as long as that connection): no process of
  the served site only waits. The address comes from the stored key, so it is the same after a restart.

While the site runs, a build is made in a child the builder starts and waits for (`python -m blog.builder --once`,
its settings handed over on stdin), never in the builder itself: what a build reads, renders and indexes
ends with that child, and the builder stays the size of what it holds between builds (docs/performance.md,
memory). It starts children only by fork and exec (blog/child.py too), so the onion service's reconnecting
thread is never forked with it. A crash in the builder never costs a
reader's request: the master starts it again, and it publishes the onion again with the same key.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from blog import builds, pipeline
from blog.config import Config, ConfigError, load_config
from blog.content import ContentProblems
from blog.index.results import SearchError
from blog.index.store import is_usable

if TYPE_CHECKING:
    from blog.tor.onion import OnionService

log = logging.getLogger(__name__)

LOOK_EVERY = 30.0  # seconds between the builder's own looks at the current index (and tries at tor, when down)
TICK = 0.5  # how long the loop sleeps when nothing asks for it
ONION_TARGET = "BLOG_ONION_TARGET"  # set by `blog serve`: publish the onion service to this HOST:PORT or unix:/path


def prepare(config: Config) -> builds.Build:
    """Return the build to serve: publish changed content, or keep the last good build and say why."""
    try:
        return pipeline.ensure_current(config)
    except ContentProblems as problems:
        build = builds.load_current(config.builds_dir)
        if build is None:
            raise
        log.error("content has %d problem(s); serving the last good build %s:\n%s",
                  len(problems.problems), build.id, problems)
        return build
    except (builds.BuildError, SearchError, OSError) as exc:
        # A full disk or a read-only data directory while publishing new content must not stop the site:
        # serve what was last built.
        build = builds.load_current(config.builds_dir)
        if build is None:
            raise
        log.error("could not publish the content (%s); serving the last good build %s", exc, build.id)
        return build
    except Exception:  # whatever the content provokes, a site with a last good build still starts on it
        build = builds.load_current(config.builds_dir)
        if build is None:
            raise
        log.exception("publishing the content failed unexpectedly; serving the last good build %s", build.id)
        return build


def index_is_usable(config: Config) -> bool:
    """Tell whether the current build's index opens (reads only the pointer, never the whole build)."""
    try:
        pointer = builds.current_pointer(config.builds_dir)
    except builds.BuildError:
        return False
    return pointer is not None and is_usable(Path(pointer.get("index") or ""))


def publish_in_child(config: Config) -> int:
    """Publish changed content, or repair the index, in a child of its own; return the child's exit status.

    The child is a new Python (`--once`), given these settings on stdin: a build's modules, the content it
    read and the heap it left are the child's, given back when it exits. A stop signal sent to the builder
    meanwhile waits for the child, as it waited for a build in the builder's own thread.
    """
    settings = json.dumps({name: str(value) for name, value in vars(config).items()})
    # By its name: the builder runs as __main__ (forked from the master, or `python -m`).
    child = subprocess.Popen([sys.executable, "-m", "blog.builder", "--once", "--settings", "-"], stdin=subprocess.PIPE)
    try:
        child.communicate(settings.encode())
    finally:
        if child.poll() is None:  # an error in the builder itself: the child is not left to run alone
            child.kill()
            child.wait()
    return child.returncode


class Builder:
    """The builder process's loop: repair when needed, publish when nudged, stop when told or orphaned."""

    def __init__(self, config: Config, parent: int) -> None:
        self.config = config
        self.parent = parent
        self.nudged = False  # publish changed content (a worker was replaced, or HUP)
        self.wanted = False  # look at the index and repair it (a worker found it unusable, or it is time)
        self.stopping = False
        self.onion: OnionService | None = None  # published while the builder runs, when `blog serve` asked

    def run(self) -> None:
        """Loop until SIGTERM or until the process that started the builder is gone."""
        signal.signal(signal.SIGUSR1, self._nudge)
        signal.signal(signal.SIGHUP, self._nudge)
        signal.signal(builds.REPAIR_SIGNAL, self._repair)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        # The master starts the builder with SIGUSR1 blocked (supervisor.Supervisor's `held`): a nudge sent while
        # it was still importing waited for the handler above, and arrives now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        self._write_pid()
        log.info("builder ready (pid %d)", os.getpid())
        target = os.environ.get(ONION_TARGET)
        self.publish_onion(target)
        looked = time.monotonic()
        try:
            while not self.stopping and os.getppid() == self.parent:
                if time.monotonic() - looked >= LOOK_EVERY:
                    self.wanted = True
                    if target and self.onion is None:
                        self.publish_onion(target)
                if self.nudged or self.wanted:
                    self.step()
                    looked = time.monotonic()
                time.sleep(TICK)  # a signal ends the sleep early; the next turn sees its flag
        finally:
            if self.onion is not None:
                self.onion.stop()  # withdraw the service; a tor the builder launched stops with it
            self._remove_pid()

    def _remove_pid(self) -> None:
        """Remove builder.pid on a stop, unless a newer builder has written its own there since."""
        path = self.config.data_dir / builds.BUILDER_PID
        try:
            if path.read_text(encoding="ascii").strip() == str(os.getpid()):
                path.unlink()
        except OSError:
            pass

    def publish_onion(self, target: str | None) -> None:
        """Publish the onion service to target (None: not asked); on failure say why, and try again later."""
        if not target:
            return
        from blog.tor.errors import TorError
        from blog.tor.mode import onion_service_for

        try:
            service = onion_service_for(self.config, target)
            if service is None:
                return
            address = service.start()
        except TorError as exc:
            log.error("could not publish the onion service (trying again in %.0f s): %s", LOOK_EVERY, exc)
            return
        self.onion = service
        log.info("onion service http://%s.onion/ -> %s, held by the builder (pid %d)", address, target, os.getpid())

    def step(self) -> None:
        """Do what was asked; a failure is logged, and the next request tries again."""
        nudged, self.nudged, self.wanted = self.nudged, False, False
        if not nudged:
            if index_is_usable(self.config):
                return
            log.error("the search index is unusable; rebuilding it from %s", self.config.content_dir)
        try:
            status = publish_in_child(self.config)
        except OSError as exc:
            log.error("the builder could not start a build: %s", exc)
            return
        if status != 0:
            log.error("the builder could not publish (its build ended with status %d; the reason is above)", status)

    def _write_pid(self) -> None:
        data_dir = self.config.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = data_dir / f".{builds.BUILDER_PID}.{os.getpid()}"
        temporary.write_text(f"{os.getpid()}\n", encoding="ascii")
        os.replace(temporary, data_dir / builds.BUILDER_PID)

    def _repair(self, _signum: int, _frame: FrameType | None) -> None:
        self.wanted = True

    def _nudge(self, _signum: int, _frame: FrameType | None) -> None:
        self.nudged = True

    def _stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blog.builder", description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="prepare a build to serve and exit")
    parser.add_argument("--parent", type=int, help="exit when this process is gone")
    parser.add_argument("--settings", help="'-': read the site's settings as JSON on stdin (the builder's own)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S +0000")
    logging.Formatter.converter = time.gmtime
    try:
        config = (load_config(path=Path(os.devnull), env={}, **json.loads(sys.stdin.read())) if args.settings == "-"
                  else load_config())
    except (ConfigError, ValueError, TypeError) as exc:
        log.error("the builder cannot read its settings: %s", exc)
        return 1
    if args.once:
        try:
            build = prepare(config)
        except ContentProblems as problems:
            log.error("the content has problems and there is no earlier build to serve:\n%s", problems)
            return 1
        except (builds.BuildError, SearchError, OSError) as exc:
            log.error("could not build the site: %s", exc)
            return 1
        log.info("build %s is ready to serve", build.id)
        return 0
    Builder(config, args.parent or os.getppid()).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
