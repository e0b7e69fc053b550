"""/mcp on the real gunicorn (sync and gthread workers), and `blog mcp-connect` through a SOCKS proxy."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from blog.mcp.catalog import TOOL_NAMES
from processes import Gunicorn, free_port
from tests.conftest import DATA
from tests.tor_helpers import RecordingSocks

ROOT = Path(__file__).resolve().parent.parent
BASE = "https://log.example.org"
ONION = "b" * 56 + ".onion"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "test", "version": "1"}}}
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sync", "gthread"])
def site(request, tmp_path_factory) -> Any:
    root = tmp_path_factory.mktemp(f"mcp-{request.param}")
    shutil.copytree(DATA / "site", root / "content")
    server = Gunicorn(root / "content", root / "data", workers=2, worker_class=request.param,
                      extra_env={"BLOG_BASE_URL": BASE})
    with server:
        yield server


def set_onion(site: Gunicorn, address: str) -> None:
    """Publish an onion address the way the tor room does, and wait past the workers' 1 s re-check."""
    path = Path(site.env["BLOG_DATA_DIR"]) / "onion" / "hostname"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(address + "\n")
    time.sleep(1.2)


async def search(url: str, query: str, host: str | None = None) -> Any:
    headers = {"Host": host} if host else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http, \
            Client(streamable_http_client(url, http_client=http), cache=None) as client:
        return await client.call_tool("search_blog", {"query": query, "limit": 2})


def test_pages_and_mcp_share_the_app_and_citations_land_on_anchors(site: Gunicorn) -> None:
    assert httpx2.get(site.url + "/").status_code == 200
    result = asyncio.run(search(site.url + "/mcp", "verify-config restart"))
    assert not result.is_error, result.content
    top = result.structured_content["results"][0]
    assert top["slug"] == "verify-config" and top["url"].startswith(f"{BASE}/log/verify-config#")
    page = httpx2.get(site.url + top["url"].removeprefix(BASE).split("#")[0])
    assert page.status_code == 200 and f'id="{top["anchor"]}"' in page.text


def test_trailing_slash_get_and_headers(site: Gunicorn) -> None:
    assert not asyncio.run(search(site.url + "/mcp/", "banner")).is_error  # no 307 to follow
    get = httpx2.get(site.url + "/mcp")
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    post = httpx2.post(site.url + "/mcp", json=INIT, headers=JSON)
    assert post.status_code == 200 and post.json()["result"]["serverInfo"]["name"] == "engineering-log"
    assert post.headers["content-type"].startswith("application/json")
    assert post.headers["x-content-type-options"] == "nosniff"
    assert "server" not in post.headers and "set-cookie" not in post.headers
    assert "mcp-session-id" not in post.headers  # stateless: any worker can answer the next call


def test_foreign_host_is_refused_and_logged(site: Gunicorn) -> None:
    refused = httpx2.post(site.url + "/mcp", json=INIT, headers={**JSON, "Host": "evil.example"})
    assert refused.status_code == 421
    log = site.log()
    assert "refused a request with a Host header that is not this site's" in log
    assert "evil.example" not in log  # the event is logged, never the client's text
    assert httpx2.post(site.url + "/mcp", json=INIT, headers={**JSON, "Host": "log.example.org"}).status_code == 200


def test_onion_host_is_accepted_once_published_and_gets_onion_urls_only(site: Gunicorn) -> None:
    other = "c" * 56 + ".onion"
    before = httpx2.post(site.url + "/mcp", json=INIT, headers={**JSON, "Host": other})
    assert before.status_code == 421
    set_onion(site, ONION)
    for host in (ONION, f"{ONION}:80"):
        result = asyncio.run(search(site.url + "/mcp", "banner", host=host))
        assert not result.is_error, result.content
        top = result.structured_content["results"][0]
        assert top["url"] == f"http://{host}/log/gunicorn-banner#{top['anchor']}"
        text = str(result.structured_content) + "".join(c.text for c in result.content)
        assert "log.example.org" not in text and "127.0.0.1" not in text
    clearnet = asyncio.run(search(site.url + "/mcp", "banner")).structured_content["results"][0]
    assert clearnet["url"].startswith(BASE) and clearnet["onion_url"].startswith(f"http://{ONION}/")


def test_sixteen_concurrent_clients_get_their_own_answers(site: Gunicorn) -> None:
    queries = ["verify-config", "banner"] * 8

    async def go() -> list[Any]:
        return await asyncio.gather(*(search(site.url + "/mcp", q) for q in queries))

    results = asyncio.run(go())
    slugs = [r.structured_content["results"][0]["slug"] for r in results]
    assert slugs == ["verify-config", "gunicorn-banner"] * 8


