"""The LMDB index (xpmstore.store.index): records and secondary keys, pins, the digest memo,
rebuild, damage, and processes (a forked child, a second handle)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import lmdb
import pytest

from xpmstore.errors import InvalidIdentifierError
from xpmstore.store import index as index_module
from xpmstore.store.index import SCHEMA, Index

from ..storehelpers import fork_call, isolate


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def ident(n: int) -> str:
    return f"{n:064x}"


def record(name: str = "pkg.Learn", *, kind: str = "task", created: float = 1.0,
           tags: dict[str, Any] | None = None, dependencies: list[str] | None = None,
           **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "name": name, "path": f"jobs/{name}/x", "created": created,
            "last_access": created, "size": 0, "tags": tags or {},
            "dependencies": dependencies or [], "identity": None, **extra}


@pytest.fixture
def index(tmp_path: Path) -> Index:
    return Index.open(tmp_path / "index")


def reopen(index: Index) -> Index:
    """Close this process's handle and open the same path again."""
    index.close()
    return Index.open(index.path)


# --- records ------------------------------------------------------------------------------------


def test_put_get_delete(index: Index) -> None:
    assert index.get(ident(1)) is None
    index.put(ident(1), record(created=5.0))
    assert index.get(ident(1)) == record(created=5.0)
    index.put(ident(1), record(created=6.0))
    assert index.get(ident(1))["created"] == 6.0
    assert index.count() == 1
    assert index.delete(ident(1)) is True
    assert index.delete(ident(1)) is False
    assert index.get(ident(1)) is None
    assert index.count() == 0


def test_summaries_leave_the_identity_out(index: Index) -> None:
    identity = {"name": "pkg.Learn", "fields": {"identity": {"$config": {"fields": {"a": 1}}},
                                                "b": [1, {"c": "}}"}]}}
    index.put(ident(1), record(identity=identity, tags={"t": "x,\"identity\":{"}))
    index.put(ident(2), record(kind="cache", config=ident(9), method="m", file="f"))
    index.put(ident(3), {**record(identity=identity), "after": {"kept": True}})
    index.put(ident(4), {**record(), "identity": {"a": 1}, "later": 2})
    summaries = dict(index.summaries())
    full = dict(index.items())
    assert summaries[ident(1)] == {k: v for k, v in full[ident(1)].items() if k != "identity"}
    assert summaries[ident(2)] == full[ident(2)]  # a null identity: parsed whole
    for n in (3, 4):  # keys after the identity: the index moves the identity last
        assert summaries[ident(n)] == {k: v for k, v in full[ident(n)].items() if k != "identity"}
    assert summaries[ident(3)]["after"] == {"kept": True} and summaries[ident(4)]["later"] == 2
    for n in (1, 2, 3, 4):  # one record, as Store.get reads it: the same cut
        raw = bytes.fromhex(ident(n))
        assert index.get_raw(raw, identity=False) == summaries[ident(n)]
        assert index.get_raw(raw) == full[ident(n)]
    assert index.get_raw(bytes.fromhex(ident(5)), identity=False) is None


def test_put_many_items_identifiers(index: Index) -> None:
    index.put_many((ident(n), record(created=float(n))) for n in (3, 1, 2))
    assert [i for i, _ in index.items()] == [ident(1), ident(2), ident(3)]
    assert index.identifiers() == {ident(1), ident(2), ident(3)}
    index.delete_many([ident(1), ident(3), ident(99)])
    assert index.identifiers() == {ident(2)}


def test_records_survive_a_reopen(index: Index) -> None:
    index.put(ident(7), record(tags={"a": 1}))
    index.pin(ident(7))
    again = reopen(index)
    assert again is not index
    assert again.get(ident(7)) == record(tags={"a": 1})
    assert again.pins() == {ident(7)}


def test_touch(index: Index) -> None:
    index.put(ident(1), record(created=1.0))
    index.touch(ident(1), 50.0)
    assert index.get(ident(1))["last_access"] == 50.0
    index.touch(ident(2), 50.0)  # unknown: nothing happens
    assert index.get(ident(2)) is None


