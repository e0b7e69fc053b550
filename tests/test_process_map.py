"""docs/architecture.md's second map, pinned: the processes of `blog serve` and the files under DATA_DIR.

A real `blog serve` (a private tor, gunicorn, the builder, the semantic process) serves the small test site.
Every process in its tree must match a row of the process table by its command line, every file and folder
at the top of DATA_DIR and one level down a row of the file table, and after a plain stop (SIGTERM) what is
left must be exactly what the table's last column keeps. The test also reads the code's own names for those
files, so a new one fails here before it ever appears on a disk. Updating it is editing the table.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blog import builds
from blog.cli.preview import PREVIEW_DIR
from blog.index.semantic.wire import SOCKET
from blog.tor.hsdir import SERVICE_DIR
from processes import Server, free_port
from tests.tor_helpers import require_tor, wait_for

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "docs" / "architecture.md"
# Rows of the process table that exist only while something is built; the others run all the time.
TRANSIENT = {"builder, once", "render and index child", "picture cleaner", "embedding child"}


def _tables() -> tuple[list[list[str]], list[list[str]]]:
    """Return the rows (cells) of the process table and of the file table."""
    section = MAP.read_text().split("## Map 2", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, list[list[str]]] = {"process": [], "path": []}
    current: list[list[str]] | None = None
    for line in section.splitlines():
        if not line.startswith("|"):
            current = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if current is None:
            current = tables.get(cells[0])
            assert current is not None, f"docs/architecture.md: a table in Map 2 starts with {cells[0]!r}"
        elif not set(cells[0]) <= {"-"}:
            current.append(cells)
    return tables["process"], tables["path"]


def _pattern(path: str) -> re.Pattern[str]:
    """A row's path as a pattern: `<…>` one name, a trailing `…` everything below."""
    text = path.strip("`")
    anything = text.endswith("…")
    parts = re.split(r"<[^>]+>", text.removesuffix("…"))
    body = "[^/]+".join(re.escape(p) for p in parts)
    return re.compile(body + (".*" if anything else ""))


def _named(rel: str, rows: list[list[str]]) -> list[list[str]]:
    return [row for row in rows if _pattern(row[0]).fullmatch(rel)]


def _on_disk(data_dir: Path) -> set[str]:
    """Every path at the top of data_dir and one level down (folders with a trailing /)."""
    found = set()
    for path in data_dir.rglob("*"):
        rel = path.relative_to(data_dir)
        if len(rel.parts) <= 2:
            found.add(str(rel) + ("/" if path.is_dir() and not path.is_symlink() else ""))
    return found


def _tree(root: int) -> dict[int, str]:
    """Return the command line of root and of every process below it."""
    table = subprocess.run(["ps", "-e", "-ww", "-o", "pid=,ppid=,args="], capture_output=True, text=True,
                           check=True).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for line in table.splitlines():
        pid, ppid, args = line.strip().split(None, 2)
        children.setdefault(int(ppid), []).append((int(pid), args))
    found, todo = {}, [root]
    while todo:
        for pid, args in children.get(todo.pop(), []):
            found[pid] = args
            todo.append(pid)
    return found


def _kind(args: str, rows: list[list[str]]) -> list[str]:
    """The rows whose command line's words all appear in args, in order."""
    kinds = []
    for row in rows:
        words = row[1].strip("`").split()
        if re.search(".*".join(re.escape(w) for w in words), args):
            kinds.append(row[0])
    return kinds


