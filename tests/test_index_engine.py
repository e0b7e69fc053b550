"""The index engine's reach into Whoosh: every private name it uses is listed, and the installed Whoosh has it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from whoosh.codec.whoosh3 import W3LeafMatcher

from blog.index.engine import whoosh_private

ENGINE = Path(whoosh_private.__file__).parent


def test_the_installed_whoosh_has_every_name_the_engine_relies_on() -> None:
    gone = whoosh_private.missing()
    assert not gone, "the installed Whoosh lacks names blog/index/engine/ relies on: " + ", ".join(gone)
    whoosh_private.require()


def test_a_missing_name_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whoosh_private, "DEFINED", (*whoosh_private.DEFINED, (W3LeafMatcher, "_read_gone")))
    monkeypatch.setattr(whoosh_private, "SET", (*whoosh_private.SET, (W3LeafMatcher, "_gone_ids")))
    assert whoosh_private.missing() == ["whoosh.codec.whoosh3.W3LeafMatcher._read_gone",
                                        "whoosh.codec.whoosh3.W3LeafMatcher._gone_ids"]
    with pytest.raises(whoosh_private.WhooshChanged, match=r"W3LeafMatcher\._read_gone"):
        whoosh_private.require()


def _whoosh_classes(tree: ast.Module) -> dict[str, type]:
    """Return the Whoosh classes a module imports, by the name it uses for them."""
    import importlib

    out: dict[str, type] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "whoosh":
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                value = getattr(module, alias.name, None)
                if isinstance(value, type):
                    out[alias.asname or alias.name] = value
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _uses(path: Path) -> list[tuple[str, str]]:
    """Return (where, name) for each private name of Whoosh's a module of the engine may use.

    Any `x._name` on something other than `self`, any private name imported from Whoosh or passed to
    getattr/hasattr, and, in a class extending a Whoosh class, any `self._name` or method Whoosh defines there.
    """
    tree = ast.parse(path.read_text())
    whoosh = _whoosh_classes(tree)
    uses: list[tuple[str, str]] = []
    inside: set[int] = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        bases = [whoosh[b.id] for b in cls.bases if isinstance(b, ast.Name) and b.id in whoosh]
        known = set().union(*(whoosh_private.assigned(b) | set(dir(b)) for b in bases))
        for node in ast.walk(cls):
            inside.add(id(node))
            name = node.name if isinstance(node, ast.FunctionDef) else (
                node.attr if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "self" else None)
            if name and _private(name) and name in known:  # the rest are the engine's own names
                uses.append((f"{path.name}:{cls.name}", name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                uses.append((path.name, node.attr))
            elif id(node) not in inside:
                uses.append((path.name, node.attr))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "whoosh":
            uses += [(path.name, a.name) for a in node.names if _private(a.name)]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and _private(str(node.args[1].value))):
            uses.append((path.name, str(node.args[1].value)))
    return uses


def test_every_private_name_the_engine_uses_is_listed() -> None:
    listed = {name for _, name in (*whoosh_private.DEFINED, *whoosh_private.SET)}
    modules = sorted(p for p in ENGINE.glob("*.py") if p.name != "whoosh_private.py")
    assert {"postings.py", "bulk.py", "codec.py"} <= {p.name for p in modules}
    uses = [use for path in modules for use in _uses(path)]
    assert {"_read_ids", "_write_block", "_perdoc", "_lenfield"} <= {name for _, name in uses}  # the scan works
    unlisted = sorted({f"{where}: {name}" for where, name in uses if name not in listed})
    assert not unlisted, "list these in blog/index/engine/whoosh_private.py:\n" + "\n".join(unlisted)
