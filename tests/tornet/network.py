"""Build, start and tear down a private Tor network on 127.0.0.1."""

from __future__ import annotations

import gc
import logging
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path
from types import TracebackType

import httpx2
from stem import Signal
from stem.control import Controller

from processes import rss_kib
from tests.tornet import onion, process
from tests.tornet.process import TorNetError
from tests.tornet.torrc import Node, Role, Voting, render

log = logging.getLogger(__name__)

BOOTSTRAPPED = "Bootstrapped 100%"


class TorNet:
    """A private Tor network: 3 authorities, relays, 1 loopback-only exit, a client, a service tor."""

    def __init__(self, base_dir: Path | None = None, voting: Voting | None = None, relays: int = 2,
                 keep: bool = False) -> None:
        self.voting = voting or Voting()
        self.keep = keep
        self.base = Path(base_dir or tempfile.mkdtemp(prefix="tornet-"))
        names = [("auth", Role.AUTHORITY, 3), ("relay", Role.RELAY, relays), ("exit", Role.EXIT, 1)]
        self.nodes = [Node(f"{n}{i}", role, self.base / f"{n}{i}") for n, role, k in names for i in range(k)]
        self.client = Node("client", Role.CLIENT, self.base / "client")
        self.service = Node("service", Role.SERVICE, self.base / "service")
        self.nodes += [self.client, self.service]
        self.timings: dict[str, float] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._watcher: onion.DescriptorWatcher | None = None
        self._client_control: Controller | None = None
        self._peak_rss_kib = 0
        self._sampling = threading.Event()
        self._t0 = 0.0

    # Building --------------------------------------------------------------------------------

    def build(self) -> None:
        """Write keys, fingerprints and torrcs for every node into the base directory."""
        process.tor_binary()
        self.base.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.base / "empty-defaults").write_text("")
        (self.base / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        ports = iter(process.free_ports(3 * len(self.nodes)))
        for node in self.nodes:
            node.directory.mkdir(mode=0o700, exist_ok=True)
            (node.directory / "keys").mkdir(mode=0o700, exist_ok=True)
            if node.role.is_server:
                node.or_port = next(ports)
            if node.role is Role.AUTHORITY:
                node.dir_port = next(ports)
            if node.role in (Role.CLIENT, Role.SERVICE):
                node.control_port = next(ports)
            if node.role is Role.CLIENT:
                node.socks_port = next(ports)
        authorities = [n for n in self.nodes if n.role is Role.AUTHORITY]
        self._gencert_all(authorities)
        self._fingerprint_all([n for n in self.nodes if n.role.is_server])
        exit_fp = next(n.fingerprint for n in self.nodes if n.role is Role.EXIT)
        for node in self.nodes:
            node.torrc_path.write_text(render(node, authorities, self.voting, exit_fp,
                                              self.base / "resolv.conf"))

    def _gencert_all(self, authorities: list[Node]) -> None:
        # RSA identity keys take seconds each: make the three at once.
        running = []
        for node in authorities:
            keys = node.directory / "keys"
            proc = subprocess.Popen(
                ["tor-gencert", "--create-identity-key", "--passphrase-fd", "0", "-m", "12",
                 "-a", f"127.0.0.1:{node.dir_port}", "-i", str(keys / "authority_identity_key"),
                 "-s", str(keys / "authority_signing_key"), "-c", str(keys / "authority_certificate")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            running.append((node, proc))
        for node, proc in running:
            _, err = proc.communicate(b"\n", timeout=120)
            if proc.returncode != 0:
                raise TorNetError(f"tor-gencert failed for {node.name}: {err.decode(errors='replace')}")
            certificate = (node.directory / "keys" / "authority_certificate").read_text()
            node.v3ident = next((line.split()[1] for line in certificate.splitlines()
                                 if line.startswith("fingerprint ")), "")
            if not node.v3ident:
                raise TorNetError(f"tor-gencert wrote no fingerprint for {node.name}: is it from tor 0.4?")

    def _fingerprint_all(self, servers: list[Node]) -> None:
        defaults = str(self.base / "empty-defaults")
        running = [
            (node, subprocess.Popen(
                [process.tor_binary(), "--defaults-torrc", defaults, "-f", defaults, "--quiet",
                 "--list-fingerprint", "--DataDirectory", str(node.directory),
                 "--ORPort", str(node.or_port), "--Address", "127.0.0.1"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE))
            for node in servers
        ]
        for node, proc in running:
            out, err = proc.communicate(timeout=60)
            words = out.decode().split()
            if proc.returncode != 0 or len(words) < 2:
                raise TorNetError(f"tor --list-fingerprint failed for {node.name}: {err.decode()}")
            node.fingerprint = "".join(words[1:])

    # Running ---------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        """Start every tor and wait until the client and the service tor have bootstrapped."""
        if not self.client.torrc_path.exists():
            built = time.monotonic()
            self.build()
            self.timings["build_s"] = time.monotonic() - built
        self._t0 = time.monotonic()
        offsets = {n.name: self._log_size(n) for n in self.nodes}
        for node in self.nodes:
            self._procs[node.name] = process.launch(node.torrc_path, node.log_path,
                                                    self.base / "empty-defaults")
        self._start_sampler()
        # The first controller of a tor whose __OwningControllerProcess is us takes ownership (stem
        # does so): ours must be that one, or a test closing its own controller would stop the tor.
        watcher = onion.connect(self.service.control_port, self.service.cookie_path)
        self._watcher = onion.DescriptorWatcher(watcher)
        self._client_control = onion.connect(self.client.control_port, self.client.cookie_path)
        for node in (self.client, self.service):
            process.wait_for_log(node.log_path, BOOTSTRAPPED, self._procs[node.name], timeout,
                                 offsets[node.name])
        self.timings["bootstrap_s"] = time.monotonic() - self._t0
        log.info("private Tor network bootstrapped in %.1f s under %s",
                 self.timings["bootstrap_s"], self.base)

    def _log_size(self, node: Node) -> int:
        return node.log_path.stat().st_size if node.log_path.exists() else 0

    def stop_client(self) -> None:
        """Stop the client tor, so its SOCKS port refuses connections (for fail-closed tests)."""
        self._close_client_control()
        process.stop(self._procs.pop(self.client.name))

    def start_client(self, timeout: float = 60.0) -> None:
        """Start the client tor again and wait for its bootstrap."""
        offset = self._log_size(self.client)
        proc = process.launch(self.client.torrc_path, self.client.log_path, self.base / "empty-defaults")
        self._procs[self.client.name] = proc
        self._client_control = onion.connect(self.client.control_port, self.client.cookie_path)
        process.wait_for_log(self.client.log_path, BOOTSTRAPPED, proc, timeout, offset)

    def stop_all(self) -> None:
        """Stop every tor of the network by PID; keep the directories so start_all can resume."""
        self._sampling.clear()
        self._close_client_control()
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        process.stop_many(list(self._procs.values()))
        self._procs.clear()

    def start_all(self, timeout: float = 120.0) -> None:
        """Start the whole network again after stop_all."""
        self.start(timeout)

    def close(self) -> None:
        """Stop every tor and remove the network's directory (unless keep was asked for)."""
        self.stop_all()
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> TorNet:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # What tests use --------------------------------------------------------------------------

    @property
    def socks_port(self) -> int:
        """Return the client tor's SOCKS port on 127.0.0.1."""
        return self.client.socks_port

    @property
    def proxy_url(self) -> str:
        """Return the socks5h:// proxy URL of the client (remote DNS: onion names resolve in tor)."""
        return f"socks5h://127.0.0.1:{self.client.socks_port}"

    @property
    def service_control_port(self) -> int:
        """Return the service tor's ControlPort on 127.0.0.1 (cookie authentication)."""
        return self.service.control_port

    @property
    def service_cookie_path(self) -> Path:
        """Return the service tor's control cookie file."""
        return self.service.cookie_path

    @property
    def client_control_port(self) -> int:
        """Return the client tor's ControlPort on 127.0.0.1 (cookie authentication)."""
        return self.client.control_port

    def service_controller(self) -> Controller:
        """Return a new authenticated stem Controller on the service tor; the caller closes it."""
        return onion.connect(self.service.control_port, self.service.cookie_path)

    def pids(self) -> dict[str, int]:
        """Return the PID of each running tor, by node name."""
        return {name: proc.pid for name, proc in list(self._procs.items()) if proc.poll() is None}

    def wait_for_descriptor(self, service: str | Controller, timeout: float = 90.0,
                            uploads: int = 1) -> float:
        """Wait until HSDirs hold a descriptor of an onion address (or of each of a controller's onions)."""
        if self._watcher is None:
            raise TorNetError("the network is not running: call start() first")
        addresses = [service] if isinstance(service, str) else onion.addresses_of(service)
        deadline = time.monotonic() + timeout
        for address in addresses:
            self._watcher.wait(address, max(0.1, deadline - time.monotonic()), uploads)
        return timeout - (deadline - time.monotonic())

    def newnym(self) -> None:
        """Send NEWNYM to the client: new circuits, and forget cached onion lookup failures."""
        if self._client_control is None:
            self._client_control = onion.connect(self.client.control_port, self.client.cookie_path)
        self._client_control.signal(Signal.NEWNYM)

    def fetch_via_socks(self, url: str, timeout: float = 60.0,
                        attempt_timeout: float = 15.0) -> httpx2.Response:
        """GET `url` through the client's SOCKS port, retrying with NEWNYM until `timeout` runs out."""
        deadline = time.monotonic() + timeout
        errors: list[str] = []
        while True:
            budget = min(attempt_timeout, deadline - time.monotonic())
            # httpcore2 leaves the proxy socket open when the SOCKS handshake fails (a refused onion
            # or exit): it is closed by the garbage collector, so silence that one warning here.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                try:
                    with httpx2.Client(proxy=self.proxy_url, timeout=budget, trust_env=False) as client:
                        return client.get(url)
                except httpx2.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                gc.collect()
            if time.monotonic() + 1 >= deadline:
                raise TorNetError(f"cannot fetch {url} through {self.proxy_url} after "
                                  f"{len(errors)} attempts: {errors[-3:]}")
            if self.client.name in self._procs:
                self.newnym()
            time.sleep(1)

    def exit_reaches(self, url: str, timeout: float = 30.0) -> bool:
        """Say whether a GET of `url` through the client and the exit gets any HTTP answer."""
        try:
            self.fetch_via_socks(url, timeout=timeout, attempt_timeout=10.0)
        except TorNetError:
            return False
        return True

    # Measuring -------------------------------------------------------------------------------

    def since_start(self) -> float:
        """Return the seconds since start() launched the tors."""
        return time.monotonic() - self._t0

    @property
    def peak_rss_mib(self) -> float:
        """Return the highest sum of the tors' resident memory seen so far, in MiB."""
        return self._peak_rss_kib / 1024

    def _start_sampler(self) -> None:
        self._sampling.set()
        threading.Thread(target=self._sample, name="tornet-rss", daemon=True).start()

    def _sample(self) -> None:
        while self._sampling.is_set():
            total = sum(rss_kib(pid) for pid in self.pids().values())
            self._peak_rss_kib = max(self._peak_rss_kib, total)
            time.sleep(0.5)

    def _close_client_control(self) -> None:
        if self._client_control is not None:
            self._client_control.close()
            self._client_control = None
