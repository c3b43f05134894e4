"""Run records: ``experiments/<name>/<run>.jsonl``, appended, never rewritten (docs/scheduler.md).

A header line (versions, a hash of the installed packages, host and pid), one line per job with
its reason, a ``git`` line with the git state of the working directory (written when ``git``
answers: the header never waits for it), an end line with the outcome.  A run without an end
line whose process is alive is a *live* run; live runs, the latest run and the last successful
runs of each experiment are the gc roots (:mod:`xpmstore.admin.gc`).  Lines are written with one
``write`` each on an ``O_APPEND`` descriptor, one thread at a time, so a crash never leaves a
half line (readers skip a torn last line anyway).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, NotRequired, Required, TypedDict, cast

from ..store.taskstate import boot_id, process_start
from ..system import jsonio
from .envfacts import packages_hash
from .gitcache import GitLookup, find_work_tree, look

if TYPE_CHECKING:
    import subprocess

__all__ = ["GIT_POLL", "GIT_WAIT_AT_END", "EndLine", "GitLine", "GitState", "HeaderLine", "JobLine",
           "ReasonLine", "RootLine", "RunLine", "RunLines", "RunRecord", "git_state_of", "iter_run",
           "read_run"]

GIT_WAIT_AT_END = 5.0
"""Seconds the end of a run waits for a ``git`` that has not answered yet; then it is killed and
the record holds no git state."""

GIT_POLL = 0.005
"""Seconds between the scheduler thread's looks at ``git`` during its first second
(:meth:`RunRecord.git_poll_in`)."""


class GitState(TypedDict, total=False):
    """The git state of the working directory when the run started (empty outside a
    repository)."""

    commit: str
    dirty: bool


class HeaderLine(TypedDict):
    """The first line: versions, a hash of the installed packages, and the process (host, boot
    id, pid and its start time: whether the run is live).  ``git``: ``{}`` when no git ran (not
    in a repository); else absent, the :class:`GitLine` tells it (older records hold the git
    state here)."""

    type: Literal["header"]
    xpmstore: str
    python: str
    git: NotRequired[GitState]
    packages: str
    host: str
    boot_id: str
    pid: int
    pid_start: int | None
    started: float
    experiment: str


class JobLine(TypedDict):
    """A job the run submitted: its identity, the plan's reason, tags and dependencies."""

    type: Literal["job"]
    id: str
    name: str
    reason: str
    tags: dict[str, Any]
    dependencies: list[str]


class ReasonLine(TypedDict):
    """A reason decided at launch time, which replaces the job line's."""

    type: Literal["reason"]
    id: str
    reason: str


class RootLine(TypedDict):
    """An object the run looked up (a gc root while the run counts)."""

    type: Literal["root"]
    id: str


class GitLine(TypedDict, total=False):
    """The git state of the working directory when the run started, appended once ``git``
    answers (anywhere after the header, before the end line): ``commit`` and ``dirty``, or
    neither when git found no commit or failed.  Absent when git did not answer by the end."""

    type: Required[Literal["git"]]
    commit: str
    dirty: bool


class EndLine(TypedDict, total=False):
    """The last line: the outcome (``ok``, ``failed``, ``interrupted``), the time, and how many
    jobs ended each way (``done``, ``failed``, ``blocked``, ``reused``, ``waited``)."""

    type: Literal["end"]
    outcome: str
    ended: float
    done: int
    failed: int
    blocked: int
    reused: int
    waited: int


RunLine = HeaderLine | JobLine | ReasonLine | RootLine | GitLine | EndLine
"""A line of a run record, as written."""


