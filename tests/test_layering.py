"""The rooms' imports run one way (docs/architecture.md draws them); tor stands apart from what serves readers."""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "blog"
DOCS = ROOT.parent / "docs" / "architecture.md"
ENGINE = ROOT / "index" / "engine"
BENCH = ROOT.parent / "bench"

# room -> the rooms it may import (besides itself and config, which every room may read). A room is a
# module or a package directly under blog/: blog.<room> or blog.<room>.<anything>.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "content": set(),
    "child": set(),
    "render": {"child"},
    "files": {"content", "render", "child"},
    "builds": {"content", "render", "files"},
    "index": {"content", "render", "builds", "child"},
    "honesty": {"content", "render", "files", "builds", "tor"},
    "pipeline": {"content", "render", "builds", "index", "honesty"},
    "builder": {"content", "builds", "index", "pipeline", "tor"},
    "serving": {"content", "builds", "index"},
    "mcp": {"content", "render", "builds", "index", "serving", "files"},
    "web": {"content", "render", "builds", "index", "serving", "mcp", "files"},
    "tor": set(),
    "linkcheck": set(),
    "onionbalance": {"tor"},
    "gunicorn_log": set(),
    "gunicorn_guard": set(),
    "supervisor": set(),
    "worker_imports": set(),
    "gunicorn_conf": {"gunicorn_log", "gunicorn_guard", "serving", "supervisor", "worker_imports"},
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


def _module_graph() -> dict[str, set[str]]:
    """Return each module of blog/ and the modules of blog/ it imports, wherever the import statement stands.

    `from package import name` counts as importing the submodule when `name` is one, else the package; an
    import under TYPE_CHECKING or inside a function counts too: it is a file that needs the other one.
    """
    known = {module for module, _ in modules()}
    graph: dict[str, set[str]] = {}
    for module, path in modules():
        found: set[str] = set()
        for node in ast.walk(_parsed(path)):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name in known)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    inner = f"{node.module}.{alias.name}"
                    found.update([inner] if inner in known else [node.module] if node.module in known else [])
        graph[module] = found - {module}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return every set of modules that import one another in a circle (Tarjan's strongly connected parts)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in order:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], order[target])
        if low[module] == order[module]:
            part = []
            while (top := stack.pop()) != module:
                part.append(top)
            if part:
                cycles.append(sorted([module, *part]))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return cycles


def test_import_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_in_a_circle() -> None:
    """Rooms import one way, and so do the files within a room: a circle of two files is one concern in two."""
    graph = _module_graph()
    assert graph["blog.index.semantic.vectors"], "the scan found no imports"
    cycles = import_cycles(graph)
    shown = [", ".join(f"{m} imports {' and '.join(sorted(graph[m] & set(cycle)))}" for m in cycle) for cycle in cycles]
    assert not cycles, "modules that import one another in a circle:\n" + "\n".join(shown)


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
    rooms = DOCS.read_text().split("\n## ", 1)[0]  # the room table; the maps further down name processes
    for line in rooms.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in ALLOWED:
            may = re.sub(r"\([^)]*\)", "", cells[2])  # "(until ...)" notes are for the reader
            drawn[cells[0]] = set(ALLOWED) - {cells[0]} if "every other room" in may else set(re.findall(r"\w+", may))
    assert drawn == ALLOWED, "docs/architecture.md's room table differs from ALLOWED"


def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _outside_engine() -> list[Path]:
    """Return the project's modules outside blog/index/engine/ (the engine's own tests may look inside)."""
    return sorted(p for p in [*ROOT.rglob("*.py"), *BENCH.rglob("*.py")] if ENGINE not in p.parents)


# The engine's faces: the only modules of blog/index/engine/ the rest of blog/ (and bench/) imports, and
# the names it may take from each (blog/index/engine/__init__.py says why).
ENGINE_FACES = {"blog.index.engine.rank": {"Plan", "Scored"}, "blog.index.engine.full": {"WRITER", "write_full"}}


def test_only_the_engine_imports_its_modules() -> None:
    """The rest of blog/ (and bench/) reads the engine through its two faces, and only their public names."""
    problems = []
    for path in _outside_engine():
        for node in ast.walk(_parsed(path)):
            if isinstance(node, ast.Import):
                problems += [f"{path}: import {a.name}" for a in node.names if a.name.startswith("blog.index.engine")]
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module in ENGINE_FACES:
                    problems += [f"{path}: from {node.module} import {a.name} (not one of its faces' names)"
                                 for a in node.names if a.name not in ENGINE_FACES[node.module]]
                elif node.module.startswith("blog.index.engine"):
                    problems.append(f"{path}: from {node.module} import ... (not a face of the engine)")
                elif node.module == "blog.index":
                    problems += [f"{path}: from blog.index import engine" for a in node.names if a.name == "engine"]
    assert not problems, "\n".join(problems)


def test_the_engine_faces_hold_their_names() -> None:
    import importlib

    for module, names in ENGINE_FACES.items():
        face = importlib.import_module(module)
        assert all(hasattr(face, name) for name in names), module


def test_the_engine_reads_only_the_schema_of_the_public_side() -> None:
    """search, query, store and results sit above the engine; it imports only the schema from beside them."""
    problems = []
    for path in sorted(ENGINE.rglob("*.py")):
        for imported in imports_of(path):
            if imported.startswith("blog.index.") and not imported.startswith(
                    ("blog.index.engine", "blog.index.schema")):
                problems.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not problems, "\n".join(problems)


def _whoosh_private_names() -> set[str]:
    """Return every private name Whoosh's own source defines: functions, methods, attributes, globals."""
    import whoosh

    names: set[str] = set()
    for path in Path(whoosh.__file__).parent.rglob("*.py"):
        with warnings.catch_warnings():  # Whoosh's own source has invalid escape sequences
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = _parsed(path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_only_the_engine_touches_whooshs_private_names() -> None:
    """Outside blog/index/engine/, no module of blog/ imports or reads a name Whoosh keeps private."""
    private = _whoosh_private_names()
    assert {"_lenfield", "_perdoc", "_write_block", "_read_ids"} <= private  # the scan sees Whoosh's source
    problems = []
    for path in (p for p in _outside_engine() if ROOT in p.parents):
        for node in ast.walk(_parsed(path)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "whoosh":
                problems += [f"{path}:{node.lineno}: from {node.module} import {a.name}"
                             for a in node.names if a.name.startswith("_")]
            elif (isinstance(node, ast.Attribute) and node.attr in private
                  and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                problems.append(f"{path}:{node.lineno}: .{node.attr}")
    assert not problems, "Whoosh's private names belong in blog/index/engine/:\n" + "\n".join(problems)
