"""The "remote unreachable" verdict (docs/remote.md): noticed once per process — pulls and pushes of
``@cache`` entries together pay one call and its retry — and passed by an experiment to the jobs
it launches (``XPMSTORE_REMOTE_DOWN=1``), which then never ask the remote.  Entries created
meanwhile wait in the outbox and are pushed by a later experiment that reaches the remote.

The unreachable remote is a real TCP listener on loopback that closes every connection at once
(:class:`tests.remote.listener.ClosingListener`): every S3 call fails fast, and the listener counts
who tried."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xpmstore.remote import reach
from xpmstore.store.workspace import Workspace

from ..clihelpers import run_experiment
from ..storehelpers import count_of, make_workspace
from .cachetasks import UsesTerms
from .listener import ClosingListener
from .test_cache_push import create_in_a_script, entry_of, in_remote, notes


@pytest.fixture
def listener() -> Iterator[ClosingListener]:
    server = ClosingListener()
    try:
        yield server
    finally:
        server.close()


def unreachable_workspace(tmp_path: Path, listener: ClosingListener) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "xpmstore.toml").write_text(
        f'[remote]\nurl = "s3://team/xpm"\nendpoint_url = "{listener.endpoint}"\n'
        'push = "auto"\n')
    return make_workspace(root)


def warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if "warning" in line]


def test_a_process_notices_once_and_a_process_told_never_asks(
        tmp_path: Path, counters: Path, listener: ClosingListener) -> None:
    workspace = unreachable_workspace(tmp_path, listener)

    told = create_in_a_script(workspace, counters, [1, 2, 3], **{reach.DOWN_VARIABLE: "1"})
    assert told.returncode == 0, told.stderr
    assert warnings(told.stderr) == []
    assert listener.settled_count() == 0  # three misses, three entries: not one connection

    alone = create_in_a_script(workspace, counters, [4, 5, 6])
    assert alone.returncode == 0, alone.stderr
    lines = warnings(alone.stderr)
    assert len(lines) == 1 and "unreachable" in lines[0], alone.stderr
    # one call and its one retry; the other misses and the three pushes asked nothing
    assert 1 <= listener.settled_count() <= 2

    assert [count_of(counters, f"terms-{n}") for n in range(1, 7)] == [1] * 6
    assert notes(workspace) == sorted(f"tests.store.Terms.{entry_of(n)}" for n in range(1, 7))


def test_jobs_of_an_experiment_that_found_the_remote_unreachable_never_ask_it(
        tmp_path: Path, counters: Path, listener: ClosingListener,
        capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = unreachable_workspace(tmp_path, listener)
    jobs = [UsesTerms(n=n, counters=str(counters)) for n in (1, 2, 3)]
    run_experiment(workspace, "exp", jobs)
    lines = warnings(capfd.readouterr().err)
    assert len(lines) == 1 and "unreachable" in lines[0], lines
    for job in jobs:
        directory = workspace.task_dir(UsesTerms.__xpmid__, job.__identifier__)
        assert (directory / "seen.json").read_text() == '{"remote_down": "1"}'
        assert warnings((directory / "stderr").read_text()) == []
    # the experiment's presence check (a HEAD per job, each with its retry); the jobs: none
    assert 1 <= listener.settled_count() <= 2 * len(jobs)
    assert len(notes(workspace)) == 3  # left for an experiment that reaches the remote

    remote = tmp_path / "remote"
    remote.mkdir()
    monkeypatch.setenv("XPMSTORE_REMOTE", f"file://{remote}")  # the remote is back
    run_experiment(workspace, "again", jobs)  # all done here: only the outbox to push
    assert notes(workspace) == []
    assert in_remote(workspace, [1, 2, 3]) == {entry_of(n) for n in (1, 2, 3)}
