"""``xpmstore get``, ``ls``, ``show``, ``pin``/``unpin``, ``why``, ``du``, the workspace option,
help and start-up: through click's CliRunner, and get and ls as real processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from xpmstore_cli.main import cli, main

from xpmstore.store import taskdirs
from xpmstore.store.index import Index
from xpmstore.store.workspace import Workspace

from ..clihelpers import console, invoke, one_error_line, run_chain, task_dir
from ..gctasks import Step
from ..helpers import run_python
from ..storehelpers import isolate


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def filled(ws: Workspace) -> list[Step]:
    """20 tagged Steps (so that some one-character prefix is ambiguous), a chain of 2 made by an
    experiment, and a task directory that never finished."""
    steps = [Step(i=i, variant=1).tag("seed", i % 3) for i in range(20)]
    for step in steps:
        taskdirs.run_here(ws, step)
    run_chain(ws, "exp", 2, variant=2)
    taskdirs.prepare_task_dir(ws, Step(i=99, variant=3))
    return steps


# --- get --------------------------------------------------------------------------------------


def test_get_by_identifier_and_prefix(ws: Workspace, filled: list[Step]) -> None:
    step = filled[0]
    expected = str(task_dir(ws, step))
    for text in (step.__identifier__, step.__identifier__[:16]):
        result = invoke(ws, "get", text)
        assert result.exit_code == 0, result.output
        assert result.stdout == expected + "\n"
    record = json.loads(invoke(ws, "get", step.__identifier__[:16], "--json").stdout)
    assert record["identifier"] == step.__identifier__ and record["path"] == expected
    assert record["tags"] == {"seed": 0} and record["status"] == "done"
    assert set(record) >= {"kind", "name", "created", "last_access", "size", "dependencies",
                           "config", "copied_to"}


def test_get_refuses_a_bad_identifier_before_looking_for_a_workspace(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--workspace", str(tmp_path / "absent"), "get", "zz"]) == 2
    assert "not an identifier" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "absent").exists()


def test_get_misses(ws: Workspace, filled: list[Step], capsys: pytest.CaptureFixture[str]) -> None:
    first = {s.__identifier__[0] for s in filled}
    ambiguous = next(c for c in sorted(first)
                     if sum(s.__identifier__.startswith(c) for s in filled) > 1)
    unfinished = next(d.name for d in taskdirs.list_object_dirs(ws) if not taskdirs.is_done(d))
    for args, code, words in ((["0" * 64], 1, "no object"), (["../etc"], 2, "not an identifier"),
                              (["ABC"], 2, "hexadecimal"), ([ambiguous], 2, "matches"),
                              ([unfinished], 1, "is not done")):
        assert main(["--workspace", str(ws.root), "get", *args]) == code, args
        assert words in one_error_line(capsys.readouterr().err)


def test_get_to_copies_and_verifies(ws: Workspace, filled: list[Step], tmp_path: Path) -> None:
    step = filled[5]
    source = task_dir(ws, step)
    target = tmp_path / "copy"
    result = invoke(ws, "get", step.__identifier__, "--to", str(target))
    assert result.exit_code == 0 and result.stdout == f"{target}\n"
    assert (target / "data.bin").read_bytes() == (source / "data.bin").read_bytes()
    assert not (target / ".xpm").exists()
    inside = invoke(ws, "get", step.__identifier__, "--to", str(tmp_path))
    assert inside.stdout == f"{tmp_path / step.__identifier__}\n"
    again = invoke(ws, "get", step.__identifier__, "--to", str(tmp_path))
    assert again.exit_code == 2 and "exists" in again.stderr


def test_get_as_a_real_process(ws: Workspace, filled: list[Step]) -> None:
    step = filled[3]
    result = console(ws, "get", step.__identifier__[:20])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{task_dir(ws, step)}\n" and result.stderr == ""
    missing = console(ws, "get", "f" * 64)
    assert missing.returncode == 1 and "no object" in one_error_line(missing.stderr)
    bad = console(ws, "get", "--", "-x")
    assert bad.returncode == 2 and one_error_line(bad.stderr)


def test_get_imports_no_scheduler(ws: Workspace, filled: list[Step]) -> None:
    code = ("import sys; from xpmstore_cli.main import main; rc = main(sys.argv[1:]);"
            " heavy = [m for m in ('xpmstore.scheduler.experiment', 'xpmstore.core.config',"
            " 'xpmstore.store.lookup',"
            " 'importlib.metadata', 'subprocess', 'rich') if m in sys.modules];"
            " print(rc, heavy, file=sys.stderr)")
    result = run_python(["-c", code, "--workspace", str(ws.root), "get",
                         filled[0].__identifier__])
    assert result.stderr.strip() == "0 []", result.stderr
    helped = run_python(["-c", code, "--help"])
    assert helped.stderr.strip() == "0 []", helped.stderr


# --- ls ---------------------------------------------------------------------------------------


def test_ls_filters(ws: Workspace, filled: list[Step]) -> None:
    every = invoke(ws, "ls").stdout.splitlines()
    assert len(every) == 23
    rows = [line.split("\t") for line in every]
    assert all(len(row) == 6 and len(row[0]) == 64 for row in rows)
    assert {row[3] for row in rows} == {"done", "absent"}
    tagged = {line.split("\t")[0]
              for line in invoke(ws, "ls", "--tag", "seed=1").stdout.splitlines()}
    assert tagged == {s.__identifier__ for s in filled if s.i % 3 == 1}
    assert invoke(ws, "ls", "--tag", "seed=1", "--tag", "seed=2").stdout == ""
    assert invoke(ws, "ls", "--tag", "other=1").stdout == ""
    assert len(invoke(ws, "ls", "--status", "absent").stdout.splitlines()) == 1
    assert len(invoke(ws, "ls", "--name", "tests.gc.Step", "--status", "done").stdout
               .splitlines()) == 22
    assert invoke(ws, "ls", "--kind", "cache").stdout == ""
    assert invoke(ws, "ls", "--name", "no.such.Name").stdout == ""
    bad = invoke(ws, "ls", "--tag", "novalue")
    assert bad.exit_code == 2 and "name=value" in bad.stderr
    assert invoke(ws, "ls", "--status", "weird").exit_code == 2


def test_ls_json_has_every_field(ws: Workspace, filled: list[Step]) -> None:
    records = json.loads(invoke(ws, "ls", "--json").stdout)
    assert len(records) == 23
    fields = {"identifier", "kind", "name", "status", "path", "created", "last_access", "size",
              "tags", "dependencies", "config"}
    assert all(set(r) == fields for r in records)
    created = [r["created"] for r in records]
    assert created == sorted(created, reverse=True)


def test_ls_json_text_is_exactly_the_entries(ws: Workspace, filled: list[Step]) -> None:
    """``ls --json`` splices the index's own text for done tasks: the same values as the
    general path, even with a tag that looks like a path key, and under every filter."""
    from xpmstore.admin.ls import list_entries, list_json
    from xpmstore.store.lookup import Store

    odd = Step(i=99, variant=7).tag("note", ',"path":"/elsewhere", "é"\n')
    taskdirs.run_here(ws, odd)
    store = Store(ws)
    for filters in ({}, {"status": "done"}, {"kind": "task"}, {"name": "tests.gc.Step"},
                    {"status": "absent"}, {"kind": "cache"}):
        parsed = [json.loads(line) for line in list_json(store, **filters)]
        assert parsed == list_entries(store, **filters)
    spliced = next(json.loads(line) for line in list_json(store) if odd.__identifier__ in line)
    assert spliced["path"] == str(task_dir(ws, odd)) and spliced["config"] is None
    assert spliced["tags"] == {"note": ',"path":"/elsewhere", "é"\n'}


def test_ls_as_a_real_process(ws: Workspace, filled: list[Step]) -> None:
    result = console(ws, "ls", "--tag", "seed=2")
    assert result.returncode == 0, result.stderr
    assert {line.split("\t")[0] for line in result.stdout.splitlines()} == {
        s.__identifier__ for s in filled if s.i % 3 == 2}
    records = json.loads(console(ws, "ls", "--json").stdout)
    assert len(records) == 23
    missing = console(ws.root / "nowhere", "ls")
    assert missing.returncode == 1 and "no workspace" in one_error_line(missing.stderr)
    assert not (ws.root / "nowhere").exists()


# --- show, pin, du, why -----------------------------------------------------------------------


def test_show(ws: Workspace) -> None:
    steps = run_chain(ws, "exp", 2, variant=4)
    first, second = (s.__identifier__ for s in steps)
    text = invoke(ws, "show", first[:8]).stdout
    lines = dict(line.split("\t", 1) for line in text.splitlines())
    assert lines["identifier"] == first and lines["status"] == "done"
    assert lines["dependent"] == second and lines["reason"].startswith("ran:new (exp/")
    assert lines["pinned"] == "no" and json.loads(lines["params"]) == {"i": 0, "variant": 4}
    details = json.loads(invoke(ws, "show", second, "--json").stdout)
    assert details["dependencies"] == [first] and details["state"]["state"] == "done"
    assert set(details["logs"]) == {"stdout", "stderr"}
    unfinished = taskdirs.prepare_task_dir(ws, Step(i=7, variant=4))
    assert json.loads(invoke(ws, "show", unfinished.name, "--json").stdout)["status"] == "absent"
    assert invoke(ws, "show", "e" * 64).exit_code == 1


def test_show_of_an_unknown_object_points_to_get_when_a_remote_is_set(
        ws: Workspace, tmp_path: Path) -> None:
    """show looks in the workspace only; with a remote configured, its not-found line says
    that `get` pulls (without one, it does not mention it)."""
    alone = console(ws, "show", "abcdef12")
    assert alone.returncode == 1 and "get" not in one_error_line(alone.stderr)
    hinted = console(ws, "show", "abcdef12",
                     env={"XPMSTORE_REMOTE": f"file://{tmp_path / 'remote'}"})
    line = one_error_line(hinted.stderr)
    assert hinted.returncode == 1 and "xpmstore get abcdef12" in line and "remote" in line


def test_show_prints_values_and_the_tags_a_failed_task_was_submitted_with(
        ws: Workspace, tmp_path: Path) -> None:
    from xpmstore import ExperimentFailed

    from ..clihelpers import run_experiment
    from ..schedtasks import Batched

    counters = tmp_path / "counters"
    counters.mkdir()
    with pytest.raises(ExperimentFailed):
        run_experiment(ws, "exp", [Batched(n=1, batch=64, counters=str(counters))
                                   .tag("lr", 0.5).tag("size", "big")])
    failed = Batched(n=1).__identifier__
    text = invoke(ws, "show", failed).stdout
    lines = dict(line.split("\t", 1) for line in text.splitlines())
    assert lines["status"] == "failed" and lines["tags"] == "lr=0.5, size=big"
    assert json.loads(lines["values"]) == {"batch": 64, "counters": str(counters), "limit": 32}
    run_experiment(ws, "exp", [Batched(n=1, batch=16, counters=str(counters))])
    details = json.loads(invoke(ws, "show", failed, "--json").stdout)
    assert details["status"] == "done" and details["values"]["batch"] == 16
    assert details["tags"] == {}  # done: the tags of the submission that made it
    run_experiment(ws, "exp", [Batched(n=1, batch=8, counters=str(counters)).tag("a", 1)])
    details = json.loads(invoke(ws, "show", failed, "--json").stdout)
    assert details["values"]["batch"] == 16 and details["tags"] == {"a": 1}


@pytest.mark.parametrize("damage", ["garbage", "not an object", "missing"])
def test_show_says_when_params_json_is_damaged(ws: Workspace, damage: str) -> None:
    # a damaged params.json used to leave the params line out without a word
    steps = run_chain(ws, "exp", 2, variant=6)
    params = task_dir(ws, steps[0]) / "params.json"
    if damage == "missing":
        params.unlink()
    else:
        params.write_text('{"broken' if damage == "garbage" else "[1, 2]")
    result = console(ws, "show", steps[0].__identifier__)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    assert "params" not in lines
    assert lines["damaged"].startswith(f"{params}: "), lines
    details = json.loads(console(ws, "show", steps[0].__identifier__, "--json").stdout)
    assert details["damaged"] == lines["damaged"] and details["params"] is None
    intact = json.loads(console(ws, "show", steps[1].__identifier__, "--json").stdout)
    assert intact["damaged"] is None and intact["params"] is not None


def test_show_after_fsck_repair_gives_one_status(ws: Workspace) -> None:
    steps = run_chain(ws, "exp", 2, variant=5)
    directory = task_dir(ws, steps[0])
    (directory / "out.txt").write_text("damaged")
    assert invoke(ws, "fsck", "--repair").exit_code == 0
    details = json.loads(invoke(ws, "show", steps[0].__identifier__, "--json").stdout)
    # Before: status "absent" while the state still said "done".
    assert (details["status"], details["state"]["state"]) == ("failed", "failed")
    assert details["state"]["reason"].startswith("damaged: out.txt")
    [job] = [j for j in json.loads(invoke(ws, "jobs", "--json").stdout)
             if j["identifier"] == steps[0].__identifier__]
    assert job["status"] == "failed"
    [entry] = json.loads(invoke(ws, "ls", "--status", "failed", "--json").stdout)
    assert entry["identifier"] == steps[0].__identifier__
    run_chain(ws, "exp", 2, variant=5)  # the next submit runs it again, as a failed job
    details = json.loads(invoke(ws, "show", steps[0].__identifier__, "--json").stdout)
    assert (details["status"], details["state"]["state"]) == ("done", "done")
    assert details["reasons"][-1]["reason"] == "ran:failed-before"
    assert details["attempts"][-1]["state"] == "failed"


def test_pin_and_unpin(ws: Workspace, filled: list[Step]) -> None:
    step = filled[1]
    assert invoke(ws, "pin", step.__identifier__[:12]).exit_code == 0
    assert Index.for_workspace(ws).pins() == {step.__identifier__}
    assert (ws.private / "pins" / step.__identifier__).exists()
    shown = json.loads(invoke(ws, "show", step.__identifier__, "--json").stdout)
    assert shown["pinned"] is True
    assert invoke(ws, "unpin", step.__identifier__).exit_code == 0
    assert Index.for_workspace(ws).pins() == set()
    assert invoke(ws, "pin", "0" * 64).exit_code == 1


def test_du(ws: Workspace, filled: list[Step]) -> None:
    groups = json.loads(invoke(ws, "du", "--by", "name", "--json").stdout)
    assert [g["key"] for g in groups] == ["tests.gc.Step"] and groups[0]["count"] == 22
    sizes = sum(r["size"] for r in json.loads(invoke(ws, "ls", "--json").stdout))
    assert groups[0]["size"] == sizes
    text = invoke(ws, "du").stdout.splitlines()
    assert text[-1].split("\t") == ["total", "22", str(sizes)]


def test_why(ws: Workspace, filled: list[Step], monkeypatch: pytest.MonkeyPatch) -> None:
    from ..helpers import REPO_ROOT

    monkeypatch.chdir(REPO_ROOT)
    done = invoke(ws, "why", "tests.gctasks:Step", "i=2", "variant=1")
    assert done.exit_code == 0 and "is done" in done.stdout
    miss = json.loads(invoke(ws, "why", "tests.gctasks:Step", "i=2", "variant=8", "--json").stdout)
    assert miss["status"] == "absent"
    nearest = miss["nearest"][0]
    assert nearest["differences"] == ["variant: 1 here, 8 asked"]
    assert nearest["identifier"] == Step(i=2, variant=1).__identifier__
    for args in (["i=two"], ["j=1"], ["i"], ["i=1", "previous.i=3"]):
        result = invoke(ws, "why", "tests.gctasks:Step", *args)
        assert result.exit_code == 2, (args, result.output)
    assert invoke(ws, "why", "tests.gctasks:Nothing").exit_code == 1
    assert invoke(ws, "why", "not a class:x").exit_code == 2
    unfinished = next(d for d in taskdirs.list_object_dirs(ws) if not taskdirs.is_done(d))
    by_id = invoke(ws, "why", unfinished.name[:10])
    assert by_id.exit_code == 0 and "is absent here" in by_id.stdout


# --- the workspace, help ----------------------------------------------------------------------


def test_workspace_from_the_environment_and_after_the_command(
        ws: Workspace, filled: list[Step], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    from click.testing import CliRunner

    step = filled[0]
    monkeypatch.setenv("XPMSTORE_WORKSPACE", str(ws.root))
    assert CliRunner().invoke(cli, ["get", step.__identifier__]).exit_code == 0
    monkeypatch.setenv("XPMSTORE_WORKSPACE", str(tmp_path / "elsewhere"))
    assert CliRunner().invoke(cli, ["get", step.__identifier__]).exit_code == 1
    moved = CliRunner().invoke(cli, ["get", step.__identifier__, "--workspace", str(ws.root)])
    assert moved.exit_code == 0
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("command", ["get", "ls", "show", "rm", "pin", "unpin", "why", "du",
                                     "gc", "fsck", "index", "jobs", "kill", "logs",
                                     "experiments"])
def test_every_command_teaches(command: str) -> None:
    result = invoke(None, command, "--help")
    assert result.exit_code == 0 and "Usage: " in result.output
    assert len(result.output.splitlines()) > 5
    assert command in invoke(None, "--help").output


def test_run_from_another_directory(ws: Workspace, filled: list[Step], tmp_path: Path) -> None:
    os.makedirs(tmp_path / "cwd")
    result = run_python(["-m", "xpmstore_cli.main", "--workspace", str(ws.root), "ls"],
                        cwd=tmp_path / "cwd")
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 23
