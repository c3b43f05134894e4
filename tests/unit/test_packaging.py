"""Packaging: ``xpmstore_cli`` is never shadowed from the repository root, whether xpmstore is
installed editable (the project's .venv) or from a wheel; the console script runs."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

import xpmstore

from ..helpers import PYTHON, REPO_ROOT, run_python

_IMPORT = "import xpmstore_cli, xpmstore_cli.main; print(xpmstore_cli.__file__)"
_SOURCES = ("pyproject.toml", "README.md", "xpmstore", "cli")
"""What the build reads (copied, so that no build/ or egg-info lands in the working tree)."""


def _version_in_pyproject() -> str:
    with open(REPO_ROOT / "pyproject.toml", "rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the repository's sources."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in _SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO_ROOT / name, source / name)
    for extra in REPO_ROOT.glob("LICEN[CS]E*"):
        shutil.copy2(extra, source / extra.name)
    result = subprocess.run(
        [PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(work / "dist"), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    (built,) = (work / "dist").glob("xpmstore-*.whl")
    return built


def test_editable_install_imports_the_cli_from_the_repository_root():
    result = run_python(["-c", _IMPORT], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == REPO_ROOT / "cli" / "__init__.py"


def test_the_cli_package_is_not_importable_as_cli_from_elsewhere(tmp_path):
    result = run_python(["-c", "import cli"], cwd=tmp_path)
    assert result.returncode == 1 and "ModuleNotFoundError" in result.stderr


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"xpmstore_cli/__init__.py", "xpmstore_cli/main.py", "xpmstore/__init__.py",
            "xpmstore/py.typed"} <= names
    assert not any(name.startswith(("cli/", "tests/", "benchmarks/")) for name in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "xpmstore = xpmstore_cli:main" in text


def test_regular_install_imports_the_cli_from_the_install_not_the_repository(wheel, tmp_path):
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    result = run_python(["-c", _IMPORT], cwd=REPO_ROOT, env={"PYTHONPATH": str(target)})
    assert result.returncode == 0, result.stderr
    imported = Path(result.stdout.strip())
    assert imported == target / "xpmstore_cli" / "__init__.py"
    assert imported.is_relative_to(target)


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
    code = ("import sys, xpmstore, xpmstore.serialize, xpmstore.config; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cli', 'xpmstore_cli')))")
    result = run_python(["-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
