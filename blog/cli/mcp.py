"""`blog mcp` (the log over stdio) and `blog mcp-connect` (a remote log's /mcp over Tor, as stdio)."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from blog import builder
from blog.cli.common import config_of, echo_problems
from blog.content import ContentProblems
from blog.tor.errors import TorError

# The MCP SDK is imported by these two commands only: every other `blog` command (a `blog reload` on a small
# host beside the served site) paid about 45 MB and a second for it.


@click.command("mcp")
@click.pass_context
def mcp_command(ctx: click.Context) -> None:
    """Serve the log to an agent over stdio (MCP); follows `blog build` while it runs."""
    from blog.mcp import stdio

    cfg = config_of(ctx)
    try:
        builder.prepare(cfg)  # the CLI builds; what follows `current` only reads
        stdio.serve_current(cfg)
    except ContentProblems as problems:
        echo_problems(problems.problems)
        raise click.ClickException("the content has problems and there is no earlier build to serve; "
                                   "fix them (see `blog check`) and start again") from problems


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{url!r} is not an http(s) URL; give the remote /mcp, e.g. "
                                 "http://<address>.onion/mcp", param_hint="URL")
    if not parts.path or parts.path == "/":
        url = url.rstrip("/") + "/mcp"
    return url


async def _bridge(url: str, socks: str) -> None:
    """Reach url through tor's SOCKS port, and pass it on to this process's stdio until EOF."""
    from blog.mcp import stdio
    from blog.tor import egress

    async with egress.async_client(socks) as http:
        await stdio.run_bridge(url, http, f"tor at {socks}", unreachable=(TorError,))


@click.command("mcp-connect")
@click.argument("url")
@click.option("--tor-socks", default=None, help="Tor's SOCKS port, HOST:PORT (default: tor_socks setting).")
@click.pass_context
def mcp_connect(ctx: click.Context, url: str, tor_socks: str | None) -> None:
    """Serve a remote log's /mcp on stdio, reaching it only through Tor (names resolved by tor)."""
    import anyio
    import httpx2
    from mcp.shared.exceptions import MCPError

    from blog.tor import egress

    url = _check_url(url)
    socks = tor_socks or config_of(ctx, site_optional=True).tor_socks
    try:
        egress.proxy_url(socks)
        anyio.run(_bridge, url, socks)
    except TorError as exc:
        raise click.ClickException(str(exc)) from exc
    except (httpx2.HTTPError, OSError, MCPError) as exc:
        raise click.ClickException(f"cannot reach {url} through tor at {socks}: {exc}. Is tor running "
                                   "(tor_socks / --tor-socks), and is the address right?") from exc


def register(cli: click.Group) -> None:
    """Add the MCP commands to the `blog` command."""
    cli.add_command(mcp_command)
    cli.add_command(mcp_connect)
