"""What gc would delete, held in columns: a few dozen bytes an object, not a Python object each.

gc's mark (:mod:`xpmstore.admin.gc`) reads every object of the store once; at millions of
objects, one :class:`Candidate` and one 64-character string per object would cost more memory
than the store's index.  :class:`Candidates` keeps each candidate's 32-byte identifier, sizes
and times in arrays and builds a :class:`Candidate` only when one is read; :class:`IdentifierSet`
holds identifiers as raw bytes.  Pure; not safe for concurrent writers (gc builds them in one
thread).
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterable, Iterator, Sequence, Set
from dataclasses import dataclass
from typing import Any, overload

from ..store.workspace import KINDS

__all__ = ["Candidate", "Candidates", "IdentifierSet"]

WHY = ("unreachable", "older", "max-size")
"""Why a candidate goes (see :class:`Candidate`)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """An object gc deletes (or would): ``why`` is ``"unreachable"``, ``"older"`` (an unrooted
    cache entry not used within ``older_than``) or ``"max-size"``; ``path`` is its directory (a
    string: gc lists the whole store)."""

    identifier: str
    kind: str
    name: str
    size: int
    last_used: float
    path: str
    done: bool
    why: str

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return {"identifier": self.identifier, "kind": self.kind, "name": self.name,
                "size": self.size, "last_used": self.last_used, "path": self.path,
                "done": self.done, "why": self.why}


class Candidates(Sequence[Candidate]):
    """Candidates in columns, read as :class:`Candidate` objects in (kind, name, identifier)
    order once :meth:`finish` has ordered them (insertion order before)."""

    def __init__(self, root: str):
        self._root = root
        self._groups: list[tuple[str, str]] = []  # (kind, name)
        self._group_of: dict[tuple[str, str], int] = {}
        self._raws = bytearray()
        self._group = array("I")
        self._size = array("q")
        self._last = array("d")
        self._flags = array("B")  # bit 0: done; bits 1-2: why
        self._paths: dict[int, str] = {}  # the few whose directory is not the usual one
        self._order: array[int] | None = None

    def add(self, raw: bytes, kind: str, name: str, size: int, last_used: float, done: bool,
            why: str = "unreachable", path: str | None = None) -> None:
        """Add one candidate (``path`` when it is not ``<root>/<kind folder>/<name>/<id>``)."""
        group = self._group_of.get((kind, name))
        if group is None:
            group = self._group_of[(kind, name)] = len(self._groups)
            self._groups.append((kind, name))
        position = len(self._group)
        if path is not None and path != self._usual_path(kind, name, raw.hex()):
            self._paths[position] = path
        self._raws += raw
        self._group.append(group)
        self._size.append(size)
        self._last.append(last_used)
        self._flags.append(int(done) | WHY.index(why) << 1)
        self._order = None

    def _usual_path(self, kind: str, name: str, identifier: str) -> str:
        return f"{self._root}/{KINDS.get(kind, kind)}/{name}/{identifier}"

    def finish(self) -> Candidates:
        """Order the candidates by (kind, name, identifier); returns self."""
        by_group: list[array[int]] = [array("I") for _ in self._groups]
        for position, group in enumerate(self._group):
            by_group[group].append(position)
        order = array("I")
        for group in sorted(range(len(self._groups)), key=self._groups.__getitem__):
            positions = by_group[group]
            ascending = 1  # the first positions, added in identifier order (gc's walk)
            while ascending < len(positions) and \
                    self.raw(positions[ascending - 1]) < self.raw(positions[ascending]):
                ascending += 1
            if ascending == len(positions):
                order.extend(positions)
            else:  # the rest sorted apart, then merged: keys only for the few added after
                rest = sorted(positions[ascending:], key=self.raw)
                order.extend(heapq.merge(positions[:ascending], rest, key=self.raw))
        self._order = order
        return self

    def raw(self, position: int) -> bytes:
        """The 32-byte identifier of the candidate added at ``position``."""
        return bytes(self._raws[32 * position:32 * position + 32])

    def _position(self, index: int) -> int:
        return self._order[index] if self._order is not None else index

    def _build(self, position: int) -> Candidate:
        kind, name = self._groups[self._group[position]]
        identifier = self.raw(position).hex()
        flags = self._flags[position]
        path = self._paths.get(position) or self._usual_path(kind, name, identifier)
        return Candidate(identifier, kind, name, self._size[position], self._last[position],
                         path, bool(flags & 1), WHY[flags >> 1])

    def __len__(self) -> int:
        return len(self._group)

    @overload
    def __getitem__(self, index: int) -> Candidate: ...

    @overload
    def __getitem__(self, index: slice) -> list[Candidate]: ...

    def __getitem__(self, index: int | slice) -> Candidate | list[Candidate]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("candidate index out of range")
        return self._build(self._position(index))

    def __iter__(self) -> Iterator[Candidate]:
        for index in range(len(self)):
            yield self._build(self._position(index))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Candidates: {len(self)} objects, {self.total_size()} bytes>"

    def total_size(self) -> int:
        """Bytes the candidates take."""
        return sum(self._size)


class IdentifierSet(Set[str]):
    """A set of identifiers held as their 32 raw bytes (half the memory of their hex text);
    answers ``identifier in s`` for hex text, and iterates hex text."""

    def __init__(self, raws: Iterable[bytes] = ()):
        self.raws: set[bytes] = raws if isinstance(raws, set) else set(raws)

    def __contains__(self, identifier: object) -> bool:
        if isinstance(identifier, bytes):
            return identifier in self.raws
        if not isinstance(identifier, str) or len(identifier) != 64:
            return False
        try:
            return bytes.fromhex(identifier) in self.raws
        except ValueError:
            return False

    def __iter__(self) -> Iterator[str]:
        return (raw.hex() for raw in self.raws)

    def __len__(self) -> int:
        return len(self.raws)

    def __repr__(self) -> str:
        return f"<IdentifierSet: {len(self)} identifiers>"
