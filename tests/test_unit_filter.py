"""The deployed unit's system-call filter, applied here with libseccomp, lets the whole served stack work.

The unit (ansible/roles/blog/templates/engineering-log.service.j2) forbids `@resources`. The semantic process
lowers its embedding thread's priority (setpriority), numpy's OpenBLAS places its buffers (mbind), the picture
cleaner caps its own memory (prlimit64): a filter that forbids one of them killed the semantic ranker and a
search's worker with SIGSYS, over and over, on the host only (nothing here runs systemd).
tests/syscall_filter.py applies the unit's own lines.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from processes import Gunicorn
from tests.conftest import ROOT, require_binary
from tests.pictures import add_picture_entry
from tests.syscall_filter import allowed_calls

UNIT = ROOT / "ansible" / "roles" / "blog" / "templates" / "engineering-log.service.j2"
QUESTION = "how do I keep the same onion address after a reinstall?"


def _under_filter(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.syscall_filter", str(UNIT), "--", *command], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_filter_is_the_units_and_refuses_what_the_unit_forbids() -> None:
    require_binary("systemd-analyze", "systemd")
    allowed = allowed_calls(UNIT)
    assert {"read", "write", "openat", "execve", "prlimit64"} <= allowed
    assert not {"reboot", "sched_setaffinity", "ioprio_set"} & allowed  # @privileged and @resources stay out
    refused = _under_filter(sys.executable, "-c", "import os; os.sched_setaffinity(0, {0})")
    assert refused.returncode == 1 and "PermissionError" in refused.stderr, (refused.returncode, refused.stderr)
    fine = _under_filter(sys.executable, "-c", "print('ok')")
    assert fine.returncode == 0 and fine.stdout == "ok\n", fine.stderr


@pytest.mark.slow
def test_the_whole_stack_embeds_cleans_pictures_and_answers_under_the_units_filter(tmp_path: Path) -> None:
    require_binary("systemd-analyze", "systemd")
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    add_picture_entry(content)  # the build cleans its pictures in a child that caps its own memory
    env = {"BLOG_SEMANTIC": "1", "BLOG_MODEL_DIR": str(ROOT / "var" / "model")}
    server = Gunicorn(content, tmp_path / "data", extra_env=env)
    server.args = [sys.executable, "-m", "tests.syscall_filter", str(UNIT), "--", *server.args]
    with server:
        assert urllib.request.urlopen(f"{server.url}/log/rack-pictures", timeout=10).status == 200
        url = f"{server.url}/search?q={urllib.parse.quote(QUESTION)}"
        deadline = time.monotonic() + 240
        page = ""
        while "and by meaning" not in page and time.monotonic() < deadline:
            with urllib.request.urlopen(url, timeout=10) as answer:
                page = answer.read().decode()
            time.sleep(1)
        log = server.log()
    assert "SIGSYS" not in log, log[-3000:]
    assert "and by meaning" in page, log[-3000:]
    assert "embedding runs at the readers' priority" not in log, log[-3000:]  # setpriority was allowed
