"""The `blog onion` and `blog torrc` commands; `register(cli)` adds them to the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from blog.cli.common import config_of
from blog.tor import keys
from blog.tor.control import connect
from blog.tor.errors import TorError
from blog.tor.mode import control_for
from blog.tor.onion import status_from
from blog.tor.torrc import DEBIAN_DEFAULTS, TorrcValues, render_torrc, verify_torrc


@click.group(help="Manage the onion service: status, and moving its key.")
def onion() -> None:
    """Group the onion commands."""


@onion.command(help="Show the onion address, whether its descriptor is published, and tor's bootstrap.")
@click.pass_context
def status(ctx: click.Context) -> None:
    cfg = config_of(ctx)
    address = cfg.onion_address or keys.known_address(cfg.onion_key_path)
    click.echo(f"address:    {address + '.onion' if address else '(not published yet)'}")
    try:
        control = control_for(cfg)
    except TorError as exc:
        raise click.ClickException(str(exc)) from exc
    if control is None:
        click.echo("tor:        off (tor_mode = off, or no tor installed)")
        return
    try:
        controller = connect(control)
    except TorError as exc:
        click.echo(f"tor:        unreachable at {control}")
        raise click.ClickException(str(exc)) from exc
    try:
        state = status_from(controller, address)
    finally:
        controller.close()
    click.echo(f"published:  {'yes' if state.published else 'no (no descriptor in tor yet)'}")
    click.echo(f"bootstrap:  {state.bootstrap_percent}% {state.bootstrap_summary}")
    click.echo(f"defences:   {state.defences or 'unknown'}")


@onion.command("export", help="Copy the onion key to PATH in tor's hs_ed25519_secret_key format (0600).")
@click.argument("path", type=click.Path(path_type=Path))
@click.pass_context
def export_command(ctx: click.Context, path: Path) -> None:
    cfg = config_of(ctx)
    try:
        keys.export_key(cfg.onion_key_path, path)
    except TorError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"exported the onion key to {path}: keep it as secret as the site's identity")


@onion.command("import", help="Make the key at PATH (tor's format) this site's onion key.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Replace an existing key without asking.")
@click.pass_context
def import_command(ctx: click.Context, path: Path, yes: bool) -> None:
    cfg = config_of(ctx)
    if cfg.onion_key_path.exists() and not yes:
        click.confirm(f"{cfg.onion_key_path} exists; replacing it changes the onion address. Go on?",
                      abort=True)
    try:
        keys.import_key(path, cfg.onion_key_path)
    except TorError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"imported {path}; restart the app (or tor reconnects) to publish with it")


@click.command("torrc", help="Render torrc.template for this site and check it with tor --verify-config.")
@click.option("--onion-dir", default="", help="Publish from this HiddenServiceDir instead of ADD_ONION.")
@click.option("--target", default="127.0.0.1:8000", show_default=True, help="Where tor sends readers.")
@click.option("--verify/--no-verify", default=True, show_default=True, help="Run tor --verify-config.")
@click.option("--defaults-torrc", type=click.Path(dir_okay=False, path_type=Path),
              default=DEBIAN_DEFAULTS if DEBIAN_DEFAULTS.exists() else None,
              help="The defaults tor runs with, for the check (Debian's service defaults when present).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@click.pass_context
def torrc_command(ctx: click.Context, onion_dir: str, target: str, verify: bool,
                  defaults_torrc: Path | None, output: Path | None) -> None:
    cfg = config_of(ctx)
    options: dict[str, Any] = {"socks_port": cfg.tor_socks, "single_hop": cfg.onion_single_hop,
                               "onion_max_streams": cfg.onion_max_streams, "onion_dir": onion_dir,
                               "onion_target": target}
    if cfg.tor_control.startswith("/"):
        options["control_socket"] = cfg.tor_control
    try:
        text = render_torrc(TorrcValues(**options))
        if verify:
            verify_torrc(text, defaults=defaults_torrc)
    except TorError as exc:
        raise click.ClickException(str(exc)) from exc
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)


def register(cli: click.Group) -> None:
    """Add the onion and torrc commands to the blog CLI."""
    cli.add_command(onion)
    cli.add_command(torrc_command)