def _start_git(work_tree: str | None) -> subprocess.Popen[str] | None:
    """Start the one ``git`` command that tells the working directory's git state (it runs
    while the record is opened); None when git cannot be run, or no repository is there: no
    ``work_tree`` (:func:`~xpmstore.scheduler.gitcache.find_work_tree`) and git not told where
    by the environment (outside any repository, no git process is started for nothing)."""
    if work_tree is None and not (os.environ.get("GIT_DIR") or os.environ.get("GIT_WORK_TREE")):
        return None
    import subprocess  # only when a run starts

    # GIT_OPTIONAL_LOCKS=0: git status would otherwise refresh the index and rewrite it under
    # index.lock, and a user's `git commit` at that moment would fail on the lock.
    try:
        return subprocess.Popen(["git", "status", "--porcelain=v2", "--branch",
                                 "--untracked-files=no"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except OSError:
        return None


def _end_git(git: subprocess.Popen[str] | None) -> None:
    """Kill and reap ``git`` if it still runs (a child of git that keeps its pipe open is not
    waited for)."""
    if git is not None and git.poll() is None:
        git.kill()
        git.wait()


def _parse_git_status(text: str) -> GitState:
    """The git state told by ``git status --porcelain=v2 --branch --untracked-files=no``:
    the commit of its ``# branch.oid`` line, dirty when any line names a changed file (pure)."""
    commit = ""
    dirty = False
    for line in text.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.removeprefix("# branch.oid ").strip()
        elif line and not line.startswith("#"):
            dirty = True
    if not commit or commit == "(initial)":
        return {}
    return {"commit": commit, "dirty": dirty}


_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def git_state_of(line: dict[str, Any]) -> GitState:
    """The git state a :class:`GitLine` read back tells: its commit (40 or 64 lowercase hex)
    and dirty flag (a bool), or ``{}`` when either is missing or of another shape (pure)."""
    commit, dirty = line.get("commit"), line.get("dirty")
    if isinstance(commit, str) and _COMMIT.fullmatch(commit) and isinstance(dirty, bool):
        return {"commit": commit, "dirty": dirty}
    return {}


_compact = json.JSONEncoder(separators=(",", ":")).encode
"""A line's JSON, compact."""

_quote = json.encoder.encode_basestring_ascii
_JOB_KEYS = frozenset(JobLine.__annotations__)


def _line_json(line: RunLine) -> str:
    """``line``'s compact JSON; a job line (one per submitted job: 10,000 in a re-submission of
    10,000 tasks) is spelled out field by field, a third of the encoder's cost, with the same
    text (tests/unit/test_runlog.py checks it against the encoder)."""
    if line.get("type") != "job" or line.keys() != _JOB_KEYS:
        return _compact(line)
    job = cast(JobLine, line)
    tags, dependencies = job["tags"], job["dependencies"]
    return (f'{{"type":"job","id":{_quote(job["id"])},"name":{_quote(job["name"])},'
            f'"reason":{_quote(job["reason"])},"tags":{_compact(tags) if tags else "{}"},'
            f'"dependencies":[{",".join(map(_quote, dependencies))}]}}')


def _python_version() -> str:
    """``platform.python_version()`` without importing ``platform`` (a millisecond or more of
    regular expressions compiled at its import): the first word of ``sys.version``."""
    return sys.version.split()[0]


class RunRecord:
    """The record of one run of an experiment, opened for appending.  Raises OSError when it
    cannot be written (a full disk: then no file is left).  ``environments``: the folder where
    the header's hash of the installed packages is cached (:mod:`xpmstore.scheduler.envfacts`;
    None: computed); ``gitstates``: the folder where the git state is cached
    (:mod:`xpmstore.scheduler.gitcache`; None: git is asked each time)."""

    def __init__(self, experiments_dir: Path, name: str, environments: Path | None = None,
                 gitstates: Path | None = None):
        self._lock = threading.Lock()  # one line written at a time; none after the end
        self._closed = False
        work_tree = find_work_tree()
        lookup = look(gitstates, work_tree) if gitstates and work_tree else None
        cached = git_state_of(lookup.answer) if lookup and lookup.answer else {}
        git = None if cached else _start_git(work_tree)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        self.run = f"{stamp}-{socket.gethostname()}-{os.getpid()}"
        self.path = experiments_dir / name / f"{self.run}.jsonl"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL,
                               0o644)
        except BaseException:
            _end_git(git)
            raise
        from .. import __version__

        try:
            started = time.time()
            packages = packages_hash(environments)
            header: HeaderLine = {
                "type": "header", "xpmstore": __version__, "python": _python_version(),
                "packages": packages, "host": socket.gethostname(),
                "boot_id": boot_id(), "pid": os.getpid(),
                "pid_start": process_start(os.getpid()), "started": started,
                "experiment": name,
            }
            if git is None and not cached:
                header["git"] = {}  # no repository: nothing to wait for
            self.append_many([header, {"type": "git", **cached}] if cached else [header])
        except BaseException:  # a full disk: no record rather than one without its header
            _end_git(git)
            os.close(self._fd)
            self.path.unlink()
            raise
        self._git = git  # until its line is written, or it is given up at the end
        self._git_cache: GitLookup | None = lookup if git is not None else None
        self._git_started = time.monotonic()
        self._git_lock = threading.Lock()

    def git_poll_in(self) -> float | None:
        """Seconds until :meth:`record_git` should look at ``git`` again: often during its
        first second (it usually answers within milliseconds), then seldom (a git that is slow,
        or blocked on a long list of changed files, is read at the end); None once it is
        heard from."""
        if self._git is None:
            return None
        return GIT_POLL if time.monotonic() - self._git_started < 1.0 else 0.25

    def record_git(self, wait: float = 0.0) -> None:
        """Append the :class:`GitLine` once ``git`` has answered: at once when it has exited
        (the scheduler's thread asks after each of its steps), else after waiting ``wait``
        seconds at most, then killing it (no line: the git state is unknown).  Never raises: a
        full disk loses the line (the scheduler warns of the lines it cannot write)."""
        import subprocess

        with self._git_lock:
            git = self._git
            if git is None or (not wait and git.poll() is None):
                return
            self._git = None
            try:
                output, _ = git.communicate(timeout=wait or GIT_WAIT_AT_END)  # exited: at once
            except subprocess.TimeoutExpired:
                _end_git(git)
                return
            except (OSError, ValueError):
                return
            except BaseException:  # Ctrl-C while waiting: git goes too
                _end_git(git)
                raise
            if git.returncode < 0:
                return  # killed: no answer
            if git.returncode != 0:
                output = ""  # git failed (no repository after all): no state, as with no commit
            state = _parse_git_status(output)
            try:
                self.append({"type": "git", **state})
            except OSError:
                pass
            if state and self._git_cache is not None:
                self._git_cache.remember(state)  # the next run of this checkout asks no git

    def append(self, line: RunLine) -> None:
        """Append one JSON line (one write).  OSError once the record has ended."""
        self._write((_line_json(line) + "\n").encode())

    def append_many(self, lines: Sequence[RunLine]) -> None:
        """Append several lines in one write."""
        if lines:
            data = "".join(_line_json(x) + "\n" for x in lines)
            self._write(data.encode())

    def _write(self, data: bytes) -> None:
        """One ``write`` of whole lines, never beside another thread's (git's reader)."""
        with self._lock:
            if self._closed:
                raise OSError(f"the run record {self.path} has ended")
            os.write(self._fd, data)

    def end(self, outcome: str, **counts: int) -> None:
        """Wait for git's line (:data:`GIT_WAIT_AT_END` at most, then git is killed and its
        line left out), write the end line with the jobs' ``counts`` and close the record
        (closed even when the write fails: a full disk raises OSError, and the run counts as
        ended by its process's death)."""
        try:
            self.record_git(wait=GIT_WAIT_AT_END)
        finally:  # a Ctrl-C while waiting for git still ends the record
            try:
                self.append(cast(EndLine, {"type": "end", "outcome": outcome,
                                           "ended": time.time(), **counts}))
                os.fsync(self._fd)
            finally:
                with self._lock:  # no line from another thread after this one
                    self._closed = True
                    os.close(self._fd)


def read_run(path: Path) -> list[Any]:
    """The lines of a run record, as read: JSON values to check (a torn last line, or any line
    that is not a readable document, is skipped)."""
    return list(iter_run(path))


def iter_run(path: Path) -> RunLines:
    """:func:`read_run` a line at a time (a run of 100,000 jobs is never held whole).  Raises
    FileNotFoundError at once when the record is gone."""
    return RunLines(open(path, "rb"), str(path))  # closed by the iterator at its end


class RunLines(Iterator[Any]):
    """The lines of a run record as read, a line at a time: JSON values to check.  A line that
    is not a readable document is skipped; once read, ``damaged`` counts those that end with a
    newline (a torn last line, without one, is what a writer that died in its write leaves:
    not damage)."""

    def __init__(self, handle: BinaryIO, where: str):
        self.damaged = 0
        self._lines = self._read(handle, where)

    def __next__(self) -> Any:
        return next(self._lines)

    def _read(self, handle: BinaryIO, where: str) -> Iterator[Any]:
        with handle:
            for raw in handle:
                try:
                    yield jsonio.loads(raw, where)
                except ValueError:
                    if raw.endswith(b"\n"):
                        self.damaged += 1
