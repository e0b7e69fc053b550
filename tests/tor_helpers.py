"""Real tor processes for tests: DisableNetwork 1, own DataDirectory and ports, stopped by pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def require_tor() -> str:
    """Return the tor binary; fail under CI=true when it is missing, skip otherwise."""
    tor = shutil.which("tor")
    if tor is None:
        message = "tor is not installed: `apt-get install tor` (make test installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return tor


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> object:
    """Poll predicate until it returns something truthy, failing the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


class SystemTor:
    """A stand-in for the operator's system tor: started from a torrc, controlled by cookie."""

    def __init__(self, root: Path, *, control_socket: bool, extra: dict[str, str] | None = None) -> None:
        self.tor = require_tor()
        self.root = root
        self.data_dir = root / "tor-data"
        self.control_port = None if control_socket else free_port()
        self.control_path = root / "tor-run" / "control"
        self.extra = extra or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def control(self) -> str:
        """Return the control address in the form OnionService takes."""
        return str(self.control_path) if self.control_port is None else f"127.0.0.1:{self.control_port}"

    def torrc(self) -> str:
        """Return this tor's configuration."""
        lines = {
            "DataDirectory": str(self.data_dir),
            "CookieAuthentication": "1",
            "SocksPort": "0",
            "DisableNetwork": "1",
            "GeoIPFile": "",
            "GeoIPv6File": "",
            "Log": f"notice file {self.root / 'tor.log'}",
            **self.extra,
        }
        if self.control_port is None:
            lines["ControlSocket"] = str(self.control_path)
        else:
            lines["ControlPort"] = f"127.0.0.1:{self.control_port}"
        return "".join(f"{key} {value}\n" if value else f'{key} ""\n' for key, value in lines.items())

    def start(self) -> SystemTor:
        """Start tor and wait until its control interface accepts connections."""
        for directory in (self.data_dir, self.control_path.parent):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        torrc = self.root / "torrc"
        torrc.write_text(self.torrc())
        empty = self.root / "torrc-defaults"
        empty.write_text("")
        self.process = subprocess.Popen(
            [self.tor, "--defaults-torrc", str(empty), "-f", str(torrc)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, what=f"tor (pid {self.process.pid}) to open its control interface")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = (self.root / "tor.log").read_text() if (self.root / "tor.log").exists() else ""
            pytest.fail(f"tor exited with {self.process.returncode}:\n{log}")
        family, address = (
            (socket.AF_UNIX, str(self.control_path)) if self.control_port is None
            else (socket.AF_INET, ("127.0.0.1", self.control_port))
        )
        with socket.socket(family) as sock:
            try:
                sock.connect(address)
            except OSError:
                return False
        return True

    def kill(self) -> None:
        """Kill tor abruptly by pid, as a crash or `systemctl restart` would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop tor by pid, politely first."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def kill_pid(pid: int | None) -> None:
    """Kill one process we started, ignoring one that already exited."""
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
