"""Run records (xpmstore.scheduler.runlog): ``experiments/<name>/<run>.jsonl``, a header with
versions, git state, packages, host and pid; job and reason lines; an end line; appended, never
rewritten; read back by ``read_run``, which skips a torn last line."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xpmstore
from xpmstore.scheduler import runlog
from xpmstore.scheduler.runlog import RunRecord, read_run
from xpmstore.scheduler.runs import read_one
from xpmstore.serve.runcache import RunCache
from xpmstore.serve.runsview import run_view
from xpmstore.store.taskstate import process_start

from ..githelpers import counting_git, fake_git, git, repository
from ..helpers import PYTHON, REPO_ROOT
from ..schedtasks import Blocker, Evaluate, Model, ModelLearn
from ..storehelpers import count_of, isolate, make_workspace, wait_for
from .test_experiment import hang_guard, output_of, xp

RUN_NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-(?P<host>.+)-(?P<pid>\d+)$")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def _git_of(record: RunRecord) -> object:
    """The git state a run record tells, as its readers see it."""
    run = read_one("exp", record.path)
    assert run is not None
    return run.header["git"]


def test_header_names_versions_host_and_process(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not a git repository
    record = RunRecord(tmp_path / "experiments", "exp")
    record.end("ok", done=0)
    found = RUN_NAME.match(record.run)
    assert found, record.run
    assert (found["host"], int(found["pid"])) == (socket.gethostname(), os.getpid())
    assert record.path == tmp_path / "experiments" / "exp" / f"{record.run}.jsonl"
    header = read_run(record.path)[0]
    assert header["type"] == "header"
    assert header["xpmstore"] == xpmstore.__version__
    assert header["python"] == platform.python_version()
    assert re.fullmatch(r"[0-9a-f]{16}", header["packages"])
    assert header["host"] == socket.gethostname()
    assert header["pid"] == os.getpid()
    assert header["pid_start"] == process_start(os.getpid())
    assert header["experiment"] == "exp"
    assert header["git"] == {}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_header_records_the_git_commit_and_dirty_flag(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    repo, commit = repository(tmp_path)
    monkeypatch.chdir(repo)

    clean = RunRecord(tmp_path / "experiments", "clean")
    clean.end("ok")
    assert _git_of(clean) == {"commit": commit, "dirty": False}

    (repo / "script.py").write_text("print(2)\n")
    dirty = RunRecord(tmp_path / "experiments", "dirty")
    dirty.end("ok")
    assert _git_of(dirty) == {"commit": commit, "dirty": True}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_header_asks_git_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, commit = repository(tmp_path)
    monkeypatch.chdir(repo)
    calls = counting_git(tmp_path, monkeypatch)

    (repo / "script.py").write_text("print(2)\n")
    record = RunRecord(tmp_path / "experiments", "exp")
    record.end("ok")
    assert _git_of(record) == {"commit": commit, "dirty": True}
    assert len(calls.read_text().splitlines()) == 1, calls.read_text()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_outside_a_repository_git_is_not_run(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting_git(tmp_path, monkeypatch)
    outside = tmp_path / "not-a-repository"
    outside.mkdir()
    monkeypatch.chdir(outside)
    if any((parent / ".git").exists() for parent in (outside, *outside.parents)):
        pytest.fail(f"{outside} is inside a git repository: this test needs a folder that is not")
    record = RunRecord(tmp_path / "experiments", "exp")
    record.end("ok")
    assert _git_of(record) == {}
    assert not calls.exists()
    monkeypatch.setenv("GIT_DIR", str(outside))  # git told where: asked (and fails)
    told = RunRecord(tmp_path / "experiments", "exp")
    told.end("ok")
    assert _git_of(told) == {}
    assert len(calls.read_text().splitlines()) == 1


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_repository_without_commits_records_no_git_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "script.py").write_text("print(1)\n")
    git(repo, "add", "script.py")  # staged, never committed
    monkeypatch.chdir(repo)
    record = RunRecord(tmp_path / "experiments", "exp")
    record.end("ok")
    assert _git_of(record) == {}


def test_lines_are_appended_in_order_and_the_end_closes(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not a git repository: no git line
    record = RunRecord(tmp_path, "exp")
    record.append_many([{"type": "job", "id": "a", "reason": "ran:new"},
                        {"type": "job", "id": "b", "reason": "reused:local"}])
    record.append_many([])
    record.append({"type": "reason", "id": "a", "reason": "waited:host"})
    record.end("failed", done=1, failed=1, blocked=0)
    lines = read_run(record.path)
    assert [x["type"] for x in lines] == ["header", "job", "job", "reason", "end"]
    assert lines[-1]["outcome"] == "failed"
    assert (lines[-1]["done"], lines[-1]["failed"], lines[-1]["blocked"]) == (1, 1, 0)
    assert isinstance(lines[-1]["ended"], float)
    with pytest.raises(OSError):
        record.append({"type": "late"})  # the record is closed: nothing after the end
    assert len(read_run(record.path)) == 5


def test_read_run_skips_a_torn_last_line(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not a git repository: no git line
    record = RunRecord(tmp_path, "exp")
    record.append({"type": "job", "id": "a", "reason": "ran:new"})
    with open(record.path, "ab") as handle:
        handle.write(b'{"type":"job","id":"b","rea')  # a crash in the middle of a write
    lines = read_run(record.path)
    assert [x.get("id") for x in lines] == [None, "a"]


def test_two_runs_of_one_experiment_are_two_files(tmp_path: Path) -> None:
    first = RunRecord(tmp_path, "exp")
    second = RunRecord(tmp_path, "exp")
    assert first.path != second.path
    for record in (first, second):
        record.end("ok")
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == sorted(
        [first.path.name, second.path.name])


# --- the records an experiment writes --------------------------------------------------------


def test_an_experiment_records_header_jobs_and_end(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)  # the git state is the one of the current directory
    ws = make_workspace(tmp_path / "ws")
    counters = tmp_path / "counters"
    counters.mkdir()
    learn = ModelLearn(epochs=2, model=Model(hidden=2), counters=str(counters))
    evaluate = Evaluate(learned=learn, counters=str(counters))
    with hang_guard(), xp(ws, "recorded") as run:
        evaluate.submit()
    assert run.record is not None
    [path] = (ws.experiments / "recorded").glob("*.jsonl")
    assert path == run.record.path and path.stem == run.record.run
    record = read_run(path)
    header = record[0]
    assert (header["type"], header["pid"], header["experiment"]) == ("header", os.getpid(),
                                                                    "recorded")
    read = read_one("recorded", path)
    assert read is not None
    header = read.header
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=False, cwd=REPO_ROOT).stdout.strip()
    if commit:
        assert header["git"]["commit"] == commit
        assert isinstance(header["git"]["dirty"], bool)
    jobs = [line for line in record if line["type"] == "job"]
    assert [(j["id"], j["name"], j["reason"]) for j in jobs] == [
        (learn.__identifier__, "tests.sched.ModelLearn", "ran:new"),
        (evaluate.__identifier__, "tests.sched.Evaluate", "ran:new"),
    ]  # dependencies first
    end = record[-1]
    assert (end["type"], end["outcome"], end["done"], end["failed"], end["blocked"]) == (
        "end", "ok", 2, 0, 0)
    assert [line["type"] for line in record].count("end") == 1


DRIVER = "from tests.schedtasks import drive; drive()"


def test_a_job_another_process_runs_is_waited_for(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    counters = tmp_path / "counters"
    counters.mkdir()
    release = tmp_path / "release"
    other = subprocess.Popen([PYTHON, "-c", DRIVER, "blocker", str(ws.root), str(counters),
                              str(release), "shared"], cwd=REPO_ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with hang_guard():
            wait_for(lambda: count_of(counters, "started-shared") == 1,
                     "the other process's job to start")
            with xp(ws, "waiter") as run:
                Blocker(key="shared", counters=str(counters), release=str(release)).submit()
                release.write_text("")
        _, err = other.communicate(timeout=120)
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    assert other.returncode == 0, err
    assert count_of(counters, "started-shared") == count_of(counters, "ended-shared") == 1
    [path] = (ws.experiments / "waiter").glob("*.jsonl")
    record = read_run(path)
    reasons = [line["reason"] for line in record if line["type"] in ("job", "reason")]
    waited = f"waited:{socket.gethostname()}"
    assert reasons[0] == waited  # planned: a live process holds the job
    # At launch time the scheduler found it still held (waited), or already done (reused).
    assert reasons[-1] in (waited, "reused:local")
    # This run only waited: the job counts as waited, not done (nor reused).
    end = record[-1]
    assert (end["outcome"], end["done"], end["reused"], end["waited"]) == ("ok", 0, 0, 1)
    assert "waiter: 0 done, 0 reused, 1 waited, 0 failed" in output_of(run)


# --- git answers in the background: the header does not wait for it --------------------------


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_header_and_the_jobs_do_not_wait_for_git(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    repo, commit = repository(tmp_path)
    monkeypatch.chdir(repo)
    release = tmp_path / "release-git"
    # A git that answers only once `release` exists (bounded: it gives up after about 60 s).
    fake_git(tmp_path, monkeypatch, f'echo $$ > "$PIDFILE"\nfor _ in $(seq 6000); do\n'
                                     f'  [ -e {release} ] && exec "$REAL" "$@"\n'
                                     f'  sleep 0.01\ndone\nexit 1')
    ws = make_workspace(tmp_path / "ws")
    counters = tmp_path / "counters"
    counters.mkdir()
    learn = ModelLearn(epochs=1, model=Model(hidden=1), counters=str(counters))
    with hang_guard(), xp(ws, "waits") as run:
        assert run.record is not None
        path = run.record.path
        learn.submit()
        wait_for(lambda: count_of(counters, "learn-1") == 1, "the job to run while git waits")
        wait_for(lambda: learn.__identifier__ in {x.get("id") for x in read_run(path)},
                 "the job line")
        lines = read_run(path)
        assert lines[0]["type"] == "header" and "git" not in lines[0], lines[0]
        assert "git" not in [x["type"] for x in lines]  # git has not answered yet
        release.write_text("")
        wait_for(lambda: "git" in [x["type"] for x in read_run(path)],
                 "the git line, appended while the run goes on")
        assert "end" not in [x["type"] for x in read_run(path)]
    lines = read_run(path)
    [git_line] = [x for x in lines if x["type"] == "git"]
    assert git_line == {"type": "git", "commit": commit, "dirty": False}
    assert lines[-1]["type"] == "end" and lines[-1]["outcome"] == "ok"
    assert read_one("waits", path).header["git"] == {"commit": commit, "dirty": False}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_git_that_hangs_is_killed_and_the_run_ends(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    repo, _ = repository(tmp_path)
    monkeypatch.chdir(repo)
    pidfile = fake_git(tmp_path, monkeypatch, 'echo $$ > "$PIDFILE"\nexec sleep 120')
    monkeypatch.setattr(runlog, "GIT_WAIT_AT_END", 0.2)
    record = RunRecord(tmp_path / "experiments", "exp")
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip().isdigit(), "git to start")
    pid = int(pidfile.read_text())
    assert _alive(pid)  # the record was opened without waiting for git
    assert [x["type"] for x in read_run(record.path)] == ["header"]
    record.end("ok")
    wait_for(lambda: not _alive(pid), "the hanging git to be killed")
    lines = read_run(record.path)
    assert [x["type"] for x in lines] == ["header", "end"]  # nothing recorded of git
    assert "git" not in read_one("exp", record.path).header


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_never_rewrites_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``git status`` refreshes the index's stat data and rewrites it under ``index.lock``
    unless told not to (GIT_OPTIONAL_LOCKS=0): a user's ``git commit`` at that moment would
    find the lock taken."""
    repo, commit = repository(tmp_path)
    monkeypatch.chdir(repo)
    script = repo / "script.py"
    os.utime(script, ns=(10**18, 10**18))  # the index's stat data of it is stale now
    index = repo / ".git" / "index"
    before = index.stat()
    record = RunRecord(tmp_path / "experiments", "exp")
    record.end("ok")
    assert _git_of(record) == {"commit": commit, "dirty": False}
    after = index.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino, before.st_mtime_ns, before.st_size)


