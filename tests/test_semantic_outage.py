"""Meaning is never silently lost: a site stopped by SIGKILL, a semantic process killed or stopped, a socket
in a long data directory, questions abandoned while the process was stopped.

Real components: `blog serve` (gunicorn with its builder and semantic process), `blog mcp` over stdio and
/mcp through the MCP SDK's own client, the model `make model` installed, onnxruntime.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from bench import outage
from blog.index.semantic import client as semantic_client
from blog.index.semantic import weights, wire
from processes import Server, free_port
from tests.conftest import ROOT
from tests.tor_helpers import wait_for

MODEL = ROOT / "var" / "model"
# The same five questions on every transport: a question, a pasted command line, a quoted phrase, a
# keyword query and an exclusion. Each is ranked by words and meaning.
QUESTIONS = ["how do I keep the same onion address after a reinstall?",
             "gunicorn -k sync --threads 4 says Using worker: gthread",
             '"verify config" before a restart',
             "whoosh worker memory",
             "onion key not:backup"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def model() -> None:
    try:
        weights.locate(MODEL)
    except weights.ModelUnavailable as exc:
        pytest.fail(f"{exc} (make test installs it)")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a vectors folder of the shipped log, embedded once for the module.

    Each test's site starts from a copy, as an earlier build's: its semantic process still writes its own
    build's vectors (and says they are ready), but reuses every row by its text's hash instead of embedding
    the whole log again (seconds of both cores each) before the test can begin.
    """
    from blog import pipeline
    from blog.index.semantic import vectors
    from blog.index.semantic.encoder import Encoder
    from tests.conftest import make_config

    tmp = tmp_path_factory.mktemp("embedded")
    shutil.copytree(ROOT / "content", tmp / "content")
    build = pipeline.publish(make_config(tmp / "content", tmp / "data"))
    assert vectors.embed_build(build, tmp / "data" / "vectors", Encoder(weights.locate(MODEL), threads=2))
    return tmp / "data" / "vectors"


def _seed(data: Path, embedded: Path) -> None:
    (data / "vectors").mkdir(parents=True)
    for made in embedded.glob("*.*.*"):  # <build>.<model>.npy|json, renamed to a build no site serves
        shutil.copy(made, data / "vectors" / ("earlier." + made.name.split(".", 1)[1]))


def _env(content: Path, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    env.update(BLOG_CONTENT_DIR=str(content), BLOG_DATA_DIR=str(data), BLOG_SEMANTIC="1",
               BLOG_MODEL_DIR=str(MODEL), BLOG_TOR_MODE="off", BLOG_WORKERS="2")
    return env


def _serve(tmp: Path, embedded: Path) -> Server:
    """Start `blog serve` over a copy of the shipped log; return it once its semantic process has vectors."""
    content = tmp / "content"
    shutil.copytree(ROOT / "content", content)
    data = tmp / "data"
    _seed(data, embedded)
    port = free_port()
    server = Server([sys.executable, "-m", "blog.cli", "serve", "--no-tor", "--bind", f"127.0.0.1:{port}"],
                    tmp / "serve.log", port=port, env=_env(content, data)).start(timeout=120)
    _wait(lambda: (_status(data) or {}).get("vectors"), "the build's vectors", server, 300)
    return server


def _status(data: Path) -> dict[str, Any] | None:
    try:
        return wire.status(wire.socket_path_of(data))
    except wire.Failed:
        return None


def _wait(check: Any, what: str, server: Server, timeout: float = 60.0) -> Any:
    try:
        return wait_for(check, timeout, what)
    except pytest.fail.Exception:
        print(server.log()[-3000:])  # pytest shows it beside the failure
        raise


async def _ask(transport: Any, questions: list[str]) -> list[dict[str, Any]]:
    async with Client(transport, cache=None) as mcp:
        answers = []
        for question in questions:
            result = await mcp.call_tool("search_blog", {"query": question, "limit": 5})
            assert not result.is_error, result.content
            answers.append(result.structured_content)
        return answers


def _over_http(url: str, questions: list[str]) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        async with httpx2.AsyncClient(timeout=30) as http:
            return await _ask(streamable_http_client(url + "/mcp", http_client=http), questions)

    return asyncio.run(go())


def _top5(answer: dict[str, Any]) -> list[str]:
    return [f"{r['slug']}#{r['anchor']}" for r in answer["results"]]


def _page_sources(url: str, question: str) -> list[str]:
    """Return the entries and pages the search page shows for a question, in its order (one result each)."""
    page = httpx2.get(f"{url}/search?q={urllib.parse.quote(question)}", timeout=30).text
    assert "and by meaning" in page, page[-2000:]
    return re.findall(r'<h2 class="rt"><a href="/(?:log|pages)/([^"#/]+)"', page)


def _sources(answer: dict[str, Any]) -> list[str]:
    """Return the entries and pages of a tool answer's cited blocks, in the order they first appear."""
    return list(dict.fromkeys(r["slug"] for r in answer["results"]))


def _blog_status(tmp: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "blog.cli", "status"], cwd=ROOT, capture_output=True, text=True,
                          env=_env(tmp / "content", tmp / "data"), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_blog_mcp_after_a_sigkilled_site_ranks_by_meaning_as_the_site_did(tmp_path: Path, embedded: Path) -> None:
    server = _serve(tmp_path, embedded)
    try:
        served = _over_http(server.url, QUESTIONS)
        pages = [_page_sources(server.url, q) for q in QUESTIONS]
        up = _blog_status(tmp_path)
    finally:
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)  # the whole site at once: nothing cleans up
        server.process.wait(timeout=10)
    assert [a["ranking"] for a in served] == ["words+meaning"] * 5, served
    # The page shows one result per entry or page, in the order the ranking first reaches each: the sources
    # of the tool's top 5 blocks are the page's first results, in the same order.
    assert [_sources(a) for a in served] == [p[:len(_sources(a))] for a, p in zip(served, pages, strict=True)], \
        "/mcp and /search rank the same question differently"
    sock = wire.socket_path_of(tmp_path / "data")
    _wait(lambda: not wire.listening(sock), "end of the killed semantic process", server, 15)
    assert sock.exists(), "the test needs the socket a SIGKILL leaves behind"
    build = re.search(r"^build: +(\w+)$", up, re.M)
    assert build and "semantic:  up (pid" in up, up
    assert re.search(rf"^vectors: +\d+ blocks of build {build.group(1)}: search ranks by words and meaning$", up, re.M)
    down = _blog_status(tmp_path)
    assert "semantic:  not answering" in down and "nothing listens there" in down, down

    errors = tmp_path / "mcp.err"
    params = StdioServerParameters(command=sys.executable, args=["-m", "blog.cli", "mcp"], cwd=str(ROOT),
                                   env=_env(tmp_path / "content", tmp_path / "data"))
    with errors.open("w") as errlog:
        local = asyncio.run(_ask(stdio_client(params, errlog=errlog), QUESTIONS))
    said = errors.read_text()
    assert [a["ranking"] for a in local] == ["words+meaning"] * 5, said[-2000:]
    for question, here, there in zip(QUESTIONS, local, served, strict=True):
        assert _top5(here) == _top5(there), f"{question!r}: stdio and /mcp disagree"
    assert said.count("search ranks by words and meaning, with the model loaded in this process") == 1, said
    assert "left from a stopped site" in said


