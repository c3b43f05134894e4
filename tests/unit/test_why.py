"""``xpmstore why`` as a user runs it, in a project folder of their own (real processes): an
identifier's classes are imported as a job's process imports them, a sub-config whose fields all
have defaults needs no value, and a field left at its default shows its value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ..clihelpers import XPMSTORE
from ..storehelpers import isolate

TASKS = '''
from xpmstore import Config, Meta, Param, Task


class Model(Config):
    hidden: Param[int] = 128
    activation: Param[str] = "relu"


class Learn(Task):
    epochs: Param[int] = 100
    model: Param[Model]
    batch: Meta[int] = 64

    def execute(self):
        pass


class Evaluate(Task):
    learned: Param[Learn]

    def execute(self):
        pass
'''

RUN = '''
import sys

from xpmstore import experiment
from tasks import Evaluate, Learn, Model

if __name__ == "__main__":
    with experiment(sys.argv[1], "project"):
        Evaluate(learned=Learn(epochs=5, model=Model())).submit()
'''

SCRIPT = '''
import sys

from helper import DEFAULT_SIZE  # a module beside the script
from xpmstore import Param, Task, experiment


class Prepare(Task):
    __xpmid__ = "project.Prepare"
    size: Param[int] = DEFAULT_SIZE

    def execute(self):
        pass


if __name__ == "__main__":
    with experiment(sys.argv[1], "script"):
        Prepare(size=3).submit()
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A project folder (tasks.py, run.py; scripts/main.py importing scripts/helper.py) whose
    experiments ran from it; returns (project folder, workspace)."""
    isolate(monkeypatch, tmp_path)
    folder = tmp_path / "project"
    (folder / "scripts").mkdir(parents=True)
    (folder / "tasks.py").write_text(TASKS)
    (folder / "run.py").write_text(RUN)
    (folder / "scripts" / "main.py").write_text(SCRIPT)
    (folder / "scripts" / "helper.py").write_text("DEFAULT_SIZE = 10\n")
    workspace = tmp_path / "ws"
    for script in ("run.py", "scripts/main.py"):
        subprocess.run([sys.executable, script, str(workspace)], cwd=folder, env=_env(),
                       check=True, capture_output=True, timeout=120)
    return folder, workspace


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "XPMSTORE"))}


def xpmstore(workspace: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([XPMSTORE, "--workspace", str(workspace), *args], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=120, check=False)


def identifiers(workspace: Path, name: str) -> list[str]:
    return sorted(os.listdir(workspace / "jobs" / name))


def test_why_of_an_identifier_imports_its_module_from_the_project_folder(
        project: tuple[Path, Path]) -> None:
    folder, workspace = project
    evaluate = identifiers(workspace, "tasks.Evaluate")[0]
    shown = xpmstore(workspace, folder, "why", evaluate[:10])
    assert shown.returncode == 0, shown.stderr
    assert f"tasks.Evaluate {evaluate}" in shown.stdout and "is done" in shown.stdout


def test_why_of_an_identifier_imports_a_script_and_its_neighbours(
        project: tuple[Path, Path], tmp_path: Path) -> None:
    _, workspace = project
    prepare = identifiers(workspace, "project.Prepare")[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shown = xpmstore(workspace, elsewhere, "why", prepare)
    assert shown.returncode == 0, shown.stderr
    assert "is done" in shown.stdout


def test_why_of_a_class_needs_no_value_for_a_sub_config_of_defaults(
        project: tuple[Path, Path]) -> None:
    folder, workspace = project
    shown = xpmstore(workspace, folder, "why", "tasks:Learn", "epochs=3")
    assert shown.returncode == 0, shown.stderr
    assert "epochs: 5 here, 3 asked" in shown.stdout
    report = json.loads(xpmstore(workspace, folder, "why", "tasks:Learn", "model.hidden=12",
                                 "--json").stdout)
    assert report["nearest"][0]["differences"] == [  # defaults shown as their values
        "epochs: 5 here, 100 asked", "model.hidden: 128 here, 12 asked"]
    through = xpmstore(workspace, folder, "why", "tasks:Evaluate", "learned.epochs=5")
    assert through.returncode == 0 and "is done" in through.stdout, through.stderr


def test_why_still_asks_for_a_sub_config_that_needs_values(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)
    (tmp_path / "needy.py").write_text(textwrap.dedent('''
        from xpmstore import Config, Param, Task

        class Data(Config):
            path: Param[str]

        class Use(Task):
            data: Param[Data]

            def execute(self):
                pass
    '''))
    (tmp_path / "ws" / "jobs").mkdir(parents=True)  # a workspace (a bare folder is refused)
    shown = xpmstore(tmp_path / "ws", tmp_path, "why", "needy:Use")
    assert shown.returncode == 2
    assert "Use.data" in shown.stderr and "Traceback" not in shown.stderr
