"""The one exception hierarchy of xpmstore: every exception class of the library is here.

Every error a user can cause derives from :class:`XpmstoreError` *and* from the builtin whose
meaning it carries (``TypeError`` for a value of the wrong type, ``ValueError`` for a bad value,
``LookupError`` for something absent), so callers may catch either.  Messages are one line that
names the thing at fault and says what to do.  The last section holds the signals that modules
raise and catch among themselves (a user never sees them); the modules that raise them give
them too (``xpmstore.system.locks.LockTimeout``…).
"""

from __future__ import annotations

__all__ = [
    "AmbiguousPrefixError",
    "ArgumentTypeError",
    "ArgumentValueError",
    "ChainRefused",
    "ClassNotFoundError",
    "ConfigError",
    "ConfigTypeError",
    "ConfigValueError",
    "ConstantFieldError",
    "CorruptObjectError",
    "DamagedRunRecordError",
    "ExperimentFailed",
    "ExperimentInJobError",
    "FormatVersionError",
    "FrozenValueError",
    "GitIndexError",
    "HasDependentsError",
    "IndexDamaged",
    "IndexOutdated",
    "IndexWriteError",
    "InputPathError",
    "InvalidIdentifierError",
    "LockTimeout",
    "LockUnavailableError",
    "MalformedFileError",
    "Mismatch",
    "MissingExtraError",
    "MissingFieldError",
    "NotFound",
    "ObjectInUseError",
    "PathRefusedError",
    "ProgressArgumentError",
    "RemoteError",
    "RemoteUnavailableError",
    "RemoteUnwritableError",
    "SealedConfigError",
    "ServeError",
    "SlurmError",
    "TagConflictError",
    "TextValueError",
    "TransferInterrupted",
    "UnboundPathError",
    "UnknownFieldError",
    "UnreadableMetrics",
    "UnsupportedType",
    "UnsupportedValueError",
    "XpmstoreError",
]


class XpmstoreError(Exception):
    """Base of every error raised by xpmstore."""


class ConfigError(XpmstoreError):
    """A configuration class or instance is wrong; the message names the class and the field."""


class ConfigTypeError(ConfigError, TypeError):
    """A field received a value of the wrong type."""


class ConfigValueError(ConfigError, ValueError):
    """A field or a class declaration holds a value that is not allowed."""


class UnknownFieldError(ConfigTypeError):
    """A keyword names no field of the class."""


class UnsupportedValueError(ConfigTypeError):
    """A value of a type that cannot be encoded into an identifier (never silently dropped)."""


class ConstantFieldError(ConfigTypeError):
    """A ``Constant`` or a generated path was given a value."""


class MissingFieldError(ConfigValueError):
    """A required field has no value when the config is identified or submitted."""


class TagConflictError(ConfigValueError):
    """Two different values for one tag name in one config tree."""


class InputPathError(ConfigValueError):
    """An input path is missing, or is a special file, or a directory holds a cycle."""


class SealedConfigError(ConfigError, AttributeError):
    """A field of a sealed (identified or submitted) config was assigned."""


class UnboundPathError(ConfigError, ValueError):
    """A generated path was turned into a file-system path before its task was bound."""


class FrozenValueError(ConfigError, TypeError):
    """A list, dict or set held by a config (a ``FrozenList`` or ``FrozenDict``) was changed in
    place: a config's values cannot change."""


class ArgumentTypeError(XpmstoreError, TypeError):
    """A function of xpmstore was given an argument of a type it does not take; the message
    names the argument and what it takes."""


class ArgumentValueError(XpmstoreError, ValueError):
    """A function of xpmstore was given an argument whose value it does not take
    (``LocalLauncher(workers=0)``); the message names the argument and what it takes."""


class ProgressArgumentError(ArgumentTypeError):
    """``progress(...)`` or ``progress.track(...)`` was given an argument of the wrong type."""


class InvalidIdentifierError(XpmstoreError, ValueError):
    """A string that is not 1–64 lowercase hexadecimal characters was given as an identifier."""


class AmbiguousPrefixError(InvalidIdentifierError):
    """A prefix matches several objects; ``candidates`` lists their identifiers."""

    def __init__(self, message: str, candidates: list[str] | None = None):
        super().__init__(message)
        self.candidates = candidates or []


class FormatVersionError(XpmstoreError, ValueError):
    """A file was written by a newer xpmstore (or is not an xpmstore file)."""