def test_blog_mcp_started_beside_a_site_keeps_meaning_when_the_site_stops(tmp_path: Path, embedded: Path) -> None:
    server = _serve(tmp_path, embedded)
    params = StdioServerParameters(command=sys.executable, args=["-m", "blog.cli", "mcp"], cwd=str(ROOT),
                                   env=_env(tmp_path / "content", tmp_path / "data"))
    errors = tmp_path / "mcp.err"

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        with errors.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), cache=None) as mcp:
                before = await mcp.call_tool("search_blog", {"query": QUESTIONS[0], "limit": 5})
                await asyncio.to_thread(server.stop)  # a plain stop: the site's process and its socket go
                after = await mcp.call_tool("search_blog", {"query": QUESTIONS[1], "limit": 5})
                return before.structured_content, after.structured_content

    try:
        before, after = asyncio.run(go())
    finally:
        server.stop()
    said = errors.read_text()
    assert "asking the site's semantic process" in said, said
    assert before["ranking"] == after["ranking"] == "words+meaning", (before["ranking"], after, said[-2000:])
    assert "the model is loaded here" in said, said


@pytest.mark.xdist_group("load")  # timed: never beside a load run on the other worker
def test_a_killed_semantic_process_costs_meaning_only_until_it_is_back(tmp_path: Path, embedded: Path) -> None:
    server = _serve(tmp_path, embedded)
    try:
        assert _over_http(server.url, ["tor restart"])[0]["ranking"] == "words+meaning"
        pid = _status(tmp_path / "data")["pid"]  # type: ignore[index]
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        answer = _over_http(server.url, ["onion service key file"])[0]
        took = time.monotonic() - started
        assert answer["results"] and answer["ranking"] == "words", answer
        # Forked from the master, the next process may already listen while it loads its model, and say so.
        assert answer["ranking_note"] in ("the site's semantic process is not answering",
                                          "the semantic process is still loading its model"), answer
        assert took < semantic_client.DEADLINE + 1.0, f"a question took {took:.2f} s with the process gone"
        # The master starts it again, says how the old one ended, and meaning comes back.
        _wait(lambda: (_status(tmp_path / "data") or {}).get("pid") not in (None, pid), "new process", server)
        _wait(lambda: _over_http(server.url, [f"onion service key {time.monotonic()}"])[0]["ranking"]
              == "words+meaning", "meaning again", server, 60)
        assert "the semantic ranker was killed by SIGKILL; starting it again" in server.log()
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]
    assert not wire.socket_path_of(tmp_path / "data").exists(), "a plain stop left the socket behind"


