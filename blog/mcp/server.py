"""MCP server over the same Search and build the website serves; never imports web or tor."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, Resource, ToolAnnotations
from pydantic import Field

from blog import __version__
from blog.builds import Build
from blog.content import utcnow
from blog.index.search import Search
from blog.mcp.catalog import TOOLS, tool
from blog.mcp.schemas import EntryDetail, EntryList, ReadingOrder, SearchAnswer
from blog.mcp.tools import Base, BlogTools, Links

__all__ = ["INSTRUCTIONS", "Base", "Links", "create_server"]

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "This server is one operator's engineering log: dated entries about real systems (the errors, the\n"
    "fixes, the measured figures), plus a few standing pages (about, start here, ...). Every paragraph has\n"
    "a stable URL with an #anchor. "
    + "Use " + "; ".join(f"{t.name} to {t.use}" for t in TOOLS) + ".\n"
    "When you answer from the log, cite the paragraph URLs you used (the `url` field, or `onion_url` when\n"
    "the user reads over Tor), say only what those paragraphs say, and mention when an entry was updated\n"
    "after publication (`updated`, `last_updated`).")

# Nothing here changes state or reaches outside the log, so clients may call freely and retry.
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False,
                            open_world_hint=False)

Query = Annotated[str, Field(min_length=1, max_length=200, description="Words to look for, e.g. 'onion key'")]
Limit = Annotated[int, Field(ge=1, le=20, description="How many paragraphs to return (1-20).")]
Tag = Annotated[str | None, Field(max_length=40, description="Only entries with this tag, e.g. 'tor'.")]
Day = Annotated[str | None, Field(max_length=32, description="A date, YYYY-MM-DD (UTC).")]
Year = Annotated[int | None, Field(ge=1970, le=2999, description="Only entries published this year.")]
Slug = Annotated[str, Field(min_length=1, max_length=120, description="The entry's slug, e.g. 'onion-key'.")]


class _LogServer(MCPServer):
    """An MCPServer that lists one resource per published entry of the current build."""

    tools: BlogTools

    async def list_resources(self) -> list[Resource]:
        entries = self.tools.get_build().site.published(utcnow())
        return [Resource(uri=f"blog://entry/{e.slug}", name=e.slug, title=e.title, description=e.summary,
                         mime_type="text/markdown") for e in entries]

    async def get_prompt(self, name: str, arguments: dict[str, Any] | None = None,
                         context: Context | None = None) -> Any:
        """Refuse an unknown prompt as invalid params (the SDK answers code 0 and logs a traceback)."""
        if name not in {prompt.name for prompt in await self.list_prompts()}:
            raise MCPError(INVALID_PARAMS, "no such prompt: prompts/list names the prompts this server has")
        return await super().get_prompt(name, arguments, context)


def create_server(get_build: Callable[[], Build], search: Search, base_url: Base = "", onion_base: Base = "",
                  name: str = "engineering-log") -> MCPServer:
    """Create the MCP server over the process's Search; each URL base is a string or a callable given the
    request's Host header."""
    tools = BlogTools(get_build, search, base_url, onion_base)
    server = _LogServer(name, title="The engineering log", instructions=INSTRUCTIONS, version=__version__)
    server.tools = tools

    @server.tool(name="search_blog", annotations=READ_ONLY, title=tool("search_blog").title)
    def search_blog(query: Query, ctx: Context, limit: Limit = 5, tag: Tag = None, after: Day = None,
                    before: Day = None) -> SearchAnswer:
        """Find the paragraphs of the engineering log that answer a query, best first.

        Each result is one citable paragraph of an entry or a standing page (`source`: entry or page;
        an entry's summary and dated update notes are paragraphs too): the title and date, the
        paragraph's URL with its #anchor (and the onion URL when known), its heading path, its full
        text, a relevance score and whether the entry was updated after publication. Cite the `url` of
        each paragraph you use. Filter with tag (e.g. 'tor') and after/before (YYYY-MM-DD, publication
        date); a filter leaves out the pages, which have neither.

        The query is searched as text, so paste command lines, flags (-k, --threads), paths and error
        lines as they are. "an exact phrase" must appear as written; not:word or not:"a phrase" leaves
        out the paragraphs that contain it (a leading minus is not an exclusion). `ranking` says whether
        meaning ranked this answer beside the words ('words+meaning') or not ('words', with
        `ranking_note` saying why).
        """
        return tools.search(ctx, query, limit, tag, after, before)

    @server.tool(name="get_entry", annotations=READ_ONLY, title=tool("get_entry").title)
    def get_entry(slug: Slug, ctx: Context) -> EntryDetail:
        """Return one entry (or standing page) whole: metadata, Markdown body, anchors, update log.

        `anchors` lists every citable block in document order with its URL; `updates` is the
        dated list of corrections made after publication. Slugs come from search_blog,
        list_entries or reading_order.
        """
        return tools.entry(ctx, slug)

    @server.tool(name="list_entries", annotations=READ_ONLY, title=tool("list_entries").title)
    def list_entries(ctx: Context, tag: Tag = None,
                     year: Year = None,
                     limit: Annotated[int, Field(ge=1, le=100, description="Entries per page.")] = 20,
                     cursor: Annotated[str | None, Field(max_length=20, description="next_cursor from "
                                                         "the previous page.")] = None) -> EntryList:
        """List published entries newest first, optionally by tag or year, a page at a time.

        Pass the returned next_cursor back as cursor for the next page; it is null on the last page.
        The first page of a listing without tag or year also lists the standing pages (`pages`).
        """
        return tools.entries(ctx, tag, year, limit, cursor)

    @server.tool(name="reading_order", annotations=READ_ONLY, title=tool("reading_order").title)
    def reading_order(ctx: Context) -> ReadingOrder:
        """Return the pages and entries a first-time reader should start with, in order."""
        return tools.reading(ctx)

    @server.resource("blog://entry/{slug}", name="entry", mime_type="text/markdown",
                     description="One published entry as Markdown, with its title and date on top.")
    def entry_markdown(slug: str) -> str:
        return tools.markdown(slug)

    @server.prompt(title="Answer from the log")
    def answer_from_log(question: str) -> str:
        """Ask the model to answer a question from the engineering log, citing paragraph URLs."""
        return (f"Answer this question using only the engineering log: {question}\n\n"
                "First call search_blog with a few key words (try again with other words if nothing fits); "
                "read whole entries with get_entry when a paragraph needs its context. In your answer, "
                "cite the url of every paragraph you rely on, right after the claim it supports. Say "
                "when an entry was updated after publication. If the log does not answer the question, "
                "say so plainly instead of guessing.")

    log.debug("MCP server %s created with %d tools", name, len(TOOLS))
    return server
