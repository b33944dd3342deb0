"""The folders are DESIGN.md's layers, and imports point down only."""

import ast
from pathlib import Path

import pytest

import lrkit

ROOT = Path(lrkit.__file__).parent
# Each layer and the lrkit subpackages it must never import (directly or relatively).
FORBIDDEN = {
    "core": {"matrix", "tensor", "structured", "llm", "nn", "plot"},
    "matrix": {"tensor", "structured", "llm", "nn", "plot"},
    "tensor": {"structured", "llm", "nn", "plot"},
    "structured": {"tensor", "llm", "nn", "plot"},
    "llm": {"nn", "plot"},
    "nn": {"llm", "plot"},
}


def imported_lrkit_packages(path: Path) -> set[str]:
    """The first-level lrkit subpackages a module imports (absolute or relative)."""
    package = path.relative_to(ROOT).parts[:-1]  # e.g. ("matrix",) or ("nn", "compress")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = list(package[: len(package) - (node.level - 1)])
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts] if parts else [[a.name] for a in node.names]
            elif node.module and node.module.startswith("lrkit."):
                names = [node.module.split(".")[1:]]
            else:
                continue
            found.update(p[0] for p in names if p)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("lrkit."))
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_point_down(layer):
    for path in sorted((ROOT / layer).rglob("*.py")):
        if path.name == "__main__.py":
            continue  # a command-line entry point is the application, above every layer
        bad = imported_lrkit_packages(path) & FORBIDDEN[layer]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)} from a layer above"


def test_the_checker_sees_relative_imports():
    assert "core" in imported_lrkit_packages(ROOT / "matrix" / "rsvd.py")
    assert "matrix" in imported_lrkit_packages(ROOT / "tensor" / "_ops.py")
