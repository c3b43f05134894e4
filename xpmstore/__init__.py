"""xpmstore: run experiments as typed, content-addressed tasks.

The public names are importable from here; everything else is private and may change.
"""

from .cache import cache
from .config import Config, Task, TaskPath
from .errors import (
    ClassNotFoundError,
    ConfigError,
    ExperimentFailed,
    FormatVersionError,
    InvalidIdentifierError,
    MissingFieldError,
    NotFound,
    TagConflictError,
    UnsupportedValueError,
    XpmstoreError,
)
from .experiment import experiment
from .fields import Constant, Meta, Option, Param, field, pathgenerator
from .hooks import Job, SubmitHook
from .serialize import load
from .store import Record, Store

__version__ = "0.1.0"

__all__ = [
    "ClassNotFoundError",
    "Config",
    "ConfigError",
    "Constant",
    "ExperimentFailed",
    "FormatVersionError",
    "InvalidIdentifierError",
    "Job",
    "Meta",
    "MissingFieldError",
    "NotFound",
    "Option",
    "Param",
    "Record",
    "Store",
    "SubmitHook",
    "TagConflictError",
    "Task",
    "TaskPath",
    "UnsupportedValueError",
    "XpmstoreError",
    "cache",
    "experiment",
    "field",
    "load",
    "pathgenerator",
]
