"""`blog onionbalance-config`: write both sides of an Onionbalance setup; `register(cli)` adds it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from blog import onionbalance
from blog.onionbalance import OnionbalanceError
from blog.tor import keys
from blog.tor.errors import TorError

log = logging.getLogger(__name__)


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)


def _master(key_path: Path, create: bool) -> str:
    """Return the master address, creating the key first when asked to and it does not exist."""
    if not key_path.exists():
        if not create:
            raise click.ClickException(
                f"no master key at {key_path}: pass --create-master-key to make one, or copy the frontend's "
                "hs_ed25519_secret_key there (tor's format, mode 0600)")
        keys.write_key(key_path, keys.generate_key())
        click.echo(f"created a new master key at {key_path}: back it up, it is the site's public address",
                   err=True)
    address = onionbalance.master_address(key_path)
    keys.remember_address(key_path, address)
    return address


@click.command("onionbalance-config")
@click.option("--master-key", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The frontend's master key, tor's hs_ed25519_secret_key format (absolute path).")
@click.option("--create-master-key", is_flag=True, help="Create the master key when it does not exist.")
@click.option("--instance", "instances", multiple=True, required=True, metavar="[NAME=]ADDRESS",
              help="A backend's own onion address (repeat for each backend).")
@click.option("--onion-dir", type=click.Path(path_type=Path), default=Path("/var/lib/tor/blog"),
              show_default=True, help="Each backend's HiddenServiceDir.")
@click.option("--target", default="127.0.0.1:8000", show_default=True, help="Where each backend's tor sends readers.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for frontend/config.yaml, backend/torrc and backend/ob_config.")
def onionbalance_config(master_key: Path, create_master_key: bool, instances: tuple[str, ...], onion_dir: Path,
                        target: str, output: Path) -> None:
    """Write the Onionbalance frontend's config.yaml and every backend's torrc lines and ob_config."""
    master_key = master_key.absolute()
    try:
        backends = [onionbalance.parse_instance(text, i) for i, text in enumerate(instances, start=1)]
        address = _master(master_key, create_master_key)
        if address in {b.address for b in backends}:
            raise OnionbalanceError(f"{address} is the master address; give the backends' own addresses")
        frontend = onionbalance.frontend_config(master_key, backends)
        torrc = onionbalance.backend_torrc(onion_dir, target)
        ob_config = onionbalance.ob_config(address)
    except (OnionbalanceError, TorError) as exc:
        raise click.ClickException(str(exc)) from exc
    _write(output / "frontend" / "config.yaml", frontend, 0o640)
    _write(output / "backend" / "torrc", torrc, 0o644)
    _write(output / "backend" / "ob_config", ob_config, 0o600)
    log.info("onionbalance config for %s with %d backends written to %s", address, len(backends), output)
    click.echo(f"master address: http://{address}/")
    click.echo(f"frontend: onionbalance --config {output / 'frontend' / 'config.yaml'} (tor's control socket)")
    click.echo(f"backends: add {output / 'backend' / 'torrc'} to each torrc; copy "
               f"{output / 'backend' / 'ob_config'} to {onion_dir / 'ob_config'} (owner debian-tor, 0600)")


def register(cli: click.Group) -> None:
    """Add the onionbalance-config command to the blog CLI."""
    cli.add_command(onionbalance_config)
