"""Looking prior results up (xpmstore.store.lookup): status, outputs, find, get, explain, records,
reconcile and rebuild, and recovery from a lost or damaged index."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xpmstore import Config, Param, Task, cache, field, load
from xpmstore.errors import (
    AmbiguousPrefixError,
    ConfigTypeError,
    InvalidIdentifierError,
    MissingFieldError,
    NotFound,
    UnknownFieldError,
)
from xpmstore.store import taskdirs, taskstate
from xpmstore.store.index import Index, index_location
from xpmstore.store.lookup import Record, Store
from xpmstore.store.workspace import DONE, Workspace

from ..storehelpers import (
    Evaluate,
    Learn,
    Model,
    Terms,
    Tiny,
    active,
    fork_call,
    isolate,
    make_workspace,
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = make_workspace(tmp_path / "ws")
    with active(workspace):
        yield workspace


@pytest.fixture
def store(ws: Workspace) -> Store:
    return Store(ws)


def run(ws: Workspace, task: Any) -> Path:
    return taskdirs.run_here(ws, task)


# --- status and outputs -------------------------------------------------------------------------


def test_status_done_and_absent(ws: Workspace, store: Store) -> None:
    learn = Learn(model=Model())
    assert store.status(learn) == "absent"
    taskdirs.prepare_task_dir(ws, learn)
    assert store.status(Learn(model=Model())) == "absent"
    run(ws, learn)
    assert store.status(Learn(model=Model())) == "done"


def write_state(directory: Path, state: str, launch: dict[str, Any] | None = None) -> None:
    (directory / ".xpm").mkdir(parents=True, exist_ok=True)
    (directory / ".xpm" / "state.json").write_text(json.dumps({"state": state}))
    if launch is not None:
        (directory / ".xpm" / "launch.json").write_text(json.dumps(launch))


def test_status_failed_and_running(ws: Workspace, store: Store) -> None:
    task = Learn(model=Model(hidden=1))
    directory = taskdirs.prepare_task_dir(ws, task)
    write_state(directory, "failed")
    assert store.status(task) == "failed"
    me = {"host": socket.gethostname(), "boot_id": taskstate.boot_id(), "pid": os.getpid(),
          "pid_start": taskstate.process_start(os.getpid()), "launcher": "local"}
    write_state(directory, "running", me)
    assert store.status(task) == "running"
    dead_pid = fork_call(lambda: os.getpid())  # a child that has exited and been reaped
    write_state(directory, "running", dict(me, pid=dead_pid))
    assert store.status(task) == "failed"  # its holder died: it crashed
    write_state(directory, "running", dict(me, pid_start=(me["pid_start"] or 0) + 1))
    assert store.status(task) == "failed"  # a recycled pid is not the holder
    write_state(directory, "running")  # no launch record at all
    assert store.status(task) == "failed"
    (directory / ".xpm" / "state.json").write_text("{not json")
    assert store.status(task) == "absent"
    run(ws, task)
    assert store.status(task) == "done"  # done wins over any state


def test_outputs(ws: Workspace, store: Store) -> None:
    learn = Learn(model=Model(hidden=2))
    with pytest.raises(NotFound) as info:
        store.outputs(learn)
    assert "Learn" in str(info.value)
    run(ws, learn)
    fresh = Learn(model=Model(hidden=2))
    out = store.outputs(fresh)
    assert out is fresh
    assert Path(out.checkpoint).read_text() == "2 10 0.1\n"
    with pytest.raises(ConfigTypeError):
        store.outputs(Model())  # type: ignore[arg-type]


def test_status_and_outputs_of_what_is_not_a_task_say_what_to_call(store: Store) -> None:
    for call in (store.status, store.outputs):
        with pytest.raises(ConfigTypeError) as info:
            call(Terms(n=4).load)  # type: ignore[arg-type]
        assert "store.cached(config.load)" in str(info.value)
        with pytest.raises(ConfigTypeError) as info:
            call(Terms(n=4))  # type: ignore[arg-type]
        assert "@cache entries" in str(info.value) and "store.find(Terms)" in str(info.value)
        with pytest.raises(ConfigTypeError) as info:
            call(3)  # type: ignore[arg-type]
        assert "got int" in str(info.value)


# --- find ---------------------------------------------------------------------------------------


@pytest.fixture
def learned(ws: Workspace) -> list[Learn]:
    """Five Learn tasks, run in this order (so the last is the newest)."""
    tasks = [
        Learn(model=Model(hidden=32), epochs=10).tag("lr", 0.1),
        Learn(model=Model(hidden=64), epochs=10).tag("lr", 0.1),
        Learn(model=Model(hidden=64), epochs=20).tag("lr", 0.2),
        Learn(model=Model(hidden=64, activation="tanh"), epochs=10),
        Learn(model=Model(hidden=128), epochs=10, lr=0.5).tag("lr", 0.5),
    ]
    for task in tasks:
        run(ws, task)
    return tasks


def ids(records: list[Any]) -> list[str]:
    return [r.identifier for r in records]


def test_find_by_params_newest_first(store: Store, learned: list[Learn]) -> None:
    found = store.find(Learn, epochs=10)
    assert ids(found) == [learned[i].__identifier__ for i in (4, 3, 1, 0)]
    assert [r.created for r in found] == sorted((r.created for r in found), reverse=True)
    assert ids(store.find(Learn, epochs=20)) == [learned[2].__identifier__]
    assert store.find(Learn, epochs=30) == []
    assert len(store.find(Learn)) == 5


def test_find_fills_in_defaults(store: Store, learned: list[Learn]) -> None:
    assert ids(store.find(Learn, lr=0.1)) == [learned[i].__identifier__ for i in (3, 2, 1, 0)]
    assert ids(store.find(Learn, lr=0.5)) == [learned[4].__identifier__]


def test_find_nested_fields(store: Store, learned: list[Learn]) -> None:
    assert ids(store.find(Learn, model__hidden=64)) == [
        learned[i].__identifier__ for i in (3, 2, 1)]
    assert ids(store.find(Learn, model__hidden=64, model__activation="tanh")) == [
        learned[3].__identifier__]
    assert ids(store.find(Learn, model__activation="relu", epochs=20)) == [
        learned[2].__identifier__]
    assert ids(store.find(Learn, model=Model(hidden=32))) == [learned[0].__identifier__]


def test_find_with_tags(store: Store, learned: list[Learn]) -> None:
    assert ids(store.find(Learn, tags={"lr": 0.1})) == [
        learned[1].__identifier__, learned[0].__identifier__]
    assert ids(store.find(Learn, tags={"lr": 0.1}, model__hidden=64)) == [
        learned[1].__identifier__]
    assert store.find(Learn, tags={"lr": 0.3}) == []
    assert store.find(Learn, tags={"other": 1}) == []


def test_find_by_status(ws: Workspace, store: Store, learned: list[Learn]) -> None:
    directory = ws.task_dir("tests.store.Learn", learned[0].__identifier__)
    os.unlink(directory / DONE)  # by hand: only a full reconcile sees it (docs/store.md)
    write_state(directory, "failed")
    assert [r.status for r in store.find(Learn, status=None)
            if r.identifier == learned[0].__identifier__] == ["failed"]  # the disk says
    store.reconcile(full=True)  # forgets the object that is no longer done
    assert learned[0].__identifier__ not in ids(store.find(Learn, status=None))
    taskdirs.run_here(ws, Learn(model=Model(hidden=32), epochs=10))  # done again
    assert ids(store.find(Learn, model__hidden=32)) == [learned[0].__identifier__]
    assert ids(store.find(Learn, model__hidden=32, status="failed")) == []


def test_find_refuses_unknown_fields_and_wrong_types(store: Store) -> None:
    with pytest.raises(UnknownFieldError):
        store.find(Learn, nope=1)
    with pytest.raises(UnknownFieldError):
        store.find(Learn, model__nope=1)
    with pytest.raises(UnknownFieldError):
        store.find(Learn, epochs__x=1)
    with pytest.raises(ConfigTypeError) as info:
        store.find(Learn, epochs="ten")
    assert "epochs" in str(info.value)
    for wrong in (int, 3, "tests.store.Learn", Learn(model=Model())):
        with pytest.raises(ConfigTypeError, match="takes a Config or Task class"):
            store.find(wrong)  # type: ignore[arg-type]


def test_find_ignores_other_classes_and_cache_entries(ws: Workspace, store: Store,
                                                      tmp_path: Path) -> None:
    learn = Learn(model=Model())
    run(ws, learn)
    run(ws, Evaluate(learned=learn))
    (tmp_path / "counters").mkdir()
    Terms(n=1).load(str(tmp_path / "counters"))
    assert ids(store.find(Learn)) == [learn.__identifier__]
    assert len(store.find(Evaluate)) == 1
    assert [r.kind for r in store.find(Terms)] == ["cache"]  # a config's results: its entries


def test_find_through_a_task_reference(ws: Workspace, store: Store) -> None:
    learns = [Learn(model=Model(), epochs=5), Learn(model=Model(hidden=8), epochs=7)]
    evaluates = [Evaluate(learned=learn) for learn in learns]
    for task in (*learns, *evaluates):
        run(ws, task)
    assert ids(store.find(Evaluate, learned__epochs=5)) == [evaluates[0].__identifier__]
    assert ids(store.find(Evaluate, learned__model__hidden=8)) == [evaluates[1].__identifier__]
    assert ids(store.find(Evaluate, learned__model__hidden=64, learned__lr=0.1)) == [
        evaluates[0].__identifier__]  # defaults of the referenced task filled in
    assert store.find(Evaluate, learned__epochs=6) == []
    assert ids(store.find(Evaluate, learned=learns[1])) == [evaluates[1].__identifier__]
    with pytest.raises(UnknownFieldError) as info:
        store.find(Evaluate, learned__nope=1)
    assert "'nope'" in str(info.value)
    with pytest.raises(ConfigTypeError):
        store.find(Evaluate, learned__epochs="five")
    nearest = store.explain(Evaluate(learned=Learn(model=Model(), epochs=6)))
    assert nearest[0].record.identifier == evaluates[0].__identifier__
    assert nearest[0].differences == ["learned.epochs: 5 here, 6 asked"]  # field by field
    shutil.rmtree(ws.task_dir("tests.store.Learn", learns[0].__identifier__))
    assert store.find(Evaluate, learned__epochs=5) == []  # a reference that is gone matches not


class Wide(Config):
    __xpmid__ = "tests.store.Wide"
    hidden: Param[int] = 1


class WithDefaultModel(Task):
    """A task whose nested config's default is not the class's default instance."""

    __xpmid__ = "tests.store.WithDefaultModel"
    model: Param[Model] = field(default_factory=lambda: Model(hidden=5))
    wide: Param[Wide] = field(default_factory=lambda: Wide(hidden=2))

    def execute(self) -> None:
        pass


def test_find_fills_in_a_nested_default_made_by_a_factory(ws: Workspace, store: Store) -> None:
    default, other = WithDefaultModel(), WithDefaultModel(model=Model(hidden=6))
    run(ws, default)
    run(ws, other)
    assert ids(store.find(WithDefaultModel, model__hidden=5)) == [default.__identifier__]
    assert ids(store.find(WithDefaultModel, wide__hidden=2)) == ids(store.find(
        WithDefaultModel))
    assert store.find(WithDefaultModel, model__hidden=64) == []  # Model's own default: not it
    wanted = store.explain(WithDefaultModel(model=Model(hidden=7)))
    assert sorted(e.differences[0] for e in wanted) == [
        "model.hidden: 5 here, 7 asked", "model.hidden: 6 here, 7 asked"]


class Pair(Config):
    __xpmid__ = "tests.store.Pair"
    a: Param[int]
    b: Param[int]
    model: Param[Model] = field(default_factory=Model)

    @cache("sum.txt")
    def total(self, path: Path) -> int:
        if not path.is_file():
            path.write_text(str(self.a + self.b + self.model.hidden))
        return int(path.read_text())


def test_cached_looks_an_entry_up_without_computing_it(ws: Workspace, store: Store,
                                                        tmp_path: Path) -> None:
    counters = tmp_path / "counters"
    counters.mkdir()
    assert store.cached(Terms(n=4).load) is None
    assert not (ws.root / "cache" / "tests.store.Terms").exists()  # nothing computed
    Terms(n=4).load(str(counters))
    record = store.cached(Terms(n=4).load)
    assert record is not None and record.kind == "cache" and record.status == "done"
    assert record.config == Terms(n=4).__identifier__ and record.name == "tests.store.Terms"
    assert (record.path / "terms.txt").read_text().startswith("terms of 4")
    assert store.cached(Terms(n=5).load) is None
    assert store.cached(Terms(n=4).boom) is None  # another method, another entry
    assert sorted(os.listdir(counters)) == ["terms-4"]
    Index.for_workspace(ws).delete(record.identifier)  # made elsewhere: read from the disk
    again = store.cached(Terms(n=4).load)
    assert again is not None and again.identifier == record.identifier
    for wrong in (Terms(n=4), Terms.load, Pair(a=1, b=2).__repr__, len):
        with pytest.raises(ConfigTypeError) as info:
            store.cached(wrong)  # type: ignore[arg-type]
        assert "store.cached(Terms(n=4).load)" in str(info.value)


def test_find_of_a_config_class_finds_its_cache_entries(ws: Workspace, store: Store) -> None:
    pairs = [Pair(a=1, b=2), Pair(a=1, b=3), Pair(a=1, b=2, model=Model(hidden=1))]
    for pair in pairs:
        pair.total()
    entries = store.find(Pair)
    assert len(entries) == 3 and {r.kind for r in entries} == {"cache"}
    assert [r.created for r in entries] == sorted((r.created for r in entries), reverse=True)
    assert ids(store.find(Pair, a=1, b=3)) == [store.cached(pairs[1].total).identifier]
    assert ids(store.find(Pair, a=1, b=2, model__hidden=1)) == [
        store.cached(pairs[2].total).identifier]
    assert store.find(Pair, a=9, b=9) == []
    assert store.find(Pair, tags={"x": 1}) == []  # entries have no tags
    with pytest.raises(MissingFieldError) as info:
        store.find(Pair, a=1)
    assert "b" in str(info.value) and "every field without a default" in str(info.value)
    with pytest.raises(UnknownFieldError):
        store.find(Pair, a=1, b=2, nope=3)


# --- get and records ----------------------------------------------------------------------------


def test_get_by_identifier_and_prefix(ws: Workspace, store: Store) -> None:
    learn = Learn(model=Model()).tag("lr", 0.1)
    directory = run(ws, learn)
    record = store.get(learn.__identifier__)
    assert record.identifier == learn.__identifier__
    assert record.kind == "task" and record.name == "tests.store.Learn"
    assert record.status == "done" and record.path == directory
    assert record.tags == {"lr": 0.1} and record.dependencies == [] and record.config is None
    assert record.size == sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
    assert record.last_access >= record.created
    for length in (1, 6, 63):
        assert store.get(learn.__identifier__[:length]) == record
    as_json = record.to_json()
    assert as_json["path"] == str(directory) and json.loads(json.dumps(as_json)) == as_json
    # built field by field on the fast path: the same as the dataclass's own constructor
    fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(Record)}
    assert set(vars(record)) == set(fields) and Record(**fields) == record


def test_get_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.get("0" * 64)
    with pytest.raises(NotFound) as info:
        store.get("abc")
    assert "abc" in str(info.value)


def test_get_of_an_object_not_done_says_so(ws: Workspace, store: Store) -> None:
    learn = Learn(model=Model(), epochs=3)
    taskdirs.prepare_task_dir(ws, learn)  # its directory exists: it was claimed, never finished
    with pytest.raises(NotFound) as info:
        store.get(learn.__identifier__)
    message = str(info.value)
    assert "is not done" in message and "absent" in message and learn.__identifier__ in message
    assert "\n" not in message
    with pytest.raises(NotFound, match="no object"):
        store.get("0" * 64)


def test_ambiguous_prefix_lists_candidates(ws: Workspace, store: Store) -> None:
    made = [Tiny(i=i).__identifier__ for i in range(17)]  # 17 ids: two share a first digit
    for i in range(17):
        run(ws, Tiny(i=i))
    first = next(c for c in "0123456789abcdef" if sum(m.startswith(c) for m in made) >= 2)
    expected = sorted(m for m in made if m.startswith(first))
    with pytest.raises(AmbiguousPrefixError) as info:
        store.get(first)
    assert info.value.candidates == expected
    assert isinstance(info.value, InvalidIdentifierError)
    message = str(info.value)
    assert "\n" not in message
    assert all(candidate[:16] in message for candidate in expected)
    for ident in made:
        assert store.get(ident).identifier == ident


@pytest.mark.parametrize("bad", ["", "../x", "/etc/passwd", "ABC", "0x12", " abc", "a" * 65,
                                 "\uff11\uff12", "ab\x00", "ab\n"])
def test_get_refuses_bad_identifiers(store: Store, bad: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        store.get(bad)


def test_a_prefix_get_finds_objects_made_elsewhere(ws: Workspace, store: Store,
                                                   tmp_path: Path) -> None:
    """Objects copied into the workspace (made on another host) are found by prefix."""
    other = make_workspace(tmp_path / "other")
    task = Tiny(i=9)
    directory = taskdirs.run_here(other, task)
    target = ws.jobs / "tests.store.Tiny" / task.__identifier__
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(directory, target, symlinks=True)
    assert store.index.get(task.__identifier__) is None
    assert store.get(task.__identifier__[:8]).path == target
    assert store.get(task.__identifier__).status == "done"


def test_records_filters_and_order(ws: Workspace, store: Store, tmp_path: Path) -> None:
    learn = Learn(model=Model())
    run(ws, learn)
    (tmp_path / "counters").mkdir()
    Terms(n=1).load(str(tmp_path / "counters"))
    run(ws, Tiny(i=1))
    every = store.records()
    assert [r.name for r in every] == ["tests.store.Tiny", "tests.store.Terms",
                                       "tests.store.Learn"]
    assert [r.kind for r in store.records(kind="cache")] == ["cache"]
    assert ids(store.records(name="tests.store.Learn")) == [learn.__identifier__]
    assert store.records(kind="cache", name="tests.store.Learn") == []
    assert all(r.status == "done" for r in every)


def test_reconcile_adds_and_removes(ws: Workspace, store: Store) -> None:
    kept, gone = run(ws, Tiny(i=1)), run(ws, Tiny(i=2))
    index = store.index
    index.replace_all([])
    index.put("e" * 64, {"kind": "task", "name": "x", "path": "jobs/x/" + "e" * 64,
                         "created": 0.0})
    assert store.reconcile() == (2, 1)
    shutil.rmtree(gone)
    assert store.reconcile() == (0, 1)
    assert index.identifiers() == {kept.name}
    assert store.reconcile() == (0, 0)


def test_rebuild(ws: Workspace, store: Store, tmp_path: Path) -> None:
    dirs = [run(ws, Tiny(i=i)) for i in range(3)]
    (tmp_path / "counters").mkdir()
    Terms(n=2).load(str(tmp_path / "counters"))
    taskdirs.prepare_task_dir(ws, Tiny(i=99))  # not done: not indexed
    store.index.pin(dirs[0].name)
    store.index.replace_all([])
    assert store.rebuild() == 4
    assert {d.name for d in dirs} <= store.index.identifiers()
    assert store.index.count() == 4
    assert store.index.pins() == {dirs[0].name}


# --- explain and load ---------------------------------------------------------------------------


def test_explain_ranks_by_differing_fields(store: Store, learned: list[Learn]) -> None:
    wanted = Learn(model=Model(hidden=64), epochs=20, lr=0.5)
    ranked = store.explain(wanted)
    assert len(ranked) == 5
    counts = [len(e.differences) for e in ranked]
    assert counts == sorted(counts)
    assert ranked[0].record.identifier == learned[2].__identifier__  # only lr differs
    assert ranked[0].differences == ["lr: 0.1 here, 0.5 asked"]  # a default as its value
    assert ranked[-1].record.identifier in (learned[0].__identifier__,
                                            learned[3].__identifier__)
    assert len(store.explain(wanted, limit=2)) == 2
    nested = store.explain(Learn(model=Model(hidden=32)))
    assert nested[0].record.identifier == learned[0].__identifier__
    assert nested[0].differences == []


def test_load_by_identifier(ws: Workspace, monkeypatch: pytest.MonkeyPatch,
                            tmp_path: Path) -> None:
    learn = Learn(model=Model(hidden=5), epochs=3).tag("lr", 0.1)
    directory = run(ws, learn)
    monkeypatch.chdir(tmp_path)
    for where in (learn.__identifier__, learn.__identifier__[:10], str(directory),
                  str(directory / "params.json")):
        again = load(where)
        assert isinstance(again, Learn)
        assert again.__identifier__ == learn.__identifier__
        assert again.model.hidden == 5 and again.epochs == 3
    with pytest.raises(NotFound):
        load("0" * 64)


# --- a lost or damaged index --------------------------------------------------------------------


def populate(ws: Workspace, tmp_path: Path) -> list[str]:
    """Three tasks, a dependent and two cache entries; returns their identifiers."""
    made = []
    learn = Learn(model=Model(hidden=16))
    for task in (learn, Evaluate(learned=learn), Tiny(i=1), Tiny(i=2)):
        made.append(taskdirs.run_here(ws, task).name)
    (tmp_path / "counters").mkdir(exist_ok=True)
    for n in (1, 2):
        Terms(n=n).load(str(tmp_path / "counters"))
    made.extend(d.name for d in taskdirs.list_object_dirs(ws) if d.parent.parent.name == "cache")
    assert len(set(made)) == 6
    return made


def lookups(ws: Workspace, made: list[str]) -> dict[str, Any]:
    """What a fresh process finds (run in a forked child: its own index handle)."""
    def body() -> dict[str, Any]:
        store = Store(ws)
        by_id = {i: store.get(i).status for i in made}
        by_prefix = {i: store.get(i[:12]).identifier for i in made}
        records = sorted(r.identifier for r in store.records())
        rebuilt = store.rebuild()
        return {"by_id": by_id, "by_prefix": by_prefix, "records": records,
                "rebuilt": rebuilt, "count": store.index.count()}

    return fork_call(body)  # type: ignore[no-any-return]


@pytest.mark.parametrize("damage", ["deleted", "garbage", "emptied"])
def test_everything_is_found_again_after_losing_the_index(
        ws: Workspace, tmp_path: Path, damage: str, capfd: pytest.CaptureFixture[str]) -> None:
    made = populate(ws, tmp_path)
    location = index_location(ws)
    Index.open(location).close()  # this process forgets its handle too
    data = location / "data.mdb"
    if damage == "deleted":
        shutil.rmtree(location)
    elif damage == "garbage":
        data.write_bytes(os.urandom(data.stat().st_size))
    else:
        data.write_bytes(b"")
    capfd.readouterr()
    found = lookups(ws, made)
    assert found["by_id"] == {i: "done" for i in made}
    assert found["by_prefix"] == {i: i for i in made}
    assert found["records"] == sorted(made)
    assert found["rebuilt"] == 6 and found["count"] == 6
    err = capfd.readouterr().err
    assert len(err.splitlines()) == (1 if damage == "garbage" else 0), err
    store = Store(ws)  # and this process, reopening
    assert sorted(store.index.identifiers()) == sorted(made)
    evaluate = store.get(made[1])
    assert evaluate.dependencies == [made[0]]
    assert store.index.dependents(made[0]) == [made[1]]


def test_a_store_used_in_a_forked_child(ws: Workspace, store: Store) -> None:
    """A Store (and its open index) made in the parent works in a forked child."""
    first = run(ws, Tiny(i=1))
    assert store.get(first.name).status == "done"

    def child() -> list[str]:
        made = taskdirs.run_here(ws, Tiny(i=2))  # indexes through this process's own handle
        return [store.get(made.name[:10]).identifier, *sorted(store.index.identifiers())]

    second = ws.task_dir("tests.store.Tiny", Tiny(i=2).__identifier__).name
    assert fork_call(child) == [second, *sorted([first.name, second])]
    assert store.index.get(second) is not None  # the parent sees what the child wrote
    assert store.get(second[:10]).status == "done"
