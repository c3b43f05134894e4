"""Numbers of other libraries (numpy scalars, duck-typed): a field holding one has the identifier
of the same field holding the Python number it equals (hypothesis over ints and floats)."""

from __future__ import annotations

import numbers
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from xpmstore import Config, Param


class Ints(Config):
    __xpmid__ = "prop.ForeignInts"
    n: Param[int] = 0
    x: Param[float] = 0.0
    anything: Param[Any] = None


class DuckInt:
    """An integer of another library: only ``__index__``."""

    def __init__(self, value: int):
        self.value = value

    def __index__(self) -> int:
        return self.value


class DuckReal:
    """A real of another library registered as ``numbers.Real`` (as numpy's floats are)."""

    def __init__(self, value: float):
        self.value = value

    def __float__(self) -> float:
        return self.value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (int, float)):
            return float(other) == self.value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)


numbers.Real.register(DuckReal)

BOUNDED = settings(max_examples=200, deadline=None)


@BOUNDED
@given(st.integers())
def test_a_duck_typed_int_has_the_identifier_of_the_int(value: int) -> None:
    assert Ints(n=DuckInt(value)).__identifier__ == Ints(n=value).__identifier__
    assert Ints(anything=DuckInt(value)).__identifier__ == Ints(anything=value).__identifier__


@BOUNDED
@given(st.integers(min_value=-(2**1023), max_value=2**1023))
def test_a_duck_typed_int_for_a_float_has_the_identifier_of_the_float(value: int) -> None:
    assert Ints(x=DuckInt(value)).__identifier__ == Ints(x=float(value)).__identifier__


@BOUNDED
@given(st.floats(allow_nan=False))
def test_a_duck_typed_real_has_the_identifier_of_the_float(value: float) -> None:
    assert Ints(x=DuckReal(value)).__identifier__ == Ints(x=value).__identifier__
    assert Ints(anything=DuckReal(value)).__identifier__ == Ints(anything=value).__identifier__


def test_numpy_scalars_have_the_identifier_of_the_python_number() -> None:
    import pytest

    np = pytest.importorskip("numpy")  # in the dev extra: installed by scripts/setup

    @BOUNDED
    @given(st.integers(min_value=-(2**63), max_value=2**63 - 1),
           st.floats(width=32, allow_nan=False))
    def check(whole: int, single: float) -> None:
        assert Ints(n=np.int64(whole)).__identifier__ == Ints(n=whole).__identifier__
        as_float = float(np.float32(single))
        assert Ints(x=np.float32(single)).__identifier__ == Ints(x=as_float).__identifier__
        assert as_float == single  # a float32 value: exactly a Python float

    check()
