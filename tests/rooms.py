"""Which test files exercise which room, for `make test-room ROOM=...`: one room's tests, with the real
components they need, without the whole suite.

A room here is a room of docs/architecture.md's table, or a few that are tested together (`gunicorn`: the
served stack's settings, supervisor and memory; `deploy`: the Ansible role applied in a chroot; `unit`: the
whole stack under the deployed unit's system-call filter; `fresh`: what `make test` installs on a fresh
machine; `suite`: the suite's own rules). Where a room's tests are slow by nature they are split by what they
need, so that a room waits only for its own slow start (README's "Test" gives each room's time): `outage` (the
semantic process stopped, killed and timed under readers), `operator` (a new operator's install from the built
wheel), `load` (hostile clients, held connections and load runs, timed, one at a time), `faults` (a full disk,
a lost index, broken content, a worker or tor killed while serving), `tornet` (a private Tor network: the
harness, onion services, the client), `verify` (`blog verify` against a served onion, on a private network of
its own) and `onionbalance` (its own slower network). tests/test_suite_groups.py fails when a test file
belongs to no room, or to two.

    python -m tests.rooms ROOM     print the room's test files, one a line (exit 2 and the rooms if unknown)
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

ROOMS: dict[str, tuple[str, ...]] = {
    "content": ("test_content.py",),
    "render": ("test_render.py",),
    "child": ("test_child.py",),
    "files": ("test_files.py", "test_files_hostile.py"),
    "builds": ("test_build.py",),
    "builder": ("test_builder.py", "test_process_map.py"),
    "index": ("test_index.py", "test_index_bulk.py", "test_index_engine.py", "test_index_full.py",
              "test_index_groups.py", "test_index_scoring.py", "test_index_sources.py", "test_search_page.py"),
    "semantic": ("test_semantic.py",),
    "outage": ("test_semantic_outage.py",),
    "honesty": ("test_honesty.py", "test_revision_log.py", "test_update_order.py", "test_upstream.py"),
    "mcp": ("test_mcp.py", "test_mcp_http.py"),
    "web": ("test_web.py", "test_cache_bounds.py", "test_perf_contracts.py", "test_browser.py"),
    "gunicorn": ("test_server.py", "test_protocol.py", "test_memory.py"),
    "load": ("test_hostile.py", "test_connections.py", "test_load.py"),
    "faults": ("test_faults.py",),
    "security": ("test_security.py", "test_fuzz.py"),
    "tor": ("test_tor_onion.py", "test_tor_egress.py", "test_torrc.py"),
    "tornet": ("test_tornet.py", "test_e2e_tor.py"),
    "verify": ("test_verify_tor.py",),
    "onionbalance": ("test_onionbalance.py",),
    "cli": ("test_site.py", "test_preview.py"),
    "operator": ("test_operator.py",),
    "deploy": ("test_ansible.py",),
    "unit": ("test_unit_filter.py",),
    "fresh": ("test_fresh_root.py",),
    "suite": ("test_layering.py", "test_lint.py", "test_docs.py", "test_suite_groups.py"),
}


def files_of(room: str) -> list[Path]:
    """Return the test files of a room (KeyError when there is no such room)."""
    return [TESTS / name for name in ROOMS[room]]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ROOMS:
        sys.stderr.write(f"make test-room ROOM=<room>, one of: {', '.join(ROOMS)} (tests/rooms.py)\n")
        return 2
    sys.stdout.write("".join(f"tests/{name}\n" for name in ROOMS[argv[0]]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
