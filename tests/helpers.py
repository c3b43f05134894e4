"""Helpers shared by the foundation's tests (no fixtures: nothing other suites depend on)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from xpmstore.errors import XpmstoreError

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository root (holds pyproject.toml)."""

PYTHON = sys.executable
"""The interpreter of the test run (the project's .venv, where xpmstore is installed editable)."""


@contextlib.contextmanager
def refused(
    error: type[XpmstoreError], builtin: type[Exception], *names: str
) -> Iterator[pytest.ExceptionInfo[BaseException]]:
    """Expect ``error`` (an xpmstore error that is also ``builtin``) whose message names ``names``.

    Every refusal test uses it, so that each one checks the xpmstore class, the builtin class the
    caller may catch instead, and that the message names the class and the field at fault.
    """
    assert issubclass(error, XpmstoreError)
    with pytest.raises(error) as info:
        yield info
    assert isinstance(info.value, builtin), f"{type(info.value)} is not a {builtin.__name__}"
    assert isinstance(info.value, XpmstoreError)
    message = str(info.value)
    assert "\n" not in message, f"the message is not one line: {message!r}"
    for name in names:
        assert name in message, f"{name!r} is not named in {message!r}"


def run_python(
    args: list[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    isolated: bool = False,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the test interpreter on ``args`` (a real process); ``env`` adds to the environment."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    environ.update(env or {})
    command = [PYTHON, *(["-I"] if isolated else []), *args]
    return subprocess.run(
        command, cwd=cwd, env=environ, input=stdin, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
