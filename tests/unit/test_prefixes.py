"""Identifiers given as text (xpmstore.core.identifier): full identifiers, and the one rule and
wording of every lookup by identifier or prefix — ``Store.get``, ``locate``, a remote's
``resolve``, the pins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from xpmstore.core.identifier import check_full_identifier, is_full_identifier, unique_match
from xpmstore.errors import AmbiguousPrefixError, InvalidIdentifierError, NotFound
from xpmstore.remote.backends import DirectoryBackend
from xpmstore.remote.layout import Remote
from xpmstore.store import taskdirs
from xpmstore.store.locate import locate
from xpmstore.store.lookup import Store
from xpmstore.store.pins import pinned_match
from xpmstore.store.workspace import Workspace

from ..storehelpers import Tiny, active, isolate, make_workspace

FULL = "ab" * 32


@pytest.mark.parametrize(("value", "full"), [
    (FULL, True), ("0" * 64, True), (FULL[:63], False), (FULL + "a", False),
    (FULL.upper(), False), ("g" * 64, False), (FULL[:63] + "\n", False), (None, False),
    (b"ab" * 32, False), (64, False),
])
def test_a_full_identifier_is_64_lowercase_hex_characters(value: object, full: bool) -> None:
    assert is_full_identifier(value) is full
    if full:
        assert check_full_identifier(value) == value
    else:
        with pytest.raises(InvalidIdentifierError, match="not"):
            check_full_identifier(value)


def test_unique_match_is_the_one_identifier_or_one_line_saying_why() -> None:
    assert unique_match("ab", iter([FULL])) == FULL
    with pytest.raises(NotFound, match=r"^no object starts with ab in /ws$"):
        unique_match("ab", [], where=" in /ws")
    with pytest.raises(NotFound, match=f"^no pin {FULL}$"):
        unique_match(FULL, [], "pin")
    many = [f"a{i:x}" + "0" * 62 for i in range(12)]
    with pytest.raises(AmbiguousPrefixError) as info:
        unique_match("a", reversed(many), where=" in /ws")
    assert info.value.candidates == many
    message = str(info.value)
    assert message.startswith("prefix a matches 12 objects in /ws (a0000000")
    assert message.endswith(", ...); give more characters") and "\n" not in message
    assert many[9][:16] in message and many[10][:16] not in message


@pytest.fixture
def ws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Workspace]:
    isolate(monkeypatch, tmp_path)
    workspace = make_workspace(tmp_path / "ws")
    with active(workspace):
        yield workspace


def test_every_lookup_by_prefix_follows_one_rule_and_one_wording(ws: Workspace,
                                                                  tmp_path: Path) -> None:
    known = [Tiny(i=i) for i in range(64)]  # identifiers are fixed: two share 2 characters
    prefix = next(t.__identifier__[:2] for n, t in enumerate(known)
                  if any(u.__identifier__[:2] == t.__identifier__[:2] for u in known[:n]))
    chosen = [t for t in known if t.__identifier__.startswith(prefix)] + known[:3]
    made = sorted({t.__identifier__ for t in chosen})
    for task in chosen:
        taskdirs.run_here(ws, task)
    shared = [m for m in made if m.startswith(prefix)]
    absent = next(p for p in (f"{a}{b}" for a in "0123456789abcdef" for b in "0123456789abcdef")
                  if not any(m.startswith(p) for m in made))
    (tmp_path / "remote").mkdir()
    remote = Remote(DirectoryBackend(tmp_path / "remote"))
    for ident in made:
        remote.put_object(ident, b"{}")
    store = Store(ws)
    here, there = f" in {ws.root}", f" in the remote {remote.url}"
    resolvers: list[tuple[Callable[[str], object], str]] = [
        (store.get, here),
        (lambda text: locate(ws, text), here),
        (remote.resolve, there),
        (lambda text: pinned_match(text, set(made), "object", here), here),
    ]
    listed = ", ".join(i[:16] for i in shared)
    for resolve, where in resolvers:
        with pytest.raises(AmbiguousPrefixError) as info:
            resolve(prefix)
        assert str(info.value) == (f"prefix {prefix} matches {len(shared)} objects{where}"
                                   f" ({listed}); give more characters")
        assert info.value.candidates == shared
        with pytest.raises(NotFound) as missing:
            resolve(absent)
        assert str(missing.value) == f"no object starts with {absent}{where}"
        with pytest.raises(NotFound) as missing:
            resolve("0" * 64)
        assert str(missing.value) == f"no object {'0' * 64}{where}"
        assert resolve(shared[0]) is not None
