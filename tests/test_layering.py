"""The rooms' imports run one way: content → render → build → index → (web, mcp) → cli; tor stands apart."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "blog"

# room -> the rooms it may import (besides itself and config, which everything may read)
ALLOWED = {
    "config": set(),
    "content": set(),
    "render": set(),
    "build": {"content", "render"},
    "index": {"content", "render", "build"},
    "publish": {"content", "render", "build", "index", "honesty"},
    # publish: until the builder lands (issue 16 part 1)
    "serving": {"content", "build", "index", "publish"},
    "mcp": {"content", "render", "build", "index", "publish", "serving"},
    "web": {"content", "render", "build", "index", "publish", "serving", "mcp"},
    "tor": set(),
    "onionbalance": {"tor"},
    "links": {"tor", "content"},
    "honesty": {"content", "render", "build", "tor"},
    "gunicorn_log": set(),
    "gunicorn_conf": {"gunicorn_log", "serving"},
    "cli": None,  # the one room that wires the others together
}


def room_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "blog" or len(parts) == 1:
        return ""
    name = parts[1]
    if name.startswith("cli"):
        return "cli"
    if name.startswith("mcp"):
        return "mcp"
    return name


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


def test_rooms_import_only_downstream() -> None:
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        module = "blog." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        room = room_of(module)
        if room in ("", "cli") or room not in ALLOWED:
            if room not in ALLOWED and room:
                problems.append(f"{module}: room '{room}' is not in the layering table")
            continue
        allowed = ALLOWED[room] | {room, "config", ""}
        for imported in imports_of(path):
            target = room_of(imported)
            if target and target not in allowed and imported not in ("blog", "blog.__version__"):
                problems.append(f"{module} imports {imported} (room '{target}' is not below '{room}')")
    assert not problems, "\n".join(problems)


def test_web_and_mcp_never_touch_tor() -> None:
    for path in list((ROOT / "web").rglob("*.py")) + list((ROOT / "mcp").rglob("*.py")):
        assert not any(i.startswith("blog.tor") or i.startswith("stem") for i in imports_of(path)), path


def test_mcp_never_imports_web() -> None:
    paths = list((ROOT / "mcp").rglob("*.py"))
    assert paths, "no blog/mcp/ package"
    for path in paths:
        assert not any(room_of(i) == "web" for i in imports_of(path)), path
