"""The fixed set of configs whose identifiers tests/unit/test_golden.py pins.

Every class sets ``__xpmid__`` so that the identifiers do not depend on this module's path.  Never
change a class or a value here: add new entries instead (and pin their identifiers).
"""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from xpmstore import Config, Constant, Meta, Param, Task, field, pathgenerator


class Color(enum.Enum):
    __xpmid__ = "golden.Color"
    RED = 1
    BLUE = 2


class Empty(Config):
    __xpmid__ = "golden.Empty"


class Scalars(Config):
    __xpmid__ = "golden.Scalars"
    i: Param[int] = 0
    f: Param[float] = 0.0
    b: Param[bool] = False
    s: Param[str] = ""
    raw: Param[bytes] = b""
    maybe: Param[int | None] = None
    mode: Param[Literal["a", "b"]] = "a"


class AnyValue(Config):
    __xpmid__ = "golden.AnyValue"
    value: Param[Any] = None


class Number(Config):
    __xpmid__ = "golden.Number"
    value: Param[int | float | bool | str] = 0


class Containers(Config):
    __xpmid__ = "golden.Containers"
    ints: Param[list[int]] = field(default_factory=list)
    table: Param[dict[str, float]] = field(default_factory=dict)
    pair: Param[tuple[int, str]] = (0, "")
    many: Param[tuple[int, ...]] = ()
    names: Param[set[str]] = field(default_factory=set)
    nested: Param[list[dict[str, list[int]]]] = field(default_factory=list)


class WithEnum(Config):
    __xpmid__ = "golden.WithEnum"
    color: Param[Color] = Color.RED


class Versioned(Config):
    __xpmid__ = "golden.Versioned"
    size: Param[int] = 1
    version: Constant[int] = 3
    verbose: Meta[bool] = False


class Model(Config):
    __xpmid__ = "golden.Model"
    hidden: Param[int] = 128
    weights: Annotated[Path, pathgenerator("weights.pt")]


class Learn(Task):
    __xpmid__ = "golden.Learn"
    model: Param[Model]
    epochs: Param[int] = 10
    version: Constant[int] = 1
    verbose: Meta[bool] = False
    parameters: Annotated[Path, pathgenerator("parameters.pth")]

    def task_outputs(self, dep):
        return {"model": dep(self.model), "self": dep(self)}


class Evaluate(Task):
    __xpmid__ = "golden.Evaluate"
    learned: Param[Learn]


class Holder(Config):
    __xpmid__ = "golden.Holder"
    value: Param[Any]


class Inputs(Config):
    __xpmid__ = "golden.Inputs"
    path: Param[Path]
    note: Meta[Path | None] = None


class Topics(Config):
    __xpmid__ = "golden.Topics"
    path: Param[Path]


class Documents(Config):
    __xpmid__ = "golden.Documents"
    name: Param[str]


class Dataset(Config):
    __xpmid__ = "golden.Dataset"
    topics: Param[Topics]
    documents: Param[Documents]


class RandomFold(Task):
    __xpmid__ = "golden.RandomFold"
    dataset: Param[Dataset]
    seed: Param[int] = 0
    topics: Annotated[Path, pathgenerator("topics.tsv")]

    def task_outputs(self, dep):
        return dep(Dataset(
            topics=dep(Topics(path=self.topics)),
            documents=self.dataset.documents,
        ))


def _inputs(root: Path) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    source = root / "input.txt"
    source.write_bytes(b"golden input\n")
    folder = root / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"A")
    (folder / "sub" / "b.sh").write_bytes(b"#!/bin/sh\n")
    (folder / "a.txt").chmod(0o644)
    (folder / "sub" / "b.sh").chmod(0o755)
    return source, folder


def build(root: Path) -> dict[str, Config]:
    """The golden configs by name; input files are created under ``root`` (names do not matter)."""
    source, folder = _inputs(root)
    learn = Learn(model=Model(hidden=64), epochs=5)
    outputs = learn.__xpm_outputs__()
    taskdir = root / "ws" / "jobs" / "golden.Learn" / learn.__identifier__
    (taskdir / ".xpm").mkdir(parents=True)
    fold = RandomFold(dataset=Dataset(topics=Topics(path=source),
                                      documents=Documents(name="msmarco")), seed=3)
    return {
        "empty": Empty(),
        "scalars_defaults": Scalars(),
        "scalars_defaults_spelled_out": Scalars(i=0, f=0, b=False, s="", raw=b"", maybe=None),
        "int_negative": Scalars(i=-5),
        "int_big": Scalars(i=2**70 + 1),
        "float": Scalars(f=1.5),
        "float_negative_zero": Scalars(f=-0.0),
        "float_from_int": Scalars(f=3),
        "bool": Scalars(b=True),
        "str_unicode": Scalars(s="héllo ☃ \x00"),
        "bytes": Scalars(raw=b"\x00\xff"),
        "optional": Scalars(maybe=7),
        "literal": Scalars(mode="b"),
        "any_int": AnyValue(value=1),
        "any_float": AnyValue(value=1.0),
        "any_bool": AnyValue(value=True),
        "any_str": AnyValue(value="a"),
        "any_bytes": AnyValue(value=b"a"),
        "any_nan": AnyValue(value=math.nan),
        "any_infinity": AnyValue(value=-math.inf),
        "any_list": AnyValue(value=[1, 2]),
        "any_tuple": AnyValue(value=(1, 2)),
        "any_set": AnyValue(value={"b", "a", 3}),
        "any_dict": AnyValue(value={"b": 1, "a": [None]}),
        "any_nested": AnyValue(value=[[1], [[2]], {"k": (3, b"x", frozenset({0.5}))}]),
        "union_str": Number(value="x"),
        "union_float": Number(value=1.0),
        "containers": Containers(ints=[1, 2], table={"x": 1}, pair=(1, "a"), many=(4, 5),
                                 names={"n", "m"}, nested=[{"a": [1]}, {}]),
        "enum": WithEnum(color=Color.BLUE),
        "enum_default": WithEnum(),
        "constant_default": Versioned(),
        "meta_and_tags_left_out": Versioned(size=2, verbose=True).tag("t", 1),
        "nested_config": Holder(value=Model(hidden=64)),
        "task": learn,
        "evaluate": Evaluate(learned=learn),
        "evaluate_marked": Evaluate(learned=outputs["self"]),
        "marked_output": outputs["model"],
        "holds_marked_output": Holder(value=outputs["model"]),
        "task_path": Holder(value=learn.parameters),
        "nested_task_path": Holder(value=learn.model.weights),
        "workspace_path": Inputs(path=taskdir / "parameters.pth"),
        "input_file": Inputs(path=source, note=root / "not-an-input"),
        "input_directory": Inputs(path=folder),
        "random_fold": fold,
        "random_fold_output": Holder(value=fold.__xpm_outputs__()),
    }
