"""The commands as Python functions (``xpmstore.admin``, ``xpmstore.serve.start``): what the
command line calls, usable without it, each returning a typed result (the CLI only prints it).

Real workspaces (tasks run in this process by ``taskdirs.run_here``, runs by real experiments),
a real ``file://`` remote, real sockets.
"""

from __future__ import annotations

import io
import socket
import tomllib
from pathlib import Path

import pytest

from xpmstore import serve
from xpmstore.admin.experiments import experiment_runs
from xpmstore.admin.gc import GcPlan, gc
from xpmstore.admin.get import get
from xpmstore.admin.jobs import kill, logs
from xpmstore.admin.pin import pin, unpin
from xpmstore.admin.pull import pull
from xpmstore.admin.push import push
from xpmstore.admin.remotes import gc_remote, init_remote, need_remote
from xpmstore.admin.resulttable import TableQuery, results_table
from xpmstore.errors import (
    MissingExtraError,
    NotFound,
    RemoteError,
    ServeError,
    TextValueError,
    XpmstoreError,
)
from xpmstore.remote.collect import RemoteGcPlan
from xpmstore.store import taskdirs
from xpmstore.store.pins import pinned
from xpmstore.store.workspace import Workspace

from ..clihelpers import run_chain, task_dir
from ..gctasks import Step
from ..helpers import REPO_ROOT
from ..progresstasks import Hyper, Scored
from ..storehelpers import active, isolate, make_workspace


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def remote_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``file://`` remote configured for every workspace (not created yet)."""
    url = f"file://{tmp_path / 'remote'}"
    monkeypatch.setenv("XPMSTORE_REMOTE", url)
    return url


def present(ws: Workspace) -> set[str]:
    return {d.name for d in taskdirs.list_object_dirs(ws)}


# --- get --------------------------------------------------------------------------------------


def test_get_gives_the_path_and_reads_the_record_only_when_asked(ws: Workspace,
                                                                 tmp_path: Path) -> None:
    step = Step(i=1)
    directory = taskdirs.run_here(ws, step)
    quick = get(ws, step.__identifier__[:10])
    assert (quick.identifier, quick.path, quick.record) == (step.__identifier__, directory, None)
    assert quick.to_json() == {"identifier": step.__identifier__, "path": str(directory),
                               "copied_to": None}
    full = get(ws, step.__identifier__[:10], with_record=True)
    assert full.record is not None and full.record.identifier == step.__identifier__
    assert full.to_json()["name"] == "tests.gc.Step" and full.copied_to is None
    copied = get(ws, step.__identifier__, to=tmp_path / "out")
    assert copied.path == copied.copied_to == tmp_path / "out"
    assert (tmp_path / "out" / "out.txt").read_text() == "0:1\n"
    assert not (tmp_path / "out" / ".xpm").exists()
    with pytest.raises(NotFound):
        get(ws, "0" * 64)


def test_get_pulls_what_is_absent_here(ws: Workspace, tmp_path: Path, remote_url: str) -> None:
    step = Step(i=2)
    taskdirs.run_here(ws, step)
    init_remote(ws)
    assert push(ws, [step.__identifier__]).pushed == [step.__identifier__]
    other = make_workspace(tmp_path / "other")
    found = get(other, step.__identifier__[:12])
    assert found.path == task_dir(other, step) and taskdirs.is_done(found.path)


# --- gc ---------------------------------------------------------------------------------------


def test_gc_dry_run_review_and_collection(ws: Workspace) -> None:
    kept = run_chain(ws, "exp", 2, variant=1)  # the latest run of exp: roots
    loose = Step(i=7, variant=9)
    taskdirs.run_here(ws, loose)               # made outside any run: garbage
    dry = gc(ws, dry_run=True)
    assert [c.identifier for c in dry.plan.candidates] == [loose.__identifier__]
    assert dry.result is None and not dry.declined and loose.__identifier__ in present(ws)
    shown: list[GcPlan] = []

    def say_no(plan: GcPlan) -> bool:
        shown.append(plan)
        return False

    declined = gc(ws, review=say_no)
    assert declined.declined and declined.result is None and len(shown) == 1
    assert loose.__identifier__ in present(ws)
    done = gc(ws, review=lambda plan: True)
    assert done.result is not None and not done.declined
    assert [c.identifier for c in done.result.deleted] == [loose.__identifier__]
    assert done.result.to_json()["freed"] == done.result.freed > 0
    assert present(ws) == {s.__identifier__ for s in kept}
    nothing = gc(ws, review=lambda plan: shown.append(plan) or True)
    assert nothing.result is None and not nothing.declined and len(shown) == 2
    at_once = gc(ws)  # no review: collected at once; its plan is the collection's
    assert at_once.result is not None and at_once.plan is at_once.result.plan
    assert at_once.plan.to_json()["candidates"] == []


