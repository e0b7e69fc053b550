"""Scale-out: two backends behind one Onionbalance frontend, on the private 20 s Tor network."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from stem.control import EventType

from blog import onionbalance
from blog.cli import cli
from blog.onionbalance import Instance, OnionbalanceError
from blog.tor import keys
from processes import Gunicorn
from tests.conftest import DATA
from tests.tornet import TorNet, TorNetError
from tests.tornet import process as torproc
from tests.tornet.torrc import Node, Role, render

pytest_plugins = ["tests.tornet.fixtures"]

ARTIFACTS = Path(__file__).parent / "artifacts"
TITLE = re.compile(r"<title>[^<]*?(backend [0-9])")
BOTH = re.compile(r"We got \d+ intros from 2 instances")  # Onionbalance 0.2.4, at -v info
FIGURES: dict[str, float] = {}


# Configuration generation: pure functions, no network ------------------------------------------

def _seeded_key() -> tuple[bytes, bytes]:
    """Return (tor's expanded secret key, public key) for a random seed, the public key from cryptography."""
    seed = secrets.token_bytes(32)
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    expanded = bytearray(hashlib.sha512(seed).digest())
    expanded[0] &= 248
    expanded[31] &= 63
    expanded[31] |= 64
    return bytes(expanded), public


def test_master_address_matches_an_independent_ed25519() -> None:
    from stem.descriptor.hidden_service import HiddenServiceDescriptorV3

    for _ in range(3):
        secret, public = _seeded_key()
        assert onionbalance.public_key(secret) == public
        assert onionbalance.address_of(public) == HiddenServiceDescriptorV3.address_from_identity_key(public)


def test_addresses_are_checked_and_named() -> None:
    _, public = _seeded_key()
    address = onionbalance.address_of(public)
    assert onionbalance.check_address(address.removesuffix(".onion").upper()) == address
    typo = address[:10] + ("a" if address[10] != "a" else "b") + address[11:]
    with pytest.raises(OnionbalanceError, match="checksum"):
        onionbalance.check_address(typo)
    with pytest.raises(OnionbalanceError, match="56 characters"):
        onionbalance.check_address("example.onion")
    assert onionbalance.parse_instance(f"web-1={address}", 1) == Instance("web-1", address)
    assert onionbalance.parse_instance(address, 2).name == "backend2"


def test_cli_writes_both_sides_in_the_ansible_role_formats(tmp_path: Path) -> None:
    import yaml

    backends = [onionbalance.address_of(_seeded_key()[1]) for _ in range(2)]
    key = tmp_path / "master" / "hs_ed25519_secret_key"
    args = ["onionbalance-config", "--master-key", str(key), "-o", str(tmp_path / "out"),
            "--instance", f"a={backends[0]}", "--instance", backends[1]]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1 and "--create-master-key" in refused.output
    done = CliRunner().invoke(cli, [*args, "--create-master-key"])
    assert done.exit_code == 0, done.output
    master = onionbalance.master_address(key)
    assert f"master address: http://{master}/" in done.output
    assert (key.parent / "hostname").read_text().strip() == master
    config = yaml.safe_load((tmp_path / "out" / "frontend" / "config.yaml").read_text())
    # The shape ansible/roles/onionbalance/templates/config.yaml.j2 writes.
    assert config == {"services": [{"key": str(key), "instances": [
        {"address": backends[0], "name": "a"}, {"address": backends[1], "name": "backend2"}]}]}
    assert (tmp_path / "out" / "backend" / "ob_config").read_text() == f"MasterOnionAddress {master}\n"
    torrc = (tmp_path / "out" / "backend" / "torrc").read_text()
    assert "HiddenServiceOnionbalanceInstance 1" in torrc and "HiddenServicePort 80 127.0.0.1:8000" in torrc
    assert oct((tmp_path / "out" / "backend" / "ob_config").stat().st_mode & 0o777) == "0o600"
    again = CliRunner().invoke(cli, [*args[:-4], "--instance", f"x={master}"])
    assert again.exit_code == 1 and "is the master address" in again.output


def test_backend_torrc_passes_tor_verify_config(tmp_path: Path) -> None:
    tor = shutil.which("tor")
    if tor is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tor is not installed: apt-get install tor")
        pytest.skip("tor is not installed")
    with pytest.raises(OnionbalanceError, match="only through tor"):
        onionbalance.backend_torrc(tmp_path / "hs", "0.0.0.0:8000")
    torrc = tmp_path / "torrc"
    torrc.write_text(f"DataDirectory {tmp_path / 'data'}\nSocksPort 0\n"
                     + onionbalance.backend_torrc(tmp_path / "hs", "127.0.0.1:8000"))
    (tmp_path / "empty").write_text("")
    verify = [tor, "--verify-config", "--defaults-torrc", str(tmp_path / "empty"), "-f", str(torrc)]
    # tor reads ob_config while it checks the torrc: it has to be in place before tor starts or reloads.
    missing = subprocess.run(verify, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "ob_config" in missing.stdout, missing.stdout
    (tmp_path / "hs").mkdir(mode=0o700)
    master = onionbalance.address_of(_seeded_key()[1])
    (tmp_path / "hs" / "ob_config").write_text(onionbalance.ob_config(master))
    done = subprocess.run(verify, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


# Two backends behind the frontend, on the private network -----------------------------------

class Backend:
    """One backend: a gunicorn of the app and its own tor with HiddenServiceOnionbalanceInstance."""

    def __init__(self, net: TorNet, root: Path, index: int, master: str) -> None:
        self.name = f"backend{index}"
        self.root = root / self.name
        shutil.copytree(DATA / "site", self.root / "content")
        self.web = Gunicorn(self.root / "content", self.root / "data", workers=1,
                            extra_env={"BLOG_TITLE": f"log on backend {index}"})
        self.node = Node(self.name, Role.SERVICE, self.root / "tor")
        self.node.directory.mkdir(mode=0o700)
        hs_dir = self.node.directory / "hs"
        hs_dir.mkdir(mode=0o700)
        (hs_dir / "ob_config").write_text(onionbalance.ob_config(master))
        authorities = [n for n in net.nodes if n.role is Role.AUTHORITY]
        exit_fp = next(n.fingerprint for n in net.nodes if n.role is Role.EXIT)
        self.torrc_text = render(self.node, authorities, net.voting, exit_fp, net.base / "resolv.conf")
        self.hs_dir = hs_dir
        self.defaults = net.base / "empty-defaults"
        self.tor: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start gunicorn, then the tor; return the backend's own onion address once tor wrote it."""
        self.web.start()
        self.node.torrc_path.write_text(
            self.torrc_text + onionbalance.backend_torrc(self.hs_dir, self.web.url.removeprefix("http://")))
        self.tor = torproc.launch(self.node.torrc_path, self.node.log_path, self.defaults)
        deadline = time.monotonic() + 60
        while not (self.hs_dir / "hostname").exists():
            if self.tor.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name}'s tor wrote no hostname:\n{self.logs()}")
            time.sleep(0.2)
        return onionbalance.check_address((self.hs_dir / "hostname").read_text())

    def stop(self) -> None:
        """Stop the tor and gunicorn, each by its PID."""
        if self.tor is not None:
            torproc.stop(self.tor)
        self.web.stop()

    def logs(self) -> str:
        return f"--- {self.name} tor ---\n{torproc.log_tail(self.node.log_path)}\n" \
               f"--- {self.name} gunicorn ---\n{self.web.log()[-1500:]}"


class Frontend:
    """The Onionbalance process, publishing the master descriptor through the network's service tor."""

    def __init__(self, net: TorNet, root: Path, key: Path, instances: list[Instance]) -> None:
        self.config = root / "frontend" / "config.yaml"
        self.config.parent.mkdir(mode=0o700)
        self.config.write_text(onionbalance.frontend_config(key, instances))
        self.log_path = root / "frontend" / "onionbalance.log"
        self.args = [str(Path(sys.executable).with_name("onionbalance")), "--config", str(self.config),
                     "--ip", "127.0.0.1", "--port", str(net.service_control_port),
                     "--socket", str(root / "no-socket"), "--is-testnet", "-v", "info"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def wait_for_both_instances(self, timeout: float) -> bool:
        """Wait until Onionbalance says it built a master descriptor from both instances' intro points."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.exists() and BOTH.search(self.log_path.read_text(errors="replace")):
                return True
            if self.process is not None and self.process.poll() is not None:
                return False
            time.sleep(0.5)
        return False


@pytest.fixture
def balanced(tornet_onionbalance: TorNet, tmp_path: Path) -> Iterator[tuple[str, list[Backend], Frontend]]:
    """Start two backends and the frontend; stop all of them by PID afterwards, even on failure."""
    net = tornet_onionbalance
    key = tmp_path / "master" / "hs_ed25519_secret_key"
    keys.write_key(key, keys.generate_key())
    master = onionbalance.master_address(key)
    backends = [Backend(net, tmp_path, i, master) for i in range(2)]
    frontend: Frontend | None = None
    try:
        instances = [Instance(b.name, b.start()) for b in backends]
        frontend = Frontend(net, tmp_path, key, instances)
        frontend.start()
        yield master, backends, frontend
    finally:
        if frontend is not None:
            frontend.stop()
        for backend in backends:
            backend.stop()


def _which(net: TorNet, url: str, timeout: float, what: str, context: str) -> str:
    """Fetch url on a circuit of its own and return the name of the backend that answered."""
    deadline = time.monotonic() + timeout
    errors: list[str] = []
    response = None
    while response is None and time.monotonic() < deadline:
        # A fresh SOCKS username is a fresh rendezvous circuit (IsolateSOCKSAuth), so a fresh random
        # introduction point: NEWNYM alone is rate-limited and the client would reuse one circuit.
        proxy = httpx2.Proxy(net.proxy_url, auth=(secrets.token_hex(8), "x"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # httpcore2's socket on a failed handshake
            try:
                with httpx2.Client(proxy=proxy, timeout=20, trust_env=False) as client:
                    response = client.get(url)
            except httpx2.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                net.newnym()  # forget a cached failed lookup
                time.sleep(1)
            gc.collect()
    if response is None:
        raise AssertionError(f"{what}: no answer in {timeout:.0f} s: {errors[-3:]}\n{context}")
    found = TITLE.search(response.text)
    assert response.status_code == 200 and found, f"{what}: {response.status_code} {response.text[:300]}"
    return found.group(1).replace(" ", "")


@pytest.mark.slow
@pytest.mark.timeout(720)
def test_two_backends_behind_onionbalance_survive_losing_one(
    balanced: tuple[str, list[Backend], Frontend], tornet_onionbalance: TorNet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    net = tornet_onionbalance
    master, backends, frontend = balanced
    url = f"http://{master}/"

    def context() -> str:
        return f"--- onionbalance ---\n{frontend.log()}\n" + "\n".join(b.logs() for b in backends)

    FIGURES["network_bootstrap_s"] = net.timings["bootstrap_s"]
    try:
        net.wait_for_descriptor(master, timeout=360)
        FIGURES["master_descriptor_s"] = net.since_start()
    except TorNetError as exc:
        raise AssertionError(f"Onionbalance published no master descriptor: {exc}\n{context()}") from exc
    both = frontend.wait_for_both_instances(timeout=240)
    assert both, f"Onionbalance never put both backends' intro points in one descriptor\n{context()}"
    FIGURES["both_instances_published_s"] = net.since_start()
    seen = [_which(net, url, 120, "first fetch of the master address", context())]
    FIGURES["first_master_fetch_s"] = net.since_start()
    # Each fetch builds a new rendezvous circuit through a randomly chosen introduction point; a master
    # descriptor with both backends' points lets both answer within a few fetches. Onionbalance on a
    # test network republishes every 20 s and drops an instance whose descriptor is more than 20 s old,
    # so a slow machine can publish (and the client cache) a descriptor with one backend only: every
    # few fetches, NEWNYM purges the client's descriptor cache so it reads the newest one.
    deadline = time.monotonic() + 240
    while len(set(seen)) < 2 and time.monotonic() < deadline:
        if len(seen) % 4 == 0:
            time.sleep(10)  # NEWNYM is rate-limited to one per 10 s
            net.newnym()
        seen.append(_which(net, url, 60, "fetch through the master address", context()))
    assert set(seen) == {"backend0", "backend1"}, \
        f"only {set(seen)} answered in {len(seen)} fetches\n{context()}"
    FIGURES["fetches_until_both_backends"] = len(seen)

    uploads: list[float] = []
    watcher = net.service_controller()
    watcher.add_event_listener(
        lambda e: e.action == "UPLOADED" and e.address == master.removesuffix(".onion")
        and uploads.append(time.monotonic()), EventType.HS_DESC)
    backends[0].stop()
    killed = time.monotonic()
    answers = []
    for _ in range(4):
        answers.append(_which(net, url, 150, "fetch after losing backend0", context()))
        FIGURES.setdefault("first_fetch_after_losing_one_s", time.monotonic() - killed)
    FIGURES["four_fetches_after_losing_one_s"] = time.monotonic() - killed
    assert answers == ["backend1"] * 4
    # Readers fail over at once; Onionbalance's next master descriptor follows within its check period.
    deadline = time.monotonic() + 120
    while not [t for t in uploads if t > killed] and time.monotonic() < deadline:
        time.sleep(0.5)
    watcher.close()
    republished = [t for t in uploads if t > killed]
    assert republished, f"Onionbalance did not republish within 120 s of losing a backend\n{context()}"
    FIGURES["republish_after_losing_one_s"] = republished[0] - killed
    FIGURES["total_s"] = net.since_start()
    FIGURES["peak_rss_tors_mib"] = round(net.peak_rss_mib, 1)  # the network's 8 tors, not the backends'
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "onionbalance-figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")
    with capsys.disabled(), contextlib.suppress(OSError):
        print("\nonionbalance figures:", ", ".join(f"{k}={v:.1f}" for k, v in FIGURES.items()))
