"""Cleaning in a process of its own, with a bound on its memory and on its time.

Image decoders are large C libraries, and a damaged or hostile file can make one take gigabytes, run for a
minute or crash. So files are cleaned in a child Python (blog.files.cleaning_process's `main`) which, once its
modules are loaded, limits its own address space (RLIMIT_AS), then reads one file at a time on its stdin
and answers on its stdout. The parent waits for each answer until a deadline: a child that overruns it is
killed, one that dies is replaced, and the file is reported as a content problem either way, with its path
and line like any other. Nothing a file holds can stop a build, `blog check` or the preview for longer
than the deadline, or take more memory than the limit.

    with Cleaner() as cleaner:
        cleaned = cleaner.clean(raw, "png")     # Cleaned, or raises Unfit
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from types import TracebackType
from typing import IO, Any

from blog.child import PACKAGE_ROOT
from blog.files.fileset import Cleaned, Unfit

log = logging.getLogger(__name__)

__all__ = ["MEMORY", "SECONDS", "Cleaner"]

MEMORY = 320 * 2**20  # address space the child may map beyond what it maps once started (Python, Pillow, lxml)
SECONDS = 10.0  # wall time one file may take; within the limits on size, a file takes under 2 s (bench/images.py)
STARTUP = 60.0  # wall time the process may take to load its modules (seconds on a busy machine)
_SIZE = 8  # bytes of a frame's length
_DAMAGED = "export it again from the program that made it"
_MAIN = "import sys; from blog.files.cleaning_process import main; sys.exit(main(sys.argv))"


def _frame(payload: Any) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_SIZE, "big") + data


class Cleaner:
    """The parent's handle on the cleaning process: started on first use, replaced when it dies, killed at the end."""

    def __init__(self, memory: int = MEMORY, seconds: float = SECONDS) -> None:
        self.memory, self.seconds = memory, seconds
        self._process: subprocess.Popen[bytes] | None = None
        self._errors: IO[bytes] | None = None

    def clean(self, raw: bytes, how: str) -> Cleaned:
        """Clean one file in the child; raise Unfit when it is unfit, too costly, or makes the child die."""
        request = _frame((how, raw))
        for attempt in (1, 2):
            process = self._running()
            try:
                assert process.stdin is not None
                process.stdin.write(request)
                process.stdin.flush()
                break
            except (BrokenPipeError, ValueError):
                self._stop()  # it died since the last file: start another
                if attempt == 2:
                    raise Unfit(self._died("before it could read the file"), _DAMAGED) from None
        reply = self._read(process, time.monotonic() + self.seconds, "while cleaning it")
        if reply is None:
            raise Unfit(f"took more than {self.seconds:g} s to clean", "export it again, smaller or simpler "
                        "(docs/files.md, \"What blog check refuses\")")
        if reply[0] == "ok":
            return Cleaned(*reply[1:])
        if reply[0] == "unfit":
            raise Unfit(*reply[1:])
        self._stop()  # it leaves after a failure: the next file gets a new process, never this one's end
        if reply[0] == "memory":
            raise Unfit(f"needs more than {self.memory // 2**20} MiB of memory to clean",
                        "scale it down, or export it again more simply")
        raise Unfit(f"cannot be decoded ({reply[1]})", f"{_DAMAGED}; if it is large, scale it down (cleaning "
                    f"one file may use {self.memory // 2**20} MiB of memory)")

    @property
    def pid(self) -> int | None:
        """Return the cleaning process's id while it runs (the bench reads its peak memory)."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._stop()
        self._errors = tempfile.TemporaryFile()
        path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
        # -c, not -m: running the module as __main__ would load it twice (blog.files imports it).
        self._process = subprocess.Popen([sys.executable, "-c", _MAIN, str(self.memory)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._errors,
                                         env={**os.environ, "PYTHONPATH": path})
        # It says when its modules are loaded: a file's deadline counts the file's work, not Python's start.
        try:
            ready = self._read(self._process, time.monotonic() + STARTUP, "as it started")
        except Unfit:
            ready = None
        if ready != ("ready",):
            self._stop()
            raise Unfit("could not be cleaned: the cleaning process did not start (the log says why)",
                        "check the installation (make install), then try again")
        return self._process

    def _read(self, process: subprocess.Popen[bytes], deadline: float, when: str) -> tuple[Any, ...] | None:
        """Return the child's answer, None when the deadline passed (the child is killed); raise Unfit if it died."""
        assert process.stdout is not None
        fd, data, wanted = process.stdout.fileno(), b"", _SIZE
        while len(data) < wanted:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self._stop()
                return None
            chunk = os.read(fd, min(wanted - len(data), 1 << 20))
            if not chunk:
                process.wait()
                raise Unfit(self._died(when), _DAMAGED)
            data += chunk
            if wanted == _SIZE and len(data) == _SIZE:
                wanted += int.from_bytes(data, "big")
        answer: tuple[Any, ...] = pickle.loads(data[_SIZE:])  # noqa: S301 - our own child's answer
        return answer

    def _died(self, when: str) -> str:
        """Return what to tell the operator about a child that died, and log what it said."""
        code = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._process.wait(timeout=1)  # its exit status, when it is on its way out
        said = ""
        if self._errors is not None:
            self._errors.seek(0)
            said = self._errors.read()[-2000:].decode(errors="replace").strip()
        self._stop()
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
        log.warning("the cleaning process died (%s)%s", how, f": {said}" if said else "")
        return f"made the image decoder fail ({how}) {when}"

    def _stop(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
            self._process = None
        if self._errors is not None:
            self._errors.close()
            self._errors = None

    def close(self) -> None:
        """Stop the child (it would leave by itself once its stdin closes)."""
        self._stop()

    def __enter__(self) -> Cleaner:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop()


def _read_exactly(stream: IO[bytes], count: int) -> bytes | None:
    data = stream.read(count)
    return data if len(data) == count else None


def _drain(stream: IO[bytes], count: int) -> None:
    """Read count bytes in small pieces and keep none, so the parent's write of a request ends."""
    while count > 0 and (piece := stream.read(min(count, 64 * 1024))):
        count -= len(piece)


def main(argv: list[str]) -> int:
    """Run in the child: limit this process, then clean one file per request until stdin closes."""
    memory = int(argv[1]) if len(argv) > 1 else MEMORY
    from PIL import Image

    from blog.files.clean import clean_file, mapped_bytes

    clean_file(b"", "text")  # load every cleaning module and image plugin before the limit: it bounds the files alone
    Image.init()
    warnings.simplefilter("ignore")  # Pillow's warnings about damaged files: the answer says what is wrong
    limit = (mapped_bytes() or 512 * 2**20) + memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what a library prints goes to stderr, not into the answers
    answer.write(_frame(("ready",)))
    answer.flush()
    while (header := _read_exactly(sys.stdin.buffer, _SIZE)) is not None:
        size = int.from_bytes(header, "big")
        try:
            body = _read_exactly(sys.stdin.buffer, size)
        except MemoryError:  # the file alone is more than the limit: read it away, say so, and leave
            _drain(sys.stdin.buffer, size)
            answer.write(_frame(("memory",)))
            answer.flush()
            return 0
        if body is None:
            return 0
        leave, raw = False, b""
        try:
            how, raw = pickle.loads(body)  # noqa: S301 - sent by our parent, Cleaner.clean
            cleaned = clean_file(raw, how)
            reply: tuple[Any, ...] = ("ok", cleaned.data, cleaned.width, cleaned.height, cleaned.stripped)
        except Unfit as unfit:
            reply = ("unfit", unfit.message, unfit.fix)
        except MemoryError:
            reply, leave = ("memory",), True  # a fresh process for the next file
        except Exception as exc:  # whatever a decoder raises on a damaged file is that file's problem
            reply, leave = ("failed", f"{type(exc).__name__}: {exc}"), True
        del raw, body
        answer.write(_frame(reply))
        answer.flush()
        if leave:
            return 0
    return 0
