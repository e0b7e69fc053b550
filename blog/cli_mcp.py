"""`blog mcp` (the log over stdio) and `blog mcp-connect` (a remote log's /mcp over Tor, as stdio)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import click
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from blog.config import Config, ConfigError, load_config
from blog.content import ContentProblems
from blog.mcp_server import create_server
from blog.serving.current import SiteState
from blog.tor import egress
from blog.tor.errors import TorError

log = logging.getLogger(__name__)

T = TypeVar("T")
Paged = types.PaginatedRequestParams | None


def _config(ctx: click.Context) -> Config:
    try:
        return load_config(**(ctx.obj or {}))
    except ConfigError as exc:
        raise click.ClickException(f"{exc} (fix the setting in blog.toml or the BLOG_* variable)") from exc


@click.command("mcp")
@click.pass_context
def mcp_command(ctx: click.Context) -> None:
    """Serve the log to an agent over stdio (MCP); follows `blog build` while it runs."""
    cfg = _config(ctx)
    state = SiteState(cfg)
    try:
        state.start()
    except ContentProblems as problems:
        for problem in problems.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException("the content has problems and there is no earlier build to serve; "
                                   "fix them (see `blog check`) and start again") from problems

    def onion(_host: str) -> str:
        return f"http://{state.onion_address}" if state.onion_address else ""

    server = create_server(lambda: state.snapshot.build, base_url=cfg.base_url, onion_base=onion)
    log.info("serving build %s over stdio", state.snapshot.build.id)
    anyio.run(server.run_stdio_async)


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{url!r} is not an http(s) URL; give the remote /mcp, e.g. "
                                 "http://<address>.onion/mcp", param_hint="URL")
    if not parts.path or parts.path == "/":
        url = url.rstrip("/") + "/mcp"
    return url


def proxy_server(remote: Client, url: str, instructions: str | None) -> Server[Any]:
    """Return a low-level server whose every handler forwards to the remote client."""

    async def forward(what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except MCPError:
            raise  # the remote's own answer (bad arguments, unknown tool): pass it on unchanged
        except (httpx2.HTTPError, TorError, OSError) as exc:
            log.warning("%s: %s did not answer: %s", what, url, exc)
            raise MCPError(types.INTERNAL_ERROR, f"{url} did not answer through tor ({exc}): is tor running, "
                                                 "and is the address right? A refused Host is logged by "
                                                 "the remote site, not here") from exc

    def cursor(params: types.PaginatedRequestParams | None) -> str | None:
        return params.cursor if params else None

    async def list_tools(_ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return await forward("tools/list", lambda: remote.list_tools(cursor=cursor(params)))

    async def call_tool(_ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return await forward(f"tools/call {params.name}",
                             lambda: remote.call_tool(params.name, params.arguments or {}))

    async def list_resources(_ctx: Any, params: Paged) -> types.ListResourcesResult:
        return await forward("resources/list", lambda: remote.list_resources(cursor=cursor(params)))

    async def list_templates(_ctx: Any, params: types.PaginatedRequestParams | None,
                             ) -> types.ListResourceTemplatesResult:
        return await forward("resources/templates/list",
                             lambda: remote.list_resource_templates(cursor=cursor(params)))

    async def read_resource(_ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        return await forward("resources/read", lambda: remote.read_resource(str(params.uri)))

    async def list_prompts(_ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        return await forward("prompts/list", lambda: remote.list_prompts(cursor=cursor(params)))

    async def get_prompt(_ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        return await forward(f"prompts/get {params.name}",
                             lambda: remote.get_prompt(params.name, params.arguments or {}))

    info = remote.server_info
    return Server(
        info.name if info else "engineering-log", version=info.version if info else "",
        title=info.title if info else None, instructions=instructions,
        on_list_tools=list_tools, on_call_tool=call_tool, on_list_resources=list_resources,
        on_list_resource_templates=list_templates, on_read_resource=read_resource,
        on_list_prompts=list_prompts, on_get_prompt=get_prompt)


async def run_bridge(url: str, socks: str) -> None:
    """Connect to url through tor's SOCKS port, then serve it on this process's stdio until EOF."""
    async with egress.async_client(socks) as http:
        # cache=None: every call reaches the remote, so `blog build` over there shows up at once.
        async with Client(streamable_http_client(url, http_client=http), cache=None) as remote:
            log.info("connected to %s through tor at %s", url, socks)
            server = proxy_server(remote, url, remote.instructions)
            async with stdio_server() as (read_stream, write_stream):
                await server.run(read_stream, write_stream, server.create_initialization_options())


@click.command("mcp-connect")
@click.argument("url")
@click.option("--tor-socks", default=None, help="Tor's SOCKS port, HOST:PORT (default: tor_socks setting).")
@click.pass_context
def mcp_connect(ctx: click.Context, url: str, tor_socks: str | None) -> None:
    """Serve a remote log's /mcp on stdio, reaching it only through Tor (names resolved by tor)."""
    url = _check_url(url)
    socks = tor_socks or _config(ctx).tor_socks
    try:
        egress.proxy_url(socks)
        anyio.run(run_bridge, url, socks)
    except TorError as exc:
        raise click.ClickException(str(exc)) from exc
    except (httpx2.HTTPError, OSError, MCPError) as exc:
        raise click.ClickException(f"cannot reach {url} through tor at {socks}: {exc}. Is tor running "
                                   "(tor_socks / --tor-socks), and is the address right?") from exc


def register(cli: click.Group) -> None:
    """Add the MCP commands to the `blog` command."""
    cli.add_command(mcp_command)
    cli.add_command(mcp_connect)
