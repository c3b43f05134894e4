"""The command line's foundation: ``xpmstore identify``, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from xpmstore_cli.main import cli, main

from xpmstore import Config, Param, Task
from xpmstore.core.params import PARAMS_VERSION, params_of, to_json_bytes
from xpmstore.errors import FormatVersionError

from ..helpers import PYTHON

XPMSTORE = str(Path(PYTHON).parent / "xpmstore")
"""The console script installed in the test interpreter's environment."""


class Model(Config):
    __xpmid__ = "cli.Model"
    hidden: Param[int] = 128


class Learn(Task):
    __xpmid__ = "cli.Learn"
    model: Param[Model]
    epochs: Param[int] = 10


@pytest.fixture
def taskdir(tmp_path):
    """A directory holding the params.json of a task; returns (directory, identifier)."""
    learn = Learn(model=Model(hidden=64), epochs=3).tag("size", "small")
    directory = tmp_path / "jobs" / "cli.Learn" / learn.__identifier__
    directory.mkdir(parents=True)
    (directory / "params.json").write_bytes(to_json_bytes(params_of(learn)))
    return directory, learn.__identifier__


def _console(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([XPMSTORE, *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, check=False)


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {stderr!r}"
    assert "Traceback" not in stderr
    assert lines[0].startswith("xpmstore: ")
    return lines[0]


# --- through click's CliRunner ------------------------------------------------------------------


def test_identify_with_clirunner(taskdir):
    directory, identifier = taskdir
    runner = CliRunner()
    for target in (directory / "params.json", directory):
        result = runner.invoke(cli, ["identify", str(target)])
        assert result.exit_code == 0, result.output
        assert result.output == f"{identifier}\n"


def test_identify_with_clirunner_reports_a_foreign_file(tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    result = CliRunner().invoke(cli, ["identify", str(other)])
    assert result.exit_code != 0
    assert isinstance(result.exception, FormatVersionError)
    assert "not an xpmstore params.json" in str(result.exception)


def test_help_lists_identify():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "identify" in result.output and "Exit codes" in result.output


# --- main(): exit codes and one line on stderr --------------------------------------------------


def test_main_identify(taskdir, capsys):
    directory, identifier = taskdir
    assert main(["identify", str(directory)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{identifier}\n" and captured.err == ""


@pytest.mark.parametrize("content", ['{"hello": 1}', "not json at all", "[1, 2]", ""])
def test_main_not_a_params_file(tmp_path, capsys, content):
    target = tmp_path / "x.json"
    target.write_text(content)
    assert main(["identify", str(target)]) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert str(target) in line and captured.out == ""


def test_main_newer_params_file(taskdir, capsys):
    directory, _ = taskdir
    target = directory / "params.json"
    document = json.loads(target.read_bytes())
    document["version"] = PARAMS_VERSION + 1
    target.write_text(json.dumps(document))
    assert main(["identify", str(directory)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "newer" in line and "upgrade xpmstore" in line and str(target) in line


def test_main_directory_without_params(tmp_path, capsys):
    assert main(["identify", str(tmp_path)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "no params.json" in line


def test_main_usage_errors_are_one_line(tmp_path, capsys):
    assert main(["identify", str(tmp_path / "missing")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(tmp_path / "missing") in line and "does not exist" in line
    assert main(["no-such-command"]) == 2
    assert "no-such-command" in _one_error_line(capsys.readouterr().err)
    assert main(["identify"]) == 2
    assert "PATH" in _one_error_line(capsys.readouterr().err)


def test_main_malformed_identity_is_bad_input(taskdir, capsys):
    directory, _ = taskdir
    target = directory / "params.json"
    document = json.loads(target.read_bytes())
    document["identity"]["fields"]["epochs"] = {"$nonsense": 1}
    target.write_text(json.dumps(document))
    assert main(["identify", str(target)]) == 2
    assert "$nonsense" in _one_error_line(capsys.readouterr().err)


# --- the console script, a real process ---------------------------------------------------------


def test_console_identify(taskdir, tmp_path):
    directory, identifier = taskdir
    result = _console("identify", str(directory), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{identifier}\n" and result.stderr == ""


def test_console_not_a_params_file(tmp_path):
    target = tmp_path / "notes.json"
    target.write_text('{"format": "something else"}')
    result = _console("identify", str(target), cwd=tmp_path)
    assert result.returncode == 2
    assert str(target) in _one_error_line(result.stderr)
    assert result.stdout == ""


def test_console_newer_params_file(taskdir, tmp_path):
    directory, _ = taskdir
    target = directory / "params.json"
    document = json.loads(target.read_bytes())
    document["version"] = 99
    target.write_text(json.dumps(document))
    result = _console("identify", str(target), cwd=tmp_path)
    assert result.returncode == 2
    line = _one_error_line(result.stderr)
    assert "version 99 is newer" in line and "upgrade xpmstore" in line