def test_prefix(index: Index) -> None:
    ids = ["ab" + "0" * 62, "ab" + "1" * 62, "abc" + "0" * 61, "b" * 64]
    index.put_many((i, record()) for i in ids)
    assert index.with_prefix("a") == sorted(ids[:3])
    assert index.with_prefix("abc") == [ids[2]]
    assert index.with_prefix("ab0") == [ids[0]]
    assert index.with_prefix("b") == [ids[3]]
    assert index.with_prefix("c") == []
    assert index.with_prefix("f") == []
    assert index.with_prefix(ids[1]) == [ids[1]]
    assert index.with_prefix("a", limit=2) == sorted(ids[:3])[:2]


def test_by_name(index: Index) -> None:
    index.put(ident(1), record("pkg.A"))
    index.put(ident(2), record("pkg.A"))
    index.put(ident(3), record("pkg.AB"))  # a longer name is not a match
    assert sorted(index.by_name("pkg.A")) == [ident(1), ident(2)]
    assert index.by_name("pkg.AB") == [ident(3)]
    assert index.by_name("pkg") == []
    index.put(ident(2), record("pkg.B"))  # renamed: the old secondary key goes
    assert index.by_name("pkg.A") == [ident(1)]
    assert index.by_name("pkg.B") == [ident(2)]
    index.delete(ident(1))
    assert index.by_name("pkg.A") == []


def test_by_tag_distinguishes_types(index: Index) -> None:
    index.put(ident(1), record(tags={"lr": 0.1, "mode": "x"}))
    index.put(ident(2), record(tags={"lr": 1}))
    index.put(ident(3), record(tags={"lr": True}))
    index.put(ident(4), record(tags={"lr": 1.0}))
    assert index.by_tag("lr", 0.1) == [ident(1)]
    assert index.by_tag("lr", 1) == [ident(2)]
    assert index.by_tag("lr", True) == [ident(3)]
    assert index.by_tag("lr", 1.0) == [ident(4)]
    assert index.by_tag("mode", "x") == [ident(1)]
    assert index.by_tag("mode", "y") == []
    index.put(ident(1), record(tags={}))
    assert index.by_tag("lr", 0.1) == []


def test_add_tags_keeps_the_union_of_submissions(index: Index) -> None:
    index.put(ident(1), record(tags={"seed": 1}))
    unknown = index.add_tags([(ident(1), {"model": "small", "seed": 5}), (ident(2), {"x": 1}),
                              (ident(3), {})])
    assert unknown == {ident(2)}  # an empty set of tags is not even looked up
    assert index.get(ident(1))["tags"] == {"seed": 1, "model": "small"}  # first value wins
    assert index.by_tag("model", "small") == [ident(1)]
    assert index.by_tag("seed", 5) == []
    index.put_many([(ident(1), record(tags={"lr": 0.5}))], keep_tags=True)
    assert index.get(ident(1))["tags"] == {"lr": 0.5, "seed": 1, "model": "small"}
    assert index.by_tag("lr", 0.5) == index.by_tag("seed", 1) == [ident(1)]
    index.put(ident(1), record(tags={"lr": 0.5}))  # a plain put replaces them
    assert index.by_tag("seed", 1) == []


def test_dependents(index: Index) -> None:
    index.put(ident(1), record())
    index.put(ident(2), record(dependencies=[ident(1)]))
    index.put(ident(3), record(dependencies=[ident(1), ident(2)]))
    assert sorted(index.dependents(ident(1))) == [ident(2), ident(3)]
    assert index.dependents(ident(2)) == [ident(3)]
    assert index.dependents(ident(3)) == []
    index.delete(ident(3))
    assert index.dependents(ident(1)) == [ident(2)]
    assert index.dependents(ident(2)) == []


def test_pins(index: Index) -> None:
    index.pin(ident(1))
    index.pin(ident(2))
    index.pin(ident(1))
    assert index.pins() == {ident(1), ident(2)}
    index.pin(ident(1), pinned=False)
    index.pin(ident(9), pinned=False)
    assert index.pins() == {ident(2)}


def test_replace_pins(index: Index) -> None:
    index.pin(ident(1))
    index.pin(ident(2))
    index.replace_pins([ident(2), ident(3)])
    assert index.pins() == {ident(2), ident(3)}
    assert reopen(index).pins() == {ident(2), ident(3)}
    index.replace_pins([])
    assert index.pins() == set()
    with pytest.raises(InvalidIdentifierError):
        index.replace_pins(["../x"])


