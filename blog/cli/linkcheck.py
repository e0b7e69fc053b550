"""The `blog links` command: every external link in content/ checked through tor's egress; `register(cli)` adds it."""

from __future__ import annotations

import sys

import click

from blog.cli.common import config_of
from blog.linkcheck import LinkResult, check_links, dead_links, extract_links
from blog.tor import egress
from blog.tor.errors import TorError


@click.command("links", help="Check every external link in content/ through Tor; list the dead ones.")
@click.option("--socks", help="Tor's SOCKS port (default: tor_socks).")
@click.pass_context
def links_command(ctx: click.Context, socks: str | None) -> None:
    cfg = config_of(ctx)
    links = extract_links(cfg.content_dir)
    urls = {link.url for link in links}
    click.echo(f"checking {len(urls)} URLs ({len(links)} links) through tor at {socks or cfg.tor_socks}",
               err=True)
    try:
        with egress.client(socks or cfg.tor_socks) as client:
            if sys.stderr.isatty():
                with click.progressbar(length=len(urls), label="checking", file=sys.stderr) as bar:
                    results = check_links(links, client, lambda _result: bar.update(1))
            else:
                results = check_links(links, client, _plain_progress)
    except TorError as exc:
        raise click.ClickException(str(exc)) from exc
    dead = dead_links(links, results)
    for link, result in dead:
        click.echo(f"{link.path}:{link.line}: {link.url} ({result.detail})")
    click.echo(f"{len(dead)} dead of {len(links)} links", err=True)
    if dead:
        ctx.exit(1)


def _plain_progress(result: LinkResult) -> None:
    click.echo(f"{'ok  ' if result.ok else 'DEAD'} {result.detail:>4} {result.url}", err=True)


def register(cli: click.Group) -> None:
    """Add the links command to the blog CLI."""
    cli.add_command(links_command)
