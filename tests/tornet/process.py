"""Start and stop tor processes by PID, with an atexit safety net."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

_live: dict[int, subprocess.Popen[bytes]] = {}
_live_lock = threading.Lock()


class TorNetError(RuntimeError):
    """The private Tor network could not be built, started or used."""


def tor_binary() -> str:
    """Return the path of the tor binary, or raise TorNetError saying how to install it."""
    path = shutil.which("tor")
    if path is None or shutil.which("tor-gencert") is None:
        raise TorNetError("tor and tor-gencert are not on PATH: install the Debian package `tor`")
    return path


def free_ports(count: int) -> list[int]:
    """Return `count` distinct free TCP ports on 127.0.0.1."""
    sockets = []
    try:
        # Hold every socket open until all are picked, so the kernel never hands one out twice.
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def launch(torrc: Path, log_path: Path, defaults: Path) -> subprocess.Popen[bytes]:
    """Start tor with `torrc` (and an empty `defaults` file) in its own session; remember its PID."""
    with log_path.with_suffix(".stderr").open("ab") as stderr:
        proc = subprocess.Popen(
            # An empty defaults file: the machine's /etc/tor/torrc-defaults must not leak in.
            [tor_binary(), "--defaults-torrc", str(defaults), "-f", str(torrc)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            # Own session: a Ctrl-C in the terminal reaches us, and we stop the tors in order.
            start_new_session=True,
        )
    with _live_lock:
        _live[proc.pid] = proc
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop one tor by its PID: SIGTERM, then SIGKILL after `grace` seconds."""
    with _live_lock:
        _live.pop(proc.pid, None)
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log.warning("tor pid %d ignored SIGTERM for %.0f s; killing it", proc.pid, grace)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=grace)


def stop_many(procs: list[subprocess.Popen[bytes]], grace: float = 5.0) -> None:
    """Stop several tors at once: signal all, then wait for each."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        stop(proc, grace=1.0)


@atexit.register
def _stop_leftovers() -> None:
    with _live_lock:
        procs = list(_live.values())
    if procs:
        log.warning("stopping %d tor process(es) left running at exit", len(procs))
        stop_many(procs, grace=3.0)


def log_tail(path: Path, lines: int = 15) -> str:
    """Return the last `lines` lines of a tor log, for error messages."""
    text = ""
    for candidate in (path, path.with_suffix(".stderr")):
        if candidate.exists():
            text += "".join(candidate.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    return text or "(no log written)"


def wait_for_log(path: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float,
                 offset: int = 0) -> None:
    """Wait until `needle` appears in a tor log after byte `offset`; raise TorNetError on death or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            with path.open("rb") as f:
                f.seek(offset)
                if needle.encode() in f.read():
                    return
        if proc.poll() is not None:
            raise TorNetError(f"tor exited with {proc.returncode} before '{needle}':\n{log_tail(path)}")
        time.sleep(0.2)
    raise TorNetError(f"no '{needle}' in {path} after {timeout:.0f} s:\n{log_tail(path)}")


def pid_alive(pid: int) -> bool:
    """Say whether a process with `pid` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
