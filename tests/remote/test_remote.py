"""The remote, end to end (docs/remote.md): two workspaces sharing one remote — a directory and a
real SeaweedFS S3 server started by the suite — with real experiments and job processes.

Tasks count their executions in counter files, so "pulled, not run" is a count that stays put.
Tampering goes through the remote's own storage (a file rewritten, an S3 object replaced): no
mock of S3 or of the file system.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from xpmstore import experiment
from xpmstore.launchers import LocalLauncher
from xpmstore.remote import Remote, open_remote
from xpmstore.scheduler.progress import Progress
from xpmstore.scheduler.runlog import read_run
from xpmstore.store import manifest, taskdirs
from xpmstore.store.index import Index
from xpmstore.store.workspace import Workspace

from ..clihelpers import invoke, run_experiment
from ..schedtasks import Evaluate, Model, ModelLearn
from ..storehelpers import count_of, make_workspace
from .conftest import RemoteFactory, closed_port


def tasks(counters: Path) -> tuple[ModelLearn, Evaluate]:
    learn = ModelLearn(model=Model(hidden=4), epochs=3, counters=str(counters))
    return learn, Evaluate(learned=learn, counters=str(counters))


def reasons(workspace: Workspace, name: str) -> dict[str, str]:
    """identifier → the last reason the newest run of ``name`` recorded."""
    newest = sorted((workspace.experiments / name).glob("*.jsonl"))[-1]
    found = {}
    for line in read_run(newest):
        if line["type"] in ("job", "reason"):
            found[line["id"]] = line["reason"]
    return found


def taskdir(workspace: Workspace, task: ModelLearn | Evaluate) -> Path:
    return workspace.task_dir(type(task).__xpmid__, task.__identifier__)


def intact(workspace: Workspace, task: ModelLearn | Evaluate) -> bool:
    directory = taskdir(workspace, task)
    done = taskdirs.read_manifest(directory)
    return done is not None and manifest.verify(directory, done) == []


def remote_of(workspace: Workspace) -> Remote:
    remote = open_remote(workspace)
    assert remote is not None
    return remote


def test_a_task_run_in_one_workspace_is_pulled_not_run_in_another(
        workspaces: RemoteFactory, counters: Path) -> None:
    first, second = workspaces("first"), workspaces("second")
    learn, evaluate = tasks(counters)
    run_experiment(first, "exp", [evaluate])
    assert count_of(counters, "learn-3") == 1 and count_of(counters, "evaluate") == 1
    assert remote_of(first).present([learn.__identifier__, evaluate.__identifier__]) == {
        learn.__identifier__, evaluate.__identifier__}  # pushed (push = "auto") by the end

    stream = io.StringIO()  # what the user sees: pulled, not run
    with experiment(second, "exp", launcher=LocalLauncher(workers=2),
                    progress=Progress("exp", stream=stream)):
        evaluate.submit()
    assert count_of(counters, "learn-3") == 1 and count_of(counters, "evaluate") == 1
    assert set(reasons(second, "exp").values()) == {"reused:remote"}
    shown = stream.getvalue()
    assert f"pulling  {type(evaluate).__xpmid__} {evaluate.__identifier__[:12]}" in shown, shown
    assert "running " not in shown, shown
    assert intact(second, learn) and intact(second, evaluate)
    assert (taskdir(second, evaluate) / "score.txt").read_text() == "4 3\n"
    assert Index.for_workspace(second).get(evaluate.__identifier__) is not None

    run_experiment(second, "again", [evaluate])  # now local
    assert set(reasons(second, "again").values()) == {"reused:local"}


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x01]) + data[1:]


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "another manifest"])
def test_a_tampered_object_is_rejected_and_recomputed(
        workspaces: RemoteFactory, counters: Path, damage: str,
        capfd: pytest.CaptureFixture[str]) -> None:
    first, second = workspaces("first"), workspaces("second", push="manual")
    learn, evaluate = tasks(counters)
    run_experiment(first, "exp", [evaluate])
    remote = remote_of(first)
    if damage == "another manifest":
        key = remote.object_key(learn.__identifier__)
        replacement = remote.get_object(evaluate.__identifier__)
    else:
        done = taskdirs.read_manifest(taskdir(first, learn))
        assert done is not None
        digest = next(f.blake3 for f in done.files if f.path == "seen.json")  # its own bytes
        key = remote.blob_key(digest)
        data = remote.backend.get_bytes(key)
        assert data
        replacement = _flip(data) if damage == "flip a byte" else data[:-1]
    assert replacement is not None
    remote.backend.delete(key)
    remote.backend.put_bytes(key, replacement)
    capfd.readouterr()

    run_experiment(second, "exp", [evaluate])
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if learn.__identifier__ in line]
    assert len(warnings) == 1 and "rejected" in warnings[0], err
    assert count_of(counters, "learn-3") == 2  # recomputed here
    assert count_of(counters, "evaluate") == 1  # still pulled
    found = reasons(second, "exp")
    assert found[learn.__identifier__] == "ran:new"
    assert found[evaluate.__identifier__] == "reused:remote"
    assert intact(second, learn) and intact(second, evaluate)
    assert (taskdir(second, learn) / "parameters.pth").read_text() == "4 3\n"
    assert not [p for p in taskdir(second, learn).parent.iterdir() if p.name.startswith(".")]


def test_an_unreachable_remote_costs_a_warning_not_the_experiment(
        tmp_path: Path, counters: Path, capfd: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "xpmstore.toml").write_text(
        f'[remote]\nurl = "s3://nobody/here"\nendpoint_url = "http://127.0.0.1:{closed_port()}"'
        '\npush = "auto"\n')
    workspace = make_workspace(root)
    learn, evaluate = tasks(counters)
    started = time.monotonic()
    run_experiment(workspace, "exp", [evaluate])
    assert time.monotonic() - started < 20  # connection refused: no long timeout
    assert count_of(counters, "learn-3") == 1 and count_of(counters, "evaluate") == 1
    assert intact(workspace, learn) and intact(workspace, evaluate)
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "unreachable" in warnings[0], err


def test_the_command_line_pushes_pulls_lists_and_gets(
        workspaces: RemoteFactory, counters: Path) -> None:
    first, second = workspaces("first", push="manual"), workspaces("second", push="manual")
    learn, evaluate = tasks(counters)
    run_experiment(first, "exp", [evaluate])
    assert remote_of(first).identifiers() == set()  # manual: nothing pushed

    refused = invoke(first, "push")
    assert refused.exit_code == 2
    result = invoke(first, "push", "--all")
    assert result.exit_code == 0, result.output
    assert sorted(line.split("\t")[0] for line in result.stdout.splitlines()) == ["pushed"] * 2
    again = invoke(first, "push", learn.__identifier__[:10])
    assert again.stdout.split("\t")[0] == "present"

    listed = invoke(second, "ls", "--remote", "--json")
    assert listed.exit_code == 0, listed.output
    assert {e["identifier"] for e in json.loads(listed.stdout)} == {
        learn.__identifier__, evaluate.__identifier__}

    got = invoke(second, "get", evaluate.__identifier__[:12])  # absent here: pulled
    assert got.exit_code == 0, got.output
    assert got.stdout.strip() == str(taskdir(second, evaluate))
    assert intact(second, evaluate)
    pulled = invoke(second, "pull", learn.__identifier__)
    assert pulled.exit_code == 0, pulled.output
    assert intact(second, learn)
    assert count_of(counters, "learn-3") == 1

    missing = invoke(second, "pull", "ab" * 32)
    assert missing.exit_code == 1