class MalformedFileError(XpmstoreError, ValueError):
    """A JSON file read back from disk is not a document xpmstore wrote: not UTF-8, not JSON, or
    nested deeper than any document it writes; ``path`` names it."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path


class ClassNotFoundError(XpmstoreError, LookupError):
    """A recorded configuration class can no longer be imported."""


class NotFound(XpmstoreError, LookupError):
    """No object matches the identifier, prefix or query."""


class CorruptObjectError(XpmstoreError, ValueError):
    """Stored bytes do not match what their manifest or identifier promises.

    Attributes:
        identifier: the object at fault (or ``""`` when unknown).
        expected: what the manifest or identifier promised.
        got: what was found.
    """

    def __init__(self, message: str, identifier: str = "", expected: str = "", got: str = ""):
        super().__init__(message)
        self.identifier = identifier
        self.expected = expected
        self.got = got


class ExperimentFailed(XpmstoreError, RuntimeError):
    """Some jobs of an experiment failed; ``failed`` lists (identifier, name, log path)."""

    def __init__(self, message: str, failed: list[tuple[str, str, str]] | None = None):
        super().__init__(message)
        self.failed = failed or []


class ExperimentInJobError(XpmstoreError, RuntimeError):
    """``experiment()`` was entered inside a job's process: the script that defines the tasks,
    imported by its jobs, starts its experiment without an ``if __name__ == "__main__":``
    guard."""


class ObjectInUseError(XpmstoreError, RuntimeError):
    """An object is running or being computed (its lock is held, or a live launch record names
    its holder), so it cannot be removed or repaired now; ``identifier`` names it."""

    def __init__(self, message: str, identifier: str = ""):
        super().__init__(message)
        self.identifier = identifier


class DamagedRunRecordError(XpmstoreError, RuntimeError):
    """A run record that gc takes roots from has damaged lines: what the run used is not known
    in full, so gc deletes nothing until the record is repaired or removed."""


class HasDependentsError(XpmstoreError, RuntimeError):
    """An object cannot be removed alone: done objects depend on it (``dependents`` lists their
    identifiers); ``xpmstore rm --cascade`` removes them too."""

    def __init__(self, message: str, dependents: list[str] | None = None):
        super().__init__(message)
        self.dependents = dependents or []


class PathRefusedError(XpmstoreError, PermissionError):
    """A path asked of an object (``xpmstore serve``'s file and log views) that is not one of
    the files its done manifest lists nor one of its logs, or that leads outside its
    directory; the message quotes the path."""


class MissingExtraError(XpmstoreError, ImportError):
    """An optional extra is not installed (``xpmstore serve`` needs ``xpmstore[serve]``); the
    message names the modules missing and says what to install."""


class ServeError(XpmstoreError, OSError):
    """``xpmstore serve`` cannot listen on the address asked for (in use, not of this
    machine...); the message names the address and why."""


class TextValueError(XpmstoreError, ValueError):
    """A value given as text (an age, a size, a ``k=v`` assignment, a tag filter) cannot be
    read; the message quotes it and says what is expected."""


class IndexWriteError(XpmstoreError, OSError):
    """A new index cannot be written (a full disk, a read-only file system); the message names
    the index and says that the old one was left as it was."""


class RemoteError(XpmstoreError, OSError):
    """The remote (docs/remote.md) refused or failed an operation, or is badly configured; the
    message names the remote and the key."""


class RemoteUnavailableError(RemoteError, ConnectionError):
    """The remote cannot be reached (after the metadata timeout and one retry)."""


class RemoteUnwritableError(RemoteUnavailableError):
    """The remote can be reached but refuses writes (a read-only mount, no permission, a
    ``file://`` URL that names a file); judged down like an unreachable remote."""


class LockUnavailableError(XpmstoreError, OSError):
    """The file system refuses locks (some NFS mounts without lockd)."""


class LockTimeout(XpmstoreError, TimeoutError):
    """A lock was not acquired within the time asked for."""


class SlurmError(XpmstoreError):
    """A Slurm command failed (its message says which and why)."""


# --- signals between modules (caught inside the library) ------------------------------------


class Mismatch(XpmstoreError, TypeError):
    """A value does not fit a type; ``where`` is the position inside the field (``[2]``...).
    :mod:`xpmstore.core.typecheck` raises it; the config turns it into a ConfigTypeError that
    names the field."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.message = message
        self.where = where

    def inside(self, step: str) -> Mismatch:
        """The same mismatch seen one level up."""
        return Mismatch(self.message, step + self.where)


class UnsupportedType(XpmstoreError, TypeError):
    """A field's declared type is not supported (the config turns it into a ConfigTypeError
    naming the field)."""


class IndexDamaged(XpmstoreError):
    """The index's files cannot be used as they are; the message says why (the index moves
    them aside and rebuilds)."""


class IndexOutdated(IndexDamaged):
    """The index was written by another version of xpmstore (another schema): it is rebuilt,
    like a damaged one, but nothing is wrong with it."""


class UnreadableMetrics(XpmstoreError, ValueError):
    """A metrics file that exists but cannot be taken (the message says why; a table warns and
    leaves the row's metrics empty)."""


class TransferInterrupted(XpmstoreError):
    """A transfer to or from the remote stopped between two chunks because its caller was
    interrupted (Ctrl-C); nothing of the unfinished write was published
    (:mod:`xpmstore.remote.interrupt` raises it, the push and the pull catch it)."""


class ChainRefused(XpmstoreError):
    """sbatch refused a job's afterok dependencies and some are not done: the scheduler
    releases the job and submits it without afterok once they are."""


class GitIndexError(XpmstoreError, ValueError):
    """A git index file (``.git/index``) that :mod:`xpmstore.system.gitindex` does not read
    entirely: damaged, truncated, or using a part of the format it does not know (a split or
    sparse index, another version): the run record asks git instead."""
