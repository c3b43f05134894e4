"""Tasks, hooks and driver scripts of the scheduler's tests (experiment, claim, runner, launchers).

Every class lives at module level with an explicit ``__xpmid__`` so that job processes (forked
from the zygote, or ``python -m xpmstore.scheduler.runner``) import it by name.  Tasks report what
happened to them by appending lines to counter files (``O_APPEND``: one ``write`` per line, safe
across processes) in a folder given as the ``Meta`` field ``counters`` (not identity).

:func:`drive` is the entry point of the experiment processes that the stress and crash tests
start and kill: ``python -c "from tests.schedtasks import drive; drive()" MODE ARGS…``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from xpmstore import (
    Config,
    Meta,
    Param,
    SubmitHook,
    Task,
    field,
    pathgenerator,
    submit_hook_decorator,
)
from xpmstore.scheduler.hooks import Job

from .storehelpers import count_line, count_of

TASK_DEADLINE = 60.0
"""Seconds a task waits for a file before it gives up (never an expected duration)."""


def note(counters: str, key: str, text: str = "") -> None:
    """Append one line ``text`` (default: the pid) to ``counters/key``."""
    if not text:
        count_line(counters, key)
        return
    fd = os.open(os.path.join(counters, key), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def lines(counters: str | os.PathLike[str], key: str) -> list[str]:
    """The lines :func:`note` appended to ``counters/key``."""
    try:
        return Path(counters, key).read_text().splitlines()
    except FileNotFoundError:
        return []


def wait_file(path: str | os.PathLike[str], deadline: float = TASK_DEADLINE) -> None:
    """Wait until ``path`` exists; RuntimeError after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    pause = 0.001
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise RuntimeError(f"gave up waiting for {path}")
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


# --- the seed's examples -------------------------------------------------------------------------


class Model(Config):
    __xpmid__ = "tests.sched.Model"
    hidden: Param[int] = 128


class ModelLearn(Task):
    """The seed's ModelLearn: writes its generated path and reports what it sees while running."""

    __xpmid__ = "tests.sched.ModelLearn"
    epochs: Param[int] = 100
    model: Param[Model]
    parameters: Annotated[Path, pathgenerator("parameters.pth")]
    counters: Meta[str] = ""

    def execute(self) -> None:
        note(self.counters, f"learn-{self.epochs}")
        Path(self.parameters).write_text(f"{self.model.hidden} {self.epochs}\n")
        seen = {
            "cwd": os.getcwd(),
            "taskdir": str(self.__taskdir__),
            "maintaskdir": str(self.model.__maintaskdir__),
            "tags": self.__tags__,
            "parameters": os.fspath(self.parameters),
        }
        Path("seen.json").write_text(json.dumps(seen))  # relative: lands in the cwd


class Evaluate(Task):
    __xpmid__ = "tests.sched.Evaluate"
    learned: Param[ModelLearn]
    counters: Meta[str] = ""

    def execute(self) -> None:
        note(self.counters, "evaluate")
        Path("score.txt").write_text(Path(self.learned.parameters).read_text())


class Documents(Config):
    __xpmid__ = "tests.sched.Documents"
    name: Param[str]


class Topics(Config):
    __xpmid__ = "tests.sched.Topics"
    path: Param[Path]


class Dataset(Config):
    __xpmid__ = "tests.sched.Dataset"
    topics: Param[Topics]
    documents: Param[Documents]


class RandomFold(Task):
    """The seed's RandomFold: samples the topics, leaves the documents untouched.

    Waits for the file ``release`` (when given) before it writes, so that a test can show that
    what uses only the documents does not wait for it.
    """

    __xpmid__ = "tests.sched.RandomFold"
    dataset: Param[Dataset]
    size: Param[int] = 2
    topics: Annotated[Path, pathgenerator("topics.tsv")]
    counters: Meta[str] = ""
    release: Meta[str] = ""

    def task_outputs(self, dep: Any) -> Any:
        return dep(Dataset(topics=dep(Topics(path=self.topics)),
                           documents=self.dataset.documents))

    def execute(self) -> None:
        note(self.counters, "fold")
        if self.release:
            wait_file(self.release)
        source = Path(self.dataset.topics.path).read_text().splitlines()
        Path(self.topics).write_text("\n".join(source[: self.size]) + "\n")