def test_digest_memo(index: Index) -> None:
    key = (2049, 123456, 10, 1_700_000_000_000_000_000, 1_700_000_000_000_000_001)
    digest = b"\x01" + bytes(range(32))
    assert index.get_digest(key) is None
    index.put_digest(key, digest)
    index.flush_digests()
    assert index.get_digest(key) == digest
    assert index.get_digest((2049, 123456, 10, 1_700_000_000_000_000_000, 0)) is None
    assert reopen(index).get_digest(key) == digest


def test_replace_all_keeps_pins_and_digests(index: Index) -> None:
    key = (1, 2, 3, 4, 5)
    index.put(ident(1), record("pkg.Old", tags={"t": 1}, dependencies=[ident(5)]))
    index.pin(ident(1))
    index.put_digest(key, b"d" * 33)
    index.flush_digests()
    written = index.replace_all([(ident(2), record("pkg.New", tags={"t": 2})),
                                 (ident(3), record("pkg.New", dependencies=[ident(2)]))])
    assert written == 2
    assert index.identifiers() == {ident(2), ident(3)}
    assert index.by_name("pkg.Old") == []
    assert index.by_tag("t", 1) == []
    assert index.dependents(ident(5)) == []
    assert sorted(index.by_name("pkg.New")) == [ident(2), ident(3)]
    assert index.by_tag("t", 2) == [ident(2)]
    assert index.dependents(ident(2)) == [ident(3)]
    assert index.pins() == {ident(1)}
    assert index.get_digest(key) == b"d" * 33
    assert index.replace_all([]) == 0
    assert index.count() == 0


@pytest.mark.parametrize("bad", ["", "../x", "/etc", "A" * 64, "g" * 64, "ab", "a" * 63,
                                 "a" * 65, "\uff10" * 64, "0" * 63 + "\x00"])
def test_bad_identifiers_are_refused(index: Index, bad: str) -> None:
    for call in (index.get, index.delete, index.pin, index.dependents,
                 lambda i: index.put(i, record()), lambda i: index.touch(i, 1.0)):
        with pytest.raises(InvalidIdentifierError):
            call(bad)
    assert index.count() == 0


def test_prefix_must_be_hex(index: Index) -> None:
    for bad in ("", "G", "../", "AB"):
        with pytest.raises(InvalidIdentifierError):
            index.with_prefix(bad)


def test_grows_from_a_tiny_map(tmp_path: Path) -> None:
    small = Index(tmp_path / "small", map_size=64 * 1024)
    items = [(ident(n), record(tags={"pad": "x" * 500})) for n in range(2000)]
    small.put_many(items)
    assert small.count() == 2000
    assert small.env.info()["map_size"] > 64 * 1024


# --- damage -------------------------------------------------------------------------------------


def damaged(tmp_path: Path, how: str, capfd: pytest.CaptureFixture[str]) -> tuple[Index, str]:
    path = tmp_path / "index"
    first = Index.open(path)
    first.put_many((ident(n), record(tags={"pad": "y" * 300})) for n in range(300))
    first.close()
    data = path / "data.mdb"
    size = data.stat().st_size
    if how == "garbage":
        data.write_bytes(os.urandom(size))
    elif how == "schema":
        env = lmdb.open(str(path), max_dbs=8)
        with env.begin(write=True) as txn:
            txn.put(b"schema", b"999", db=env.open_db(b"meta", txn=txn))
        env.close()
    capfd.readouterr()
    fresh = Index.open(path)
    return fresh, capfd.readouterr().err


