"""`make fresh`: the README's two commands, as a new user types them, in fresh Debian 12 and 13 roots.

For each release: copy today's cached minbase root holding only what a new user has (tests/fresh_root.py),
copy the working tree into it (committed and uncommitted files, no .venv, no var/), then as root with
CI=true run `make run` until `/` answers, the onion address is printed (make run installs tor as root) and
`search_blog` answers over `/mcp`, stop it, and run `make test`.
Prints one line per release; the full logs stay under var/fresh/. Run as `python -m tests.fresh [release...]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from processes import free_port
from tests.fresh_root import (
    APP,
    CACHE,
    RELEASES,
    ROOT,
    RootError,
    chroot_env,
    copy_root,
    copy_working_tree,
    mounted,
    new_user_root,
    remove_tree,
    scratch_dir,
    trust_local_cas,
)

LOGS = ROOT / "var" / "fresh"
# make run creates the venv and installs the app first: minutes on a cold pip cache.
SERVE_TIMEOUT = 900
TEST_TIMEOUT = 3600


def chroot_command(root: Path, script: str) -> list[str]:
    """Return the command that runs a shell script in the project's copy inside a root, with CI=true."""
    env = [f"{k}={v}" for k, v in chroot_env(CI="true").items()]
    return ["chroot", str(root), "env", "-i", *env, "sh", "-c", f"cd {APP} && {script}"]


def home_page(url: str) -> bool:
    """Tell whether the home page answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


async def search_blog(url: str) -> str:
    """Call search_blog over Streamable HTTP with the MCP SDK's own client; return the first result's title."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(timeout=30) as http, \
            Client(streamable_http_client(url, http_client=http), cache=None) as client:
        result = await client.call_tool("search_blog", {"query": "onion key", "limit": 1})
    if result.is_error or not result.structured_content["results"]:
        raise RootError(f"search_blog answered no result: {result.content}")
    return result.structured_content["results"][0]["title"]


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process group started with start_new_session, by its leader's PID, and wait until it is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            process.poll()
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


ONION_LINE = re.compile(r"^onion service: http://[a-z2-7]{56}\.onion/", re.M)


def make_run(root: Path, log: Path) -> str:
    """Start `make run` in the root, wait for `/`, the onion address and `search_blog`; stop it; return the title.

    As root, `make run` installs tor itself (the Makefile's run-deps), so the fresh root must not have it
    yet; the onion address is printed once tor has the key, before its descriptor is published.
    """
    if (root / "usr/bin/tor").exists():
        raise RootError("tor is already in the fresh root: the test is whether make run installs it")
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(chroot_command(root, f"make run PORT={port}"), stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + SERVE_TIMEOUT
            while not home_page(f"http://127.0.0.1:{port}/"):
                if process.poll() is not None:
                    raise RootError(f"make run exited {process.returncode} before serving /")
                if time.monotonic() > deadline:
                    raise RootError(f"make run served no / within {SERVE_TIMEOUT} s")
                time.sleep(1)
            if not ONION_LINE.search(log.read_text(errors="replace")):
                raise RootError("make run served / but printed no onion address (did it install tor?)")
            return asyncio.run(search_blog(f"http://127.0.0.1:{port}/mcp"))
        finally:
            stop(process)


def pytest_summary(log: Path) -> str:
    """Return pytest's closing counts from a log ("380 passed, 8 skipped"), and the first failed tests."""
    text = log.read_text(errors="replace")
    counts = re.findall(r"^=+ (.+?) in [\d.]+s", text, re.M)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.M)
    summary = counts[-1] if counts else "no pytest summary"
    return summary + (f"; {', '.join(failed[:6])}" if failed else "")


def make_test(root: Path, log: Path) -> str:
    """Run `make test` in the root with CI=true; return pytest's counts, or raise with them when it fails."""
    with log.open("ab") as out:
        process = subprocess.Popen(chroot_command(root, "make test"), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=TEST_TIMEOUT)
        except subprocess.TimeoutExpired:
            stop(process)
            raise RootError(f"make test ran past {TEST_TIMEOUT} s") from None
    if code != 0:
        raise RootError(f"make test exited {code}: {pytest_summary(log)}")
    return pytest_summary(log)


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def prove(suite: str) -> tuple[bool, str]:
    """Run the README's commands in a fresh root of one release; return success and the report line."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{suite}.log"
    log.write_text("")
    started = time.monotonic()
    timings = []
    work = scratch_dir(f"fresh-{suite}")
    root = work / "root"
    name = f"{RELEASES[suite]} ({suite})"
    try:
        base = new_user_root(suite)
        copy_root(base, root)
        trust_local_cas(root)
        copy_working_tree(root / APP.lstrip("/"))
        # pip's download cache is shared with this machine's other roots: only the downloads get faster.
        with mounted(root, {"/root/.cache/pip": CACHE / "pip"}):
            step = time.monotonic()
            make_run(root, log)
            timings.append(f"make run served / and search_blog in {minutes(time.monotonic() - step)}")
            step = time.monotonic()
            counts = make_test(root, log)
            timings.append(f"make test passed in {minutes(time.monotonic() - step)}: {counts}")
        return True, f"{name}: PASS in {minutes(time.monotonic() - started)} ({'; '.join(timings)})"
    except (RootError, OSError, subprocess.SubprocessError) as exc:
        done = "; ".join(timings)
        return False, (f"{name}: FAIL after {minutes(time.monotonic() - started)}"
                       f"{' (' + done + ')' if done else ''}: {exc} (log: {log})")
    finally:
        remove_tree(work)


def releases_from(argv: list[str] | None) -> list[str]:
    """Return the releases named on the command line, all of them when none is named."""
    parser = argparse.ArgumentParser(prog="make fresh", description=__doc__.splitlines()[0])
    # No `choices` on the positional: with nargs="*" and nothing given, Python 3.11's argparse checks the
    # default list itself against the choices and refuses it, so plain `make fresh` failed.
    parser.add_argument("releases", nargs="*", metavar="RELEASE",
                        help=f"Debian codenames, any of {', '.join(RELEASES)} (default: all)")
    named = parser.parse_args(argv).releases
    unknown = [name for name in named if name not in RELEASES]
    if unknown:
        parser.error(f"unknown release {', '.join(unknown)}; choose from {', '.join(RELEASES)}")
    return named or list(RELEASES)


def main(argv: list[str] | None = None) -> int:
    releases = releases_from(argv)
    if os.geteuid() != 0:
        print("make fresh needs root: mmdebstrap, chroot and mount", file=sys.stderr)
        return 2
    results = []
    for suite in releases:
        ok, line = prove(suite)
        print(line, flush=True)
        results.append(ok)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
