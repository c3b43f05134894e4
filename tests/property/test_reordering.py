"""``reordered`` (tests/property/strategies.py), the helper of the order-independence property,
asks its shuffle for the same lengths in the same order for equal values.  Hypothesis replays an
example by its draws: a set holding a NaN, hashed by identity, iterates in another order at each
replay, and a helper that followed that order failed the property with FlakyStrategyDefinition
(seen once on Python 3.13; any version can)."""

from __future__ import annotations

from typing import Any

from .strategies import reordered


def shuffled_lengths(value: Any) -> list[int]:
    """The length of each list ``reordered(value)`` shuffles, in order."""
    calls: list[int] = []
    reordered(value, lambda items: calls.append(len(items)))
    return calls


def test_equal_sets_iterating_in_two_orders_are_reordered_with_the_same_draws() -> None:
    by_order: dict[tuple[type, ...], set[Any]] = {}
    nans = []  # kept alive: a freed NaN's address, hence its hash, could come back
    while len(by_order) < 2 and len(nans) < 10_000:
        nans.append(float("nan"))
        value = {(frozenset({nans[-1]}),), frozenset({1, 2})}
        by_order.setdefault(tuple(type(element) for element in value), value)
    assert len(by_order) == 2, "no two equal sets iterating in different orders were made"
    first, second = by_order.values()
    assert shuffled_lengths(first) == shuffled_lengths(second)
