"""The child of a two-process full build: `python -m blog.index.engine.segment_worker DIR`, the entries on stdin."""

from __future__ import annotations

import sys
from pathlib import Path

from blog.index.engine.full import write_segment


def main(argv: list[str]) -> int:
    """Write the segment the parent asked for; exit 2 on a wrong command line."""
    if len(argv) != 2:
        sys.stderr.write("usage: python -m blog.index.engine.segment_worker DIR\n")
        return 2
    write_segment(Path(argv[1]), sys.stdin.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