def _write_lines(path: Path, lines: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


HEADER = {"type": "header", "xpmstore": "0.1", "python": "3.11.7", "packages": "0" * 16,
          "host": "elsewhere", "boot_id": "b", "pid": 1, "pid_start": 1, "started": 1.0,
          "experiment": "exp"}
COMMIT = "a" * 40
END = {"type": "end", "outcome": "ok", "ended": 2.0}


@pytest.mark.parametrize("state", [{"commit": COMMIT, "dirty": True},
                                   {"commit": COMMIT, "dirty": False}, {}])
def test_old_and_new_records_read_the_same_git_state(tmp_path: Path,
                                                     state: dict[str, object]) -> None:
    folder = tmp_path / "exp"
    old = _write_lines(folder / "old.jsonl", [{**HEADER, "git": state}, END])
    new = _write_lines(folder / "new.jsonl", [
        HEADER, {"type": "job", "id": "1" * 64, "name": "t", "reason": "ran:new"},
        {"type": "git", **state}, END])
    assert read_one("exp", old).header["git"] == state
    assert read_one("exp", new).header["git"] == state
    workspace = make_workspace(tmp_path / "ws")
    for path in (old, new):
        target = workspace.experiments / "exp" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
        view = run_view(RunCache(workspace), "exp", path.stem)
        assert view is not None and view["header"]["git"] == state


@pytest.mark.parametrize("lines", [
    [{"type": "git", "commit": 12, "dirty": False}],  # not a commit
    [{"type": "git", "commit": "../../x", "dirty": False}],
    [{"type": "git", "commit": COMMIT, "dirty": "yes"}],  # not a flag
    [{"type": "git", "commit": COMMIT}],  # half a state
], ids=["a number", "a path", "a string flag", "no flag"])
def test_a_damaged_git_line_counts_as_no_state(tmp_path: Path,
                                               lines: list[dict[str, object]]) -> None:
    path = _write_lines(tmp_path / "exp" / "run.jsonl", [HEADER, *lines, END])
    assert read_one("exp", path).header["git"] == {}


def test_the_header_git_state_wins_and_so_does_the_first_git_line(tmp_path: Path) -> None:
    old = _write_lines(tmp_path / "exp" / "old.jsonl", [
        {**HEADER, "git": {"commit": COMMIT, "dirty": False}},
        {"type": "git", "commit": "b" * 40, "dirty": True}, END])
    assert read_one("exp", old).header["git"] == {"commit": COMMIT, "dirty": False}
    new = _write_lines(tmp_path / "exp" / "new.jsonl", [
        {"type": "git", "commit": "c" * 40, "dirty": True},  # before any header: ignored
        HEADER, {"type": "git", "commit": COMMIT, "dirty": False},
        {"type": "git", "commit": "b" * 40, "dirty": True}, END])
    assert read_one("exp", new).header["git"] == {"commit": COMMIT, "dirty": False}


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(identifier=st.text(), name=st.text(), reason=st.text(),
       tags=st.dictionaries(st.text(), _json_values, max_size=4),
       dependencies=st.lists(st.text(), max_size=4))
def test_a_job_line_is_the_encoders_text(identifier: str, name: str, reason: str,
                                         tags: dict[str, object],
                                         dependencies: list[str]) -> None:
    """The job line spelled out field by field is, byte for byte, what the JSON encoder writes
    for the same line (any text in any field: quotes, control characters, non-ASCII)."""
    line: runlog.JobLine = {"type": "job", "id": identifier, "name": name, "reason": reason,
                            "tags": tags, "dependencies": dependencies}
    text = runlog._line_json(line)
    assert text == json.dumps(line, separators=(",", ":"))
    assert json.loads(text) == line