class UseTopics(Task):
    __xpmid__ = "tests.sched.UseTopics"
    topics: Param[Topics]
    counters: Meta[str] = ""

    def execute(self) -> None:
        note(self.counters, "use-topics")
        Path("copy.tsv").write_text(Path(self.topics.path).read_text())


class UseDocuments(Task):
    __xpmid__ = "tests.sched.UseDocuments"
    documents: Param[Documents]
    counters: Meta[str] = ""

    def execute(self) -> None:
        note(self.counters, "use-documents")
        Path("name.txt").write_text(self.documents.name)


# --- hooks ---------------------------------------------------------------------------------------

APPLIED: list[tuple[str, Any, str]] = []
"""(hook type, spec, task identifier) of every hook application in this process (the scheduler's
process applies hooks)."""


class needs_java(SubmitHook):
    def __init__(self, version: int):
        self.version = version

    def spec(self) -> Any:
        return self.version

    def process(self, job: Job, launcher: Any) -> None:
        APPLIED.append(("needs_java", self.version, job.taskdir.name))
        job.environ["JAVA_HOME"] = f"/opt/java-{self.version}"


class set_env(SubmitHook):
    """Adds ``name=value`` to the job's environment."""

    def __init__(self, name: str, value: str):
        self.name = name
        self.value = value

    def spec(self) -> Any:
        return (self.name, self.value)

    def process(self, job: Job, launcher: Any) -> None:
        APPLIED.append(("set_env", self.spec(), job.taskdir.name))
        job.environ[self.name] = self.value


@needs_java(11)
class IndexCollection(Config):
    __xpmid__ = "tests.sched.IndexCollection"
    name: Param[str]


@needs_java(11)
class IndexTask(Task):
    """Writes the JAVA_HOME it runs with."""

    __xpmid__ = "tests.sched.IndexTask"
    collection: Param[IndexCollection]

    def execute(self) -> None:
        Path("java_home.txt").write_text(os.environ.get("JAVA_HOME", "<unset>"))


@needs_java(8)
class OldJavaTask(Task):
    """A task with another Java version: its hook must not leak into tasks that use it."""

    __xpmid__ = "tests.sched.OldJavaTask"
    n: Param[int] = 0

    def execute(self) -> None:
        Path("java_home.txt").write_text(os.environ.get("JAVA_HOME", "<unset>"))


@submit_hook_decorator(needs_java(17))
class DecoratedJavaTask(Task):
    """Its hook is attached as in experimaestro's documentation (``submit_hook_decorator``)."""

    __xpmid__ = "tests.sched.DecoratedJavaTask"
    n: Param[int] = 0

    def execute(self) -> None:
        Path("java_home.txt").write_text(os.environ.get("JAVA_HOME", "<unset>"))


class UsesOldJava(Task):
    __xpmid__ = "tests.sched.UsesOldJava"
    previous: Param[OldJavaTask]

    def execute(self) -> None:
        Path("java_home.txt").write_text(os.environ.get("JAVA_HOME", "<unset>"))


# --- processes and launchers ---------------------------------------------------------------------


def _process_facts() -> dict[str, Any]:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "sid": os.getsid(0),
        "pgid": os.getpgid(0),
        "main": getattr(spec, "name", None),
        "argv": sys.argv,
        "environ": {k: v for k, v in os.environ.items()
                    if k.startswith(("PYTHON", "LD_", "XPMTEST", "CUDA", "JAVA"))},
    }


class WhereAmI(Task):
    """Writes facts about its process (main module, parent, session, environment)."""

    __xpmid__ = "tests.sched.WhereAmI"
    n: Param[int] = 0

    def execute(self) -> None:
        Path("facts.json").write_text(json.dumps(_process_facts()))


class FreshWhereAmI(WhereAmI):
    """The same, asking a fresh process."""

    __xpmid__ = "tests.sched.FreshWhereAmI"
    fresh_process = True


