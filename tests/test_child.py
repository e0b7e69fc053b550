"""The one way to start a child Python: its answer comes back, and every way it can fail is a ChildFailed."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from blog import child


def test_a_child_runs_the_function_in_another_process_and_returns_its_answer() -> None:
    with child.start("os:getpid") as worker:
        worker.send()
        assert worker.result() != os.getpid()
    with child.start("blog.render:render_all") as worker:
        worker.send({"a": "One paragraph.", "b": "- an item"})
        from blog.render import render

        assert worker.result() == {"a": render("One paragraph."), "b": render("- an item")}


def test_what_the_function_prints_does_not_spoil_its_answer() -> None:
    with child.start("builtins:print") as worker:
        worker.send("printed by the child")
        assert worker.result() is None


def test_an_exception_in_the_child_is_a_child_failed_with_its_traceback() -> None:
    with child.start("json:loads") as worker, pytest.raises(child.ChildFailed,
                                                             match=r"(?s)exit status 1: .*JSONDecodeError"):
        worker.send("{")
        worker.result()


def test_a_child_past_its_deadline_is_killed() -> None:
    started = time.monotonic()
    with child.start("time:sleep", deadline=1.0) as worker:
        worker.send(60)
        with pytest.raises(child.ChildFailed, match="no answer within 1 s"):
            worker.result()
        assert worker._process.poll() is not None, "the child still runs"
    assert time.monotonic() - started < 20


def test_a_python_that_cannot_start_is_a_child_failed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(child.ChildFailed, match="cannot start"):
        child.start("os:getpid")
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with child.start("os:getpid") as worker, pytest.raises(child.ChildFailed, match=r"^exit status 1$"):
        worker.send(b"x" * 1_000_000)  # more than a pipe holds: the write fails, quietly
        worker.result()


def test_leaving_early_kills_the_child_and_leaves_no_thread() -> None:
    before = threading.active_count()
    with pytest.raises(RuntimeError), child.start("time:sleep") as worker:
        worker.send(60)
        raise RuntimeError("the parent's own share failed")
    assert worker._process.poll() is not None
    assert threading.active_count() == before


def test_a_wrong_command_line_is_refused() -> None:
    assert child.main(["blog.child"]) == 2
    assert child.main(["blog.child", "no-function"]) == 2
