"""Field kinds: ``Param``, ``Meta`` (``Option``), ``Constant``, ``pathgenerator`` and ``field``.

They are ``typing.Annotated`` aliases, so a type checker sees ``Param[int]`` as ``int``; the marker
in the metadata tells :class:`xpmstore.Config` what kind of field it is.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from ..errors import ConfigValueError

__all__ = ["Constant", "FieldKind", "Meta", "Option", "Param", "PathGenerator", "field",
           "pathgenerator"]

T = TypeVar("T")


class FieldKind(enum.Enum):
    """Whether a field enters the identifier (PARAM, CONSTANT) or not (META, GENERATED)."""

    PARAM = "param"
    META = "meta"
    CONSTANT = "constant"
    GENERATED = "generated"


Param = Annotated[T, FieldKind.PARAM]
"""A field that is part of the identity: ``hidden: Param[int] = 128``."""

Meta = Annotated[T, FieldKind.META]
"""A field that is not part of the identity (verbosity, a path that is not an input...)."""

Option = Meta
"""Alias of :data:`Meta`, as in experimaestro."""

Constant = Annotated[T, FieldKind.CONSTANT]
"""A field in the identity that cannot be set: bump its value to invalidate old results."""


@dataclass(frozen=True)
class PathGenerator:
    """Marks ``Annotated[Path, pathgenerator("name")]``: a path inside the task directory."""

    name: str

    def __post_init__(self) -> None:
        if not self.name or self.name.startswith("/") or ".." in self.name.split("/"):
            raise ConfigValueError(
                f"pathgenerator({self.name!r}): expected a relative path without '..'"
            )


def pathgenerator(name: str) -> PathGenerator:
    """The marker of a generated path ``name`` (relative, inside the task directory)."""
    return PathGenerator(name)


_MISSING: Any = object()


@dataclass(frozen=True)
class FieldDefault:
    """What :func:`field` returns: a default value or a factory, set as the class attribute."""

    default: Any = _MISSING
    default_factory: Callable[[], Any] | None = None


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None) -> Any:
    """Declare a default: ``sizes: Param[list[int]] = field(default_factory=list)``.

    Raises ValueError when both or neither of ``default`` and ``default_factory`` are given.
    """
    if (default is _MISSING) == (default_factory is None):
        raise ConfigValueError("field(): give exactly one of default= and default_factory=")
    return FieldDefault(default, default_factory)
