"""Onionbalance configuration for both sides: the frontend's config.yaml, each backend's torrc lines and ob_config."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blog.tor import keys

# The formats follow ansible/roles/onionbalance (config.yaml.j2) and ansible/roles/tor (ob_config,
# HiddenServiceOnionbalanceInstance), so a hand-made setup and an Ansible one read the same.
_ONION = re.compile(r"^[a-z2-7]{56}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_VERSION = b"\x03"

# Ed25519 (RFC 8032): the field prime, the curve constant d and the base point, for deriving an
# address from a secret key that tor stored already expanded (no seed to hand to a library).
_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_BASE = (15112221349535400772501151409588531511454012693041857206046113283949847762202,
         46316835694926478169428394003475163141307993866256225615783033603165251855960)


class OnionbalanceError(Exception):
    """An Onionbalance setting cannot be turned into a working configuration; the message says the fix."""


@dataclass(frozen=True)
class Instance:
    """One backend behind the frontend: a name for the logs and its own onion address."""

    name: str
    address: str


def _add(p: tuple[int, int], q: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = p, q
    t = _D * x1 * x2 * y1 * y2 % _P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, _P - 2, _P)
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, _P - 2, _P)
    return x3 % _P, y3 % _P


def public_key(secret: bytes) -> bytes:
    """Return the 32-byte ed25519 public key of tor's 64-byte expanded secret key."""
    if len(secret) != keys.KEY_LEN:
        raise OnionbalanceError(f"an expanded ed25519 secret key is {keys.KEY_LEN} bytes, got {len(secret)}")
    scalar = int.from_bytes(secret[:32], "little")
    point, addend = (0, 1), _BASE
    while scalar:
        if scalar & 1:
            point = _add(point, addend)
        addend = _add(addend, addend)
        scalar >>= 1
    x, y = point
    return (y | (x & 1) << 255).to_bytes(32, "little")


def address_of(public: bytes) -> str:
    """Return the v3 onion address (`<56 chars>.onion`) of an ed25519 public key."""
    checksum = hashlib.sha3_256(b".onion checksum" + public + _VERSION).digest()[:2]
    return base64.b32encode(public + checksum + _VERSION).decode("ascii").lower() + ".onion"


def check_address(address: str) -> str:
    """Return a v3 onion address as `<56 chars>.onion`, refusing typos through its checksum."""
    bare = address.strip().lower().removeprefix("http://").rstrip("/").removesuffix(".onion")
    if not _ONION.match(bare):
        raise OnionbalanceError(f"{address!r} is not a v3 onion address: expected 56 characters a-z and 2-7, "
                                "as in the backend's HiddenServiceDir/hostname")
    public = base64.b32decode(bare.upper())[:32]
    if address_of(public) != bare + ".onion":
        raise OnionbalanceError(f"{address!r} fails its checksum: copy it again from the backend's hostname file")
    return bare + ".onion"


def master_address(key_path: Path) -> str:
    """Return the onion address of the master key (tor's hs_ed25519_secret_key format)."""
    address = address_of(public_key(keys.read_key(key_path)))
    known = keys.known_address(key_path)
    if known and check_address(known) != address:
        raise OnionbalanceError(f"{key_path.parent / keys.HOSTNAME_FILE} names {known}, but the key is "
                                f"{address}: the key was replaced; delete the stale hostname file")
    return address


def parse_instance(text: str, index: int) -> Instance:
    """Parse `NAME=ADDRESS` or a bare `ADDRESS` (named backend<index>) from the command line."""
    name, sep, address = text.partition("=")
    if not sep:
        name, address = f"backend{index}", text
    if not _NAME.match(name):
        raise OnionbalanceError(f"backend name {name!r}: use letters, digits, '.', '_' or '-' (up to 63)")
    return Instance(name, check_address(address))


def frontend_config(key_path: Path, instances: Sequence[Instance]) -> str:
    """Return the frontend's config.yaml: the master key file and every backend's address."""
    if not instances:
        raise OnionbalanceError("Onionbalance needs at least one backend: give --instance NAME=ADDRESS")
    addresses = [i.address for i in instances]
    if len(set(addresses)) != len(addresses) or len({i.name for i in instances}) != len(instances):
        raise OnionbalanceError("each backend needs its own name and its own onion address: remove the duplicate")
    if not key_path.is_absolute():
        raise OnionbalanceError(f"the master key path {key_path} must be absolute: Onionbalance reads it "
                                "relative to config.yaml otherwise")
    lines = ["# Written by `blog onionbalance-config`; the same shape as ansible/roles/onionbalance.",
             "# The master key (tor's own format) and the backends whose descriptors are merged under its address.",
             "services:", f"  - key: {key_path}", "    instances:"]
    for instance in instances:
        lines += [f"      - address: {instance.address}", f'        name: "{instance.name}"']
    return "\n".join(lines) + "\n"


def ob_config(master: str) -> str:
    """Return a backend's ob_config: the master address tor puts in the backend's descriptors."""
    return f"MasterOnionAddress {check_address(master)}\n"


def backend_torrc(onion_dir: Path, target: str, *, virtual_port: int = 80, max_streams: int = 32,
                  intro_rate: int = 25, intro_burst: int = 200) -> str:
    """Return the torrc lines of one backend: its own HiddenServiceDir marked as an Onionbalance instance."""
    host, sep, port = target.rpartition(":")
    if not target.startswith("unix:") and not (sep and port.isdigit() and host in ("127.0.0.1", "[::1]")):
        raise OnionbalanceError(f"backend target {target!r} must be 127.0.0.1:PORT, [::1]:PORT or unix:/path, "
                                "so the site is reachable only through tor")
    return "\n".join([
        "## This backend's onion service, balanced by the Onionbalance frontend (docs/onionbalance.md).",
        "# The directory holds this backend's own key, and ob_config naming the master address.",
        f"HiddenServiceDir {onion_dir}",
        f"HiddenServicePort {virtual_port} {target}",
        f"HiddenServiceMaxStreams {max_streams}",
        "HiddenServiceMaxStreamsCloseCircuit 1",
        "HiddenServiceEnableIntroDoSDefense 1",
        f"HiddenServiceEnableIntroDoSRatePerSec {intro_rate}",
        f"HiddenServiceEnableIntroDoSBurstPerSec {intro_burst}",
        "# No PoW: Onionbalance 0.2.4 leaves pow-params out of the master descriptor readers use.",
        "# Accept readers introduced through the master descriptor, which Onionbalance builds from ours.",
        "HiddenServiceOnionbalanceInstance 1",
    ]) + "\n"
