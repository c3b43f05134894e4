"""A git index file is input: whatever its bytes, :func:`parse_index` returns the paths written
or raises GitIndexError (nothing else), in work bounded by the file (hypothesis over generated
indexes of versions 2, 3 and 4, and over their mutations)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xpmstore.errors import GitIndexError
from xpmstore.system.gitindex import parse_index

from ..gitindexfiles import Entry, index_bytes

BOUNDED = settings(max_examples=300, deadline=None)

components = st.text(st.sampled_from("abé. _-x"), min_size=1, max_size=12).filter(
    lambda c: c not in (".", "..") and c.lower() != ".git")
paths = st.lists(components, min_size=1, max_size=4).map(lambda parts: "/".join(parts).encode())
long_paths = st.integers(0x0FF0, 0x1010).map(lambda n: b"d/" + b"x" * n)
modes = st.sampled_from([0o100644, 0o100755, 0o120000, 0o160000])


@st.composite
def indexes(draw: st.DrawFn) -> tuple[bytes, list[Entry], int]:
    """A well-formed index (its bytes, its entries, its hash size)."""
    version = draw(st.sampled_from([2, 3, 4]))
    hash_size = draw(st.sampled_from([20, 32]))
    names = sorted(set(draw(st.lists(paths | long_paths, max_size=12))))
    extended = st.none() if version == 2 else st.none() | st.sampled_from([0, 0x2000, 0x4000])
    entries = [Entry(name, draw(modes), draw(extended)) for name in names]
    extensions = draw(st.lists(st.tuples(st.sampled_from([b"TREE", b"REUC", b"UNTR", b"ZZZZ"]),
                                         st.binary(max_size=40)), max_size=3))
    return index_bytes(entries, version, hash_size, extensions), entries, hash_size


@BOUNDED
@given(indexes())
def test_a_generated_index_reads_as_written(index: tuple[bytes, list[Entry], int]) -> None:
    data, entries, hash_size = index
    found = parse_index(data, hash_size)
    assert found.paths == [e.path for e in entries]
    assert found.gitlinks == [e.path for e in entries if e.mode == 0o160000]


mutations = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "delete"]),
                               st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
                     min_size=1, max_size=4)


def mutated(data: bytes, steps: list[tuple[str, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in steps:
        at = where % (len(out) + 1)
        if kind == "flip" and at < len(out):
            out[at] ^= value[0] or 1
        elif kind == "cut":
            del out[at:]
        elif kind == "insert":
            out[at:at] = value
        else:
            del out[at:at + len(value)]
    return bytes(out)


@BOUNDED
@given(indexes(), mutations)
def test_a_damaged_index_raises_only_gitindexerror(index: tuple[bytes, list[Entry], int],
                                                   steps: list[tuple[str, int, bytes]]) -> None:
    data, _, hash_size = index
    try:
        found = parse_index(mutated(data, steps), hash_size)
    except GitIndexError:
        return
    for path in found.paths:  # never a path outside the work tree, whatever got through
        assert not path.startswith(b"/") and b".." not in path.split(b"/")


@BOUNDED
@given(st.binary(max_size=200), st.sampled_from([2, 3, 4]), st.integers(0, 2**32 - 1))
def test_garbage_after_a_header_raises_only_gitindexerror(tail: bytes, version: int,
                                                          count: int) -> None:
    data = b"DIRC" + version.to_bytes(4, "big") + count.to_bytes(4, "big") + tail
    try:
        parse_index(data, max_entries=2**32)
    except GitIndexError:
        pass
