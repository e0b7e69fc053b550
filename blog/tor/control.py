"""Reach tor's control interface: attach to a running tor, or launch a private one."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import stem
import stem.connection
import stem.process
import stem.socket
from stem.control import Controller

from blog.tor.errors import (
    AuthenticationError,
    ControlUnreachableError,
    CookieUnreadableError,
    TorError,
    TorNotInstalledError,
)

log = logging.getLogger(__name__)
# Stem logs every GETINFO at DEBUG and each closed socket at INFO; keep it quiet unless configured.
if logging.getLogger("stem").level == logging.NOTSET:
    logging.getLogger("stem").setLevel(logging.WARNING)

# A private tor has nothing to bootstrap before its control socket opens; stem's own timeout uses
# SIGALRM, which only the main thread may arm, so other threads pass None and rely on tor exiting.
LAUNCH_TIMEOUT = 90


class _ControlSocketFile(stem.socket.ControlSocketFile):
    """Stem's unix control socket, closing the socket when connect fails (stem leaks it)."""

    def _make_socket(self) -> socket.socket:
        return _connected(socket.AF_UNIX, self.path)


class _ControlPort(stem.socket.ControlPort):
    """Stem's TCP control socket, closing the socket when connect fails (stem leaks it)."""

    def _make_socket(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        return _connected(family, (self.address, self.port))


CLOSE_SECONDS = 5.0


def close_controller(controller: Controller) -> None:
    """Close a controller, giving up on stem's threads after CLOSE_SECONDS.

    stem closes the socket, then joins its event thread while holding the socket's send lock; an event
    thread still handling tor's reload signal (logrotate sends one daily) waits for that lock, and the
    two wait for each other forever. The socket is closed by then (tor sees the connection go), so only
    stem's threads are left behind.
    """
    closer = threading.Thread(target=controller.close, name="tor-control-close", daemon=True)
    closer.start()
    closer.join(CLOSE_SECONDS)
    if closer.is_alive():
        log.warning("stem did not finish closing tor's control connection in %.0f s (a reload signal "
                    "arrived as it closed); the connection is closed, its threads are left", CLOSE_SECONDS)


def _connected(family: int, address: object) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.connect(address)
    except OSError as exc:
        sock.close()
        raise stem.SocketError(exc) from exc
    return sock


def is_socket_path(control: str) -> bool:
    """Tell whether control names a unix socket rather than HOST:PORT."""
    return control.startswith(("/", "unix:"))


def connect(control: str) -> Controller:
    """Return an authenticated controller for `/path/to/socket`, `unix:/path` or `HOST:PORT`."""
    try:
        if is_socket_path(control):
            path = control.removeprefix("unix:")
            if not os.path.exists(path):
                raise ControlUnreachableError(control, "no such socket")
            controller = Controller(_ControlSocketFile(path))
        else:
            host, _, port = control.rpartition(":")
            controller = Controller(_ControlPort(host.strip("[]") or "127.0.0.1", int(port)))
    except ValueError as exc:
        raise ControlUnreachableError(control, "expected /path/to/socket or HOST:PORT") from exc
    except stem.SocketError as exc:
        reason = str(exc)
        if "ermission denied" in reason:
            reason += "; add this user to tor's group (`adduser $USER debian-tor`)"
        raise ControlUnreachableError(control, reason) from exc
    authenticate(controller, control)
    return controller


def authenticate(controller: Controller, control: str) -> None:
    """Authenticate controller (cookie, or none), closing it and translating any refusal."""
    try:
        controller.authenticate()
    except stem.connection.UnreadableCookieFile as exc:
        controller.close()
        raise CookieUnreadableError(exc.cookie_path) from exc
    except stem.connection.MissingPassword as exc:
        controller.close()
        raise AuthenticationError(
            f"tor at {control} wants a password: enable `CookieAuthentication 1` in its torrc instead"
        ) from exc
    except (stem.connection.AuthenticationFailure, stem.SocketError) as exc:
        controller.close()
        raise AuthenticationError(
            f"tor at {control} refused authentication ({exc}): use `CookieAuthentication 1` and "
            "make the cookie readable by this user's group (CookieAuthFileGroupReadable 1)"
        ) from exc


@dataclass
class LaunchedTor:
    """A private tor this process started; it exits when `controller` closes."""

    process: subprocess.Popen[bytes]
    controller: Controller
    control_socket: Path
    socks: str | None
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        """Return tor's process id."""
        return self.process.pid

    def stop(self) -> None:
        """Close the owning controller (tor then exits) and reap the process."""
        if self._stopped:
            return
        self._stopped = True
        close_controller(self.controller)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.warning("tor (pid %d) ignored its owner closing; killing it", self.pid)
            self.process.kill()
            self.process.wait(timeout=10)


def launch_tor(
    data_dir: Path,
    *,
    socks_port: str = "127.0.0.1:auto",
    single_hop: bool = False,
    disable_network: bool = False,
    tor_cmd: str = "tor",
) -> LaunchedTor:
    """Start a private tor with its DataDirectory in data_dir; return once its control socket answers."""
    if shutil.which(tor_cmd) is None:
        raise TorNotInstalledError(tor_cmd)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    control_socket = data_dir / "control"
    config: dict[str, str | list[str]] = {
        "DataDirectory": str(data_dir),
        "ControlSocket": str(control_socket),
        "CookieAuthentication": "1",
        # One SOCKS stream per destination host, and per SOCKS credentials (egress sets them).
        "SocksPort": f"{socks_port} IsolateDestAddr IsolateSOCKSAuth",
        # This tor serves one onion and makes outbound requests; it never needs country lookups.
        "GeoIPFile": "",
        "GeoIPv6File": "",
        "Log": "notice stdout",
    }
    if single_hop:
        # A non-anonymous service tor may not also act as an anonymous client: no SOCKS port.
        config.update(HiddenServiceSingleHopMode="1", HiddenServiceNonAnonymousMode="1", SocksPort="0")
    if disable_network:
        config["DisableNetwork"] = "1"
    on_main = threading.current_thread() is threading.main_thread()
    try:
        process = stem.process.launch_tor_with_config(
            config, tor_cmd=tor_cmd, completion_percent=0,
            timeout=LAUNCH_TIMEOUT if on_main else None, take_ownership=True,
        )
    except OSError as exc:
        raise TorError(f"tor failed to start in {data_dir} ({exc}): read the message above, "
                       "and check that no other tor uses this data directory") from exc
    try:
        controller = Controller(_ControlSocketFile(str(control_socket)))
        authenticate(controller, str(control_socket))
        socks = None if single_hop else _socks_listener(controller)
    except (stem.SocketError, TorError):
        process.kill()
        process.wait(timeout=10)
        raise
    log.info("launched tor (pid %d) in %s", process.pid, data_dir)
    return LaunchedTor(process=process, controller=controller, control_socket=control_socket, socks=socks)


def _socks_listener(controller: Controller) -> str | None:
    """Return tor's first SOCKS listener as HOST:PORT, or None when it has none."""
    listeners = controller.get_listeners(stem.control.Listener.SOCKS, [])
    if not listeners:
        return None
    host, port = listeners[0]
    return f"{host}:{port}"
