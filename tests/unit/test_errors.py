"""The exception hierarchy: every error is an XpmstoreError and the builtin it means."""

from __future__ import annotations

from pathlib import Path

import pytest

import xpmstore
from xpmstore import errors

BUILTIN = {
    "ConfigTypeError": TypeError,
    "UnknownFieldError": TypeError,
    "UnsupportedValueError": TypeError,
    "ConstantFieldError": TypeError,
    "ConfigValueError": ValueError,
    "MissingFieldError": ValueError,
    "TagConflictError": ValueError,
    "InputPathError": ValueError,
    "UnboundPathError": ValueError,
    "InvalidIdentifierError": ValueError,
    "FormatVersionError": ValueError,
    "CorruptObjectError": ValueError,
    "SealedConfigError": AttributeError,
    "ClassNotFoundError": LookupError,
    "NotFound": LookupError,
    "ExperimentFailed": RuntimeError,
    "ObjectInUseError": RuntimeError,
    "HasDependentsError": RuntimeError,
    "TextValueError": ValueError,
    "IndexWriteError": OSError,
}


@pytest.mark.parametrize(("name", "builtin"), sorted(BUILTIN.items()))
def test_each_error_is_an_xpmstore_error_and_its_builtin(name, builtin):
    error = getattr(errors, name)
    assert issubclass(error, errors.XpmstoreError) and issubclass(error, builtin)
    assert name in errors.__all__


def test_config_errors_are_config_errors():
    for name in ("ConfigTypeError", "ConfigValueError", "UnknownFieldError", "MissingFieldError",
                 "TagConflictError", "InputPathError", "SealedConfigError", "UnboundPathError"):
        assert issubclass(getattr(errors, name), errors.ConfigError)


def test_every_error_is_listed():
    defined = {name for name, value in vars(errors).items()
               if isinstance(value, type) and issubclass(value, Exception)}
    assert defined == set(errors.__all__)


@pytest.mark.parametrize("name", ["XpmstoreError", "ExperimentFailed", "NotFound",
                                  "ConfigError", "MissingFieldError", "TagConflictError"])
def test_errors_are_exported_from_the_package(name):
    assert getattr(xpmstore, name) is getattr(errors, name)


def test_corrupt_object_error_carries_what_was_expected():
    error = errors.CorruptObjectError("bad blob", identifier="ab", expected="x", got="y")
    assert (str(error), error.identifier, error.expected, error.got) == ("bad blob", "ab", "x", "y")


def test_experiment_failed_lists_the_failed_jobs():
    failed = [("ab" * 32, "pkg.Task", "/ws/jobs/pkg.Task/ab/stderr")]
    assert errors.ExperimentFailed("1 job failed", failed).failed == failed
    assert errors.ExperimentFailed("none").failed == []


# --- one hierarchy, in one module ------------------------------------------------------------


def _library_modules() -> list[str]:
    import pkgutil

    return sorted(m.name for m in pkgutil.walk_packages(xpmstore.__path__, "xpmstore.")
                  if m.name != "xpmstore.errors" and not m.name.endswith("__main__"))


def test_every_exception_class_of_the_library_is_defined_in_errors() -> None:
    """Modules raise the errors of ``xpmstore.errors`` (a private signal of one module, named
    with a leading underscore, aside); the old homes still give them."""
    import importlib

    elsewhere = []
    for name in _library_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, BaseException) \
                    and value.__module__ == name and not attr.startswith("_"):
                elsewhere.append(f"{name}.{attr}")
    assert elsewhere == []
    from xpmstore.core import typecheck
    from xpmstore.scheduler.launchers import slurm
    from xpmstore.store import indexfiles, table
    from xpmstore.system import locks, slurmctl

    for module, name in ((locks, "LockTimeout"), (locks, "LockUnavailableError"),
                         (slurmctl, "SlurmError"), (slurm, "ChainRefused"),
                         (indexfiles, "IndexDamaged"), (table, "UnreadableMetrics"),
                         (typecheck, "Mismatch"), (typecheck, "UnsupportedType")):
        assert getattr(module, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), errors.XpmstoreError)


@pytest.mark.parametrize(("name", "builtin"), [
    ("ArgumentTypeError", TypeError), ("ArgumentValueError", ValueError),
    ("FrozenValueError", TypeError), ("ProgressArgumentError", TypeError),
    ("LockTimeout", TimeoutError), ("LockUnavailableError", OSError),
    ("UnreadableMetrics", ValueError), ("Mismatch", TypeError), ("UnsupportedType", TypeError),
])
def test_the_errors_that_moved_or_are_new_mean_their_builtin(name: str, builtin: type) -> None:
    error = getattr(errors, name)
    assert issubclass(error, errors.XpmstoreError) and issubclass(error, builtin)


def test_each_user_input_error_is_an_xpmstore_error(tmp_path: Path) -> None:
    """The user-input paths that raised a bare ValueError or TypeError."""
    from xpmstore import Config, Param, Task, cache, experiment
    from xpmstore.admin.du import usage
    from xpmstore.launchers import LocalLauncher
    from xpmstore.scheduler.progress import Progress
    from xpmstore.store.lookup import Store
    from xpmstore.store.workspace import Workspace

    from ..storehelpers import make_workspace

    class Items(Config):
        __xpmid__ = "tests.errors.Items"
        items: Param[list[int]]

    class Noop(Task):
        __xpmid__ = "tests.errors.Noop"

        def execute(self) -> None:
            pass

    workspace = make_workspace(tmp_path / "ws")
    with pytest.raises(errors.ArgumentValueError, match="workers=0"):
        LocalLauncher(workers=0)
    with pytest.raises(errors.ArgumentValueError, match="by="):
        usage(Store(workspace), by="size")
    with pytest.raises(errors.ArgumentValueError, match="identity name"):
        Workspace.at(tmp_path / "ws").object_dir("task", "../up", "ab" * 32)
    with pytest.raises(errors.ConfigValueError, match="plain file name"):
        cache("../escape")
    with pytest.raises(errors.FrozenValueError, match="immutable"):
        Items(items=[1]).items.append(2)
    import io

    with experiment(workspace, "errors", launcher=LocalLauncher(workers=1),
                    progress=Progress("errors", stream=io.StringIO())) as run:
        with pytest.raises(errors.ConfigTypeError, match="takes a Task"):
            run.submit(Items(items=[1]))  # type: ignore[arg-type]
        with pytest.raises(errors.ArgumentTypeError, match="launcher"):
            run.submit(Noop(), launcher=3)  # type: ignore[arg-type]
