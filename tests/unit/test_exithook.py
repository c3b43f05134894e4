"""The hook that ends a script with one line (xpmstore.scheduler.exithook), in this process:
what it wraps, when it prints the line and when it hands the exception to the hook it wraps.
A script's own end (a real process) is tested in tests/unit/test_user_scripts.py."""

from __future__ import annotations

import sys
from types import TracebackType

import pytest

from xpmstore.scheduler import exithook

Seen = list[tuple[type[BaseException], BaseException, TracebackType | None]]


@pytest.fixture
def previous(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Python's hook replaced by one that records its calls (as Python's own, untouched, it is
    what :func:`exithook.install` wraps); not an interactive session; no XPMSTORE_TRACEBACK."""
    seen: Seen = []

    def recording(kind: type[BaseException], error: BaseException,
                  trace: TracebackType | None) -> None:
        seen.append((kind, error, trace))

    monkeypatch.setattr(sys, "__excepthook__", recording)
    monkeypatch.setattr(sys, "excepthook", recording)
    monkeypatch.delattr(sys, "ps1", raising=False)
    monkeypatch.delenv(exithook.TRACEBACK_VARIABLE, raising=False)
    return seen


def marked(error: BaseException, line: str) -> BaseException:
    exithook.mark(error, line)
    return error


def test_a_marked_exception_ends_with_its_line_and_nothing_else(
        previous: Seen, capsys: pytest.CaptureFixture[str]) -> None:
    exithook.install()
    error = marked(KeyboardInterrupt(), "experiment 'x' interrupted: 0 job(s) stopped")
    sys.excepthook(KeyboardInterrupt, error, None)
    assert capsys.readouterr().err == "xpmstore: experiment 'x' interrupted: 0 job(s) stopped\n"
    assert previous == []


def test_any_other_exception_goes_to_the_hook_that_was_there(
        previous: Seen, capsys: pytest.CaptureFixture[str]) -> None:
    exithook.install()
    error = ValueError("mine")
    sys.excepthook(ValueError, error, None)
    assert previous == [(ValueError, error, None)]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", ["1", "yes"])
def test_xpmstore_traceback_gives_the_marked_exception_to_the_hook_that_was_there(
        previous: Seen, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        value: str) -> None:
    exithook.install()
    monkeypatch.setenv(exithook.TRACEBACK_VARIABLE, value)  # read when the script ends
    error = marked(RuntimeError("experiment 'x': 1 job(s) failed"), "the line")
    sys.excepthook(RuntimeError, error, None)
    assert previous == [(RuntimeError, error, None)]
    assert capsys.readouterr().err == ""


def test_xpmstore_traceback_0_is_off(previous: Seen, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    exithook.install()
    monkeypatch.setenv(exithook.TRACEBACK_VARIABLE, "0")
    sys.excepthook(RuntimeError, marked(RuntimeError("x"), "the line"), None)
    assert (previous, capsys.readouterr().err) == ([], "xpmstore: the line\n")


def test_installed_once(previous: Seen) -> None:
    exithook.install()
    installed = sys.excepthook
    assert installed is not sys.__excepthook__
    exithook.install()
    assert sys.excepthook is installed


def test_a_hook_another_library_installed_is_left_in_charge(
        previous: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    def theirs(kind: type[BaseException], error: BaseException,
               trace: TracebackType | None) -> None:
        raise AssertionError("never called here")

    monkeypatch.setattr(sys, "excepthook", theirs)
    exithook.install()
    assert sys.excepthook is theirs


def test_an_interactive_session_keeps_python_s_hook(
        previous: Seen, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    exithook.install()
    assert sys.excepthook is sys.__excepthook__
    # Installed before the session turned interactive: the traceback still shows there.
    monkeypatch.delattr(sys, "ps1")
    exithook.install()
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    error = marked(KeyboardInterrupt(), "the line")
    sys.excepthook(KeyboardInterrupt, error, None)
    assert previous == [(KeyboardInterrupt, error, None)]
    assert capsys.readouterr().err == ""


def test_marking_leaves_the_exception_as_it_was() -> None:
    error = RuntimeError("experiment 'x': 1 job(s) failed")
    exithook.mark(error, "the line")
    assert (type(error), error.args, str(error)) == (
        RuntimeError, ("experiment 'x': 1 job(s) failed",), "experiment 'x': 1 job(s) failed")
    assert exithook.line_of(error) == "the line"
    assert exithook.line_of(RuntimeError("unmarked")) is None