@pytest.mark.parametrize("how", ["garbage", "schema"])
def test_a_damaged_index_is_moved_aside_and_replaced(tmp_path: Path, how: str,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    fresh, err = damaged(tmp_path, how, capfd)
    assert fresh.count() == 0
    fresh.put(ident(1), record())
    assert fresh.get(ident(1)) == record()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert str(tmp_path / "index") in lines[0]
    if how == "schema":  # an upgrade is not called damage
        assert "another version of xpmstore" in lines[0] and "is damaged" not in lines[0]
    else:
        assert "is damaged" in lines[0] and "moved it to" in lines[0]
    aside = [p.name for p in tmp_path.iterdir() if p.name.startswith("index.damaged-")]
    assert len(aside) == 1 and re.fullmatch(r"index\.damaged-\d{8}T\d{6}", aside[0])
    assert aside[0] in lines[0]


def test_a_healthy_index_is_never_moved_aside(tmp_path: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "index"
    index = Index.open(path)
    index.put(ident(1), record())
    capfd.readouterr()
    twin = Index(path)  # a second handle in the same process shares the environment
    assert twin.get(ident(1)) == record()
    twin.put(ident(2), record())
    assert index.get(ident(2)) == record()
    assert reopen(index).count() == 2
    assert capfd.readouterr().err == ""
    assert [p.name for p in tmp_path.iterdir() if "damaged" in p.name] == []


def test_an_empty_data_file_opens_empty(tmp_path: Path) -> None:
    path = tmp_path / "index"
    Index.open(path).close()
    (path / "data.mdb").write_bytes(b"")
    assert Index.open(path).count() == 0


def test_schema_is_recorded(index: Index) -> None:
    env = index.env
    with env.begin() as txn:
        assert txn.get(b"schema", db=index.dbs[b"meta"]) == SCHEMA


# --- processes ----------------------------------------------------------------------------------


def test_a_forked_child_uses_the_index_safely(tmp_path: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    """A child forked while the parent holds the open index reads the parent's records, writes
    its own through the inherited object and a freshly opened one, and the parent sees them."""
    index = Index.open(tmp_path / "index")
    index.put(ident(1), record("pkg.Parent"))
    assert index.get(ident(1)) is not None  # the parent has read and written

    def child() -> list[Any]:
        seen = index.get(ident(1))  # the inherited object reopens for this process
        index.put(ident(2), record("pkg.Child"))
        again = Index.open(tmp_path / "index")
        again.put(ident(3), record("pkg.Child"))
        return [seen, again.get(ident(2)), index.get(ident(3)), sorted(index.identifiers())]

    capfd.readouterr()
    seen, two, three, ids = fork_call(child)
    assert seen == record("pkg.Parent")
    assert two == record("pkg.Child") and three == record("pkg.Child")
    assert ids == [ident(1), ident(2), ident(3)]
    assert capfd.readouterr().err == ""  # the child did not take the index for corrupt
    assert sorted(index.by_name("pkg.Child")) == [ident(2), ident(3)]
    index.put(ident(4), record())
    assert index.count() == 4
    assert Index.open(tmp_path / "index") is index
    assert [p.name for p in tmp_path.iterdir() if "damaged" in p.name] == []


def test_nested_forks(tmp_path: Path) -> None:
    index = Index.open(tmp_path / "index")
    index.put(ident(1), record())

    def grandchild() -> int:
        index.put(ident(3), record())
        return index.count()

    def child() -> int:
        index.put(ident(2), record())
        return int(fork_call(grandchild))

    assert fork_call(child) == 3
    assert index.identifiers() == {ident(1), ident(2), ident(3)}


def test_open_is_cached_per_process(tmp_path: Path) -> None:
    one = Index.open(tmp_path / "index")
    assert Index.open(tmp_path / "index") is one
    assert index_module._open[str(tmp_path / "index")][1] is one
    assert fork_call(lambda: Index.open(tmp_path / "index") is not one)


def test_long_tags_and_names_are_indexed(index: Index) -> None:
    """LMDB keys are at most 511 bytes: long tag values and identity names still work."""
    long_value = "v" * 1000
    long_name = "pkg." + "N" * 600
    index.put(ident(1), record(long_name, tags={"note": long_value, "t" * 500: 1}))
    index.put(ident(2), record(long_name + "2", tags={"note": long_value + "2"}))
    index.put(ident(3), record("pkg." + "N" * 470, tags={"edge": "e" * 470}))  # near the limit
    assert index.by_tag("note", long_value) == [ident(1)]
    assert index.by_tag("note", long_value + "2") == [ident(2)]
    assert index.by_tag("t" * 500, 1) == [ident(1)]
    assert index.by_name(long_name) == [ident(1)]
    assert index.by_name("pkg." + "N" * 470) == [ident(3)]
    assert index.by_tag("edge", "e" * 470) == [ident(3)]
    index.delete(ident(1))
    assert index.by_tag("note", long_value) == []
    assert index.by_name(long_name) == []


def test_one_index_reached_through_a_symlink(tmp_path: Path) -> None:
    """A workspace named through a symlink and through its real path, in one process."""
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    one = Index.open(tmp_path / "real" / "index")
    one.put(ident(1), record())
    two = Index.open(tmp_path / "alias" / "index")
    assert two.get(ident(1)) == record()
    two.put(ident(2), record())
    assert one.identifiers() == {ident(1), ident(2)}
