"""The MCP server through the SDK's own client: in-process, and `blog mcp` as a subprocess over stdio."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from blog import builds, pipeline
from blog.config import Config
from blog.index.search import Search
from blog.mcp.catalog import TOOL_NAMES
from blog.mcp.server import create_server
from tests.conftest import make_app, make_config

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://log.example.org"
ONION = "http://" + "a" * 56 + ".onion"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def current(config: Config) -> builds.Build:
    return pipeline.ensure_current(config)


@pytest.fixture
def server(current: builds.Build):
    return create_server(lambda: current, Search(), base_url=BASE, onion_base=ONION)


def test_every_tool_is_in_the_one_list_and_documented(server, config: Config) -> None:
    """A tool the server offers is named in blog/mcp/catalog.py, docs/mcp.md's table, the instructions
    and llms.txt; adding one without the others fails here."""
    async def go() -> Any:
        async with Client(server) as client:
            return [t.name for t in (await client.list_tools()).tools], client.instructions

    offered, instructions = run(go())
    assert sorted(offered) == sorted(TOOL_NAMES), "add the tool to TOOLS in blog/mcp/catalog.py"
    table = (ROOT / "docs/mcp.md").read_text().split("## Tools", 1)[1].split("\n## ", 1)[0]
    documented = [row.split("|")[1].strip().strip("`") for row in table.splitlines()
                  if row.startswith("| `")]
    assert documented == list(TOOL_NAMES), "docs/mcp.md's table of tools names each tool once, in order"
    llms = make_app(config).test_client().get("/llms.txt").get_data(as_text=True)
    for name in offered:
        assert f"{name} to " in instructions, f"the instructions do not say what {name} is for"
        assert f"{name} (" in llms, f"llms.txt does not name {name}"


async def call(server: Any, tool: str, **arguments: Any) -> Any:
    async with Client(server) as client:
        return await client.call_tool(tool, arguments)


def test_tools_are_read_only_idempotent_and_typed(server) -> None:
    async def go() -> Any:
        async with Client(server) as client:
            return (await client.list_tools()).tools, client.instructions

    tools, instructions = run(go())
    assert [t.name for t in tools] == list(TOOL_NAMES)
    for tool in tools:
        assert tool.annotations.read_only_hint and tool.annotations.idempotent_hint, tool.name
        assert tool.annotations.destructive_hint is False
        assert tool.output_schema and tool.output_schema["type"] == "object", tool.name
        assert len(tool.description or "") > 40, tool.name
    search = next(t for t in tools if t.name == "search_blog")
    assert search.input_schema["required"] == ["query"]
    assert search.input_schema["properties"]["limit"]["maximum"] == 20
    assert "cite" in instructions and "url" in instructions


def test_search_cites_paragraphs_with_anchors_that_exist(server, current: builds.Build) -> None:
    result = run(call(server, "search_blog", query="verify-config restart", limit=3))
    assert not result.is_error, result.content
    answer = result.structured_content
    assert answer["total"] >= 1 and 1 <= len(answer["results"]) <= 3
    top = answer["results"][0]
    assert top["slug"] == "verify-config" and top["title"] == "tor --verify-config before every restart"
    assert top["date"] == "2026-10-02T09:15:00Z"
    assert top["url"] == f"{BASE}/log/verify-config#{top['anchor']}"
    assert top["onion_url"] == f"{ONION}/log/verify-config#{top['anchor']}"
    entry = current.site.entry("verify-config")
    assert top["anchor"] in current.entry_html(entry).anchors()
    assert top["text"] and top["updated"] is False and top["latest_update"] is None


def test_search_reports_updates_and_filters(server) -> None:
    answer = run(call(server, "search_blog", query="banner")).structured_content
    banner = answer["results"][0]
    assert banner["slug"] == "gunicorn-banner" and banner["updated"] is True
    assert banner["latest_update"] == "the first patch missed 304 responses"
    assert banner["last_updated"] == "2026-10-22T08:00:00Z"
    none = run(call(server, "search_blog", query="banner", tag="tor")).structured_content
    assert none["results"] == []
    early = run(call(server, "search_blog", query="restart", before="2026-10-01")).structured_content
    assert early["results"] == []
    late = run(call(server, "search_blog", query="restart", after="2026-10-01")).structured_content
    assert late["results"]


def test_search_never_shows_drafts_or_scheduled_entries(server) -> None:
    for query in ("draft", "scheduled", "future"):
        answer = run(call(server, "search_blog", query=query)).structured_content
        assert {r["slug"] for r in answer["results"]} <= {"verify-config", "gunicorn-banner"}


@pytest.mark.parametrize(("arguments", "needle"), [
    ({"query": "tor", "after": "last tuesday"}, "YYYY-MM-DD"),
    ({"query": "tor", "limit": 500}, "limit"),
    ({"query": ""}, "query"),
])
def test_bad_search_arguments_are_tool_errors_that_say_what_to_do(server, arguments, needle) -> None:
    result = run(call(server, "search_blog", **arguments))
    assert result.is_error
    assert needle in result.content[0].text


def test_get_entry_returns_markdown_anchors_and_update_log(server, current: builds.Build) -> None:
    detail = run(call(server, "get_entry", slug="gunicorn-banner")).structured_content
    entry = current.site.entry("gunicorn-banner")
    assert detail["kind"] == "entry" and detail["markdown"] == entry.body
    # the summary and the update note come first, as the entry page shows them
    assert [a["anchor"] for a in detail["anchors"]] == ["summary", "update-2026-10-22",
                                                        *current.entry_html(entry).anchors()]
    assert detail["anchors"][0]["url"].startswith(f"{BASE}/log/gunicorn-banner#")
    assert detail["updates"] == [{"date": "2026-10-22T08:00:00Z", "reason": "the first patch missed 304 responses",
                                  "note": ""}]
    page = run(call(server, "get_entry", slug="start-here")).structured_content
    assert page["kind"] == "page" and page["url"] == f"{BASE}/pages/start-here"


def test_search_cites_standing_pages_and_says_where_each_result_comes_from(content_copy: Path,
                                                                          tmp_path: Path) -> None:
    current = pipeline.ensure_current(make_config(content_copy, tmp_path / "data"))
    server = create_server(lambda: current, Search(), base_url=BASE, onion_base=ONION)
    answer = run(call(server, "search_blog", query="does this site log visitors' addresses?", limit=5))
    results = answer.structured_content["results"]
    assert {r["source"] for r in results} == {"page", "entry"}
    about = next(r for r in results if r["slug"] == "about")
    assert about["source"] == "page" and about["title"] == "About"
    assert about["url"] == f"{BASE}/pages/about#{about['anchor']}"
    assert about["onion_url"] == f"{ONION}/pages/about#{about['anchor']}"
    for entry in (r for r in results if r["source"] == "entry"):
        assert entry["url"] == f"{BASE}/log/{entry['slug']}#{entry['anchor']}"
    detail = run(call(server, "get_entry", slug="about")).structured_content
    assert detail["kind"] == "page" and about["url"] in [a["url"] for a in detail["anchors"]]
    assert detail["anchors"][0] == {"anchor": "summary", "kind": "summary", "heading_path": [],
                                    "url": f"{BASE}/pages/about#summary"}


def test_a_word_of_an_update_note_finds_it_in_its_entry(server) -> None:
    answer = run(call(server, "search_blog", query="304 responses")).structured_content
    note = answer["results"][0]
    assert (note["source"], note["slug"], note["kind"]) == ("entry", "gunicorn-banner", "update")
    assert note["url"] == f"{BASE}/log/gunicorn-banner#update-2026-10-22"
    assert note["paragraph_changed"] == "2026-10-22T08:00:00Z"


def test_unknown_or_unpublished_slug_is_a_tool_error_with_a_hint(server) -> None:
    for slug, hint in (("verify-confg", "did you mean verify-config"), ("draft", "list_entries"),
                       ("scheduled", "list_entries")):
        result = run(call(server, "get_entry", slug=slug))
        assert result.is_error and hint in result.content[0].text, result.content


def test_list_entries_pages_newest_first(server) -> None:
    first = run(call(server, "list_entries", limit=1)).structured_content
    assert first["total"] == 2 and [e["slug"] for e in first["entries"]] == ["gunicorn-banner"]
    second = run(call(server, "list_entries", limit=1, cursor=first["next_cursor"])).structured_content
    assert [e["slug"] for e in second["entries"]] == ["verify-config"] and second["next_cursor"] is None
    tagged = run(call(server, "list_entries", tag="privacy")).structured_content
    assert [e["slug"] for e in tagged["entries"]] == ["gunicorn-banner"]
    assert run(call(server, "list_entries", year=2025)).structured_content["entries"] == []
    bad = run(call(server, "list_entries", cursor="page-two"))
    assert bad.is_error and "next_cursor" in bad.content[0].text
    pages = [(p["slug"], p["url"]) for p in first["pages"]]
    assert pages == [("about", f"{BASE}/pages/about"), ("start-here", f"{BASE}/pages/start-here")]
    assert second["pages"] == [] and tagged["pages"] == []


def test_reading_order_follows_the_content(server) -> None:
    steps = run(call(server, "reading_order")).structured_content["steps"]
    assert [(s["kind"], s["slug"]) for s in steps] == [("page", "start-here"), ("entry", "verify-config")]
    assert steps[0]["note"] == "Begin here." and steps[1]["url"] == f"{BASE}/log/verify-config"


def test_entries_are_markdown_resources_and_the_prompt_asks_for_citations(server, current) -> None:
    async def go() -> Any:
        async with Client(server) as client:
            listed = (await client.list_resources()).resources
            read = await client.read_resource("blog://entry/verify-config")
            prompt = await client.get_prompt("answer_from_log", {"question": "How do I check a torrc?"})
            return listed, read, prompt

    listed, read, prompt = run(go())
    assert {str(r.uri) for r in listed} == {"blog://entry/verify-config", "blog://entry/gunicorn-banner"}
    text = read.contents[0].text
    assert text.startswith("# tor --verify-config before every restart")
    assert current.site.entry("verify-config").body in text
    message = prompt.messages[0].content.text
    assert "How do I check a torrc?" in message and "cite the url" in message


def test_server_follows_new_builds(config: Config) -> None:
    pipeline.ensure_current(config)
    server = create_server(lambda: builds.load_current(config.builds_dir), Search())
    (config.content_dir / "log" / "2026-10-25-new-findings.md").write_text(
        '---\ntitle: "Zanzibar latency"\ndate: 2026-10-25T10:00:00Z\ntags: [tor]\nsummary: "One."\n---\n'
        "The zanzibar circuit took 900 ms.\n")
    assert run(call(server, "search_blog", query="zanzibar")).structured_content["results"] == []
    pipeline.publish(config)
    hit = run(call(server, "search_blog", query="zanzibar")).structured_content["results"][0]
    assert hit["slug"] == "new-findings" and hit["url"] == f"/log/new-findings#{hit['anchor']}"
    assert hit["onion_url"] is None


def test_blog_mcp_serves_over_stdio(config: Config) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    env.update(BLOG_CONTENT_DIR=str(config.content_dir), BLOG_DATA_DIR=str(config.data_dir),
               BLOG_BASE_URL=BASE, BLOG_TOR_MODE="off", BLOG_CONFIG="/dev/null")
    params = StdioServerParameters(command=sys.executable, args=["-m", "blog.cli", "mcp"], env=env,
                                   cwd=str(ROOT))

    async def go() -> Any:
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            result = await client.call_tool("search_blog", {"query": "verify-config", "limit": 1})
            return names, result, client.instructions

    names, result, instructions = run(go())
    assert "search_blog" in names and "cite" in instructions
    top = result.structured_content["results"][0]
    assert top["slug"] == "verify-config" and top["url"].startswith(f"{BASE}/log/verify-config#")
