"""The one list of the MCP tools: their names and what an agent uses each for.

The server registers its tools under these names, and its instructions, `llms.txt` and the tests read
them from here; docs/mcp.md's table names each (tests/test_mcp.py fails when a tool is added without it).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TOOLS", "TOOL_NAMES", "Tool", "tool"]


@dataclass(frozen=True)
class Tool:
    """One tool: its name, its title, and what it is for, said once for every place that lists it."""

    name: str
    title: str
    use: str  # completes "Use <name> to ...", in the instructions and in llms.txt


TOOLS: tuple[Tool, ...] = (
    Tool("search_blog", "Search the log",
         "find the paragraphs that answer a question (from entries, their summaries and update notes, "
         "and the pages; `source` says which), each cited with its URL"),
    Tool("get_entry", "Read one entry", "read a whole entry or page"),
    Tool("list_entries", "List entries", "browse the entries newest first"),
    Tool("reading_order", "Where to start", "see where a newcomer should start"),
)

TOOL_NAMES: tuple[str, ...] = tuple(t.name for t in TOOLS)


def tool(name: str) -> Tool:
    """Return the tool called name (KeyError names the known ones)."""
    for candidate in TOOLS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no MCP tool {name!r} in blog/mcp/catalog.py (known: {', '.join(TOOL_NAMES)})")
