"""The layers of docs/architecture.md: every import points down.

``lint-imports`` (the contracts in pyproject.toml) sees import statements; a module can also
reach another through a string (``importlib.import_module("xpmstore.…")``,
``sys.modules["xpmstore.…"]``, ``python -m xpmstore.…``), which it cannot see: the second test
reads every string of the library for those.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..helpers import REPO_ROOT

LAYERS = ["serve", "admin", "scheduler", "remote", "store", "core", "system"]
"""Top to bottom, as in pyproject.toml (the CLI, above them all, is xpmstore_cli)."""

_MODULE_PATH = re.compile(r"(?<![\w.])xpmstore\.(\w+)(?:\.\w+)*")


def _layer(parts: list[str]) -> int | None:
    """The rank of the layer that holds a module (None: outside the layers)."""
    return LAYERS.index(parts[0]) if parts and parts[0] in LAYERS else None


def test_lint_imports_keeps_every_contract():
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command is not None, "lint-imports is not installed: run scripts/setup (dev extra)"
    result = subprocess.run([command, "--no-cache"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_module_reaches_a_higher_layer_through_a_string():
    upward = []
    for path in sorted((REPO_ROOT / "xpmstore").rglob("*.py")):
        parts = list(path.relative_to(REPO_ROOT / "xpmstore").with_suffix("").parts)
        own = _layer(parts)
        if own is None:
            continue  # the façade, errors and the compatibility shims sit outside the layers
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) \
                    or id(node) in docstrings:  # prose may name any module
                continue
            for match in _MODULE_PATH.finditer(node.value):
                other = _layer([match.group(1)])
                if other is not None and other < own:
                    upward.append(f"{path.relative_to(REPO_ROOT)}: {match.group(0)}")
    assert upward == []


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring nodes of a module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            found.add(id(body[0].value))
    return found


def test_every_module_of_a_layer_has_its_line_in_the_architecture_page():
    """docs/architecture.md is the map: a module missing from its table is a module nobody can
    place (its name in backquotes, in the section of its package)."""
    page = (REPO_ROOT / "docs" / "architecture.md").read_text()
    table = page[page.index("## The modules"):page.index("## The protocols")]
    sections = re.split(r"\n\| \*\*(\w+)/\*\* \|", table)
    named = {sections[i]: set(re.findall(r"`(\w+)`", sections[i + 1]))
             for i in range(1, len(sections) - 1, 2)}
    missing = []
    for path in sorted((REPO_ROOT / "xpmstore").glob("*/**/*.py")):
        package = path.relative_to(REPO_ROOT / "xpmstore").parts[0]
        if path.name != "__init__.py" and package in LAYERS \
                and path.stem not in named.get(package, set()):
            missing.append(str(path.relative_to(REPO_ROOT)))
    assert missing == []
