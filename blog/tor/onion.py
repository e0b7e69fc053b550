"""Publish the blog as an ED25519-V3 onion service and keep it published while tor comes and goes."""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import stem
from stem.control import Controller, EventType
from stem.response.events import HSDescEvent

from blog.tor import hsdir, keys
from blog.tor.control import LaunchedTor, close_controller, connect, launch_tor
from blog.tor.errors import PublishError, TargetRefusedError, TorError

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0


def check_target(target: str) -> str:
    """Return target in ADD_ONION form, refusing anything but loopback HOST:PORT or unix:/path."""
    if target.startswith("unix:/"):
        return target
    host, sep, port = target.rpartition(":")
    try:
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(port)
        if not ipaddress.ip_address(host.strip("[]")).is_loopback:
            raise ValueError(host)
    except ValueError as exc:
        raise TargetRefusedError(target) from exc
    return target


@dataclass(frozen=True)
class OnionStatus:
    """What `blog onion status` reports."""

    address: str | None
    connected: bool
    registered: bool  # tor holds the service (GETINFO onions/current on the owning connection)
    published: bool  # a descriptor was uploaded to an HSDir (HS_DESC UPLOADED, or in tor's cache)
    bootstrap_percent: int
    bootstrap_summary: str
    defences: str = ""  # which DoS defences tor holds for the service (hsdir.defences_for)


class OnionService:
    """One onion service: attached to a system tor (control given) or on a private tor it launches."""

    def __init__(
        self,
        *,
        control: str | None,
        data_dir: Path,
        key_path: Path,
        target: str,
        virtual_port: int = 80,
        max_streams: int = 32,
        pow: bool = True,
        intro_rate: int = 25,
        intro_burst: int = 200,
        single_hop: bool = False,
        disable_network: bool = False,
        tor_cmd: str = "tor",
    ) -> None:
        self.control = control
        self.tor_dir = data_dir / "tor"
        self.key_path = key_path
        self.target = check_target(target)
        self.virtual_port = virtual_port
        self.max_streams = max_streams
        self.pow = pow
        self.intro_rate = intro_rate
        self.intro_burst = intro_burst
        self.single_hop = single_hop
        self.disable_network = disable_network
        self.tor_cmd = tor_cmd
        self.reprovisions = 0
        self._controller: Controller | None = None
        self._launched: LaunchedTor | None = None
        self._address: str | None = None
        self._uploaded = False
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str | None:
        """Return the service's `.onion` address once published (or cached from an earlier run)."""
        return self._address or keys.known_address(self.key_path)

    @property
    def socks(self) -> str | None:
        """Return the launched tor's SOCKS listener for egress, or None in attach mode."""
        return self._launched.socks if self._launched else None

    @property
    def tor_pid(self) -> int | None:
        """Return the launched tor's pid, or None in attach mode."""
        return self._launched.pid if self._launched else None

    def start(self) -> str:
        """Publish the service and start the reconnect thread; return the `.onion` address."""
        keys.load_or_create_key(self.key_path)
        self._stopping.clear()
        self._provision()
        self._thread = threading.Thread(target=self._supervise, name="onion-supervisor", daemon=True)
        self._thread.start()
        assert self._address is not None
        return self._address

    def stop(self) -> None:
        """Stop the reconnect thread, withdraw the service, and stop a launched tor."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            self._disconnect()

    def status(self) -> OnionStatus:
        """Report the address, whether a descriptor was uploaded, and tor's bootstrap progress."""
        with self._lock:
            controller = self._controller
            if controller is None or not controller.is_alive():
                return OnionStatus(self.address, False, False, False, 0, "not connected to tor")
            try:
                state = status_from(controller, self.address, uploaded=self._uploaded,
                                    service_dir=None if self.control else self.service_dir)
            except stem.ControllerError as exc:
                return OnionStatus(self.address, False, False, False, 0, f"tor stopped answering: {exc}")
        if self.control:
            # Tor 0.4.9 reports no options of an ADD_ONION service: say what this connection sent.
            sent = hsdir.Defences(max_streams=self.max_streams, close_circuit=self.max_streams > 0, pow=self.pow)
            return replace(state, defences=f"{sent.describe()} (sent with ADD_ONION, which cannot set "
                                           "intro-point DoS; publish from the torrc for it)")
        return state

    def _provision(self) -> None:
        """Connect (or launch) tor and publish the service with the stored key."""
        with self._lock:
            self._disconnect()
            if self.control:
                controller = connect(self.control)
            else:
                self._launched = launch_tor(
                    self.tor_dir, single_hop=self.single_hop,
                    disable_network=self.disable_network, tor_cmd=self.tor_cmd,
                )
                controller = self._launched.controller
            self._controller = controller
            self._uploaded = False
            try:
                controller.add_event_listener(self._on_hs_desc, EventType.HS_DESC)
                key = keys.read_key(self.key_path)
                if self.control:
                    # A system tor: ADD_ONION, withdrawn with our connection, never touching its torrc.
                    self._address = add_onion(controller, key, self.add_onion_args())
                else:
                    # Our own tor: a HiddenServiceDir group, the one way tor 0.4.9 sets intro-point DoS.
                    self._address = hsdir.publish_dir(controller, key, self.service_dir, self.hs_options())
            except (stem.ControllerError, TorError):
                self._disconnect()
                raise
            keys.remember_address(self.key_path, self._address)
            log.info("onion service %s.onion -> %s published", self._address, self.target)

    @property
    def service_dir(self) -> Path:
        """Return the HiddenServiceDir the launched tor publishes from (a copy of the key, 0700/0600)."""
        return self.tor_dir / hsdir.SERVICE_DIR

    def hs_options(self) -> list[tuple[str, str]]:
        """Return the SETCONF lines that publish the service on a launched tor, with every DoS defence."""
        defences = hsdir.Defences(
            max_streams=self.max_streams, close_circuit=self.max_streams > 0, intro_dos=True,
            intro_rate=self.intro_rate, intro_burst=self.intro_burst, pow=self.pow,
        )
        return hsdir.service_options(self.service_dir, self.virtual_port, self.target, defences)

    def add_onion_args(self) -> str:
        """Return the ADD_ONION arguments after the key: flags, DoS defences and the port mapping."""
        # DiscardPK: tor already has the key from us and must not echo it back over the socket.
        flags = ["DiscardPK"]
        args = []
        if self.max_streams > 0:
            flags.append("MaxStreamsCloseCircuit")
            args.append(f"MaxStreams={self.max_streams}")
        if self.single_hop:
            flags.append("NonAnonymous")
        if self.pow:
            args.append("PoWDefensesEnabled=1")
        return " ".join([f"Flags={','.join(flags)}", *args, f"Port={self.virtual_port},{self.target}"])

    def _on_hs_desc(self, event: HSDescEvent) -> None:
        if event.action == "UPLOADED" and event.address == self._address:
            if not self._uploaded:
                log.info("descriptor for %s.onion uploaded to an HSDir", self._address)
            self._uploaded = True

    def _disconnect(self) -> None:
        if self._launched is not None:
            self._launched.stop()
        elif self._controller is not None:
            close_controller(self._controller)
        self._launched = None
        self._controller = None

    def _supervise(self) -> None:
        """Re-provision the service whenever the control connection drops, backing off while tor is away."""
        delay = BACKOFF_START
        while not self._stopping.wait(POLL_SECONDS):
            controller = self._controller
            if controller is not None and controller.is_alive():
                continue
            log.warning("lost tor's control connection; re-provisioning %s.onion", self.address)
            while not self._stopping.is_set():
                try:
                    self._provision()
                except TorError as exc:
                    log.warning("tor is still unavailable (%s); retrying in %.1f s", exc, delay)
                    self._stopping.wait(delay)
                    delay = min(delay * 2, BACKOFF_MAX)
                    continue
                self.reprovisions += 1
                log.info("re-provisioned %s.onion after tor came back", self._address)
                delay = BACKOFF_START
                break