# --- pins, runs, jobs -------------------------------------------------------------------------


def test_pin_and_unpin(ws: Workspace) -> None:
    step = Step(i=3)
    taskdirs.run_here(ws, step)
    first = pin(ws, step.__identifier__[:8])
    assert (first.identifier, first.added, first.name) == (step.__identifier__, True,
                                                           "tests.gc.Step")
    assert not pin(ws, step.__identifier__).added and pinned(ws) == {step.__identifier__}
    assert unpin(ws, step.__identifier__[:8]) == step.__identifier__
    assert pinned(ws) == set()
    with pytest.raises(NotFound):
        unpin(ws, step.__identifier__)


def test_experiment_runs(ws: Workspace) -> None:
    run_chain(ws, "exp", 1, variant=1)
    runs = experiment_runs(ws, "exp")
    assert [r.experiment for r in runs] == ["exp"] and runs[0].status == "ok"
    assert experiment_runs(ws) == runs
    with pytest.raises(NotFound):
        experiment_runs(ws, "other")
    with pytest.raises(TextValueError):
        experiment_runs(ws, "../exp")


def test_describe_takes_the_runs_its_caller_keeps(ws: Workspace,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """describe() reads every run record unless given the runs (the web service's cache:
    an object page parsed all of them at each view, 1.3 s at 100,000 objects)."""
    from xpmstore.admin import show
    from xpmstore.serve.objectview import object_view
    from xpmstore.serve.runcache import RunCache

    run_chain(ws, "exp", 1, variant=1)
    directory = next(d for d in taskdirs.list_object_dirs(ws) if taskdirs.is_done(d))
    everyone = show.read_runs(ws)
    assert [r["experiment"] for r in show.describe(ws, directory.name).reasons] == ["exp"]
    assert show.describe(ws, directory.name, runs=[]).reasons == []
    cache = RunCache(ws)
    cache.runs()  # parsed once
    monkeypatch.setattr(show, "read_runs", lambda *a, **k: pytest.fail("runs read again"))
    assert show.describe(ws, directory.name, everyone).reasons[0]["experiment"] == "exp"
    page = object_view(ws, directory.name, cache)
    assert page["reasons"][0]["experiment"] == "exp"


def test_logs_and_kill(ws: Workspace) -> None:
    step = Step(i=4)
    directory = taskdirs.run_here(ws, step)
    with pytest.raises(NotFound, match="no logs yet"):
        logs(ws, step.__identifier__, io.BytesIO())
    (directory / "stdout").write_bytes(b"out\n")
    (directory / "stderr").write_bytes(b"err\n")
    both = io.BytesIO()
    logs(ws, step.__identifier__[:10], both)
    assert both.getvalue() == b"==> stdout <==\nout\n==> stderr <==\nerr\n"
    one = io.BytesIO()
    logs(ws, step.__identifier__, one, stream="stderr")
    assert one.getvalue() == b"err\n"
    followed = io.BytesIO()
    logs(ws, step.__identifier__, followed, tail=True)  # done: what there is, then it returns
    assert followed.getvalue() == b"out\nerr\n"
    with pytest.raises(ValueError, match="stream"):
        logs(ws, step.__identifier__, io.BytesIO(), stream="stdin")
    with pytest.raises(XpmstoreError, match="is not running"):
        kill(ws, step.__identifier__)


# --- table ------------------------------------------------------------------------------------


def test_results_table(ws: Workspace) -> None:
    tasks = [Scored(hyper=Hyper(lr=lr), seed=1) for lr in (0.1, 0.2)]
    with active(ws):
        for task in tasks:
            taskdirs.run_here(ws, task)
    asked = TableQuery.parse("tests.progresstasks:Scored", ["hyper.lr=0.2"], sort_by="id")
    assert asked.filters == {"hyper__lr": 0.2} and asked.status == "done"
    rows = results_table(ws, asked)
    assert [r["id"] for r in rows] == [tasks[1].__identifier__]
    assert TableQuery.parse("tests.progresstasks:Scored", status="any").status is None
    with pytest.raises(NotFound, match=r"no done task of tests\.progresstasks:Scored"):
        results_table(ws, TableQuery.parse("tests.progresstasks:Scored", ["seed=5"]))
    with pytest.raises(TextValueError, match=r"Hyper\.lr"):
        TableQuery.parse("tests.progresstasks:Scored", ["hyper.lr=fast"])


# --- the remote -------------------------------------------------------------------------------


def test_push_pull_and_gc_of_the_remote(ws: Workspace, tmp_path: Path, remote_url: str) -> None:
    assert init_remote(ws).endswith("created")
    assert init_remote(ws, remote_url).endswith("ready (it existed)")
    steps = [Step(i=i, variant=4) for i in range(3)]
    for step in steps:
        taskdirs.run_here(ws, step)
    results: list[tuple[str, str]] = []
    report = push(ws, None, on_result=lambda outcome, ident, why: results.append((outcome, ident)))
    assert sorted(report.pushed) == sorted(s.__identifier__ for s in steps)
    assert sorted(results) == sorted(("pushed", s.__identifier__) for s in steps)
    assert push(ws, [steps[0].__identifier__[:10]]).present == [steps[0].__identifier__]

    other = make_workspace(tmp_path / "other")
    seen: list[tuple[str, Path | None]] = []
    pulled = pull(other, [steps[1].__identifier__[:10], "0" * 64],
                  on_result=lambda text, directory, why: seen.append((text, directory)))
    assert pulled.pulled == [(steps[1].__identifier__, task_dir(other, steps[1]))]
    assert [text for text, _ in pulled.failed] == ["0" * 64]
    assert seen == [(steps[1].__identifier__[:10], task_dir(other, steps[1])), ("0" * 64, None)]

    assert pin(ws, steps[0].__identifier__, remote=True).added
    dry = gc_remote(ws, 0.0, dry_run=True)
    assert dry.url == remote_url and not dry.deleted
    assert set(dry.plan.manifests) == {s.__identifier__ for s in steps[1:]}
    asked: list[tuple[RemoteGcPlan, str]] = []
    declined = gc_remote(ws, 0.0, review=lambda plan, url: asked.append((plan, url)) or False)
    assert declined.declined and not declined.deleted and asked[0][1] == remote_url
    done = gc_remote(ws, 0.0, review=lambda plan, url: True)
    assert done.deleted and set(done.plan.manifests) == set(dry.plan.manifests)
    assert set(need_remote(ws).identifiers()) == {steps[0].__identifier__}
    assert unpin(ws, steps[0].__identifier__[:6], remote=True) == steps[0].__identifier__


def test_no_remote_configured(ws: Workspace) -> None:
    for call in (lambda: need_remote(ws), lambda: push(ws, None), lambda: pull(ws, ["ab"]),
                 lambda: gc_remote(ws, dry_run=True), lambda: pin(ws, "ab", remote=True)):
        with pytest.raises(RemoteError, match="no remote configured"):
            call()


# --- serve, errors, types ---------------------------------------------------------------------


def test_serve_start_says_what_is_missing_and_when_it_cannot_listen(
        ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve.start(ws, "127.0.0.1", port)
    monkeypatch.setattr(serve, "EXTRA_MODULES", (*serve.EXTRA_MODULES, "xpmstore_no_such"))
    with pytest.raises(MissingExtraError, match="needs xpmstore_no_such: pip install"):
        serve.start(ws, "127.0.0.1", 0)


def test_the_new_errors_are_their_builtins() -> None:
    assert issubclass(MissingExtraError, ImportError) and issubclass(ServeError, OSError)
    assert issubclass(MissingExtraError, XpmstoreError) and issubclass(ServeError, XpmstoreError)


def test_mypy_checks_the_command_line() -> None:
    settings = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert {"xpmstore", "cli"} <= set(settings["files"]) and settings["disallow_untyped_defs"]
