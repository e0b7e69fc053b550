"""The log over stdio for an agent: this site's current build (`blog mcp`), or a remote log's /mcp passed
through (`blog mcp-connect`).

Nothing here imports tor: the CLI hands the bridge an HTTP client that reaches the remote through tor,
and names the errors that client raises when tor does not answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from blog.builds import Build
from blog.config import Config
from blog.index import semantic
from blog.index.search import Search
from blog.mcp.server import create_server
from blog.serving.current import SiteState

log = logging.getLogger(__name__)

T = TypeVar("T")
Paged = types.PaginatedRequestParams | None


def serve_current(config: Config) -> None:
    """Serve this site's current build on stdio until EOF, following `blog build` while it runs.

    Raises ContentProblems when the content has problems and there is no earlier build to serve.
    """
    state = SiteState(config)
    state.start()
    # A served site's semantic process holds the model already; a socket file alone proves nothing
    # (a site stopped by SIGKILL leaves one), so ask_or_load connects to it before trusting it.
    meaning, said = semantic.ask_or_load(config)
    log.info("%s", said)
    build = state.snapshot.build
    if meaning.why_not(build.id) is not None and not isinstance(meaning, semantic.WordsOnly):
        threading.Thread(target=_embed, args=(config, build), name="embed", daemon=True).start()

    def onion(_host: str) -> str:
        return f"http://{state.onion_address}" if state.onion_address else ""

    server = create_server(lambda: state.snapshot.build, Search(meaning), base_url=config.base_url,
                           onion_base=onion)
    log.info("serving build %s over stdio", state.snapshot.build.id)
    anyio.run(server.run_stdio_async)


def _embed(config: Config, build: Build) -> None:
    """Make the vectors of a build that has none (`blog mcp` published it just now): words until then."""
    log.info("embedding build %s for the ranking by meaning; until it is done, search ranks by words", build.id)
    count = semantic.embed(config, build)
    if count is not None:
        log.info("build %s: vectors for %d blocks ready; search ranks by words and meaning", build.id, count)


def proxy_server(remote: Client, url: str, instructions: str | None,
                 unreachable: tuple[type[Exception], ...] = ()) -> Server[Any]:
    """Return a low-level server whose every handler forwards to the remote client.

    `unreachable`: what the caller's HTTP client raises, besides httpx2's and the OS's errors, when the
    remote cannot be reached (the tor room's errors, for a client that goes through tor).
    """

    async def forward(what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except MCPError:
            raise  # the remote's own answer (bad arguments, unknown tool): pass it on unchanged
        except (httpx2.HTTPError, OSError, *unreachable) as exc:
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


async def run_bridge(url: str, http: httpx2.AsyncClient, via: str,
                     unreachable: tuple[type[Exception], ...] = ()) -> None:
    """Connect to url with the given client (`via` says how, for the log), then serve it on stdio until EOF."""
    # cache=None: every call reaches the remote, so `blog build` over there shows up at once.
    async with Client(streamable_http_client(url, http_client=http), cache=None) as remote:
        log.info("connected to %s through %s", url, via)
        server = proxy_server(remote, url, remote.instructions, unreachable)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
