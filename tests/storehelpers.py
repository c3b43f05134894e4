"""Helpers of the store's tests: configs and tasks importable by child processes, isolation of the
environment, child processes that report back, and checks of a workspace's integrity.

Every class here lives at module level with an explicit ``__xpmid__`` so that a process started
with spawn can import it by name (spawn passes the parent's ``sys.path``, which holds the
repository root that pytest put there for the ``tests`` package).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from xpmstore import Config, Param, Task, cache, pathgenerator
from xpmstore.core import digests
from xpmstore.store import manifest, taskdirs
from xpmstore.store import workspace as workspace_module
from xpmstore.store.workspace import Workspace, set_active_workspace

if TYPE_CHECKING:  # children import this module: keep pytest out of their start-up
    import pytest

DEADLINE = 60.0
"""Seconds a test waits for a condition before it fails (never an expected duration)."""


# --- configs and tasks ------------------------------------------------------------------------


class Model(Config):
    """A nested config."""

    __xpmid__ = "tests.store.Model"
    hidden: Param[int] = 64
    activation: Param[str] = "relu"


class Learn(Task):
    """A task with a nested config and a generated path."""

    __xpmid__ = "tests.store.Learn"
    model: Param[Model]
    epochs: Param[int] = 10
    lr: Param[float] = 0.1
    checkpoint: Annotated[Path, pathgenerator("model.bin")]

    def execute(self) -> None:
        Path(self.checkpoint).write_text(f"{self.model.hidden} {self.epochs} {self.lr}\n")


class Evaluate(Task):
    """A task that depends on another."""

    __xpmid__ = "tests.store.Evaluate"
    learned: Param[Learn]

    def execute(self) -> None:
        (self.__taskdir__ / "score.txt").write_text(Path(self.learned.checkpoint).read_text())


class Tiny(Task):
    """A small task that writes a few files (the crash tests run many of them)."""

    __xpmid__ = "tests.store.Tiny"
    i: Param[int]

    def execute(self) -> None:
        directory = self.__taskdir__
        (directory / "out.txt").write_text(f"{self.i}\n" * (1 + self.i % 7))
        (directory / "sub").mkdir(exist_ok=True)
        (directory / "sub" / "data.bin").write_bytes(bytes([self.i % 256]) * (100 * self.i))
        link = directory / "latest"
        if not link.is_symlink():
            link.symlink_to("out.txt")


class Failing(Task):
    """A task whose execute raises."""

    __xpmid__ = "tests.store.Failing"
    n: Param[int] = 0

    def execute(self) -> None:
        raise RuntimeError("this task always fails")


def count_line(counters: str | os.PathLike[str], key: str) -> None:
    """Append one line to the counter file ``counters/key`` (O_APPEND: safe across processes)."""
    fd = os.open(os.path.join(counters, key), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)


def count_of(counters: str | os.PathLike[str], key: str) -> int:
    """How many lines :func:`count_line` appended for ``key``."""
    try:
        return len(Path(counters, key).read_text().splitlines())
    except FileNotFoundError:
        return 0


class Terms(Config):
    """A config with ``@cache`` methods; each computation is counted in a counter file."""

    __xpmid__ = "tests.store.Terms"
    n: Param[int]

    @cache("terms.txt")
    def load(self, path: Path, counters: str) -> str:
        if path.is_file():
            return path.read_text()
        count_line(counters, f"terms-{self.n}")
        value = f"terms of {self.n}\n" * 3
        path.write_text(value)
        return value

    @cache("boom.txt")
    def boom(self, path: Path, counters: str) -> str:
        count_line(counters, f"boom-{self.n}")
        path.write_text("partial")
        raise ValueError("the computation failed")

    @cache("slow.txt")
    def slow(self, path: Path, counters: str, inside: str, release: str) -> str:
        """Write a partial result, say so by creating ``inside``, then wait until ``release``
        exists (the test kills the process meanwhile, or creates ``release``)."""
        if path.is_file():
            return path.read_text()
        count_line(counters, f"slow-{self.n}")
        path.write_text("LEFTOVER of a killed attempt")
        Path(inside).write_text(str(os.getpid()))
        wait_for(lambda: os.path.exists(release), what=f"{release} to appear")
        value = f"slow result of {self.n}"
        path.write_text(value)
        return value


# --- the environment ----------------------------------------------------------------------------


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point HOME at an empty folder under ``tmp_path`` and unset every xpmstore variable, so no
    test reads or writes the user's settings, workspace or index (nor shows the tracebacks a
    script hides); returns the new HOME."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    for var in ("XPMSTORE_WORKSPACE", "XPMSTORE_INDEX_DIR", "XPMSTORE_TRACEBACK",
                "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(workspace_module, "_active", None)
    monkeypatch.setattr(workspace_module, "_default_cache", None)
    monkeypatch.setattr(digests, "_persistent", None)
    return home


@contextlib.contextmanager
def active(workspace: Workspace) -> Iterator[Workspace]:
    """Make ``workspace`` the one ``@cache`` and ``Store()`` use, for the ``with`` block."""
    previous = set_active_workspace(workspace)
    try:
        yield workspace
    finally:
        set_active_workspace(previous)


def make_workspace(root: Path) -> Workspace:
    """A workspace at ``root`` with its folders created."""
    workspace = Workspace.at(root)
    workspace.ensure()
    return workspace


# --- waiting and processes -------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll ``condition`` until it holds; fail (AssertionError) after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    pause = 0.0005
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def spawn_context() -> Any:
    """The multiprocessing context of the stress tests: spawn (no inherited state at all)."""
    return multiprocessing.get_context("spawn")


def fork_context() -> Any:
    """The multiprocessing context of tests whose children inherit an open index."""
    return multiprocessing.get_context("fork")


def fork_call(body: Callable[[], Any]) -> Any:
    """Run ``body()`` in a forked child and return what it returns (JSON through a pipe); an
    exception in the child fails the caller with its text."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        try:
            result = {"ok": body()}
        except BaseException as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(write_end, "w") as out:
            json.dump(result, out)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as incoming:
        text = incoming.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child ended with status {status}"
    result = json.loads(text)
    if "error" in result:
        raise AssertionError(f"in the child: {result['error']}")
    return result["ok"]


# --- integrity ----------------------------------------------------------------------------------


def check_done_objects(workspace: Workspace) -> list[Path]:
    """Assert that every object directory with a done manifest parses and verifies; returns the
    done directories."""
    done = []
    for directory in taskdirs.list_object_dirs(workspace):
        if not taskdirs.is_done(directory):
            continue
        found = taskdirs.read_manifest(directory)
        assert found is not None
        assert found.identifier == directory.name
        problems = manifest.verify(directory, found)
        assert problems == [], f"{directory}: {problems}"
        done.append(directory)
    return done


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (relative), for before/after comparisons."""
    return {os.path.relpath(os.path.join(d, n), root)
            for d, dirs, files in os.walk(root) for n in dirs + files}