@pytest.mark.xdist_group("load")  # timed: never beside a load run on the other worker
def test_a_stopped_semantic_process_costs_each_reader_the_deadline_at_most_once(tmp_path: Path,
                                                                                 embedded: Path) -> None:
    # 16 readers on /search; the semantic process is stopped for 4 s, then resumed. Bounds are generous
    # (a shared machine); the figures themselves come from `python -m bench.outage` (docs/reliability.md).
    # Before the breaker, queued readers each waited the deadline in turn: up to 1.9 s, p99 1.9 s.
    readers = 16
    _seed(tmp_path / "data", embedded)
    run, log = outage.run(tmp_path, readers=readers, before=2.0, stopped=4.0, after=4.0)
    figures = run.figures()
    stopped = [s.seconds for s in run.phases()["stopped"]]
    assert not run.errors, run.errors[:5]
    assert max(stopped) < 1.5, figures
    assert figures["stopped"]["p99_ms"] < 1000, figures
    # Each reader keeps one connection, so one worker, whose breaker lets it pay the deadline at most once:
    # the questions that reached the stopped process (dropped, not computed, when it resumed) are at most
    # one per reader. Asked under the searcher's lock with a per-thread back-off, every queued one did.
    assert 0 < run.abandoned <= readers, (run.abandoned, figures)
    # back to what it was before the stop (a loaded machine slows both alike)
    assert figures["resumed_after_2s"]["p99_ms"] < max(300, 2 * figures["before"]["p99_ms"]), figures
    after = figures["resumed_after_2s"]
    assert after["by_meaning"] >= 0.9 * after["requests"] > 0, figures
    assert "Traceback" not in log, log[-3000:]


def _service(tmp: Path, data: Path, semantic: bool) -> subprocess.Popen[bytes]:
    env = _env(tmp / "content", data)
    env["BLOG_SEMANTIC"] = "1" if semantic else "0"
    with (tmp / "service.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "blog.index.semantic.service", "--parent",
                                 str(os.getpid())], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_long_data_directory_serves_and_every_catchable_stop_removes_the_socket(tmp_path: Path,
                                                                                   signum: int) -> None:
    # 86 characters and more: the socket's path no longer fits a Unix socket address (107 bytes), and the
    # process used to die at start ("AF_UNIX path too long"), started again and again by the master.
    data = tmp_path / ("d" * max(1, 100 - len(str(tmp_path))))
    data.mkdir()
    sock = wire.socket_path_of(data)
    assert len(str(sock)) > wire.MAX_ADDRESS
    process = _service(tmp_path, data, semantic=False)
    try:
        found = None
        deadline = time.monotonic() + 30
        while found is None and time.monotonic() < deadline and process.poll() is None:
            found = _status(data)
            time.sleep(0.1)
        assert found is not None and found["pid"] == process.pid, (tmp_path / "service.log").read_text()
        assert found["model"] is None and "off" in str(found["why"])
        assert sock.stat().st_mode & 0o777 == 0o600
        process.send_signal(signum)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        process.wait()
    assert not sock.exists(), f"{signal.Signals(signum).name} left the socket behind"
    assert "Traceback" not in (tmp_path / "service.log").read_text()


def test_questions_whose_askers_gave_up_are_not_computed(tmp_path: Path, embedded: Path) -> None:
    shutil.copytree(ROOT / "content", tmp_path / "content")
    data = tmp_path / "data"
    from blog import pipeline
    from tests.conftest import make_config

    pipeline.publish(make_config(tmp_path / "content", data))
    _seed(data, embedded)
    process = _service(tmp_path, data, semantic=True)
    try:
        deadline = time.monotonic() + 300
        while not (_status(data) or {}).get("vectors") and time.monotonic() < deadline:
            time.sleep(0.5)
        before = _status(data)
        assert before and before["vectors"], (tmp_path / "service.log").read_text()[-2000:]
        build = str(before["current"])
        process.send_signal(signal.SIGSTOP)
        try:
            for n in range(6):  # each gives up after 0.2 s: the process is stopped
                with pytest.raises(wire.Failed):
                    wire.exchange(wire.socket_path_of(data), {"build": build, "q": f"onion key {n}", "k": 5}, 0.2)
            # one more that hangs up at once, mid-question
            with socket.socket(socket.AF_UNIX) as conn:
                conn.connect(str(wire.socket_path_of(data)))
                conn.sendall(b'{"build": "%s", "q": "tor", "k": 5, "until": %f}\n' % (build.encode(),
                                                                                      time.monotonic() + 60))
        finally:
            process.send_signal(signal.SIGCONT)
        answered = wire.exchange(wire.socket_path_of(data), {"build": build, "q": "onion key", "k": 5}, 5.0)
        assert len(answered["hits"]) == 5  # type: ignore[arg-type]
        after = _status(data)
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert after is not None
    assert after["answered"] - before["answered"] == 1, (before, after)
    assert after["dropped"] - before["dropped"] == 7, (before, after)
    log = (tmp_path / "service.log").read_text()
    assert "Traceback" not in log and "BrokenPipe" not in log, log[-3000:]
