"""Progress (xpmstore.scheduler.progress): plain log lines when the stream is not a terminal, a live
line on a terminal, and a one-line summary at the end with the counts."""

from __future__ import annotations

import errno
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from xpmstore import ExperimentFailed, experiment
from xpmstore.launchers import LocalLauncher
from xpmstore.scheduler.progress import Progress, describe_error

from ..schedtasks import After, Counted, Flaky
from ..storehelpers import isolate, make_workspace
from .test_experiment import hang_guard

A = "a" * 64
B = "b" * 64
SUMMARY = re.compile(r"^(?P<name>[\w.-]+): (?P<done>\d+) done, (?P<reused>\d+) reused,"
                     r" (?P<failed>\d+) failed(, (?P<blocked>\d+) blocked)? in \d+\.\ds$")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def _guarded() -> Iterator[None]:
    with hang_guard():
        yield


def summary_of(text: str) -> dict[str, str | None]:
    last = text.splitlines()[-1]
    found = SUMMARY.match(last)
    assert found, f"no summary line: {last!r}"
    return found.groupdict()


def test_plain_lines_on_a_stream_that_is_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress("plain", stream=stream)
    assert progress.live is False
    progress.started_job(A, "pkg.Learn")
    progress.finished_job(A, "pkg.Learn", "done")
    progress.finished_job(B, "pkg.Eval", "reused")
    progress.finished_job(B, "pkg.Eval", "failed", "exit code 1")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[:3] == [
        f"[plain] running  pkg.Learn {A[:12]}",
        f"[plain] done     pkg.Learn {A[:12]}",
        f"[plain] failed   pkg.Eval {B[:12]} exit code 1",
    ]
    assert "\r" not in stream.getvalue() and "\033" not in stream.getvalue()
    assert summary_of(stream.getvalue()) == {"name": "plain", "done": "1", "reused": "1",
                                             "failed": "1", "blocked": None}
    assert len(lines) == 4


def test_live_line_on_a_terminal_names_the_running_jobs() -> None:
    stream = FakeTerminal()
    progress = Progress("live", stream=stream)
    assert progress.live is True
    progress.started_job(A, "pkg.Learn")
    assert "live: 0 done, 0 reused, 1 running, 0 failed  [pkg.Learn]" in stream.getvalue()
    progress.finished_job(A, "pkg.Learn", "blocked", "dependency failed")
    assert f"\r\033[Kblocked  pkg.Learn {A[:12]} dependency failed\n" in stream.getvalue()
    assert progress.running == {}
    progress.close()
    text = stream.getvalue()
    assert text.endswith("\n")
    last = text.split("\r\033[K")[-1]  # the live line is erased before the summary
    assert summary_of(last) == {"name": "live", "done": "0", "reused": "0", "failed": "0",
                                "blocked": "1"}


def test_queued_and_waited_jobs_are_shown_apart() -> None:
    stream = FakeTerminal()
    progress = Progress("mixed", stream=stream)
    progress.queued_job(A, "pkg.Learn")  # claimed ahead of a free worker
    assert "mixed: 0 done, 0 reused, 0 running, 1 queued, 0 failed" in stream.getvalue()
    progress.started_job(A, "pkg.Learn")
    assert progress.queued == set() and progress.running == {A: "pkg.Learn"}
    progress.finished_job(A, "pkg.Learn", "done")
    progress.finished_job(B, "pkg.Eval", "waited")  # another process ran it
    progress.close()
    assert stream.getvalue().split("\r\033[K")[-1].startswith(
        "mixed: 1 done, 0 reused, 1 waited, 0 failed in ")
    plain = io.StringIO()
    progress = Progress("plain", stream=plain)
    progress.queued_job(A, "pkg.Learn")
    progress.finished_job(B, "pkg.Eval", "waited")
    assert plain.getvalue().splitlines() == [f"[plain] queued   pkg.Learn {A[:12]}",
                                             f"[plain] waited   pkg.Eval {B[:12]}"]


@pytest.mark.parametrize(("error", "line"), [
    (OSError(errno.ENOSPC, "No space left on device"), "disk full: No space left on device"),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "/ws/x"),
     "disk full: Disk quota exceeded (/ws/x)"),
    (RuntimeError("two\nlines"), "RuntimeError: two lines"),
    (KeyError(), "KeyError"),
])
def test_describe_error_is_one_line(error: BaseException, line: str) -> None:
    assert describe_error(error) == line


@pytest.mark.usefixtures("_guarded")
def test_experiment_reports_plain_lines_and_a_summary(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)
    ws = make_workspace(tmp_path / "ws")
    counters = tmp_path / "counters"
    counters.mkdir()
    flag = str(tmp_path / "no-flag")
    with experiment(ws, "first", launcher=LocalLauncher(workers=2),
                    progress=Progress("first", stream=io.StringIO())):
        Counted(n=1, counters=str(counters)).submit()

    stream = io.StringIO()
    flaky = Flaky(n=1, counters=str(counters), flag=flag)
    with pytest.raises(ExperimentFailed), experiment(
            ws, "second", launcher=LocalLauncher(workers=2),
            progress=Progress("second", stream=stream)):
        Counted(n=1, counters=str(counters)).submit()  # reused
        Counted(n=2, counters=str(counters)).submit()  # runs
        After(previous=flaky, counters=str(counters)).submit()  # blocked
    text = stream.getvalue()
    counted = Counted(n=2, counters="").__identifier__[:12]
    assert f"[second] running  tests.sched.Counted {counted}" in text
    assert f"[second] done     tests.sched.Counted {counted}" in text
    assert f"[second] failed   tests.sched.Flaky {flaky.__identifier__[:12]}" in text
    assert "[second] blocked  tests.sched.After" in text
    assert summary_of(text) == {"name": "second", "done": "1", "reused": "1", "failed": "1",
                                "blocked": "1"}
