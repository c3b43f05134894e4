"""Results as a table (Store.table, xpmstore.store.table): the columns (identifier, the params that
differ, tags, metrics), the filters, the statuses, and metrics files that are damaged or hostile."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from xpmstore import Store
from xpmstore.errors import ConfigTypeError, TextValueError, UnknownFieldError
from xpmstore.store import taskdirs
from xpmstore.store.table import TaskRow, build_rows, flatten_metrics, sort_rows
from xpmstore.store.taskstate import write_state
from xpmstore.store.workspace import Workspace

from ..progresstasks import Hyper, Judged, Scored
from ..storehelpers import active, isolate, make_workspace


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Workspace:
    isolate(monkeypatch, tmp_path)
    return make_workspace(tmp_path / "ws")


def run(ws: Workspace, *tasks: Any) -> list[Path]:
    with active(ws):
        return [taskdirs.run_here(ws, task) for task in tasks]


def sweep(ws: Workspace) -> list[Scored]:
    """Four Scored tasks: lr 0.1 (the default) and 0.2, seeds 0 and 1, tagged by seed."""
    tasks = [Scored(hyper=Hyper(lr=lr), seed=seed).tag("seed", seed)
             for lr in (0.1, 0.2) for seed in (0, 1)]
    run(ws, *tasks)
    return tasks


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def test_columns_are_the_identifier_the_params_that_differ_the_tags_and_the_metrics(
        ws: Workspace) -> None:
    tasks = sweep(ws)
    rows = Store(ws).table(Scored)
    assert len(rows) == 4
    assert all(list(row) == ["id", "hyper.lr", "seed", "tag:seed", "accuracy", "eval.loss",
                             "eval.n"] for row in rows)
    found = by_id(rows)
    first = found[tasks[0].__identifier__]  # lr left at its default: the default is shown
    assert first == {"id": tasks[0].__identifier__, "hyper.lr": 0.1, "seed": 0, "tag:seed": 0,
                     "accuracy": 0.6, "eval.loss": pytest.approx(0.4), "eval.n": 10}
    assert found[tasks[3].__identifier__]["hyper.lr"] == 0.2
    assert found[tasks[3].__identifier__]["accuracy"] == 0.71


def test_all_params_keeps_the_params_that_are_the_same_everywhere(ws: Workspace) -> None:
    sweep(ws)
    row = Store(ws).table(Scored, all_params=True)[0]
    assert list(row)[:5] == ["id", "hyper.lr", "hyper.layers", "seed", "name"]
    assert row["hyper.layers"] == 2 and row["name"] == "run"


def test_a_task_reference_is_followed_field_by_field(ws: Workspace) -> None:
    tasks = sweep(ws)
    run(ws, *[Judged(scored=t) for t in tasks[:2]], Judged(scored=tasks[2], strict=True))
    rows = Store(ws).table(Judged)
    assert {tuple(row) for row in rows} == {
        ("id", "scored.hyper.lr", "scored.seed", "strict", "tag:seed", "judged")}
    assert sorted((r["scored.hyper.lr"], r["scored.seed"], r["strict"]) for r in rows) == [
        (0.1, 0, False), (0.1, 1, False), (0.2, 0, True)]


def test_tasks_made_on_another_host_appear_and_removed_ones_go(
        ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = sweep(ws)
    run(ws, Judged(scored=tasks[0]), Judged(scored=tasks[3], strict=True))
    monkeypatch.setenv("XPMSTORE_INDEX_DIR", str(tmp_path / "other-host"))  # an empty index
    store = Store(Workspace.at(ws.root))
    rows = store.table(Judged)  # its folder is indexed; the Scored it holds read from disk
    assert sorted((r["scored.hyper.lr"], r["scored.seed"], r["judged"]) for r in rows) == [
        (0.1, 0, False), (0.2, 1, True)]
    shutil.rmtree(ws.task_dir("tests.table.Judged", Judged(scored=tasks[0]).__identifier__))
    assert [r["judged"] for r in store.table(Judged)] == [True]
    assert store.index.by_name("tests.table.Judged") == [
        Judged(scored=tasks[3], strict=True).__identifier__]


def test_filters_and_tags_select_rows_as_find_does(ws: Workspace) -> None:
    tasks = sweep(ws)
    store = Store(ws)
    assert {r["id"] for r in store.table(Scored, hyper__lr=0.2)} == {
        t.__identifier__ for t in tasks[2:]}
    assert {r["id"] for r in store.table(Scored, tags={"seed": 1})} == {
        tasks[1].__identifier__, tasks[3].__identifier__}
    one = store.table(Scored, hyper__lr=0.2, seed=1)
    assert [r["id"] for r in one] == [tasks[3].__identifier__]
    assert list(one[0]) == ["id", "tag:seed", "accuracy", "eval.loss", "eval.n"]  # 1 row
    assert store.table(Scored, seed=7) == []
    with pytest.raises(UnknownFieldError):
        store.table(Scored, learning_rate=0.1)


def test_metrics_from_another_file_a_callable_or_none(ws: Workspace) -> None:
    tasks = sweep(ws)
    directory = ws.task_dir("tests.table.Scored", tasks[0].__identifier__)
    (directory / "eval").mkdir()
    (directory / "eval" / "scores.json").write_text('{"f1": 0.5}')
    store = Store(ws)
    rows = by_id(store.table(Scored, metrics="eval/scores.json"))
    assert rows[tasks[0].__identifier__]["f1"] == 0.5
    assert rows[tasks[1].__identifier__]["f1"] is None  # no such file: no values
    seen: list[Path] = []

    def size(taskdir: Path) -> dict[str, Any]:
        seen.append(taskdir)
        return {"files": {"count": len(os.listdir(taskdir))}}

    rows = by_id(store.table(Scored, metrics=size))
    assert rows[tasks[0].__identifier__]["files.count"] == len(os.listdir(directory))
    assert sorted(seen) == sorted(ws.task_dir("tests.table.Scored", t.__identifier__)
                                  for t in tasks)
    assert list(store.table(Scored, metrics=None)[0]) == ["id", "hyper.lr", "seed", "tag:seed"]
    with pytest.raises(ConfigTypeError, match="returned a list"):
        store.table(Scored, metrics=lambda taskdir: [1, 2])


@pytest.mark.parametrize("path", ["../secret.json", "/etc/passwd", "", ".xpm/done", "a//b",
                                  "./metrics.json"])
def test_a_metrics_path_outside_the_task_directory_is_refused(ws: Workspace, path: str) -> None:
    sweep(ws)
    with pytest.raises(TextValueError, match="relative to the task directory"):
        Store(ws).table(Scored, metrics=path)


def test_damaged_and_hostile_metrics_files_give_no_values_and_one_warning(
        ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks = sweep(ws)
    directories = [ws.task_dir("tests.table.Scored", t.__identifier__) for t in tasks]
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    (directories[0] / "metrics.json").write_text("{not json")
    (directories[1] / "metrics.json").unlink()
    (directories[1] / "metrics.json").symlink_to(secret)  # never followed
    (directories[2] / "metrics.json").write_text("[1, 2, 3]")
    (directories[3] / "metrics.json").unlink()
    os.mkfifo(directories[3] / "metrics.json")  # opening must not block
    rows = Store(ws).table(Scored)
    assert len(rows) == 4
    assert all(list(row) == ["id", "hyper.lr", "seed", "tag:seed"] for row in rows)
    assert "hunter2" not in json.dumps(rows)
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1
    assert warning[0].startswith("xpmstore: warning: metrics not read from ")
    assert warning[0].endswith("(and 3 more)")


def test_metrics_through_a_folder_that_leaves_the_task_directory_are_refused(
        ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks = sweep(ws)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "scores.json").write_text('{"stolen": 1}')
    (ws.task_dir("tests.table.Scored", tasks[0].__identifier__) / "eval").symlink_to(outside)
    rows = Store(ws).table(Scored, metrics="eval/scores.json")
    assert all("stolen" not in row for row in rows)
    assert "leaves the task directory" in capsys.readouterr().err


def test_failed_tasks_and_every_status(ws: Workspace) -> None:
    tasks = sweep(ws)
    failed = Scored(hyper=Hyper(lr=0.3))
    with active(ws):
        directory = taskdirs.prepare_task_dir(ws, failed)
    write_state(directory, "failed", reason="boom")
    store = Store(ws)
    assert [r["id"] for r in store.table(Scored, status="failed")] == [failed.__identifier__]
    every = store.table(Scored, status=None)
    assert len(every) == 5 and all(list(r)[:2] == ["id", "status"] for r in every)
    assert by_id(every)[failed.__identifier__]["status"] == "failed"
    assert by_id(every)[failed.__identifier__]["hyper.lr"] == 0.3
    assert by_id(every)[failed.__identifier__]["accuracy"] is None
    assert {r["status"] for r in every} == {"done", "failed"}
    assert len(store.table(Scored)) == len(tasks)
    assert store.table(Scored, status="failed", hyper__lr=0.1) == []
    with pytest.raises(TextValueError, match="expected one of"):
        store.table(Scored, status="finished")


def test_what_is_not_a_task_class_is_refused(ws: Workspace) -> None:
    with pytest.raises(ConfigTypeError, match="not a Task class"):
        Store(ws).table(Hyper)  # type: ignore[arg-type]
    with pytest.raises(ConfigTypeError, match="not a Task class"):
        Store(ws).table("tests.table.Scored")  # type: ignore[arg-type]


def test_an_empty_store_gives_no_rows(ws: Workspace) -> None:
    assert Store(ws).table(Scored) == []


# --- the pure parts -------------------------------------------------------------------------


def test_names_that_collide_take_their_kind_as_prefix() -> None:
    rows = [TaskRow("a" * 64, None, {"lr": 1}, "done", 0.0, metrics={"id": 1, "lr": 2, "x": 3},
                    params={"id": 1, "lr": 0.1}),
            TaskRow("b" * 64, None, {}, "done", 0.0, metrics={"tag:lr": 4, "lr": 5},
                    params={"id": 2, "lr": 0.2})]
    table = build_rows(rows)
    assert list(table[0]) == ["id", "param:id", "lr", "tag:lr", "metric:id", "metric:lr", "x",
                              "metric:tag:lr"]
    assert table[1] == {"id": "b" * 64, "param:id": 2, "lr": 0.2, "tag:lr": None,
                        "metric:id": None, "metric:lr": 5, "x": None, "metric:tag:lr": 4}


def test_a_metric_named_like_a_param_keeps_its_name_whether_the_param_is_shown() -> None:
    def table(lrs: tuple[float, float]) -> list[str]:
        return list(build_rows([TaskRow(str(i), None, {}, "done", 0.0, metrics={"lr": 1},
                                        params={"lr": lr, "status": 1})
                                for i, lr in enumerate(lrs)])[0])

    assert table((0.1, 0.2)) == ["id", "lr", "metric:lr"]
    assert table((0.1, 0.1)) == ["id", "metric:lr"]  # lr is the same everywhere: not shown
    assert list(build_rows([TaskRow("a", None, {}, "done", 0.0, params={"status": 1})],
                           all_params=True)[0]) == ["id", "param:status"]


def test_a_param_absent_from_some_rows_differs() -> None:
    rows = [TaskRow("a", None, {}, "done", 0.0, params={"x": 1, "y": [1, 2]}),
            TaskRow("b", None, {}, "done", 0.0, params={"y": [1, 2]}),
            TaskRow("c", None, {}, "done", 0.0, params={"x": 1, "y": [1, 2]})]
    assert [list(r) for r in build_rows(rows)] == [["id", "x"]] * 3


def test_flatten_metrics_and_sort_rows() -> None:
    assert flatten_metrics({"a": {"b": {"c": 1}, "d": []}, "e": {}}) == {
        "a.b.c": 1, "a.d": [], "e": {}}
    rows = [{"id": "1", "acc": 0.5}, {"id": "2", "acc": None}, {"id": "3", "acc": 0.9},
            {"id": "4", "acc": float("nan")}, {"id": "5", "acc": "n/a"}]
    assert [r["id"] for r in sort_rows(rows, "acc")] == ["1", "3", "5", "2", "4"]
    assert [r["id"] for r in sort_rows(rows, "-acc")] == ["3", "1", "5", "2", "4"]
    with pytest.raises(TextValueError, match="no column 'accuracy'"):
        sort_rows(rows, "accuracy")