def add_onion(controller: Controller, key: bytes, args: str) -> str:
    """Send a raw ADD_ONION (stem has no PoW argument) and return the service id from tor's reply."""
    try:
        reply = controller.msg(f"ADD_ONION {keys.key_blob(key)} {args}")
    except stem.ControllerError as exc:
        raise PublishError(f"tor went away while publishing the onion service ({exc}): retrying") from exc
    if not reply.is_ok():
        detail = str(reply)
        hint = "another controller already publishes this key: stop the other instance" \
            if "collision" in detail.lower() else "check that this tor is 0.4.9 or newer and its torrc"
        raise PublishError(f"tor refused ADD_ONION {args!r}: {detail} ({hint})")
    for _code, _div, line in reply.content():
        if line.startswith("ServiceID="):
            return line.removeprefix("ServiceID=")
    raise PublishError(f"tor's ADD_ONION reply has no ServiceID: {reply}; report this with tor's version")


def status_from(controller: Controller, address: str | None, *, uploaded: bool = False,
                service_dir: Path | None = None) -> OnionStatus:
    """Build an OnionStatus from tor's GETINFO/GETCONF answers (HS_DESC uploads count as published)."""
    phase = controller.get_info("status/bootstrap-phase")
    fields = _phase_fields(phase)
    onions = set()
    for key in ("onions/current", "onions/detached"):
        onions.update(controller.get_info(key, "").split())
    groups = hsdir.read_services(controller)
    registered = address in onions or hsdir.group_for(groups, address) is not None or (
        service_dir is not None and any(group["HiddenServiceDir"] == str(service_dir) for group in groups))
    published = uploaded
    if address and not published:
        try:
            controller.get_info(f"hs/service/desc/id/{address}")
            published = True
        except stem.ControllerError:
            published = False
    return OnionStatus(address, True, registered, published, int(fields.get("PROGRESS", "0")),
                       fields.get("SUMMARY", "").strip('"'), hsdir.defences_for(groups, address))


def _phase_fields(phase: str) -> dict[str, str]:
    """Parse `NOTICE BOOTSTRAP PROGRESS=0 TAG=starting SUMMARY="Starting"` into its KEY=value pairs."""
    fields: dict[str, str] = {}
    if 'SUMMARY="' in phase:
        head, _, summary = phase.partition('SUMMARY="')
        fields["SUMMARY"] = summary.split('"', 1)[0]
    else:
        head = phase
    for token in head.split():
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields
