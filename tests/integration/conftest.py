"""xpmstore as a user installs it: an sdist and a wheel built from a copy of the sources, the
wheel installed with its ``s3`` and ``serve`` extras in a fresh virtual environment, and an
experiment run with it from a folder outside the repository.  One installation per test session.

The fresh environment is made without pip (``venv --without-pip``) and filled by the project's
pip (``pip --python``), from the pip cache: the same installation, in a third of the time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..helpers import PYTHON, REPO_ROOT

SOURCES = ("pyproject.toml", "setup.py", "README.md", "xpmstore", "cli")
"""What the build reads (copied, so that no build/ or egg-info lands in the working tree)."""

PACKAGES = {"xpmstore": "xpmstore", "cli": "xpmstore_cli"}
"""Source folder -> installed package."""

_TIMEOUT = 300.0


def copy_sources(target: Path) -> Path:
    """A copy of what the build reads (:data:`SOURCES`) in the new folder ``target``."""
    target.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, target / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO_ROOT / name, target / name)
    return target


def run(command: list[str | Path], *, cwd: Path, env: Mapping[str, str] | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (a real process) with an environment cleared of Python and xpmstore
    variables (plus ``env``), and ``stdin`` (empty by default: nothing waits for a terminal);
    never raises for its exit code."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTHON", "XPMSTORE", "XDG_", "VIRTUAL_ENV"))}
    environ.update(env or {})
    return subprocess.run([str(part) for part in command], cwd=cwd, env=environ,
                          input="" if stdin is None else stdin,
                          capture_output=True, text=True, timeout=_TIMEOUT, check=False)


DATA_PROBES = (
    "xpmstore/scheduler/launchers/static/css/probe.css",
    "cli/templates/pages/probe.html",
)
"""Data files added to the copy of the sources: folders of data (a web page's static files and
templates) must reach the wheel too."""


def source_files(root: Path, folder: str) -> list[Path]:
    """Every file of the package folder ``root/folder`` (relative to ``root``), except bytecode
    caches."""
    return sorted(path.relative_to(root) for path in (root / folder).rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts)


def installed_name(source: Path) -> str:
    """Where a source file lands in the wheel: ``cli/main.py`` -> ``xpmstore_cli/main.py``."""
    top, *rest = source.parts
    return "/".join([PACKAGES[top], *rest])


@dataclass(frozen=True)
class Installation:
    """A fresh virtual environment holding xpmstore installed from its wheel."""

    source: Path
    """The copy of the sources the sdist and the wheel were built from."""
    wheel: Path
    sdist: Path
    venv: Path
    home: Path
    """An empty HOME for the processes of the tests (no user settings, no default workspace)."""
    elsewhere: Path
    """A folder outside the repository, the working directory of every process."""

    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        return self.venv / "bin" / "python"

    @property
    def script(self) -> Path:
        """The environment's ``xpmstore`` console script."""
        return self.venv / "bin" / "xpmstore"

    def run(self, command: list[str | Path], env: Mapping[str, str] | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in ``elsewhere``, with the environment's bin first on PATH."""
        path = f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        return run(command, cwd=self.elsewhere,
                   env={"HOME": str(self.home), "PATH": path, **(env or {})}, stdin=stdin)

    def xpmstore(self, *args: str, workspace: Path | None = None,
                 env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run the installed console script (the workspace through XPMSTORE_WORKSPACE)."""
        more = {"XPMSTORE_WORKSPACE": str(workspace)} if workspace is not None else {}
        return self.run([self.script, *args], env={**more, **(env or {})})


def _check(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, f"{what} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="session")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """Build the sdist, then the wheel from the sdist (``python -m build``), and install the
    wheel with its ``s3`` and ``serve`` extras in a fresh virtual environment."""
    work = tmp_path_factory.mktemp("installed")
    source = copy_sources(work / "src")
    for extra in REPO_ROOT.glob("LICEN[CS]E*"):
        shutil.copy2(extra, source / extra.name)
    for probe in DATA_PROBES:
        (source / probe).parent.mkdir(parents=True)
        (source / probe).write_text("/* data */\n")
    # --no-isolation: the build requirements are the dev extra's, already in the test's .venv
    _check(run([PYTHON, "-m", "build", "--no-isolation", "--outdir", work / "dist", source],
               cwd=work), "python -m build")
    (wheel,) = (work / "dist").glob("xpmstore-*.whl")
    (sdist,) = (work / "dist").glob("xpmstore-*.tar.gz")
    venv = work / "venv"
    _check(run([PYTHON, "-m", "venv", "--without-pip", venv], cwd=work), "python -m venv")
    _check(run([PYTHON, "-m", "pip", "--python", venv / "bin" / "python", "install",
                "--disable-pip-version-check", "-q", f"{wheel}[s3,serve]"], cwd=work),
           "pip install")
    home = work / "home"
    home.mkdir()
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    return Installation(source=source, wheel=wheel, sdist=sdist, venv=venv, home=home,
                        elsewhere=elsewhere)


@dataclass(frozen=True)
class Ran:
    """The experiment of ``experiment_script.py``, run with the installed xpmstore."""

    workspace: Path
    report: dict[str, Any]
    """The JSON document the script printed."""


@pytest.fixture(scope="session")
def ran(installation: Installation) -> Ran:
    """Run ``experiment_script.py`` (copied outside the repository) in a new workspace."""
    script = installation.elsewhere / "experiment_script.py"
    shutil.copy2(Path(__file__).with_name("experiment_script.py"), script)
    workspace = installation.elsewhere / "workspace"
    result = installation.run([installation.python, script.name, workspace])
    _check(result, "the experiment")
    return Ran(workspace=workspace, report=json.loads(result.stdout.strip().splitlines()[-1]))
