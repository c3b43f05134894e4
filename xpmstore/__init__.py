"""xpmstore: run experiments as typed, content-addressed tasks.

The public names are importable from here; everything else is private and may change.

The names are resolved lazily (PEP 562): ``import xpmstore`` costs almost nothing, and a name is
imported from its module on first use.  This keeps the command line's start-up short (``xpmstore
get`` never imports the scheduler).  The modules live in layered subpackages
(docs/architecture.md); none of them shares its name with a public name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what a type checker (and a reader) sees: the eager imports
    from .core.config import Config, Task, TaskPath
    from .core.fields import Constant, Meta, Option, Param, field, pathgenerator
    from .errors import (
        AmbiguousPrefixError,
        ClassNotFoundError,
        ConfigError,
        ConfigTypeError,
        ConfigValueError,
        ConstantFieldError,
        CorruptObjectError,
        ExperimentFailed,
        FormatVersionError,
        HasDependentsError,
        InputPathError,
        InvalidIdentifierError,
        MissingFieldError,
        NotFound,
        ObjectInUseError,
        SealedConfigError,
        TagConflictError,
        TextValueError,
        UnboundPathError,
        UnknownFieldError,
        UnsupportedValueError,
        XpmstoreError,
    )
    from .scheduler.cache import cache
    from .scheduler.experiment import experiment
    from .scheduler.hooks import Job, SubmitHook, submit_hook_decorator
    from .scheduler.launchers.base import Launcher
    from .store.lookup import Record, Store, load
    from .store.taskprogress import progress

__all__ = [
    "AmbiguousPrefixError",
    "ClassNotFoundError",
    "Config",
    "ConfigError",
    "ConfigTypeError",
    "ConfigValueError",
    "Constant",
    "ConstantFieldError",
    "CorruptObjectError",
    "ExperimentFailed",
    "FormatVersionError",
    "HasDependentsError",
    "InputPathError",
    "InvalidIdentifierError",
    "Job",
    "Launcher",
    "Meta",
    "MissingFieldError",
    "NotFound",
    "ObjectInUseError",
    "Option",
    "Param",
    "Record",
    "SealedConfigError",
    "Store",
    "SubmitHook",
    "TagConflictError",
    "Task",
    "TaskPath",
    "TextValueError",
    "UnboundPathError",
    "UnknownFieldError",
    "UnsupportedValueError",
    "XpmstoreError",
    "cache",
    "experiment",
    "field",
    "load",
    "pathgenerator",
    "progress",
    "submit_hook_decorator",
]

_HOME: dict[str, str] = {
    "cache": "scheduler.cache",
    "Config": "core.config", "Task": "core.config", "TaskPath": "core.config",
    "experiment": "scheduler.experiment",
    "Constant": "core.fields", "Meta": "core.fields", "Option": "core.fields",
    "Param": "core.fields", "field": "core.fields", "pathgenerator": "core.fields",
    "Job": "scheduler.hooks", "SubmitHook": "scheduler.hooks",
    "submit_hook_decorator": "scheduler.hooks",
    "Launcher": "scheduler.launchers.base",
    "Record": "store.lookup", "Store": "store.lookup", "load": "store.lookup",
    "progress": "store.taskprogress",
}
"""Public name → the module that defines it (the errors come from ``errors``)."""

def __getattr__(name: str) -> Any:
    """Import a public name (or a submodule) on first use."""
    home = _HOME.get(name)
    if home is None and name in __all__:
        home = "errors"
    if home is not None:
        value = getattr(importlib.import_module(f".{home}", __name__), name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

