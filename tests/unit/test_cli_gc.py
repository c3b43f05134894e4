"""``xpmstore gc``, ``rm``, ``fsck`` and ``index rebuild`` (xpmstore.admin.gc, .remove, .fsck,
.pins): roots kept, the rest deleted, dry runs and questions, locks honoured, damage found and
repaired.

Workspaces are filled by real experiments (job processes of tests/gctasks.py) and by
``objects.run_here``; commands run through click's CliRunner, and gc also as a real process.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from xpmstore.admin.gc import GcOptions, find_roots, mark, parse_age, parse_size, why_rooted
from xpmstore.core.identifier import cache_identifier
from xpmstore.scheduler.runlog import RunRecord
from xpmstore.scheduler.runs import Run, RunJob
from xpmstore.store import leases, taskdirs
from xpmstore.store.index import Index
from xpmstore.store.taskstate import launch_record
from xpmstore.store.workspace import Workspace
from xpmstore.system.locks import object_lock

from ..clihelpers import console, invoke, one_error_line, run_chain, run_experiment, task_dir
from ..gctasks import Step
from ..storehelpers import Terms, active, check_done_objects, isolate


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def ids(steps: list[Step]) -> set[str]:
    return {s.__identifier__ for s in steps}


def present(ws: Workspace) -> set[str]:
    return {d.name for d in taskdirs.list_object_dirs(ws)}


def cache_entry(ws: Workspace, n: int, counters: Path) -> str:
    """Compute one @cache entry of Terms(n), as a process that has ended since (this one lets
    its leases go); returns its identifier."""
    counters.mkdir(exist_ok=True)
    terms = Terms(n=n)
    with active(ws):
        terms.load(str(counters))
    leases.release()
    return cache_identifier(terms.__identifier__, "terms.txt")


@pytest.fixture
def garden(ws: Workspace, tmp_path: Path) -> dict[str, set[str]]:
    """A workspace with roots and garbage of every kind; returns the identifiers by role."""
    old = run_chain(ws, "a", 3, variant=0)          # a's previous run: garbage with keep-runs 1
    new = run_chain(ws, "a", 3, variant=1)          # a's last successful run: roots
    other = run_chain(ws, "b", 2, variant=5)        # b's last successful run: roots
    base = Step(i=0, variant=7)
    pinned = Step(i=1, variant=7, previous=Step(i=0, variant=7))
    taskdirs.run_here(ws, base)
    taskdirs.run_here(ws, pinned)                    # pinned: itself and its dependency stay
    loose = Step(i=9, variant=9)
    taskdirs.run_here(ws, loose)                     # made outside any run: garbage
    leftover = taskdirs.prepare_task_dir(ws, Step(i=50))  # never finished: garbage
    entry = cache_entry(ws, 1, tmp_path / "counters")  # reached by nothing, but a cache entry
    assert invoke(ws, "pin", pinned.__identifier__[:10]).exit_code == 0
    return {
        "old": ids(old), "new": ids(new), "other": ids(other),
        "pinned": {pinned.__identifier__, base.__identifier__},
        "garbage": ids(old) | {loose.__identifier__, leftover.name},
        "cache": {entry},
    }


# --- gc ---------------------------------------------------------------------------------------


def test_gc_keeps_roots_pins_and_their_dependencies_and_deletes_the_rest(
        ws: Workspace, garden: dict[str, set[str]]) -> None:
    everything = present(ws)
    kept = garden["new"] | garden["other"] | garden["pinned"] | garden["cache"]
    assert everything == kept | garden["garbage"]

    dry = invoke(ws, "gc", "--dry-run")
    assert dry.exit_code == 0, dry.output
    listed = {line.split("\t")[0] for line in dry.stdout.splitlines() if "\t" in line}
    assert listed == garden["garbage"]
    assert "would free" in dry.stdout
    assert present(ws) == everything  # a dry run deletes nothing

    result = invoke(ws, "gc", "-y")
    assert result.exit_code == 0, result.output
    assert present(ws) == kept
    assert {line.split("\t")[0] for line in result.stdout.splitlines() if "\t" in line} == \
        garden["garbage"]
    assert "freed" in result.stdout
    assert {d.name for d in check_done_objects(ws)} == kept
    assert Index.for_workspace(ws).identifiers() == kept
    assert not any((ws.private / "trash").iterdir())
    again = invoke(ws, "gc", "-y")  # nothing left to collect
    assert again.exit_code == 0 and present(ws) == kept


def _latest_record(ws: Workspace, experiment: str) -> Path:
    return sorted((ws.experiments / experiment).glob("*.jsonl"))[-1]


def test_a_damaged_run_record_stops_gc_before_anything_goes(
        ws: Workspace, garden: dict[str, set[str]]) -> None:
    """A job line of the latest run of `a`, damaged by hand: its job would lose its root and go.
    gc deletes nothing, and says which record and why in one line (exit 1); `experiments`
    shows the damage.  A torn last line (a writer that died in its write) is no damage."""
    everything = present(ws)
    record = _latest_record(ws, "a")
    lines = record.read_bytes().splitlines(keepends=True)
    job = next(i for i, line in enumerate(lines) if b'"type":"job"' in line)
    lines[job] = b'{"type":"job","id":"zz' + lines[job][22:]  # an identifier that is not one
    record.write_bytes(b"".join(lines))
    for args in (("gc", "-y"), ("gc", "--dry-run")):
        refused = console(ws, *args)
        assert refused.returncode == 1, refused.stderr
        line = one_error_line(refused.stderr)
        assert str(record) in line and "1 damaged line" in line and "deletes nothing" in line
        assert present(ws) == everything
    listed = console(ws, "experiments", "a")
    assert listed.returncode == 0 and "(1 damaged lines)" in listed.stdout
    assert json.loads(console(ws, "experiments", "a", "--json").stdout)[-1]["damaged"] == 1
    lines[job] = b"{not json at all}\n"
    record.write_bytes(b"".join(lines))
    assert console(ws, "gc", "-y").returncode == 1 and present(ws) == everything
    del lines[job]  # repaired (the job line lost) ...
    record.write_bytes(b"".join(lines) + b'{"type":"job","id":"')  # ... and a torn last line
    result = console(ws, "gc", "-y")
    assert result.returncode == 0, result.stderr
    assert garden["other"] <= present(ws)


def test_gc_keep_runs(ws: Workspace, garden: dict[str, set[str]]) -> None:
    assert invoke(ws, "gc", "-y", "--keep-runs", "2").exit_code == 0
    assert garden["old"] <= present(ws)
    assert invoke(ws, "gc", "-y", "--keep-runs", "0").exit_code == 0
    assert present(ws) == garden["pinned"] | garden["cache"]


def test_gc_json(ws: Workspace, garden: dict[str, set[str]]) -> None:
    dry = json.loads(invoke(ws, "gc", "--dry-run", "--json").stdout)
    assert {c["identifier"] for c in dry["candidates"]} == garden["garbage"]
    assert dry["size"] == sum(c["size"] for c in dry["candidates"])
    done = json.loads(invoke(ws, "gc", "-y", "--json").stdout)
    assert {c["identifier"] for c in done["deleted"]} == garden["garbage"]
    assert done["skipped"] == []


def test_gc_asks_first(ws: Workspace, garden: dict[str, set[str]]) -> None:
    everything = present(ws)
    refused = invoke(ws, "gc", stdin="n\n")
    assert refused.exit_code == 0 and "nothing deleted" in refused.stdout
    assert present(ws) == everything
    accepted = invoke(ws, "gc", stdin="y\n")
    assert accepted.exit_code == 0
    assert present(ws) == everything - garden["garbage"]


def test_gc_as_a_real_process(ws: Workspace, garden: dict[str, set[str]]) -> None:
    dry = console(ws, "gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert {line.split("\t")[0] for line in dry.stdout.splitlines() if "\t" in line} == \
        garden["garbage"]
    result = console(ws, "gc", "-y")
    assert result.returncode == 0, result.stderr
    assert not (garden["garbage"] & present(ws))
    no_answer = console(ws, "gc", stdin="")  # nothing to delete: no question asked
    assert no_answer.returncode == 0 and "nothing to delete" in no_answer.stdout


def test_gc_skips_an_object_whose_lock_is_held(ws: Workspace,
                                               garden: dict[str, set[str]]) -> None:
    held = sorted(garden["garbage"])[0]
    with object_lock(ws.lock_path(held)):
        result = invoke(ws, "gc", "-y", "--json")
    report = json.loads(result.stdout)
    assert [c["identifier"] for c in report["skipped"]] == [held]
    assert present(ws) & garden["garbage"] == {held}


def test_live_runs_and_live_jobs_are_roots(ws: Workspace) -> None:
    used = Step(i=1, variant=20, previous=Step(i=0, variant=20))
    taskdirs.run_here(ws, Step(i=0, variant=20))
    taskdirs.run_here(ws, used)
    dead_use = Step(i=0, variant=21)
    taskdirs.run_here(ws, dead_use)
    record = RunRecord(ws.experiments, "live")  # this process: live until its end line
    record.append({"type": "root", "id": used.__identifier__})
    dead = ws.experiments / "dead" / "20000101T000000.000000Z-elsewhere-1.jsonl"
    dead.parent.mkdir(parents=True)
    header = {"type": "header", "host": os.uname().nodename, "boot_id": "another boot",
              "pid": os.getpid(), "pid_start": 0, "started": 0.0}
    dead.write_text(json.dumps(header) + "\n" + json.dumps(
        {"type": "job", "id": dead_use.__identifier__, "name": "tests.gc.Step",
         "reason": "ran:new", "dependencies": []}) + "\n")
    later = dead.with_name("20000102T000000.000000Z-elsewhere-1.jsonl")  # the latest: not dead
    later.write_text(json.dumps({**header, "started": 1.0}) + "\n"
                     + json.dumps({"type": "job", "id": "0" * 64, "name": "tests.gc.Step",
                                   "reason": "ran:new", "dependencies": []}) + "\n"
                     + json.dumps({"type": "end", "outcome": "ok", "ended": 2.0}) + "\n")
    running = taskdirs.prepare_task_dir(ws, Step(i=0, variant=22))
    (running / ".xpm" / "launch.json").write_text(json.dumps(launch_record()))

    plan = mark(ws)
    assert {c.identifier for c in plan.candidates} == {dead_use.__identifier__}
    assert plan.roots[used.__identifier__].startswith("live run live/")
    assert plan.roots[running.name] == "live job"
    runs = json.loads(invoke(ws, "experiments", "--json").stdout)
    assert {(r["experiment"], r["status"]) for r in runs} == {
        ("dead", "dead"), ("dead", "ok"), ("live", "live")}
    record.end("ok")


def _run(name: str, outcome: str | None, live: bool, *jobs: str) -> Run:
    return Run(experiment="x", name=name, path=Path(name), header={}, started=0.0, ended=None,
               outcome=outcome, live=live,
               jobs={j: RunJob(j, "tests.gc.Step", "ran:new") for j in jobs})


def test_find_roots_keeps_the_latest_run_whatever_its_outcome() -> None:
    a, b, c, d, e = (f"{n}" * 64 for n in "abcde")
    runs = [_run("1", "ok", False, a), _run("2", "ok", False, b), _run("3", "failed", False, c),
            _run("4", None, False, d),   # killed: no end line, dead — the latest that ended
            _run("5", None, True, e)]    # live, just started: it does not hide run 4
    sources = find_roots(runs, [], [], keep_runs=1)
    assert [(s.role, s.run, s.status, set(s.identifiers)) for s in sources] == [
        ("successful run", "2", "ok", {b}), ("latest run", "4", "dead", {d}),
        ("live run", "5", "live", {e})]
    assert why_rooted(sources) == {b: "successful run x/2", d: "latest run x/4",
                                   e: "live run x/5"}
    assert {r for s in find_roots(runs, [], [], keep_runs=2) for r in s.identifiers} == \
        {a, b, d, e}
    only_live = find_roots(runs, ["f" * 64], [], keep_runs=0)  # 0: no ended run is a root
    assert [(s.role, set(s.identifiers)) for s in only_live] == [
        ("live run", {e}), ("pins", {"f" * 64})]
    interrupted = find_roots([*runs[:2], _run("6", "interrupted", False, c)], [], [], 1)
    assert [(s.role, s.run) for s in interrupted] == [("successful run", "2"),
                                                      ("latest run", "6")]
    # A run that used nothing (its script failed before any submit) hides no run.
    typo = find_roots([runs[0], _run("3", "failed", False, c), _run("7", "interrupted", False),
                       _run("8", "ok", False)], [], [], 1)
    assert [(s.role, s.run) for s in typo] == [("successful run", "1"), ("latest run", "3")]


def test_older_than_and_max_size(ws: Workspace, tmp_path: Path) -> None:
    loose = Step(i=3, variant=30)
    taskdirs.run_here(ws, loose)
    entries = [cache_entry(ws, n, tmp_path / "counters") for n in (1, 2, 3)]
    index = Index.for_workspace(ws)
    for when, entry in zip((1000.0, 2000.0, 3000.0), entries, strict=True):
        index.touch(entry, when)  # last used long ago, oldest first
    # Used recently (just made): --older-than spares the task; the entries are old: they go.
    plan = mark(ws, GcOptions(older_than=parse_age("1d")))
    assert {c.identifier for c in plan.candidates} == set(entries)
    assert plan.spared_recent == 1
    # --max-size evicts the least recently used entries until the store fits.
    total = mark(ws).total_size
    sizes = {c.identifier: c.size for c in mark(ws, GcOptions(max_size=0)).candidates}
    limit = total - sizes[loose.__identifier__] - sizes[entries[0]]
    plan = mark(ws, GcOptions(max_size=limit))
    assert {c.identifier: c.why for c in plan.candidates} == {
        loose.__identifier__: "unreachable", entries[0]: "max-size"}
    result = invoke(ws, "gc", "-y", "--max-size", str(limit))
    assert result.exit_code == 0, result.output
    assert present(ws) == set(entries[1:])


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200),
                                               ("1.5m", 90), ("45s", 45), ("2w", 1209600)])
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize(("text", "size"), [("10", 10), ("1K", 1024), ("2GiB", 2 << 30),
                                            ("1.5M", 3 << 19), ("3GB", 3 * 10 ** 9)])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("args", [["--older-than", "3"], ["--older-than", "3x"],
                                  ["--max-size", "lots"], ["--max-size", "-1G"],
                                  ["--keep-runs", "-1"]])
def test_gc_bad_input(ws: Workspace, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from xpmstore_cli.main import main

    assert main(["--workspace", str(ws.root), "gc", "-y", *args]) == 2
    one_error_line(capsys.readouterr().err)


# --- pins -------------------------------------------------------------------------------------


def test_pins_survive_a_lost_index_and_a_rebuild(ws: Workspace) -> None:
    kept = Step(i=0, variant=40)
    taskdirs.run_here(ws, kept)
    assert invoke(ws, "pin", kept.__identifier__).exit_code == 0
    again = invoke(ws, "pin", kept.__identifier__)
    assert again.exit_code == 0 and "already pinned" in again.stdout
    Index.for_workspace(ws).close()
    shutil.rmtree(ws.private / "index")
    assert invoke(ws, "gc", "-y", "--keep-runs", "0").exit_code == 0
    assert present(ws) == {kept.__identifier__}
    rebuilt = invoke(ws, "index", "rebuild")
    assert rebuilt.exit_code == 0 and "1 objects, 1 pins" in rebuilt.stdout
    assert Index.for_workspace(ws).pins() == {kept.__identifier__}
    assert invoke(ws, "unpin", kept.__identifier__[:8]).exit_code == 0
    assert Index.for_workspace(ws).pins() == set()
    assert invoke(ws, "gc", "-y", "--keep-runs", "0").exit_code == 0
    assert present(ws) == set()
    missing = invoke(ws, "unpin", kept.__identifier__)
    assert missing.exit_code == 1


def test_a_pin_only_the_index_knew_is_kept(ws: Workspace) -> None:
    kept = Step(i=0, variant=41)
    taskdirs.run_here(ws, kept)
    Index.for_workspace(ws).pin(kept.__identifier__)  # an older workspace: the index alone
    assert invoke(ws, "index", "rebuild").exit_code == 0
    assert (ws.private / "pins" / kept.__identifier__).exists()
    assert invoke(ws, "gc", "-y", "--keep-runs", "0").exit_code == 0
    assert present(ws) == {kept.__identifier__}


# --- rm ---------------------------------------------------------------------------------------


def test_rm_refuses_done_dependents_unless_cascade(ws: Workspace) -> None:
    steps = run_chain(ws, "r", 3, variant=50)
    middle = steps[1].__identifier__
    refused = invoke(ws, "rm", middle[:10])
    assert refused.exit_code == 1
    assert "--cascade" in refused.stderr and steps[2].__identifier__[:12] in refused.stderr
    assert present(ws) == ids(steps)
    removed = invoke(ws, "rm", middle, "--cascade")
    assert removed.exit_code == 0, removed.output
    lines = [line.split("\t")[0] for line in removed.stdout.splitlines()]
    assert lines == [steps[2].__identifier__, middle]  # dependents first
    assert present(ws) == {steps[0].__identifier__}
    alone = invoke(ws, "rm", steps[0].__identifier__)
    assert alone.exit_code == 0 and present(ws) == set()
    run_experiment(ws, "r", [steps[2]])  # the next submit runs them again
    assert {d.name for d in check_done_objects(ws)} == ids(steps)


def test_rm_refuses_a_running_job(ws: Workspace) -> None:
    running = taskdirs.prepare_task_dir(ws, Step(i=0, variant=51))
    (running / ".xpm" / "launch.json").write_text(json.dumps(launch_record()))
    refused = invoke(ws, "rm", running.name)
    assert refused.exit_code == 1 and "running" in refused.stderr
    assert running.exists()
    (running / ".xpm" / "launch.json").unlink()
    with object_lock(ws.lock_path(running.name)):
        busy = invoke(ws, "rm", running.name)
    assert busy.exit_code == 1 and running.exists()
    assert invoke(ws, "rm", running.name).exit_code == 0 and not running.exists()


def test_rm_unknown_and_bad_identifiers(ws: Workspace) -> None:
    assert invoke(ws, "rm", "f" * 64).exit_code == 1
    assert invoke(ws, "rm", "../x").exit_code == 2
    assert invoke(ws, "rm", "ABC").exit_code == 2


# --- fsck -------------------------------------------------------------------------------------


def test_fsck_finds_exactly_the_damaged_objects_and_repair_makes_them_run_again(
        ws: Workspace, tmp_path: Path) -> None:
    steps = [Step(i=i, variant=60) for i in range(6)]
    run_experiment(ws, "f", steps)
    entry = cache_entry(ws, 7, tmp_path / "counters")
    clean = invoke(ws, "fsck")
    assert clean.exit_code == 0 and "0 damaged" in clean.stdout

    flipped, truncated, deleted, manifest = (task_dir(ws, s) for s in steps[:4])
    data = bytearray((flipped / "data.bin").read_bytes())
    data[len(data) // 2] ^= 0x01
    (flipped / "data.bin").write_bytes(bytes(data))
    with open(truncated / "out.txt", "r+b") as handle:
        handle.truncate(1)
    (deleted / "data.bin").unlink()
    (manifest / ".xpm" / "done").write_text("{not json")
    entry_dir = ws.cache / "tests.store.Terms" / entry
    (entry_dir / "terms.txt").write_text("tampered")
    damaged = {d.name for d in (flipped, truncated, deleted, manifest)} | {entry}

    found = invoke(ws, "fsck", "--json")
    assert found.exit_code == 1
    report = json.loads(found.stdout)
    assert {d["identifier"] for d in report["damaged"]} == damaged
    assert report["repaired"] == []
    assert all(taskdirs.is_done(d) for d in (flipped, truncated, deleted, manifest))

    repaired = invoke(ws, "fsck", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "5 damaged, 5 repaired" in repaired.stdout
    assert not any(taskdirs.is_done(d) for d in (flipped, truncated, deleted, manifest, entry_dir))
    assert not damaged & Index.for_workspace(ws).identifiers()
    assert invoke(ws, "fsck").exit_code == 0

    run_experiment(ws, "f", steps)  # the next submit runs the damaged tasks again
    assert {d.name for d in check_done_objects(ws)} == {s.__identifier__ for s in steps}
    assert invoke(ws, "fsck").exit_code == 0


def test_fsck_reconciles_the_index(ws: Workspace) -> None:
    step = Step(i=0, variant=61)
    taskdirs.run_here(ws, step)
    index = Index.for_workspace(ws)
    record = index.get(step.__identifier__)
    assert record is not None
    index.put(step.__identifier__, {**record, "size": 1})
    index.put("e" * 64, {**record, "path": "jobs/tests.gc.Step/" + "e" * 64})
    result = json.loads(invoke(ws, "fsck", "--json").stdout)
    assert (result["index_removed"], result["index_fixed"]) == (1, 1)
    assert index.get(step.__identifier__) == {**record, "last_access": record["last_access"]}
    assert index.identifiers() == {step.__identifier__}


def test_index_rebuild(ws: Workspace) -> None:
    steps = run_chain(ws, "i", 2, variant=62)
    Index.for_workspace(ws).delete_many(ids(steps))
    result = invoke(ws, "index", "rebuild")
    assert result.exit_code == 0 and "2 objects" in result.stdout
    assert Index.for_workspace(ws).identifiers() == ids(steps)
