"""The compiled type checks and the immutable containers of xpmstore.core.typecheck."""

from __future__ import annotations

import copy
import enum
import numbers
import pickle
from decimal import Decimal
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Optional

import pytest

from xpmstore.core.typecheck import (
    FrozenDict,
    FrozenList,
    Mismatch,
    UnsupportedType,
    compile_type,
    freeze_any,
)


class Flavor(enum.Enum):
    SWEET = 1
    SOUR = 2


def test_mismatch_records_where_inside_the_value():
    check = compile_type(dict[str, list[tuple[int, str]]])
    with pytest.raises(Mismatch) as info:
        check({"k": [(1, "a"), (2, 3)]})
    assert info.value.where == "['k'][1][1]"
    assert "expected str, got int 3" in info.value.message


@pytest.mark.parametrize(
    ("declared", "value", "stored"),
    [
        (int, 3, 3),
        (float, 3, 3.0),
        (float, 2.5, 2.5),
        (bool, False, False),
        (str, "é", "é"),
        (bytes, memoryview(b"ab"), b"ab"),
        (type(None), None, None),
        (None, None, None),
        (Optional[float], 1, 1.0),  # noqa: UP045
        (int | str, "x", "x"),
        (Literal[1, "a"], "a", "a"),
        (Flavor, Flavor.SOUR, Flavor.SOUR),
        (list, [1, "a"], [1, "a"]),
        (tuple, (1, [2]), (1, [2])),
        (tuple[()], (), ()),
        (dict, {"a": {1}}, {"a": frozenset({1})}),
        (frozenset[int], {1, 2}, frozenset({1, 2})),
        (set, {1}, frozenset({1})),
        (object, 3, 3),
    ],
)
def test_accepted_values(declared, value, stored):
    result = compile_type(declared)(value)
    assert result == stored
    assert type(result) is type(stored) or isinstance(result, (FrozenList, FrozenDict))


@pytest.mark.parametrize(
    ("declared", "value"),
    [
        (int, True),
        (int, 1.0),
        (float, False),
        (bool, 0),
        (str, b"a"),
        (bytes, "a"),
        (type(None), 0),
        (Flavor, 1),
        (Literal[1], True),
        (Literal[1], 1.0),
        (list[int], (1,)),
        (set[int], [1]),
        (tuple[int], (1, 2)),
        (dict[str, int], [("a", 1)]),
        (Path, b"/x"),
        (Path, ""),
        (Optional[int], "1"),  # noqa: UP045
    ],
)
def test_refused_values(declared, value):
    with pytest.raises(Mismatch, match="expected"):
        compile_type(declared)(value)


def test_exact_mode_refuses_the_int_to_float_conversion():
    with pytest.raises(Mismatch):
        compile_type(float, exact=True)(1)
    assert compile_type(float, exact=True)(1.5) == 1.5


def test_union_prefers_an_exact_branch_over_a_conversion():
    check = compile_type(float | int)
    assert type(check(1)) is int
    assert type(check(1.0)) is float
    assert type(compile_type(Optional[float])(1)) is float  # noqa: UP045


@pytest.mark.parametrize("declared", [complex, dict[int, str], type, Any.__class__, range])
def test_unsupported_declared_types(declared):
    with pytest.raises(UnsupportedType, match=r"not supported|keys"):
        compile_type(declared)


def test_paths_become_absolute_paths(tmp_path, monkeypatch):
    check = compile_type(Path)
    monkeypatch.chdir(tmp_path)
    assert check("a/b") == tmp_path / "a" / "b"
    assert check(PurePosixPath("/x/../y")) == Path("/y")  # os.path.abspath normalises
    assert type(check("/x")) is type(Path("/x"))


@pytest.mark.parametrize("value", [object(), 1j, range(3), [1, object()], {"a": {2j}},
                                   bytearray(b"x").__iter__()])
def test_freeze_any_refuses_what_cannot_be_encoded(value):
    with pytest.raises(Mismatch, match="cannot be encoded"):
        freeze_any(value)


def test_freeze_any_converts_subclasses_to_their_base():
    class MyInt(int):
        pass

    class MyStr(str):
        pass

    assert type(freeze_any(MyInt(3))) is int
    assert type(freeze_any(MyStr("a"))) is str
    assert type(freeze_any(bytearray(b"a"))) is bytes
    assert freeze_any(Flavor.SWEET) is Flavor.SWEET


def test_frozen_list_is_a_hashable_immutable_list():
    frozen = freeze_any([1, [2]])
    assert isinstance(frozen, list) and isinstance(frozen[1], FrozenList)
    assert hash(frozen) == hash((1, FrozenList([2])))
    for change in ("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"):
        with pytest.raises(TypeError, match="immutable"):
            getattr(frozen, change)(0)
    with pytest.raises(TypeError, match="immutable"):
        frozen[0] = 5
    with pytest.raises(TypeError, match="immutable"):
        del frozen[0]
    with pytest.raises(TypeError, match="immutable"):
        frozen += [3]
    assert frozen == [1, [2]]


