"""Render torrc.template (the same file Ansible renders) and have tor itself verify the result."""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import jinja2

from blog.tor.errors import TorNotInstalledError, TorrcError
from blog.tor.onion import check_target

log = logging.getLogger(__name__)

# Package data, so an installed wheel carries it; the project root's torrc.template links here.
TEMPLATE = Path(__file__).parent / "torrc.template"
# Debian's tor unit starts tor with these defaults (User debian-tor, DataDirectory /var/lib/tor); the
# rendered torrc is only valid on top of them, so verifying it for the system tor must include them.
DEBIAN_DEFAULTS = Path("/usr/share/tor/tor-service-defaults-torrc")


@dataclass(frozen=True)
class TorrcValues:
    """The template's variables, with the defaults of a Debian system tor."""

    tor_data_dir: str = "/var/lib/tor"
    control_socket: str = "/run/tor/control"
    cookie_file: str = "/run/tor/control.authcookie"
    socks_port: str = "127.0.0.1:9050"
    single_hop: bool = False
    onion_dir: str = ""
    onion_virtual_port: int = 80
    onion_target: str = "127.0.0.1:8000"
    onion_max_streams: int = 32
    onion_intro_rate: int = 25
    onion_intro_burst: int = 200
    onion_pow: bool = True


def render_torrc(values: TorrcValues, template: Path = TEMPLATE) -> str:
    """Return the torrc for values, refusing a non-loopback target or a template variable left unset."""
    target = check_target(values.onion_target)
    # Not HTML: escaping would corrupt paths; StrictUndefined turns a missing variable into an error.
    env = jinja2.Environment(  # noqa: S701
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )
    try:
        text = env.from_string(template.read_text()).render(**{**asdict(values), "onion_target": target})
    except (OSError, jinja2.TemplateError) as exc:
        raise TorrcError(f"cannot render {template}: {exc}") from exc
    return text


def verify_torrc(text: str, tor_cmd: str = "tor", defaults: Path | None = None) -> None:
    """Run `tor --verify-config` on text over defaults (none if None); raise TorrcError if tor refuses."""
    tor = shutil.which(tor_cmd)
    if tor is None:
        raise TorNotInstalledError(tor_cmd)
    with tempfile.TemporaryDirectory(prefix="blog-torrc-") as tmp:
        torrc, empty = Path(tmp) / "torrc", Path(tmp) / "defaults"
        torrc.write_text(text)
        empty.write_text("")
        result = subprocess.run(
            [tor, "--verify-config", "--defaults-torrc", str(defaults or empty), "-f", str(torrc)],
            capture_output=True, text=True, timeout=60, check=False,
        )
    if result.returncode != 0:
        complaints = [line for line in result.stdout.splitlines() if "[warn]" in line or "[err]" in line]
        raise TorrcError("tor refused the rendered torrc:\n" + "\n".join(complaints or [result.stdout]))
    log.info("tor --verify-config accepted the rendered torrc")
