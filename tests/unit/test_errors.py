"""The exception hierarchy: every error is an XpmstoreError and the builtin it means."""

from __future__ import annotations

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
