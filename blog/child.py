"""One way to start a child Python for parallel work: a fresh interpreter running one function.

Publishing runs inside threaded processes, so a child is never a fork, nor multiprocessing's spawn (which
re-runs the parent's main script): it is `python -m blog.child MODULE:FUNCTION`. The child imports the
module first (while the parent prepares its share of the work), then reads the function's arguments
pickled on its stdin and writes what the function returns, pickled, on its stdout; whatever the function
prints goes to its stderr. The parent collects the answer within a deadline. Every failure (the child
cannot start, exits with an error, runs past the deadline or answers with unreadable data) raises
ChildFailed, which carries the end of the child's stderr.

    with child.start("blog.render:render_all") as worker:
        worker.send(theirs)
        ours = ...                      # this process's share, meanwhile
        done = worker.result()
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

DEADLINE = 600.0  # seconds for a child's share: at 10,000 entries each half of a full build takes some 35 s
STDERR_TAIL = 2000  # characters of the child's stderr a ChildFailed carries
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class ChildFailed(Exception):
    """A child Python could not start, failed, ran past its deadline, or answered with unreadable data."""


class Child:
    """A child Python running one function; use it as a context manager, which kills it if it still runs."""

    def __init__(self, target: str, deadline: float) -> None:
        self.target, self.deadline = target, deadline
        self._answer: list[bytes] = []
        self._talker: threading.Thread | None = None
        self._errors = tempfile.TemporaryFile()
        path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
        try:
            self._process = subprocess.Popen([sys.executable, "-m", "blog.child", target], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=self._errors,
                                             env={**os.environ, "PYTHONPATH": path})
        except OSError as exc:
            self._errors.close()
            raise ChildFailed(f"cannot start {sys.executable}: {exc}") from exc
        self._until = time.monotonic() + deadline

    def send(self, *args: Any) -> None:
        """Hand the function its arguments; the child starts working once it has them all."""
        payload = [pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL)]
        self._talker = threading.Thread(target=self._talk, args=(payload,), name=f"child {self.target}", daemon=True)
        self._talker.start()

    def _talk(self, payload: list[bytes]) -> None:
        # One thread writes, then reads: the child reads all of its input before it writes its answer.
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        try:
            with stdin:
                stdin.write(payload.pop())  # popped, so the pickle is freed once it is written
        except (BrokenPipeError, ValueError):
            pass  # the child died (its exit status says why), or it was killed and its pipes closed
        try:
            self._answer.append(stdout.read())
        except (OSError, ValueError):
            pass

    def result(self) -> Any:
        """Wait for the function's answer until the deadline; raise ChildFailed when there is none."""
        if self._talker is None:
            raise ChildFailed("the child was never sent its arguments")
        self._talker.join(max(0.0, self._until - time.monotonic()))
        try:
            code = self._process.wait(max(0.0, self._until - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._kill()
            raise ChildFailed(self._saying(f"no answer within {self.deadline:.0f} s")) from None
        if code:
            raise ChildFailed(self._saying(f"exit status {code}"))
        try:
            return pickle.loads(self._answer[0])  # noqa: S301 - our own child's answer
        except (IndexError, EOFError, ValueError, TypeError, AttributeError, ImportError,
                pickle.UnpicklingError) as exc:
            raise ChildFailed(self._saying(f"unreadable answer ({exc})")) from exc

    def _saying(self, what: str) -> str:
        """Return what went wrong, followed by the end of the child's stderr."""
        self._errors.seek(0, os.SEEK_END)
        self._errors.seek(max(0, self._errors.tell() - STDERR_TAIL * 4))
        said = self._errors.read().decode(errors="replace")[-STDERR_TAIL:].strip()
        return f"{what}: {said}" if said else what

    def _kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._kill()
        if self._talker is not None:
            self._talker.join()  # the child is gone, so its pipes are closed and the talker ends
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()
        self._errors.close()


def start(target: str, deadline: float = DEADLINE) -> Child:
    """Start `python -m blog.child MODULE:FUNCTION`; raise ChildFailed when it cannot start."""
    return Child(target, deadline)


def main(argv: list[str]) -> int:
    """Run in the child: import the function, read its arguments from stdin, write its answer to stdout."""
    if len(argv) != 2 or ":" not in argv[1]:
        sys.stderr.write("usage: python -m blog.child MODULE:FUNCTION (arguments pickled on stdin)\n")
        return 2
    module, name = argv[1].split(":", 1)
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what the function prints goes to stderr, not into the answer
    function = getattr(importlib.import_module(module), name)  # imported before the arguments arrive
    args = pickle.load(sys.stdin.buffer)  # noqa: S301 - sent by our parent, Child.send
    with answer:
        pickle.dump(function(*args), answer, protocol=pickle.HIGHEST_PROTOCOL)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
