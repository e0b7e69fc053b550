"""The rooms' imports run one way (docs/architecture.md draws them); tor stands apart from what serves readers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "blog"
DOCS = ROOT.parent / "docs" / "architecture.md"

# room -> the rooms it may import (besides itself and config, which every room may read). A room is a
# module or a package directly under blog/: blog.<room> or blog.<room>.<anything>.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "content": set(),
    "child": set(),
    "render": {"child"},
    "build": {"content", "render"},
    "index": {"content", "render", "build", "child"},
    "honesty": {"content", "render", "build", "tor"},
    "publish": {"content", "render", "build", "index", "honesty"},
    "builder": {"content", "build", "index", "publish"},
    "serving": {"content", "build", "index"},
    "mcp": {"content", "render", "build", "index", "serving"},
    "web": {"content", "render", "build", "index", "serving", "mcp"},
    "tor": set(),
    "links": set(),
    "onionbalance": {"tor"},
    "gunicorn_log": set(),
    "gunicorn_conf": {"gunicorn_log", "serving", "builder"},
}
ALLOWED["cli"] = set(ALLOWED)  # the one room that wires the others together; nothing imports it


def room_of(module: str) -> str:
    """Return the room of a dotted module name: the part after `blog.`, or '' outside the package."""
    parts = module.split(".")
    if parts[0] != "blog" or len(parts) == 1 or parts[1] == "__version__":
        return ""
    return parts[1]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        module = "blog." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found.append((module.removesuffix(".__init__"), path))
    return found


def test_room_of_reads_packages_and_modules_alike() -> None:
    assert room_of("blog.mcp.http") == room_of("blog.mcp") == "mcp"
    assert room_of("blog.cli") == "cli" and room_of("blog.content.load") == "content"
    assert room_of("blog.mcp_tools") == "mcp_tools"  # no prefix matching: a flat module is a room of its own
    assert room_of("mcp.server") == room_of("blog") == room_of("blog.__version__") == ""


def test_rooms_import_only_downstream() -> None:
    problems = []
    for module, path in modules():
        room = room_of(module)
        if not room:
            continue  # blog/__init__.py: the version
        if room not in ALLOWED:
            problems.append(f"{module}: room '{room}' is not in the layering table")
            continue
        allowed = ALLOWED[room] | {room, "config", ""}
        for imported in imports_of(path):
            target = room_of(imported)
            if target not in allowed:
                problems.append(f"{module} imports {imported} (room '{target}' is not below '{room}')")
    assert not problems, "\n".join(problems)


def test_web_and_mcp_never_touch_tor() -> None:
    paths = list((ROOT / "web").rglob("*.py")) + list((ROOT / "mcp").rglob("*.py"))
    assert paths
    for path in paths:
        assert not any(i.startswith(("blog.tor", "stem")) for i in imports_of(path)), path


def test_mcp_never_imports_web() -> None:
    paths = list((ROOT / "mcp").rglob("*.py"))
    assert paths, "no blog/mcp/ package"
    for path in paths:
        assert not any(room_of(i) == "web" for i in imports_of(path)), path


def test_the_architecture_page_draws_the_same_table() -> None:
    drawn: dict[str, set[str]] = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in ALLOWED:
            may = re.sub(r"\([^)]*\)", "", cells[2])  # "(until ...)" notes are for the reader
            drawn[cells[0]] = set(ALLOWED) - {cells[0]} if "every other room" in may else set(re.findall(r"\w+", may))
    assert drawn == ALLOWED, "docs/architecture.md's room table differs from ALLOWED"
