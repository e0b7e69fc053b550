"""How a request worker asks the builder for a repair: the builder's pid file and the signal it answers.

The builder (blog/builder.py) writes its pid into the data directory and rebuilds the index when it gets
REPAIR_SIGNAL; a worker, which never writes under the data directory, sends it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

BUILDER_PID = "builder.pid"  # in the data directory: where a worker finds the builder to ask for a repair
REPAIR_SIGNAL = signal.SIGUSR2  # what a worker sends the builder when it finds the index unusable


def ask_for_repair(data_dir: Path) -> bool:
    """Ask the running builder to rebuild an unusable index now; return whether one was asked.

    A worker never writes under the data directory, so it signals the process named in `builder.pid`,
    after checking that the process is a builder (a stale file may name any process by now).
    """
    try:
        pid = int((data_dir / BUILDER_PID).read_text(encoding="ascii").strip())
        if b"blog.builder" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
        os.kill(pid, REPAIR_SIGNAL)
    except (OSError, ValueError):
        return False
    return True
