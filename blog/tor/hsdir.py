"""Publish through SETCONF HiddenServiceDir (every DoS defence) and read the defences back with GETCONF."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import stem
from stem.control import Controller

from blog.tor import keys
from blog.tor.errors import PublishError

log = logging.getLogger(__name__)

SERVICE_DIR = "onion-service"  # inside the launched tor's DataDirectory
KEY_FILENAME = "hs_ed25519_secret_key"


@dataclass(frozen=True)
class Defences:
    """The denial-of-service defences of one onion service, as tor holds them."""

    max_streams: int = 0  # 0: unlimited
    close_circuit: bool = False
    intro_dos: bool = False
    intro_rate: int = 0
    intro_burst: int = 0
    pow: bool = False

    def describe(self) -> str:
        """Return one line saying which defences are on."""
        streams = f"max streams {self.max_streams}" if self.max_streams else "max streams unlimited"
        if self.max_streams and self.close_circuit:
            streams += " (close circuit)"
        intro = f"intro-point DoS {self.intro_rate}/s burst {self.intro_burst}" if self.intro_dos \
            else "intro-point DoS off"
        return f"{streams}, {intro}, proof-of-work {'on' if self.pow else 'off'}"


def service_options(service_dir: Path, virtual_port: int, target: str, defences: Defences) -> list[tuple[str, str]]:
    """Return the SETCONF lines of one HiddenServiceDir group, in the order tor groups them."""
    options = [("HiddenServiceDir", str(service_dir)), ("HiddenServicePort", f"{virtual_port} {target}")]
    if defences.max_streams > 0:
        options.append(("HiddenServiceMaxStreams", str(defences.max_streams)))
        options.append(("HiddenServiceMaxStreamsCloseCircuit", "1" if defences.close_circuit else "0"))
    if defences.intro_dos:
        options += [("HiddenServiceEnableIntroDoSDefense", "1"),
                    ("HiddenServiceEnableIntroDoSRatePerSec", str(defences.intro_rate)),
                    ("HiddenServiceEnableIntroDoSBurstPerSec", str(defences.intro_burst))]
    if defences.pow:
        options.append(("HiddenServicePoWDefensesEnabled", "1"))
    return options


def publish_dir(controller: Controller, key: bytes, service_dir: Path, options: list[tuple[str, str]]) -> str:
    """Write key into service_dir (0700/0600), SETCONF options on our own tor, return tor's address."""
    # A fresh folder each time: a hostname or public key left from an imported older key must not linger.
    shutil.rmtree(service_dir, ignore_errors=True)
    keys.write_key(service_dir / KEY_FILENAME, key)
    try:
        # SETCONF replaces every HiddenServiceDir group: only ever sent to the private tor we launched.
        controller.set_options(options)
    except stem.InvalidRequest as exc:
        raise PublishError(f"tor refused the onion service options ({exc}): "
                           "check that this tor is 0.4.9 or newer, built with the pow module") from exc
    except stem.ControllerError as exc:
        raise PublishError(f"tor went away while publishing the onion service ({exc}): retrying") from exc
    hostname = service_dir / keys.HOSTNAME_FILE
    try:
        # Tor loads the key and writes the hostname before it answers SETCONF.
        address = hostname.read_text(encoding="ascii").strip().removesuffix(".onion")
    except OSError as exc:
        raise PublishError(f"tor accepted the service but wrote no {hostname} ({exc.strerror}): "
                           "read tor's log above and report it with tor's version") from exc
    if len(address) != 56:
        raise PublishError(f"tor wrote {address!r} to {hostname}, not a v3 address: report it with tor's version")
    return address


def read_services(controller: Controller) -> list[dict[str, str]]:
    """Return each HiddenServiceDir group tor holds (GETCONF HiddenServiceOptions), option -> value."""
    reply = controller.msg("GETCONF HiddenServiceOptions")
    if not reply.is_ok():
        raise stem.InvalidRequest(reply.content()[0][0], str(reply))
    groups: list[dict[str, str]] = []
    for _code, _div, line in reply.content():
        name, sep, value = line.partition("=")
        if not sep:
            continue  # "HiddenServiceOptions" alone: no service configured
        if name == "HiddenServiceDir":
            groups.append({})
        if groups:
            groups[-1].setdefault(name, value)
    return groups


def defences_of(group: dict[str, str]) -> Defences:
    """Return the defences one HiddenServiceDir group sets (tor's defaults for lines it lacks)."""
    def number(name: str) -> int:
        value = group.get(name, "0")
        return int(value) if value.isdigit() else 0

    return Defences(
        max_streams=number("HiddenServiceMaxStreams"),
        close_circuit=group.get("HiddenServiceMaxStreamsCloseCircuit") == "1",
        intro_dos=group.get("HiddenServiceEnableIntroDoSDefense") == "1",
        intro_rate=number("HiddenServiceEnableIntroDoSRatePerSec"),
        intro_burst=number("HiddenServiceEnableIntroDoSBurstPerSec"),
        pow=group.get("HiddenServicePoWDefensesEnabled") == "1",
    )


def group_for(groups: list[dict[str, str]], address: str | None) -> dict[str, str] | None:
    """Return the group whose HiddenServiceDir's hostname names address, if this user can read it."""
    for group in groups:
        hostname = Path(group["HiddenServiceDir"]) / keys.HOSTNAME_FILE
        try:
            named = hostname.read_text(encoding="ascii").strip().removesuffix(".onion")
        except OSError:
            continue  # another user's folder (a system tor's /var/lib/tor/...)
        if address and named == address:
            return group
    return None


def defences_for(groups: list[dict[str, str]], address: str | None) -> str:
    """Say which DoS defences tor holds for address, or what it cannot report for an ADD_ONION service."""
    group = group_for(groups, address)
    if group is not None:
        return defences_of(group).describe() + " (read back from tor)"
    lines = [f"{group['HiddenServiceDir']}: {defences_of(group).describe()}" for group in groups]
    lines.append("ADD_ONION services: max streams and proof-of-work as sent (tor does not report them), "
                 "intro-point DoS off (ADD_ONION cannot set it)")
    return "; ".join(lines)
