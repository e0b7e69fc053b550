"""The gunicorn master's helpers: processes it starts, keeps alive, nudges and stops beside its workers.

Two helpers run in a served site (blog/gunicorn_conf.py): the builder (blog/builder.py) and the semantic
process (blog/index/semantic/service.py). This module knows neither: it starts `python -m MODULE`, claims its
exit status before gunicorn's reaping can, starts it again when it dies, and stops it with the master.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

log = logging.getLogger(__name__)

RESTART_AFTER = 2.0  # a helper that died is started again at most this often
STOP_WITHIN = 10.0  # seconds a helper gets to finish (the builder, a build) at shutdown before it is killed


class Supervisor:
    """The gunicorn master's handle on a helper process: start it, keep it alive, nudge it, stop it.

    `module` is run as `python -m MODULE --parent PID`; `name` is how the log speaks of it.
    """

    def __init__(self, module: str, name: str, held: tuple[signal.Signals, ...] = ()) -> None:
        """`held`: signals the helper starts with blocked, and unblocks once it handles them. One sent while it
        still imports its modules then waits for its handler instead of ending it (SIGUSR1's default)."""
        self.module = module
        self.name = name
        self.held = set(held)
        self.process: subprocess.Popen[bytes] | None = None
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


def describe(code: int) -> str:
    """Say how a process ended, from its exit code (negative: the signal that killed it)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"
