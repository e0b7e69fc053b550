"""Run a command under the system-call filter a systemd unit sets, as systemd would (seccomp, through libseccomp).

    python -m tests.syscall_filter UNIT_FILE -- COMMAND [ARG...]

There is no systemd here to start the deployed unit, so this reads the unit's `SystemCallFilter=` lines, turns
their groups into system calls with `systemd-analyze syscall-filter` (the same tables systemd itself uses),
and loads the result with libseccomp before it execs the command: what the unit forbids kills the calling
process with SIGSYS, or fails with the errno `SystemCallErrorNumber=` names, as it would on the host. Like
systemd, an allow list starts from `@default`, and each later line adds (`name`) or takes away (`~name`)
in the order written.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000  # | the errno


@cache
def group(name: str) -> frozenset[str]:
    """Return the system calls of a systemd group (@name), nested groups expanded, or the call itself."""
    if not name.startswith("@"):
        return frozenset({name})
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True,
                         check=True).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if item and not item.startswith("#"):
            calls |= group(item)
    return frozenset(calls)


def allowed_calls(unit: Path) -> frozenset[str]:
    """Return the system calls a unit's SystemCallFilter= lines allow (it must open with an allow list)."""
    lines = re.findall(r"^SystemCallFilter=(.*)$", unit.read_text(), flags=re.M)
    if not lines or lines[0].startswith("~"):
        raise ValueError(f"{unit}: no SystemCallFilter= allow list to apply")
    allowed: set[str] = set(group("@default"))
    for line in lines:
        deny = line.startswith("~")
        names = {call for item in line.lstrip("~").split() for call in group(item)}
        allowed = allowed - names if deny else allowed | names
    return frozenset(allowed)


def refusal(unit: Path) -> int:
    """Return what a forbidden call meets: SIGSYS kills the process, unless SystemCallErrorNumber= names an errno."""
    found = re.findall(r"^SystemCallErrorNumber=(\w+)$", unit.read_text(), flags=re.M)
    return SCMP_ACT_ERRNO | getattr(errno, found[-1]) if found else SCMP_ACT_KILL_PROCESS


def load(allowed: frozenset[str], refused: int = SCMP_ACT_KILL_PROCESS) -> None:
    """Install a seccomp filter on this process (inherited by what it execs): allowed calls pass, others are
    refused as the unit says."""
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(refused)
    if not ctx:
        raise OSError("seccomp_init failed")
    for name in sorted(allowed):
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            continue  # not a call of this architecture (systemd skips them too)
        lib.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, number, 0)
    if lib.seccomp_load(ctx) != 0:
        raise OSError(ctypes.get_errno(), "seccomp_load failed")


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit(__doc__)
    unit = Path(argv[0])
    load(allowed_calls(unit), refusal(unit))
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
