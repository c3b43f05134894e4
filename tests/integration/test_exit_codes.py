"""Exit codes of every command of the installed ``xpmstore`` console script (a real process of
the fresh environment of conftest.py): for each command, a case that fails (exit code 1: not
found or failed) and a case of bad input (exit code 2), each with ONE line on stderr that starts
``xpmstore:`` and no traceback; and ``--help`` of every command exits 0."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import Installation, Ran

pytestmark = pytest.mark.slow

UNKNOWN = "f" * 64
"""A well-formed identifier of nothing."""

MISSING = "{missing}"
"""Stands for a workspace folder that does not exist."""

# (command path, arguments after it, expected exit code); {count} is the Count task of the
# experiment (done, with a dependent), {empty} an empty folder.
CASES: list[tuple[str, list[str], int]] = [
    ("identify", ["{empty}"], 1),
    ("identify", ["/no/such/path"], 2),
    ("get", [UNKNOWN], 1),
    ("get", ["XYZ"], 2),
    ("ls", ["--workspace", MISSING], 1),
    ("ls", ["--status", "nope"], 2),
    ("show", [UNKNOWN], 1),
    ("show", ["../x"], 2),
    ("rm", ["{count}"], 1),  # done objects depend on it
    ("rm", ["XYZ"], 2),
    ("pin", [UNKNOWN], 1),
    ("pin", ["XYZ"], 2),
    ("unpin", [UNKNOWN], 1),
    ("unpin", ["XYZ"], 2),
    ("why", [UNKNOWN], 1),
    ("why", ["raises_on_import:Task"], 1),  # the user's module fails: one line, not a traceback
    ("why", ["zz!"], 2),
    ("du", ["--workspace", MISSING], 1),
    ("du", ["--by", "nope"], 2),
    ("gc", ["--workspace", MISSING], 1),
    ("gc", ["--older-than", "xyz"], 2),
    ("fsck", [], 1),  # the workspace of these cases holds a damaged object
    ("fsck", ["--nope"], 2),
    ("index", ["nope"], 2),
    ("index rebuild", ["--workspace", MISSING], 1),
    ("index rebuild", ["extra"], 2),
    ("jobs", ["--workspace", MISSING], 1),
    ("jobs", ["--nope"], 2),
    ("kill", ["{count}"], 1),  # not running
    ("kill", ["XYZ"], 2),
    ("logs", [UNKNOWN], 1),
    ("logs", ["XYZ"], 2),
    ("experiments", ["nope"], 1),
    ("experiments", ["../x"], 2),
    ("push", [UNKNOWN], 1),
    ("push", ["XYZ"], 2),
    ("pull", [UNKNOWN], 1),
    ("pull", ["XYZ"], 2),
    ("serve", ["--workspace", MISSING], 1),
    ("serve", ["--port", "nope"], 2),
    ("remote", ["nope"], 2),
    ("remote init", ["/dev/null/remote"], 1),  # cannot be created (under a file)
    ("remote init", ["--nope"], 2),
    ("table", ["raises_on_import:Task"], 1),
    ("table", ["nope"], 2),
    ("", ["--workspace", MISSING, "ls"], 1),
    ("", ["nope"], 2),
]


@pytest.fixture(scope="module")
def damaged(ran: Ran, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the experiment's workspace where the Count task's output was changed."""
    workspace = tmp_path_factory.mktemp("damaged") / "workspace"
    shutil.copytree(ran.workspace, workspace)
    (counted,) = workspace.glob(f"jobs/*/{ran.report['tasks']['count']}/count.txt")
    counted.write_text("damaged")
    return workspace


@pytest.fixture(scope="module")
def command_paths(installation: Installation) -> list[str]:
    """Every command and subcommand of the installed ``xpmstore`` ("" is the group itself)."""
    code = ("import json, click\n"
            "from xpmstore_cli.main import cli\n"
            "def walk(command, path):\n"
            "    yield ' '.join(path)\n"
            "    for name, sub in getattr(command, 'commands', {}).items():\n"
            "        yield from walk(sub, [*path, name])\n"
            "print(json.dumps(sorted(walk(cli, []))))")
    result = installation.run([installation.python, "-c", code])
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def test_every_command_has_a_failing_and_a_bad_input_case(command_paths: list[str]) -> None:
    assert "index rebuild" in command_paths and "fsck" in command_paths
    codes: dict[str, set[int]] = {path: set() for path in command_paths}
    for path, _, code in CASES:
        codes[path].add(code)
    groups = {"index", "remote"}  # a group alone has no failure of its own, only bad input
    assert {path: found for path, found in codes.items()
            if found != ({2} if path in groups else {1, 2})} == {}


@pytest.mark.parametrize(("path", "args", "code"), CASES,
                         ids=[f"{path or 'xpmstore'}:{code}:{' '.join(args)}"
                              for path, args, code in CASES])
def test_exit_code_and_one_line(installation: Installation, ran: Ran, damaged: Path,
                                tmp_path: Path, path: str, args: list[str], code: int) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (installation.elsewhere / "raises_on_import.py").write_text("raise RuntimeError('broken')\n")
    values = {"count": ran.report["tasks"]["count"], "empty": str(empty),
              "missing": str(tmp_path / "missing")}
    # a directory remote for the failures (push and pull find nothing there); none for bad
    # input, which is exit code 2 before any remote is looked for
    env = {"XPMSTORE_REMOTE": str(tmp_path / "remote")} if code == 1 else {}
    result = installation.xpmstore(*path.split(), *(arg.format(**values) for arg in args),
                                   workspace=damaged, env=env)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpmstore: "), result.stderr


def test_help_of_every_command(installation: Installation, command_paths: list[str]) -> None:
    for path in command_paths:
        result = installation.xpmstore(*path.split(), "--help")
        assert (result.returncode, result.stderr) == (0, ""), (path, result.stderr)
        assert result.stdout.startswith(f"Usage: {' '.join(['xpmstore', *path.split()])} "), (
            path, result.stdout)


@pytest.mark.parametrize("path", ["", "index", "remote"])
def test_a_group_alone_prints_its_help(installation: Installation, path: str) -> None:
    result = installation.xpmstore(*path.split())
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout.startswith(f"Usage: {' '.join(['xpmstore', *path.split()])} ")


def test_gc_without_an_answer_deletes_nothing_and_fails(installation: Installation,
                                                         damaged: Path) -> None:
    entries = sorted(damaged.glob("cache/*/*"))
    assert len(entries) == 1  # unrooted: --older-than 0s makes it a candidate
    result = installation.xpmstore("gc", "--older-than", "0s", workspace=damaged, env={})
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    question, error = result.stderr.splitlines()
    assert question == "delete these 1 objects? [y/N]: "
    assert error.startswith("xpmstore: no answer, nothing deleted"), result.stderr
    assert sorted(damaged.glob("cache/*/*")) == entries
