"""The suite's own scheduling: tests that share a machine-wide resource really run on one xdist worker.

tests/conftest.py tags them with xdist_group. Nothing fails when the tag is lost: the tests are only
spread over both workers, and then two workers build the same chroot, or start two private Tor networks,
at once. That happened twice, silently: the tagging hook ran after xdist had read the tags, and pytest
9.2 builds node ids that xdist 3.8 can no longer suffix with the group. This test runs a real pytest
with two workers over three quick deployment tests and a quick test of the fresh-root guard, and reads
which worker ran each.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_tests_of_one_group_run_on_one_worker() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
         "tests/test_ansible.py", "tests/test_fresh_root.py", "-k", "syntax or prefixed or torrc or makefile"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    ran = re.findall(r"^\[(gw\d)\] .*?(?:PASSED|FAILED|ERROR) (\S+)", result.stdout, re.M)
    assert len(ran) == 4, result.stdout[-3000:] + result.stderr[-2000:]
    deployment = [(worker, nodeid) for worker, nodeid in ran if "test_ansible.py" in nodeid]
    assert all(nodeid.endswith("@ansible") for _, nodeid in deployment), ran
    assert len({worker for worker, _ in deployment}) == 1, f"one group ran on several workers: {ran}"
    assert any(nodeid.endswith("@fresh") for _, nodeid in ran if "test_fresh_root.py" in nodeid), ran


def test_every_test_file_belongs_to_one_room() -> None:
    """`make test-room ROOM=...` runs a room's files (tests/rooms.py); a file in no room would never run there."""
    from tests.rooms import ROOMS

    listed = [name for names in ROOMS.values() for name in names]
    doubled = sorted({name for name in listed if listed.count(name) > 1})
    assert not doubled, f"test files in two rooms of tests/rooms.py: {doubled}"
    present = {path.name for path in (ROOT / "tests").glob("test_*.py")}
    assert not present - set(listed), f"test files in no room of tests/rooms.py: {sorted(present - set(listed))}"
    assert not set(listed) - present, f"tests/rooms.py names files that do not exist: {sorted(set(listed) - present)}"
    printed = subprocess.run([sys.executable, "-m", "tests.rooms", "mcp"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60, check=True).stdout.split()
    assert printed == [f"tests/{name}" for name in ROOMS["mcp"]]
    unknown = subprocess.run([sys.executable, "-m", "tests.rooms", "nope"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60, check=False)
    assert unknown.returncode == 2 and "one of: content" in unknown.stderr