class Interval(Task):
    """Appends ``start K DEVICE`` then ``end K DEVICE`` to ``counters/intervals``.

    With ``group`` > 0, after its start it waits until ``group × ceil(rank / group)`` starts are
    recorded (rank: the position of its own start line), so that jobs of one group overlap: a
    pool of ``group`` devices then runs exactly ``group`` at a time.
    """

    __xpmid__ = "tests.sched.Interval"
    k: Param[int]
    counters: Meta[str] = ""
    group: Meta[int] = 0

    def execute(self) -> None:
        device = os.environ.get("CUDA_VISIBLE_DEVICES", "-")
        note(self.counters, "intervals", f"start {self.k} {device}")
        if self.group:
            starts = [x for x in lines(self.counters, "intervals") if x.startswith("start ")]
            rank = starts.index(f"start {self.k} {device}") + 1
            wanted = self.group * -(-rank // self.group)
            end = time.monotonic() + TASK_DEADLINE
            while sum(x.startswith("start ") for x in lines(self.counters, "intervals")) < wanted:
                if time.monotonic() > end:
                    raise RuntimeError(f"only {len(starts)} jobs started; waited for {wanted}")
                time.sleep(0.002)
        Path("device.txt").write_text(device)
        note(self.counters, "intervals", f"end {self.k} {device}")


# --- failures, blocking, counting ----------------------------------------------------------------


class Flaky(Task):
    """Fails (with a message naming its flag) until the file ``flag`` exists."""

    __xpmid__ = "tests.sched.Flaky"
    n: Param[int] = 0
    counters: Meta[str] = ""
    flag: Meta[str] = ""

    def execute(self) -> None:
        note(self.counters, f"flaky-{self.n}")
        print(f"flaky attempt {count_of(self.counters, f'flaky-{self.n}')}")
        if not os.path.exists(self.flag):
            raise RuntimeError(f"flaky task {self.n}: no flag file yet")
        Path("result.txt").write_text("ok")


class After(Task):
    """Depends on ``previous`` (any task) and counts its executions."""

    __xpmid__ = "tests.sched.After"
    previous: Param[Task]
    label: Param[str] = ""
    counters: Meta[str] = ""

    def execute(self) -> None:
        note(self.counters, f"after-{self.label}")


class Counted(Task):
    """Counts its executions in ``counters/counted-<n>``."""

    __xpmid__ = "tests.sched.Counted"
    n: Param[int]
    counters: Meta[str] = ""

    def execute(self) -> None:
        note(self.counters, f"counted-{self.n}")
        Path("n.txt").write_text(str(self.n))


class Batched(Task):
    """Fails when its Meta ``batch`` is above ``limit``; else writes the batch it ran with to
    ``batch.txt`` (a Meta value changes nothing of its identity)."""

    __xpmid__ = "tests.sched.Batched"
    n: Param[int] = 0
    batch: Meta[int] = 64
    limit: Meta[int] = 32
    counters: Meta[str] = ""

    def execute(self) -> None:
        note(self.counters, f"batched-{self.n}", str(self.batch))
        if self.batch > self.limit:
            raise RuntimeError(f"batch {self.batch} does not fit (limit {self.limit})")
        Path("batch.txt").write_text(str(self.batch))


class Blocker(Task):
    """Counts its start in ``counters/started-<key>``, waits until ``release`` exists, then counts
    its end in ``counters/ended-<key>``."""

    __xpmid__ = "tests.sched.Blocker"
    key: Param[str]
    counters: Meta[str] = ""
    release: Meta[str] = ""

    def execute(self) -> None:
        note(self.counters, f"started-{self.key}")
        wait_file(self.release)
        Path("result.txt").write_text(self.key)
        note(self.counters, f"ended-{self.key}")


class EntersExperiment(Task):
    """A task that (wrongly) starts an experiment in its own process."""

    __xpmid__ = "tests.sched.EntersExperiment"
    n: Param[int] = 0

    def execute(self) -> None:
        from xpmstore import experiment

        with experiment(self.__taskdir__ / "nested", "nested"):
            pass


class Node(Task):
    """A node of the stress graph: checks that its parents are done, counts its execution."""

    __xpmid__ = "tests.sched.Node"
    i: Param[int]
    parents: Param[list[Task]] = field(default_factory=list)
    counters: Meta[str] = ""

    def execute(self) -> None:
        for parent in self.parents:
            if not (parent.__taskdir__ / ".xpm" / "done").exists():
                raise RuntimeError(f"node {self.i} runs before its parent {parent.__taskdir__}")
        note(self.counters, f"node-{self.i}")
        Path("out.txt").write_text(str(self.i))


class Crashy(Task):
    """Writes ``files`` files one by one, then notes its completion in ``completed-<i>``."""

    __xpmid__ = "tests.sched.Crashy"
    i: Param[int]
    files: Param[int] = 40
    counters: Meta[str] = ""

    def execute(self) -> None:
        note(self.counters, f"crashy-started-{self.i}")
        os.makedirs("parts", exist_ok=True)
        for k in range(self.files):
            Path(f"parts/{k}.txt").write_text(f"{self.i} {k}\n" * (1 + k))
        note(self.counters, f"completed-{self.i}")


# --- graphs and drivers --------------------------------------------------------------------------


def layered_graph(counters: str, layers: int = 10, width: int = 10) -> list[Node]:
    """``layers × width`` nodes; node (l, j) depends on nodes j and j+1 (mod width) of layer l-1."""
    previous: list[Node] = []
    every: list[Node] = []
    for layer in range(layers):
        current = []
        for j in range(width):
            parents = [previous[j], previous[(j + 1) % width]] if previous else []
            current.append(Node(i=layer * width + j, parents=parents, counters=counters))
        every.extend(current)
        previous = current
    return every


def drive(argv: list[str] | None = None) -> None:
    """The experiment processes of the stress and crash tests (see the module doc).

    * ``graph WS COUNTERS SEED``: print ``ready``, wait for a line on stdin (the barrier), then
      submit the layered graph (in an order drawn from SEED) with ``LocalLauncher(workers=2)``;
    * ``blocker WS COUNTERS RELEASE KEY``: submit ``Blocker(key=KEY)``;
    * ``crashy WS COUNTERS I``: submit ``Crashy(i=I)``;
    * ``interrupt WS COUNTERS RELEASE KEY``: like blocker, after printing ``submitted``.
    * ``waiter WS COUNTERS RELEASE KEY``: like blocker (experiment ``blocker``), and prints
      ``holder STATE`` each time the scheduler polls the holder of a job another process runs
      (the real ``holder_state``, watched: the test then knows that the scheduler waits).
    """
    import random

    from xpmstore import experiment
    from xpmstore.launchers import LocalLauncher

    args = sys.argv[1:] if argv is None else argv
    mode, workspace, counters = args[0], args[1], args[2]
    if mode == "graph":
        nodes = layered_graph(counters)
        random.Random(int(args[3])).shuffle(nodes)
        print("ready", flush=True)
        sys.stdin.readline()
        with experiment(workspace, "stress", launcher=LocalLauncher(workers=2)):
            for node in nodes:
                node.submit()
    elif mode in ("blocker", "interrupt"):
        with experiment(workspace, mode, launcher=LocalLauncher(workers=1)):
            Blocker(key=args[4], counters=counters, release=args[3]).submit()
            print("submitted", flush=True)
    elif mode == "crashy":
        with experiment(workspace, "crash", launcher=LocalLauncher(workers=1)):
            Crashy(i=int(args[3]), counters=counters).submit()
    elif mode == "waiter":
        from xpmstore.scheduler import engine as engine_module

        real_holder_state = engine_module.holder_state

        def watched_holder_state(*holder_args: Any) -> str:
            state = real_holder_state(*holder_args)
            print(f"holder {state}", flush=True)
            return state

        engine_module.holder_state = watched_holder_state
        with experiment(workspace, "blocker", launcher=LocalLauncher(workers=1)):
            Blocker(key=args[4], counters=counters, release=args[3]).submit()
            print("submitted", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
