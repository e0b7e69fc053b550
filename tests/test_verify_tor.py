"""`blog verify` through the private Tor network against `blog serve`: clean, then each tamper caught, one at a time.

One site and one onion for the whole module (the network is the session's): each tamper publishes a lying build
into the served site (tests/tamper.py), `blog verify ADDRESS` runs as a reader would run it, through the
client tor, and the honest build is published again before the next.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, make_config

from blog.config import Config
from tests import tamper
from tests.pictures import add_picture_entry
from tests.test_e2e_tor import BlogServe, _search_over_onion, _with_retries, fetch, onion_url
from tests.tornet import TorNet

pytestmark = [pytest.mark.tornet, pytest.mark.slow, pytest.mark.timeout(600)]

FIGURES: dict[str, float] = {}
SWITCH = 1.2  # seconds: a worker looks at `current` at most once a second


@pytest.fixture(scope="module")
def site(tornet: TorNet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BlogServe, Config]]:
    """The bundled log with a picture entry, locked, served by `blog serve` as an onion on the network."""
    root = tmp_path_factory.mktemp("verify")
    shutil.copytree(ROOT / "content", root / "content")
    add_picture_entry(root / "content")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    locked = subprocess.run([sys.executable, "-m", "blog.cli", "--content", str(root / "content"), "--data",
                             str(root / "data"), "lock"], cwd=ROOT, env={**env, "BLOG_CONFIG": "/dev/null"},
                            capture_output=True, text=True, timeout=120)
    assert locked.returncode == 0, locked.stderr
    app = BlogServe(root, tornet)
    try:
        app.start()
        tornet.wait_for_descriptor(app.address, timeout=120)
        fetch(tornet, app, "/")  # the client has the descriptor before the timed verifications
        yield app, make_config(root / "content", root / "data")
    finally:
        orphans = app.stop()
        assert not orphans, f"processes left behind by blog serve: {orphans}\n{app.log()}"


def verify(tornet: TorNet, app: BlogServe, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `blog verify` on the site's address through the client tor, as a reader holding only the address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "blog.cli", "verify", f"{app.address}.onion", "--socks",
                           f"127.0.0.1:{tornet.socks_port}", *args], cwd=ROOT, env={**env, "BLOG_CONFIG": "/dev/null"},
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    FIGURES.setdefault("verify_runs_s", 0.0)
    FIGURES["verify_runs_s"] += time.monotonic() - started
    return done


def head_of(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout.rsplit("head ", 1)[1].split(",", 1)[0]


def test_the_untampered_site_verifies_clean(tornet: TorNet, site: tuple[BlogServe, Config]) -> None:
    app, _ = site
    started = time.monotonic()
    done = verify(tornet, app)
    FIGURES["clean_verify_s"] = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "holds: 11 records, head " in done.stdout and f"signed by {app.address}.onion" in done.stdout


@pytest.mark.parametrize("name", [*tamper.TAMPERS, "serve the log signed by another onion key"])
def test_each_tamper_is_caught_through_tor(tornet: TorNet, site: tuple[BlogServe, Config], tmp_path: Path,
                                           name: str) -> None:
    app, config = site
    tamper.publish_tampered(config, tmp_path, name)
    time.sleep(SWITCH)
    try:
        done = verify(tornet, app)
    finally:
        tamper.restore(config)
        time.sleep(SWITCH)
    lines = done.stdout.splitlines()
    assert done.returncode == 1 and any(tamper.CAUGHT[name] in line for line in lines), done.stdout + done.stderr
    assert "problem(s) in the revision log" in done.stderr


def test_since_catches_a_rewritten_history_that_a_fresh_verify_accepts(tornet: TorNet, site: tuple[BlogServe, Config],
                                                                       tmp_path: Path) -> None:
    app, config = site
    old = tamper.rewrite_history(config, tmp_path)  # the head of the honest log, which the clean verify printed
    time.sleep(SWITCH)
    try:
        fresh = verify(tornet, app)
        since = verify(tornet, app, "--since", old)
    finally:
        tamper.restore(config)
        time.sleep(SWITCH)
    assert fresh.returncode == 0 and head_of(fresh) != old, fresh.stdout
    assert since.returncode == 1 and f"log: the head seen earlier ({old}) is not in this log" in since.stdout
    again = verify(tornet, app, "--since", old)  # the honest site again: it extends the head seen before
    assert again.returncode == 0, again.stdout


def test_a_search_result_stored_by_an_agent_reverifies_later(tornet: TorNet, site: tuple[BlogServe, Config],
                                                            tmp_path: Path) -> None:
    app, _ = site
    result = _with_retries(lambda: asyncio.run(
        _search_over_onion(onion_url(app, "/mcp"), f"127.0.0.1:{tornet.socks_port}")))
    answer = result.structured_content
    first = answer["results"][0]
    assert (first["slug"], first["revision"]) == ("tor-verify-config", 1)
    assert len(first["body_sha256"]) == 64 and len(first["log_head"]) == 64
    stored = tmp_path / "answer.json"
    stored.write_text(json.dumps(answer))
    done = verify(tornet, app, "--citation", str(stored))
    assert done.returncode == 0, done.stdout + done.stderr
    first["body_sha256"] = "0" * 64  # a citation claiming another text than the one it quotes
    stored.write_text(json.dumps(answer))
    done = verify(tornet, app, "--citation", str(stored))
    assert done.returncode == 1 and "tor-verify-config revision 1: the citation's text hash 0000000000000000" \
                                    in done.stdout, done.stdout


def test_report_figures(tornet: TorNet, capsys: pytest.CaptureFixture[str]) -> None:
    FIGURES["network_bootstrap_s"] = tornet.timings["bootstrap_s"]
    with capsys.disabled():
        print("\nverify over tor:", ", ".join(f"{k}={v:.1f}" for k, v in FIGURES.items()))