def test_mcp_connect_reaches_the_onion_through_socks_with_remote_dns(site: Gunicorn) -> None:
    set_onion(site, ONION)
    port = int(site.url.rsplit(":", 1)[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    env.update(BLOG_CONFIG="/dev/null", BLOG_DATA_DIR=site.env["BLOG_DATA_DIR"])
    with RecordingSocks(("127.0.0.1", port)) as socks:
        params = StdioServerParameters(
            command=sys.executable, cwd=str(ROOT), env=env,
            args=["-m", "blog.cli", "mcp-connect", f"http://{ONION}/mcp", "--tor-socks", socks.address])

        async def go() -> Any:
            async with Client(params) as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                found = await client.call_tool("search_blog", {"query": "banner"})
                missing = await client.call_tool("get_entry", {"slug": "nope"})
                return tools, found, missing, client.instructions

        tools, found, missing, instructions = asyncio.run(go())
    assert tools == set(TOOL_NAMES)
    assert "cite" in instructions
    top = found.structured_content["results"][0]
    assert top["slug"] == "gunicorn-banner" and top["url"].startswith(f"http://{ONION}/log/gunicorn-banner#")
    assert missing.is_error and "list_entries" in missing.content[0].text
    assert socks.requests and {r["host"] for r in socks.requests} == {ONION}
    assert all(r["atyp"] == 3 and r["port"] == 80 for r in socks.requests)  # a name, resolved by the proxy


def test_mcp_connect_says_what_to_do_when_tor_is_not_there(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    env.update(BLOG_CONFIG="/dev/null", BLOG_DATA_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "blog.cli", "mcp-connect", f"http://{ONION}/mcp",
                           "--tor-socks", dead], cwd=ROOT, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode != 0
    assert "is tor running" in done.stderr and dead in done.stderr


def test_oversized_bodies_are_refused_before_parsing(site: Gunicorn) -> None:
    big = {**INIT, "padding": "x" * 100_000}
    assert httpx2.post(site.url + "/mcp", json=big, headers=JSON).status_code == 413


def test_host_policy_follows_the_onion_address(tmp_path: Path) -> None:
    from blog.mcp.hosts import HostPolicy
    from tests.conftest import make_config

    address = [""]
    policy = HostPolicy(make_config(tmp_path, tmp_path, base_url=BASE), lambda: address[0])
    assert policy.refusal("127.0.0.1:8000") is None and policy.refusal("log.example.org") is None
    for bad in ("", ":80", "evil.example", "log.example.org.evil.example", ONION, "127.0.0.1:8000@evil.example",
                "127.0.0.1:80.evil.example", "127.0.0.1:99999", "127.0.0.1:8000:80", "127.0.0.1 x", "[::1]x"):
        assert policy.refusal(bad), bad
    assert policy.refusal("127.0.0.1:8000", "http://127.0.0.1:8000") is None
    for origin in ("http://127.0.0.1:8000@evil.example", "http://127.0.0.1:80.evil.example", "null",
                   "http://evil.example", "http://127.0.0.1:8000/path"):
        assert policy.refusal("127.0.0.1:8000", origin) == (403, policy.refusal("127.0.0.1", origin)[1]), origin
    assert policy.bases("127.0.0.1:8000") == (BASE, "")
    address[0] = ONION
    assert policy.refusal(ONION) is None and policy.refusal(f"{ONION}:80") is None
    assert ONION in policy.allowed_hosts and f"{ONION}:*" in policy.allowed_hosts
    assert policy.settings.allowed_hosts == policy.allowed_hosts  # the SDK's settings, made now, agree
    address[0] = ""
    assert policy.refusal(ONION) and ONION not in policy.settings.allowed_hosts  # and follow a change
    address[0] = ONION
    assert policy.refusal(ONION) is None
    assert policy.bases(ONION) == (f"http://{ONION}", f"http://{ONION}")
    assert policy.bases("log.example.org") == (BASE, f"http://{ONION}")


def test_preloaded_app_starts_the_transport_in_each_worker(tmp_path: Path) -> None:
    shutil.copytree(DATA / "site", tmp_path / "content")
    server = Gunicorn(tmp_path / "content", tmp_path / "data", workers=2)
    server.args.insert(-1, "--preload")
    with server:
        answers = [httpx2.post(server.url + "/mcp", json=INIT, headers=JSON, timeout=60) for _ in range(8)]
        assert [a.status_code for a in answers] == [200] * 8
        started = {int(pid) for pid in re.findall(r"MCP transport started in worker (\d+)", server.log())}
        assert started and started <= set(server.worker_pids())  # never in the master, before the fork


WARM_UP = r'''
import json, logging, sys, time
from pathlib import Path
from tests.conftest import make_config
from tests.conftest import make_app

logging.basicConfig(level=logging.INFO)
app = make_app(make_config(Path(sys.argv[1]), Path(sys.argv[2])))
imported_at_create = sorted(m for m in sys.modules if m == "mcp" or m.startswith("mcp."))
client = app.test_client()
assert client.get("/").status_code == 200
bridge = app.extensions["blog.mcp"]
deadline = time.monotonic() + 60
while bridge._bridge is None and time.monotonic() < deadline:
    time.sleep(0.05)
answer = client.post("/mcp", json=json.loads(sys.argv[3]), headers=json.loads(sys.argv[4]))
print(json.dumps({"imported_at_create": imported_at_create, "started": bridge._bridge is not None,
                  "status": answer.status_code}))
'''


def test_the_sdk_is_imported_after_the_first_page_not_at_start(tmp_path: Path) -> None:
    import json

    shutil.copytree(DATA / "site", tmp_path / "content")
    done = subprocess.run([sys.executable, "-c", WARM_UP, str(tmp_path / "content"), str(tmp_path / "data"),
                           json.dumps(INIT), json.dumps(JSON)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "BLOG_CONFIG": "/dev/null"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["imported_at_create"] == [], "creating the app imported the MCP SDK"
    assert report["started"], "the worker did not start the transport after its first page"
    assert report["status"] == 200
    assert "MCP transport started in worker" in done.stderr
