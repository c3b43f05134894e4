"""Disk usage of the store: ``xpmstore du [--by kind|name]`` (docs/cli.md).

Sizes are the bytes listed in the done manifests (as recorded in the index, after a reconcile
with the disk), grouped by kind or by identity name.  Reads the disk and the index; safe across
processes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArgumentValueError
from ..store.lookup import Store

__all__ = ["Usage", "usage"]


@dataclass(frozen=True)
class Usage:
    """One group: its key (a kind or a name), how many done objects, how many bytes."""

    key: str
    count: int
    size: int


def usage(store: Store, by: str = "kind") -> list[Usage]:
    """The done objects of ``store`` grouped ``by`` ``"kind"`` or ``"name"``, largest first.

    Raises ArgumentValueError (a ValueError) for another grouping.
    """
    if by not in ("kind", "name"):
        raise ArgumentValueError(f"by={by!r}: expected 'kind' or 'name'")
    store.reconcile()
    groups: dict[str, list[int]] = {}
    for _, record in store.index.items():
        entry = groups.setdefault(str(record.get(by, "?")), [0, 0])
        entry[0] += 1
        entry[1] += int(record.get("size") or 0)
    return sorted((Usage(k, c, s) for k, (c, s) in groups.items()),
                  key=lambda u: (-u.size, u.key))
