"""The Index against a plain dict model (hypothesis RuleBasedStateMachine): put, get, delete,
replace_all (a rebuild) and reopen; after every step its contents, names, tags and dependents are
those of the model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from xpmstore.store import index as index_module
from xpmstore.store.index import Index

IDENTIFIERS = st.sampled_from([f"{n:02x}" * 32 for n in (0, 1, 2, 0x10, 0x11, 0xAB, 0xFF)]
                              + ["ab" + "00" * 31, "ab" + "01" * 31])
NAMES = st.sampled_from(["pkg.A", "pkg.AB", "pkg.B", "x." + "N" * 500])
TAG_VALUES = st.one_of(st.integers(-3, 3), st.booleans(), st.sampled_from([0.5, 1.0, -0.0]),
                       st.text(max_size=8), st.just("long" * 150))
TAGS = st.dictionaries(st.sampled_from(["lr", "mode", "seed"]), TAG_VALUES, max_size=3)


@st.composite
def records(draw: Any) -> dict[str, Any]:
    return {
        "kind": draw(st.sampled_from(["task", "cache"])),
        "name": draw(NAMES),
        "path": draw(st.text(max_size=10)),
        "created": draw(st.floats(0, 2e9, allow_nan=False)),
        "tags": draw(TAGS),
        "dependencies": sorted(draw(st.sets(IDENTIFIERS, max_size=3))),
        "identity": draw(st.none() | st.dictionaries(st.text(max_size=3), st.integers(),
                                                     max_size=2)),
    }


def same_tag(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (a == b or (a != a and b != b))


class IndexMachine(RuleBasedStateMachine):
    """Model: identifier → record; pins: a set."""

    known = Bundle("known")

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="xpmstore-index-sm-"))
        self.path = self.folder / "index"
        self.index = Index.open(self.path, map_size=64 * 1024)  # small: growth is exercised
        self.model: dict[str, dict[str, Any]] = {}
        self.pins: set[str] = set()

    def teardown(self) -> None:
        self.index.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @initialize(target=known, ident=IDENTIFIERS)
    def first(self, ident: str) -> str:
        return ident

    @rule(target=known, ident=IDENTIFIERS, record=records())
    def put(self, ident: str, record: dict[str, Any]) -> str:
        self.index.put(ident, record)
        self.model[ident] = record
        return ident

    @rule(items=st.lists(st.tuples(IDENTIFIERS, records()), max_size=4))
    def put_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        self.index.put_many(items)
        for ident, record in items:
            self.model[ident] = record

    @rule(ident=known)
    def get(self, ident: str) -> None:
        assert self.index.get(ident) == self.model.get(ident)

    @rule(ident=consumes(known))
    def delete(self, ident: str) -> None:
        assert self.index.delete(ident) == (ident in self.model)
        self.model.pop(ident, None)

    @rule(ident=IDENTIFIERS, pinned=st.booleans())
    def pin(self, ident: str, pinned: bool) -> None:
        self.index.pin(ident, pinned)
        (self.pins.add if pinned else self.pins.discard)(ident)

    @rule(items=st.dictionaries(IDENTIFIERS, records(), max_size=5))
    def replace_all(self, items: dict[str, dict[str, Any]]) -> None:
        assert self.index.replace_all(items.items()) == len(items)
        self.model = dict(items)

    @rule()
    def reopen(self) -> None:
        """Forget this process's handle (the per-process cache entry included) and open a new
        Index on the same path."""
        self.index.close()
        index_module._open.pop(str(self.path), None)
        fresh = Index.open(self.path, map_size=64 * 1024)
        assert fresh is not self.index
        self.index = fresh

    @invariant()
    def contents_equal_the_model(self) -> None:
        assert dict(self.index.items()) == self.model
        assert self.index.count() == len(self.model)
        assert self.index.pins() == self.pins

    @invariant()
    def secondary_keys_follow(self) -> None:
        for name in {r["name"] for r in self.model.values()} | {"pkg.A"}:
            expected = sorted(i for i, r in self.model.items() if r["name"] == name)
            assert sorted(self.index.by_name(name)) == expected
        for ident in self.model:
            expected = sorted(i for i, r in self.model.items() if ident in r["dependencies"])
            assert sorted(self.index.dependents(ident)) == expected
        for record in self.model.values():
            for tag, value in record["tags"].items():
                expected = sorted(i for i, r in self.model.items()
                                  if tag in r["tags"] and same_tag(r["tags"][tag], value))
                assert sorted(self.index.by_tag(tag, value)) == expected
        for prefix in ("ab", "0", "ff", "1"):
            expected = sorted(i for i in self.model if i.startswith(prefix))
            assert self.index.with_prefix(prefix) == expected


IndexMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestIndexMachine = IndexMachine.TestCase
