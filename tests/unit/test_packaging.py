"""Packaging: ``xpmstore_cli`` is never shadowed from the repository root when xpmstore is
installed editable (the project's .venv); the console script runs.  The wheel and the sdist, and
xpmstore installed from the wheel, are tested in tests/integration/test_installed.py."""

from __future__ import annotations

import importlib.metadata
import subprocess
import tomllib
from pathlib import Path

import xpmstore

from ..helpers import PYTHON, REPO_ROOT, run_python

_IMPORT = "import xpmstore_cli, xpmstore_cli.main; print(xpmstore_cli.__file__)"


def _version_in_pyproject() -> str:
    with open(REPO_ROOT / "pyproject.toml", "rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def test_editable_install_imports_the_cli_from_the_repository_root():
    result = run_python(["-c", _IMPORT], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == REPO_ROOT / "cli" / "__init__.py"


def test_the_cli_package_is_not_importable_as_cli_from_elsewhere(tmp_path):
    result = run_python(["-c", "import cli"], cwd=tmp_path)
    assert result.returncode == 1 and "ModuleNotFoundError" in result.stderr


def test_console_script_help():
    result = subprocess.run([str(Path(PYTHON).parent / "xpmstore"), "--help"],
                            capture_output=True, text=True, timeout=60, check=False,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "Usage: xpmstore" in result.stdout and "identify" in result.stdout


def test_console_script_version():
    result = subprocess.run([str(Path(PYTHON).parent / "xpmstore"), "--version"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    version = _version_in_pyproject()
    assert result.stdout.strip() == f"xpmstore, version {version}"
    assert xpmstore.__version__ == version == importlib.metadata.version("xpmstore")


def test_module_entry_point_returns_the_exit_code():
    code = "import sys, xpmstore_cli; sys.exit(xpmstore_cli.main(sys.argv[1:]))"
    result = run_python(["-c", code, "--version"])
    assert result.returncode == 0 and _version_in_pyproject() in result.stdout
    result = run_python(["-c", code, "nope"])
    assert result.returncode == 2 and "nope" in result.stderr


def test_the_library_never_imports_the_cli():
    code = ("import sys, xpmstore, xpmstore.core.params, xpmstore.core.config; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cli', 'xpmstore_cli')))")
    result = run_python(["-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
