"""Real tor processes for tests: DisableNetwork 1, own DataDirectory and ports, stopped by pid."""

from __future__ import annotations

import http.server
import os
import select
import shutil
import signal
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from processes import free_port


def require_tor() -> str:
    """Return the tor binary; fail under CI=true when it is missing, skip otherwise."""
    tor = shutil.which("tor")
    if tor is None:
        message = "tor is not installed: `apt-get install tor` (make test installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return tor


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


class RecordingSocks:
    """A loopback SOCKS5 server that records each requested destination and relays to one HTTP server."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.requests: list[dict[str, object]] = []
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingSocks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[socketserver.BaseRequestHandler]:
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                read = conn.makefile("rb")
                _version, count = read.read(2)
                methods = read.read(count)
                record: dict[str, object] = {"username": None}
                if 2 in methods:
                    conn.sendall(b"\x05\x02")
                    read.read(1)
                    record["username"] = read.read(read.read(1)[0]).decode()
                    record["password"] = read.read(read.read(1)[0]).decode()
                    conn.sendall(b"\x01\x00")
                else:
                    conn.sendall(b"\x05\x00")
                _v, _cmd, _rsv, atyp = read.read(4)
                if atyp == 3:
                    host = read.read(read.read(1)[0]).decode()
                else:
                    host = socket.inet_ntop(socket.AF_INET if atyp == 1 else socket.AF_INET6,
                                            read.read(4 if atyp == 1 else 16))
                port = int.from_bytes(read.read(2), "big")
                record.update(atyp=atyp, host=host, port=port)
                outer.requests.append(record)
                upstream = socket.create_connection(outer.upstream)
                conn.sendall(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")
                _relay(conn, upstream)

        return Handler


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    sockets = [a, b]
    try:
        while True:
            ready, _, _ = select.select(sockets, [], [], 10)
            if not ready:
                return
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                (b if sock is a else a).sendall(data)
    finally:
        b.close()


class EchoHTTP:
    """A loopback HTTP server answering every GET with its path and Host header, counting requests."""

    def __init__(self, status: int = 200) -> None:
        outer = self
        self.hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.answer(with_body=True)

            def do_HEAD(self) -> None:
                self.answer(with_body=False)

            def answer(self, with_body: bool) -> None:
                outer.hits.append(f"{self.command} {self.path}")
                code = 404 if self.path.startswith("/dead") else status
                body = f"{self.headers['Host']} {self.path}".encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> EchoHTTP:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
