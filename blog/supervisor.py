"""The gunicorn master's helpers: processes it starts, keeps alive, nudges and stops beside its workers.

Two helpers run in a served site (blog/gunicorn_conf.py): the builder (blog/builder.py) and the semantic
process (blog/index/semantic/service.py). This module knows neither: it starts `python -m MODULE`, claims its
exit status before gunicorn's reaping can, starts it again when it dies, and stops it with the master.

A helper is started either as a new Python (`fork=False`) or forked from the master (`fork=True`) and run as
`python -m MODULE` would run it in that fork: it then shares the libraries the master imported and froze
before forking its workers (blog/worker_imports.py) instead of importing its own copies, as the workers do.
Forking is safe only from a process of one thread (gunicorn's master is): a lock another thread held at the
fork would stay held in the child for good.
"""

from __future__ import annotations

import logging
import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

try:  # what `ps` shows of a forked helper; without it, the master's title
    from setproctitle import setproctitle
except ImportError:  # pragma: no cover - a dependency; the helper works without its title
    def setproctitle(title: str) -> None:
        """Leave the process's title as it is."""

log = logging.getLogger(__name__)

RESTART_AFTER = 2.0  # a helper that died is started again at most this often
STOP_WITHIN = 10.0  # seconds a helper gets to finish (the builder, a build) at shutdown before it is killed


class Supervisor:
    """The gunicorn master's handle on a helper process: start it, keep it alive, nudge it, stop it.

    `module` is run as `python -m MODULE --parent PID`; `name` is how the log speaks of it.
    """

    def __init__(self, module: str, name: str, held: tuple[signal.Signals, ...] = (), fork: bool = False,
                 not_inherited: Callable[[], Iterable[int]] = tuple) -> None:
        """`held`: signals the helper starts with blocked, and unblocks once it handles them. One sent while it
        still imports its modules then waits for its handler instead of ending it (SIGUSR1's default).
        `fork`: fork it from this process instead of starting a new Python; `not_inherited` names the file
        descriptors (the listening sockets) a forked helper must not keep open."""
        self.module = module
        self.name = name
        self.held = set(held)
        self.fork = fork
        self.not_inherited = not_inherited
        self.process: subprocess.Popen[bytes] | Forked | None = None
        self._started = 0.0
        self._claimed: str | None = None  # how it ended, once claim() has seen it

    def run_once(self) -> int:
        """Run the helper to its end (`python -m MODULE --once`) and return its exit status."""
        return subprocess.run([sys.executable, "-m", self.module, "--once"], check=False).returncode

    def start(self) -> None:
        self._started = time.monotonic()
        self._claimed = None
        # A child inherits the signal mask across fork and exec: blocked here for the moment of the start (the
        # master is single-threaded, and a signal of its own sent meanwhile waits, it is not lost).
        before = signal.pthread_sigmask(signal.SIG_BLOCK, self.held) if self.held else None
        try:
            if self.fork:
                self.process = Forked(self.module, list(self.not_inherited()))
            else:
                self.process = subprocess.Popen([sys.executable, "-m", self.module, "--parent", str(os.getpid())])
        finally:
            if before is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, before)

    def claim(self) -> None:
        """Collect the helper's exit status if it has ended, before gunicorn's reaping can.

        The master's SIGCHLD handling reaps every child with waitpid(-1) and keeps only its workers'
        statuses: a helper it reaps first reads as "exited with 0" to Popen, whatever killed it. The master's
        reap_workers calls this first (blog/gunicorn_conf.py), as gunicorn does for its own dirty arbiter.
        """
        if self.process is None or self.process.returncode is not None:
            return
        try:
            pid, status = os.waitpid(self.process.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere after all: its status is gone
            self.process.returncode, self._claimed = 0, "ended (its exit status was collected elsewhere)"
            return
        if pid:
            self.process.returncode = os.waitstatus_to_exitcode(status)
            self._claimed = describe(self.process.returncode)

    def keep_alive(self) -> None:
        """Start the helper again when it has died (the master calls this about once a second)."""
        self.claim()
        if self.process is None or self.process.returncode is None:
            return
        if time.monotonic() - self._started < RESTART_AFTER:
            return
        log.error("%s %s; starting it again", self.name, self._claimed or describe(self.process.returncode))
        self.start()

    def nudge(self) -> None:
        """Send the helper SIGUSR1 (the builder publishes changed content then)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Forked:
    """A helper forked from this process and run as `python -m MODULE --parent PID`; Popen's face for it."""

    def __init__(self, module: str, not_inherited: list[int]) -> None:
        parent = os.getpid()
        self.returncode: int | None = None
        self.pid = os.fork()
        if self.pid == 0:
            _run_forked(module, parent, not_inherited)  # never returns

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 0  # reaped elsewhere: its status is gone
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.05)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _run_forked(module: str, parent: int, not_inherited: list[int]) -> None:
    """In the forked child: drop the master's signal handlers and sockets, run the module, exit with its status."""
    code = 1
    try:
        for number in signal.valid_signals():  # the master's handlers are Python's: a fresh Python has none
            handler = signal.getsignal(number)
            if callable(handler) and handler is not signal.default_int_handler:
                signal.signal(number, signal.SIG_DFL)
        # /dev/null in their place, not closed: the master's socket objects still name these numbers,
        # and a number closed here could be reused and then closed again under whatever took it.
        blank = os.open(os.devnull, os.O_RDWR)
        for fd in not_inherited:
            os.dup2(blank, fd)
        os.close(blank)
        sys.argv = [module, "--parent", str(parent)]
        setproctitle(f"{sys.executable} -m {module} --parent {parent}")
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as end:
        code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
    except BaseException:  # the child must never return into the master's code
        logging.getLogger(module).exception("%s stopped on an error", module)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def describe(code: int) -> str:
    """Say how a process ended, from its exit code (negative: the signal that killed it)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"