def test_the_tables_name_the_codes_files() -> None:
    """The names the code gives files under DATA_DIR each have a row (a quick check; the served site below
    is the thorough one)."""
    _, files = _tables()
    for name in (".build.lock", "builds/", f"builds/{builds.POINTER}", "index/", "vectors/", SOCKET,
                 builds.BUILDER_PID, "onion/", "onion/hs_ed25519_secret_key", "onion/hostname",
                 f"tor/{SERVICE_DIR}/", "tor/control", "model/", f"{PREVIEW_DIR}/"):
        assert _named(name, files), f"docs/architecture.md's file table has no row for {name}"
    constants = {"BUILDER_PID": builds.BUILDER_PID, "SOCKET": SOCKET, "PREVIEW_DIR": PREVIEW_DIR}
    # Where a module's data_dir is another folder's: tor/control.py's is tor's DataDirectory, DATA_DIR/tor.
    under = {"blog/tor/control.py": "tor/"}
    for path in (ROOT / "blog").rglob("*.py"):
        code, prefix = path.read_text(), under.get(str(path.relative_to(ROOT)), "")
        names = re.findall(r"""data_dir\s*/\s*f?["']([^"']+)["']""", code)
        for constant in re.findall(r"data_dir\s*/\s*(?:\w+\.)?([A-Z][A-Z_]+)\b", code):
            assert constant in constants, f"{path.relative_to(ROOT)}: what is DATA_DIR/{constant}? (add it here)"
            names.append(constants[constant])
        for name in names:
            # An f-string's part is one name: the constants it names, or anything.
            name = re.sub(r"\{(?:\w+\.)?([A-Z][A-Z_]+)\}", lambda m: constants[m[1]], name)
            name = prefix + re.sub(r"\{[^}]*\}", "x", name)
            assert _named(name, files) or _named(name + "/", files), \
                f"{path.relative_to(ROOT)} names DATA_DIR/{name}, which docs/architecture.md's file table does not"
    for row in files:
        assert len(row) == 5, row
        assert row[4] in ("kept", "gone") or row[4].startswith("kept, but"), row


@pytest.mark.slow
@pytest.mark.tor
def test_blog_serve_runs_and_leaves_what_the_map_says(site_dir: Path, tmp_path: Path) -> None:
    require_tor()
    processes, files = _tables()
    site, data = tmp_path, tmp_path / "data"
    (site / "blog.toml").write_text(f'title = "Map"\ncontent_dir = "{site_dir}"\ndata_dir = "{data}"\n'
                                    f'model_dir = "{ROOT / "var" / "model"}"\n')
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}
    env.update(BLOG_WORKERS="1", BLOG_SEMANTIC="1")
    blog = str(Path(sys.executable).with_name("blog"))
    server = Server([blog, "--site", str(site), "serve", "--tor", "--bind", f"127.0.0.1:{port}"],
                    tmp_path / "serve.log", port=port, env=env)
    with server:
        assert server.process is not None
        vectors = wait_for(lambda: list((data / "vectors").glob("*.npy")) and (data / SOCKET).exists()
                           and (data / builds.BUILDER_PID).exists(), timeout=120, what="the builder and vectors")
        assert vectors, server.log()
        running = _tree(server.process.pid)
        # blog serve becomes the gunicorn master (exec): the root is named by what it runs now
        root = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
        running[server.process.pid] = root.replace(b"\0", b" ").decode()
        seen = set()
        for pid, args in running.items():
            if re.fullmatch(r"\[.*\]", args):  # a process ending (the embedding child): its command line is gone
                continue
            kinds = _kind(args, processes)
            assert kinds, f"process {pid} ({args[:200]}) is in no row of docs/architecture.md's process table"
            seen.update(kinds)
        steady = {row[0] for row in processes} - TRANSIENT
        assert steady <= seen, f"the table names processes blog serve did not run: {steady - seen}"

        started = _on_disk(data)
        unnamed = sorted(p for p in started if not _named(p, files))
        assert not unnamed, f"files under DATA_DIR the map in docs/architecture.md does not name: {unnamed}"
    assert server.process.returncode is not None
    time.sleep(0.5)  # tor, its own process, removes its control socket as it goes
    left = _on_disk(data)
    unnamed = sorted(p for p in left if not _named(p, files))
    assert not unnamed, f"a plain stop left files the map does not name: {unnamed}"
    gone = sorted(p for p in left if any(row[4] == "gone" for row in _named(p, files)))
    assert not gone, f"the map says a plain stop removes these, but they are still there: {gone}"
    kept = {row[0].strip("`") for row in files if row[4] == "kept" and not re.search("[<…]", row[0])}
    assert kept <= left, f"the map says a plain stop keeps these, but they are gone: {sorted(kept - left)}"
    assert builds.BUILDER_PID not in left and SOCKET not in left
    assert "tor/control" not in left and "tor/" in left and "onion/hs_ed25519_secret_key" in left
