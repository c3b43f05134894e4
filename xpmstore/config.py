"""Pickles written before the modules moved name ``xpmstore.config`` (a task's generated paths
are ``TaskPath`` objects): the names live in :mod:`xpmstore.core.config`."""

from __future__ import annotations

from .core.config import (
    ClassSpec,
    Config,
    Dep,
    FieldSpec,
    Task,
    TaskPath,
    class_spec,
    dependencies,
    identity_name,
    iter_configs,
    tags_of,
)

__all__ = [
    "ClassSpec",
    "Config",
    "Dep",
    "FieldSpec",
    "Task",
    "TaskPath",
    "class_spec",
    "dependencies",
    "identity_name",
    "iter_configs",
    "tags_of",
]
