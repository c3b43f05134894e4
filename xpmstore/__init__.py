"""xpmstore: run experiments as typed, content-addressed tasks.

The public names are importable from here; everything else is private and may change.
"""

from .cache import cache
from .config import Config, Task, TaskPath
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
    InputPathError,
    InvalidIdentifierError,
    MissingFieldError,
    NotFound,
    SealedConfigError,
    TagConflictError,
    UnboundPathError,
    UnknownFieldError,
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
    "InputPathError",
    "InvalidIdentifierError",
    "Job",
    "Meta",
    "MissingFieldError",
    "NotFound",
    "Option",
    "Param",
    "Record",
    "SealedConfigError",
    "Store",
    "SubmitHook",
    "TagConflictError",
    "Task",
    "TaskPath",
    "UnboundPathError",
    "UnknownFieldError",
    "UnsupportedValueError",
    "XpmstoreError",
    "cache",
    "experiment",
    "field",
    "load",
    "pathgenerator",
]
