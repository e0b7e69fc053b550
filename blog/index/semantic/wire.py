"""The semantic process's socket: where it is, how to reach it whatever the data directory's length, one
exchange with a deadline, and the probe that tells a live process from a file left behind.

    question: {"build": ID, "q": QUESTION, "k": N, "until": T}\n   answer: {"hits": [[KEY, COSINE], ...] | null}\n
    status:   {"status": true, "until": T}\n                        answer: {"pid": ..., "model": ..., ...}\n

`until` is the asker's deadline on CLOCK_MONOTONIC, which every process on the machine shares (Linux): the
semantic process does not compute a question whose asker has stopped waiting.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from blog.config import Config

SOCKET = "semantic.sock"
MAX_ANSWER = 64 * 1024  # bytes: k keys and scores, or a status
MAX_ADDRESS = 107  # bytes of a Unix socket's path (sun_path is 108, with its final NUL)
SLICE = 0.05  # seconds between looks at whether the asker should give up early


class Failed(Exception):
    """The exchange did not happen: nothing listens, no answer in time, or a garbled answer (str: why)."""

    def __init__(self, why: str, gone: bool = False) -> None:
        super().__init__(why)
        self.gone = gone  # nothing listens at the socket (no process), as against a slow or hung one


def socket_path(config: Config) -> Path:
    return socket_path_of(config.data_dir)


def socket_path_of(data_dir: Path) -> Path:
    """Return where the semantic process of a data directory listens."""
    return data_dir / SOCKET


@contextlib.contextmanager
def address(path: Path) -> Iterator[str]:
    """Yield a name for path that fits a Unix socket address, however long the data directory's path is.

    A path past 107 bytes cannot be bound or connected to by name (bind says "AF_UNIX path too long", and
    the semantic process died at start, again and again). Through /proc/self/fd/N/NAME, N an open handle on
    the directory, the kernel reaches the same file by a name of some 30 bytes.
    """
    if len(os.fsencode(path)) <= MAX_ADDRESS:
        yield str(path)
        return
    try:
        folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    except OSError as exc:
        raise Failed(f"cannot open {path.parent}: {exc.strerror}") from exc
    try:
        yield f"/proc/self/fd/{folder}/{path.name}"
    finally:
        os.close(folder)


def exchange(path: Path, request: dict[str, object], deadline: float,
             give_up: Callable[[], bool] = lambda: False) -> dict[str, object]:
    """Send one request and return the answer within deadline seconds; raise Failed otherwise.

    give_up() is asked every SLICE seconds while the answer is awaited: another thread found the process
    hung, so this one need not wait out its own deadline.
    """
    end = time.monotonic() + deadline
    line = json.dumps({**request, "until": end}).encode() + b"\n"
    chunks: list[bytes] = []
    size = 0
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn, address(path) as name:
            conn.settimeout(deadline)
            conn.connect(name)
            conn.sendall(line)
            while not chunks or not chunks[-1].endswith(b"\n"):
                left = end - time.monotonic()
                if left <= 0:
                    raise Failed(f"it did not answer within {deadline:g} s")
                if give_up():
                    raise Failed("it did not answer in time")
                conn.settimeout(min(left, SLICE))
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    raise Failed("it closed the connection without an answer")
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER:
                    raise Failed("its answer was too long")
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise Failed("it is not running", gone=True) from exc
    except TimeoutError as exc:
        raise Failed(f"it did not answer within {deadline:g} s") from exc
    except OSError as exc:
        raise Failed(f"{path}: {exc.strerror or exc}") from exc
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise Failed("its answer was not JSON") from exc
    if not isinstance(answer, dict):
        raise Failed("its answer was not an object")
    return answer


def listening(path: Path) -> bool:
    """Tell whether a process accepts connections at path: a socket file alone proves nothing.

    A site stopped by SIGKILL leaves its socket behind; connecting to it is refused at once.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn, address(path) as name:
            conn.settimeout(0.5)
            conn.connect(name)
            return True
    except (OSError, Failed):
        return False


def status(path: Path, deadline: float = 2.0) -> dict[str, object]:
    """Ask the semantic process at path how it is (raise Failed when it does not answer)."""
    return exchange(path, {"status": True}, deadline)