def test_frozen_dict_is_a_hashable_immutable_dict():
    frozen = freeze_any({"a": 1})
    assert isinstance(frozen, FrozenDict)
    assert hash(frozen) == hash(FrozenDict({"a": 1}))
    for change in ("clear", "popitem"):
        with pytest.raises(TypeError, match="immutable"):
            getattr(frozen, change)()
    for change in ("pop", "setdefault", "update"):
        with pytest.raises(TypeError, match="immutable"):
            getattr(frozen, change)({"b": 2})
    with pytest.raises(TypeError, match="immutable"):
        frozen["b"] = 2
    with pytest.raises(TypeError, match="immutable"):
        frozen |= {"b": 2}
    assert frozen == {"a": 1}


def test_frozen_containers_pickle_and_copy_as_themselves():
    value = freeze_any({"a": [1, {"b": 2}]})
    again = pickle.loads(pickle.dumps(value))
    assert again == value and type(again) is FrozenDict and type(again["a"]) is FrozenList
    assert copy.copy(value) is value and copy.deepcopy(value) is value
    assert copy.deepcopy(value["a"]) is value["a"]


# --- numbers of other libraries (numpy scalars), duck-typed ------------------------------------


class DuckInt:
    """An integer of another library: it only knows ``__index__``."""

    def __init__(self, value: int):
        self.value = value

    def __index__(self) -> int:
        return self.value


class DuckReal:
    """A real of another library, registered as ``numbers.Real`` (as numpy's floats are)."""

    def __init__(self, value: float):
        self.value = value

    def __float__(self) -> float:
        return self.value

    def __eq__(self, other: object) -> bool:
        return float(other) == self.value if isinstance(other, (int, float)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)


class DuckBool(DuckInt):
    """A boolean scalar of another library (numpy's np.bool_ has a dtype of kind "b")."""

    class dtype:  # numpy's attribute name
        kind = "b"


numbers.Real.register(DuckReal)


@pytest.mark.parametrize(
    ("declared", "value", "stored"),
    [
        (int, DuckInt(3), 3),
        (int, DuckInt(-(2**70)), -(2**70)),
        (float, DuckInt(3), 3.0),
        (float, DuckReal(0.25), 0.25),
        (float, Fraction(1, 4), 0.25),  # exactly a float
        (int | float, DuckInt(2), 2),
        (int | float, DuckReal(2.5), 2.5),
        (Optional[float], DuckInt(1), 1.0),  # noqa: UP045
        (list[int], [DuckInt(1), 2], [1, 2]),
        (object, DuckInt(7), 7),
        (object, DuckReal(0.5), 0.5),
    ],
)
def test_numbers_of_other_libraries_are_taken_as_the_python_number(declared, value, stored):
    result = compile_type(declared)(value)
    assert result == stored
    assert type(result) is type(stored) or isinstance(result, FrozenList)


@pytest.mark.parametrize(
    ("declared", "value", "hint"),
    [
        (int, DuckReal(2.0), "convert it with int(x)"),
        (int, DuckBool(1), "convert it"),
        (float, DuckBool(1), "convert it"),
        (float, Fraction(1, 3), "convert it with int(x) or float(x) if that keeps its value"),
        (int, Decimal(3), "convert it with int(x)"),
        (float, Decimal("0.5"), "convert it"),
    ],
)
def test_other_foreign_values_are_refused_with_a_hint(declared, value, hint):
    with pytest.raises(Mismatch, match="expected") as info:
        compile_type(declared)(value)
    assert hint in info.value.message


def test_freeze_any_refuses_other_foreign_values_with_a_hint():
    with pytest.raises(Mismatch, match="cannot be encoded") as info:
        freeze_any(Decimal(1))
    assert "convert it with int(x) or float(x)" in info.value.message


def test_numpy_scalars_when_numpy_is_installed():
    np = pytest.importorskip("numpy")  # in the dev extra: installed by scripts/setup
    from xpmstore import Config, Param

    class Sized(Config):
        __xpmid__ = "tests.checks.Sized"
        n: Param[int] = 0
        lr: Param[float] = 0.0

    for number in (np.int64(3), np.int32(3), np.uint8(3)):
        assert type(compile_type(int)(number)) is int and compile_type(int)(number) == 3
        assert Sized(n=number).__identifier__ == Sized(n=3).__identifier__
    lr = compile_type(float)(np.float32(0.1))
    assert type(lr) is float and lr == float(np.float32(0.1))
    assert Sized(lr=np.float32(0.1)).__identifier__ == Sized(lr=float(np.float32(0.1))) \
        .__identifier__
    assert Sized(lr=np.float64(0.1)).__identifier__ == Sized(lr=0.1).__identifier__
    assert Sized(lr=np.int64(2)).__identifier__ == Sized(lr=2.0).__identifier__
    for refused in (np.True_, np.array([1, 2]), np.float64(3.0)):
        with pytest.raises(Mismatch):
            compile_type(int)(refused)
    with pytest.raises(Mismatch, match="tolist"):
        compile_type(float)(np.array([0.5, 1.5]))
    assert freeze_any([np.int64(1), np.float32(0.5)]) == [1, 0.5]
    from xpmstore.core.config import tags_of

    tagged = Sized().tag("seed", np.int64(3)).tag("lr", np.float32(0.5))
    assert tags_of(tagged) == {"seed": 3, "lr": 0.5}
    assert [type(v) for v in tags_of(tagged).values()] == [int, float]
