"""``xpmstore table``: tab-separated with a header, CSV, JSON, sorting, filters read with the
fields' types, tags, statuses, errors as one line, and the remote's tasks (``--remote``) with
their metrics files downloaded and checked."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from xpmstore.remote import open_remote, push
from xpmstore.store import taskdirs
from xpmstore.store.workspace import Workspace

from ..clihelpers import invoke, one_error_line
from ..progresstasks import Hyper, Judged, Scored
from ..storehelpers import active, isolate, make_workspace

CLASS = "tests.progresstasks:Scored"


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Workspace:
    isolate(monkeypatch, tmp_path)
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def tasks(ws: Workspace) -> list[Scored]:
    """Four done Scored tasks (lr 0.1 and 0.2, seeds 0 and 1, tagged by seed) and a Judged."""
    made = [Scored(hyper=Hyper(lr=lr), seed=seed).tag("seed", seed)
            for lr in (0.1, 0.2) for seed in (0, 1)]
    with active(ws):
        for task in [*made, Judged(scored=made[3], strict=True)]:
            taskdirs.run_here(ws, task)
    return made


def tsv(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines()]


def test_tab_separated_with_a_header_line(ws: Workspace, tasks: list[Scored]) -> None:
    result = invoke(ws, "table", CLASS, "--sort", "-accuracy")
    assert result.exit_code == 0, result.stderr
    lines = tsv(result.stdout)
    assert lines[0] == ["id", "hyper.lr", "seed", "tag:seed", "accuracy", "eval.loss", "eval.n"]
    assert [line[0] for line in lines[1:]] == [t.__identifier__ for t in reversed(tasks)]
    assert lines[1][1:5] == ["0.2", "1", "1", "0.71"]


def test_csv_and_json(ws: Workspace, tasks: list[Scored]) -> None:
    rows = list(csv.DictReader(io.StringIO(invoke(ws, "table", CLASS, "--csv",
                                                  "--sort", "seed").stdout)))
    assert [r["seed"] for r in rows] == ["0", "0", "1", "1"]
    assert set(rows[0]) == {"id", "hyper.lr", "seed", "tag:seed", "accuracy", "eval.loss",
                            "eval.n"}
    found = json.loads(invoke(ws, "table", CLASS, "--json", "--all-params").stdout)
    assert len(found) == 4 and found[0]["hyper.layers"] == 2 and found[0]["name"] == "run"
    assert {r["id"] for r in found} == {t.__identifier__ for t in tasks}
    assert invoke(ws, "table", CLASS, "--json", "--csv").exit_code == 2


def test_filters_are_read_with_the_types_of_the_fields(ws: Workspace,
                                                       tasks: list[Scored]) -> None:
    result = invoke(ws, "table", CLASS, "hyper.lr=0.2", "--json")
    assert {r["id"] for r in json.loads(result.stdout)} == {t.__identifier__ for t in tasks[2:]}
    tagged = json.loads(invoke(ws, "table", CLASS, "--tag", "seed=1", "--json").stdout)
    assert {r["id"] for r in tagged} == {tasks[1].__identifier__, tasks[3].__identifier__}
    judged = json.loads(invoke(ws, "table", "tests.progresstasks:Judged", "scored.seed=1",
                               "--json").stdout)
    assert [r["judged"] for r in judged] == [True]
    lines = tsv(invoke(ws, "table", CLASS, "--no-metrics", "seed=0").stdout)
    assert lines[0] == ["id", "hyper.lr", "tag:seed"]  # tags: all of them


@pytest.mark.parametrize(("args", "code", "says"), [
    (["hyper.lr=fast"], 2, "Hyper.lr: 'fast' is not a float"),
    (["nope=1"], 2, "no Param named 'nope'"),
    (["--sort", "-nope"], 2, "no column 'nope'"),
    (["--metrics", "../x.json"], 2, "relative to the task directory"),
    (["seed=9"], 1, "no done task of tests.progresstasks:Scored matches"),
    (["--status", "failed"], 1, "no failed task"),
])
def test_errors_are_one_line(ws: Workspace, tasks: list[Scored], args: list[str], code: int,
                             says: str) -> None:
    result = invoke(ws, "table", CLASS, *args)
    assert result.exit_code == code
    assert says in one_error_line(result.stderr)


def test_a_config_class_or_a_malformed_name_is_bad_input(ws: Workspace) -> None:
    for target, says in (("tests.progresstasks:Hyper", "not a Task class"),
                         ("nope", "module:Class")):
        result = invoke(ws, "table", target)
        assert result.exit_code == 2
        assert says in one_error_line(result.stderr)


def test_every_status_has_a_status_column(ws: Workspace, tasks: list[Scored]) -> None:
    lines = tsv(invoke(ws, "table", CLASS, "--status", "any").stdout)
    assert lines[0][:2] == ["id", "status"] and {line[1] for line in lines[1:]} == {"done"}


def test_the_remote_tasks_with_their_metrics(ws: Workspace, tasks: list[Scored],
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "remote").mkdir()  # as `xpmstore remote init` would: a push never does
    monkeypatch.setenv("XPMSTORE_REMOTE", f"file://{tmp_path / 'remote'}")
    remote = open_remote(ws)
    assert remote is not None
    report = push(ws, [t.__identifier__ for t in tasks[:3]], remote)
    assert len(report.pushed) == 3
    found = json.loads(invoke(ws, "table", CLASS, "--remote", "--json").stdout)
    local = {r["id"]: r for r in json.loads(invoke(ws, "table", CLASS, "--json").stdout)}
    assert len(found) == 3
    for row in found:  # the same params, tags and metrics as here
        assert row == {k: v for k, v in local[row["id"]].items() if k in row}
    assert {r["hyper.lr"] for r in found} == {0.1, 0.2}
    filtered = json.loads(invoke(ws, "table", CLASS, "--remote", "seed=1", "--json").stdout)
    assert [r["id"] for r in filtered] == [tasks[1].__identifier__]


def test_a_corrupt_metrics_blob_of_the_remote_gives_no_values_and_one_warning(
        ws: Workspace, tasks: list[Scored], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "remote"
    root.mkdir()  # as `xpmstore remote init` would: a push never does
    monkeypatch.setenv("XPMSTORE_REMOTE", f"file://{root}")
    remote = open_remote(ws)
    assert remote is not None
    push(ws, [tasks[0].__identifier__], remote)
    metrics = ws.task_dir("tests.table.Scored", tasks[0].__identifier__) / "metrics.json"
    from blake3 import blake3

    digest = blake3(metrics.read_bytes()).hexdigest()
    blob = root / "cas" / digest[:2] / digest
    blob.chmod(0o644)
    blob.write_bytes(b'{"accuracy": 1.0, "x": 1}')  # its size and blake3 no longer match
    result = invoke(ws, "table", CLASS, "--remote", "--all-params", "--json")
    assert result.exit_code == 0
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    assert "accuracy" not in rows[0]
    assert "metrics not read from the remote" in one_error_line(result.stderr)


def test_no_remote_configured(ws: Workspace, tasks: list[Scored]) -> None:
    result = invoke(ws, "table", CLASS, "--remote")
    assert result.exit_code == 1
    assert "no remote configured" in one_error_line(result.stderr)


def test_what_the_users_module_prints_at_import_goes_to_stderr(
        ws: Workspace, tasks: list[Scored], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A script with a print at its top, named as the class's module: the command's output
    # (JSON here, for a pipe) must stay only the command's.
    (tmp_path / "chatty_script.py").write_text(
        "import sys\nprint('hello from the top of my script')\n"
        "sys.stdout.write('more\\n')\nfrom tests.progresstasks import Scored\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = invoke(ws, "table", "chatty_script:Scored", "--json")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 4
    assert "hello from the top of my script" in result.stderr and "more" in result.stderr
