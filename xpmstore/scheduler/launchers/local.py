"""``LocalLauncher``: jobs as processes of this machine, forked from a zygote.

The zygote (:mod:`xpmstore.scheduler.zygote`) is spawned once per launcher, imports xpmstore and the
task modules once, and forks one process per job, so a small task costs a fork rather than a new
interpreter.  Jobs whose environment changes start-up variables (``LD_*``, ``PYTHON*``) or that
ask ``fresh_process=True`` run as ``python -m xpmstore.scheduler.runner TASKDIR`` instead.  Each job
runs in its own session (process group).  ``workers`` bounds how many run at once (default: the
number of cores); ``gpus`` hands each job one of them as ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...errors import ArgumentValueError, XpmstoreError
from ...store.taskdirs import is_done
from ...store.taskstate import STATE, launch_is_live, process_start, read_launch, read_state
from ..progress import describe_error
from ..progress import say as _say
from ..runner import EXIT_WAITED
from .base import ExitCallback, Launcher, LaunchRequest

__all__ = ["LocalLauncher"]

_STARTUP_VARIABLES = ("LD_", "PYTHON")
_DIRECT_MAX = 60_000  # bytes of a job sent straight to the zygote's spare (it reads 64 KiB)


def _needs_fresh(environ: dict[str, str]) -> bool:
    return any(name.startswith(_STARTUP_VARIABLES) for name in environ)


def _found_by_itself(entry: str) -> bool:
    """Whether this interpreter puts ``entry`` on ``sys.path`` by itself: its standard library
    (with its zip and ``lib-dynload``) or one of its site-packages."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    stdlib = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib")}
    sites = [paths["purelib"], paths["platlib"], *getattr(site, "getsitepackages", list)()]
    if site.ENABLE_USER_SITE:
        sites.append(site.getusersitepackages())
    real = os.path.realpath(entry)
    return (real in stdlib or real in {os.path.realpath(p) for p in sites}
            or any(real.startswith(s + os.sep) for s in stdlib)  # lib-dynload
            or (real.endswith(".zip") and os.path.dirname(real) in
                {os.path.dirname(s) for s in stdlib}))


def _python_path(existing: str = "") -> str:
    """PYTHONPATH for a job's interpreter: the entries of ``sys.path`` that it would not find by
    itself (the script's folder, source checkouts), then ``existing``.  Never the standard
    library or site-packages of this interpreter: they would leak into the job's environment
    and break any other Python the job starts."""
    entries = [p for p in sys.path if p and not _found_by_itself(p)]
    entries += [p for p in existing.split(os.pathsep) if p and p not in entries]
    return os.pathsep.join(entries)


def _outcome_code(taskdir: Path | None) -> int:
    """The exit code a job of a dead zygote is reported with, read from its task directory:
    0 when done, the recorded code when it failed, EXIT_WAITED when it never ran (the
    scheduler then checks who holds the job), else 1."""
    if taskdir is None:
        return 1
    if is_done(taskdir):
        return 0
    state = read_state(taskdir)
    if not state:  # unreadable: 1; absent: claimed, never started (the runner writes
        return 1 if os.path.exists(taskdir / STATE) else EXIT_WAITED  # "running" first thing)
    if state.get("state") == "failed":
        code = state.get("exit_code")
        return code if isinstance(code, int) and code != 0 else 1
    if state.get("state") == "running":  # a job that the dead zygote had started: its own?
        record = read_launch(taskdir)
        if record is not None and record.get("pid") != os.getpid() \
                and launch_is_live(taskdir, record):
            return EXIT_WAITED  # still running (taken, never reported): the scheduler waits
    return EXIT_WAITED if state.get("state") == "waiting" else 1


def _kill_group(pid: int, force: bool) -> None:
    """SIGTERM (SIGKILL with ``force``) to the process group ``pid``; to the process alone when
    it has not made its own group yet (a job just forked, before its ``setsid()``)."""
    sig = signal.SIGKILL if force else signal.SIGTERM
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class _Request:
    """One job asked of a zygote: requested, then started (its pid known), then over."""

    __slots__ = ("identifier", "kill", "on_exit", "pid", "taskdir", "token")

    def __init__(self, token: str, identifier: str, taskdir: Path, on_exit: ExitCallback):
        self.token = token  # unique per launch: a late line of an earlier attempt never matches
        self.identifier = identifier
        self.taskdir = taskdir
        self.on_exit = on_exit
        self.pid: int | None = None
        self.kill: bool | None = None  # killed before it started: force?


class _Zygote:
    def __init__(self) -> None:
        import subprocess  # once per launcher

        env = dict(os.environ)
        env["PYTHONPATH"] = _python_path()
        # The zygote's own pipes (never its stdin and stdout, which the task modules it imports
        # may print to, read or close): requests to it, messages from it, and the pipe where
        # jobs report their own end (xpmstore.scheduler.zygote).
        requests_read, requests_write = os.pipe()
        messages_read, messages_write = os.pipe()
        exits_read, exits_write = os.pipe()
        # Jobs go straight to the zygote's spare on this socket (one message, one job); where
        # there is no such socket, every job goes through the zygote.
        self.jobs: socket.socket | None = None
        jobs_read: socket.socket | None = None
        try:
            self.jobs, jobs_read = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError:
            pass
        passed = [requests_read, messages_write, exits_write] + (
            [jobs_read.fileno()] if jobs_read is not None else [])
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "xpmstore.scheduler.zygote", *map(str, passed)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
                env=env, pass_fds=passed,
            )
        except BaseException:
            for fd in (requests_write, messages_read, exits_read):
                os.close(fd)
            if self.jobs is not None:
                self.jobs.close()
            raise
        finally:
            for fd in (requests_read, messages_write, exits_write):
                os.close(fd)
            if jobs_read is not None:
                jobs_read.close()
        self.requests = os.fdopen(requests_write, "wb")
        self.messages = messages_read
        self.exits = exits_read
        self.lock = threading.Lock()
        self.tokens = itertools.count()
        self.by_token: dict[str, _Request] = {}  # every job asked and not over
        self.by_identifier: dict[str, _Request] = {}
        self.by_pid: dict[int, _Request] = {}  # the started ones
        self.lingering: dict[int, str] = {}  # pid -> token: reported its end, not reaped yet
        self.imported: set[str] = set()
        self.dead = False
        self.reader = threading.Thread(target=self._read, daemon=True, name="xpmstore-zygote")
        self.reader.start()

    def alive(self) -> bool:
        """Whether the zygote still takes work (it may have been killed)."""
        return not self.dead and self.process.poll() is None

    def _send(self, message: dict[str, Any]) -> None:
        self.requests.write((json.dumps(message) + "\n").encode())
        self.requests.flush()

    def _read(self) -> None:
        try:
            self._read_messages()
        except BaseException as exc:  # never happens: say it, and let _ended report the jobs
            _say(f"xpmstore: warning: the zygote's messages could not be read"
                 f" ({describe_error(exc)})")
        finally:
            self._ended()
            for fd in (self.messages, self.exits):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _read_messages(self) -> None:
        """Lines from the zygote's messages pipe and from the jobs' exit pipe, until both end
        (the zygote's end is reported at once; jobs it forked may still report theirs)."""
        import selectors

        out = self.messages
        pending = {out: b"", self.exits: b""}
        with selectors.DefaultSelector() as selector:
            selector.register(out, selectors.EVENT_READ)
            selector.register(self.exits, selectors.EVENT_READ)
            while pending:
                for key, _ in selector.select():
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fd)
                        del pending[key.fd]
                        if key.fd == out:
                            self._ended()
                        continue
                    *lines, pending[key.fd] = (pending[key.fd] + chunk).split(b"\n")
                    for line in lines:
                        if line:
                            self._line(line)

    def _line(self, line: bytes) -> None:
        """Act on one line of the protocol; a line that is not one (never written by xpmstore)
        costs a warning, never the reader."""
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError("not a JSON object")
            self._message(message)
        except (ValueError, KeyError, TypeError) as exc:
            _say(f"xpmstore: warning: a line from the zygote was not understood"
                 f" ({describe_error(exc)}): {line[:80]!r}")

    def _message(self, message: dict[str, Any]) -> None:
        token = str(message.get("token"))
        if message["op"] == "started":  # after the job's own "exited", at times: then ignored
            pid = message["pid"]
            with self.lock:
                request = self.by_token.get(token)
                if request is None or request.pid is not None:
                    return
                request.pid = pid  # its start time is read only if the zygote dies (_watch)
                self.by_pid[pid] = request
                force, request.kill = request.kill, None
            if force is not None:
                _kill_group(pid, force)
        elif message["op"] == "exited":  # the job's own line, then the zygote's: the first
            with self.lock:
                if not message.get("own"):
                    self.lingering.pop(message["pid"], None)  # reaped: gone
                request = self.by_token.get(token)
                if request is None or request.pid not in (None, message["pid"]):
                    return
                self._forget(request)
                if message.get("own"):
                    self.lingering[message["pid"]] = token  # its process is still ending
            request.on_exit(request.identifier, message["code"])

    def _forget(self, request: _Request) -> None:
        """Drop a job that is over (under the lock)."""
        self.by_token.pop(request.token, None)
        if self.by_identifier.get(request.identifier) is request:
            del self.by_identifier[request.identifier]
        if request.pid is not None and self.by_pid.get(request.pid) is request:
            del self.by_pid[request.pid]

    def _ended(self) -> None:
        """The zygote's output ended (it exited, or was killed): report the jobs it never
        started (as their task directories tell: never ran, so "waited" and the scheduler
        claims them again), and watch the jobs it forked, whose exits it can no longer report."""
        with self.lock:
            if self.dead:
                return
            self.dead = True
            never = [r for r in self.by_token.values() if r.pid is None]
            for request in never:
                self._forget(request)
            orphans = list(self.by_pid.values())
        for request in never:
            request.on_exit(request.identifier, _outcome_code(request.taskdir))
        for request in orphans:
            threading.Thread(target=self._watch_orphan, args=(request,), daemon=True,
                             name=f"xpmstore-orphan-{request.pid}").start()

    def _watch_orphan(self, request: _Request) -> None:
        """Wait until the job of a dead zygote is gone (or has reported its end itself), then
        report its exit, as told by its task directory (its exit status died with the
        zygote)."""
        assert request.pid is not None
        record = read_launch(request.taskdir)  # the job's own record, once it has written it
        start = record.get("pid_start") if record is not None and record.get(
            "pid") == request.pid else process_start(request.pid)
        pause = 0.005
        while start is not None and process_start(request.pid) == start:
            with self.lock:
                if self.by_token.get(request.token) is not request:
                    return  # it reported its end itself
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
        with self.lock:
            if self.by_token.get(request.token) is not request:
                return
            self._forget(request)
        request.on_exit(request.identifier, _outcome_code(request.taskdir))

    def kill(self, identifier: str, force: bool) -> bool:
        """Signal the job's process group; a job requested but not started yet is signalled as
        soon as it starts.  False when the zygote does not know the job."""
        with self.lock:
            request = self.by_identifier.get(identifier)
            if request is None:
                return False
            pid = request.pid
            if pid is None:
                request.kill = force or bool(request.kill)
                return True
        _kill_group(pid, force)
        return True

    def run(self, job: LaunchRequest, report: bool = True) -> int:
        """Ask the zygote to fork ``job`` (its modules and scripts imported first, once);
        ``report``: the job reports its own end before its process exits.  Returns 0: the pid
        comes with the zygote's answer."""
        wanted = [m for m in [*job.modules, *job.scripts] if m not in self.imported]
        if wanted:
            self.imported.update(wanted)
            self._send({"op": "import", "path": [p for p in sys.path if p],
                        "modules": [m for m in job.modules if m in wanted],
                        "scripts": [s for s in job.scripts if s in wanted]})
        with self.lock:
            if self.dead:
                raise XpmstoreError("the zygote of the local launcher has ended")
            request = _Request(f"{job.identifier}-{next(self.tokens)}", job.identifier,
                               job.taskdir, job.on_exit)
            self.by_token[request.token] = request
            self.by_identifier[job.identifier] = request
        message = {"op": "run", "taskdir": str(job.taskdir), "environ": job.environ,
                   "tags": job.tags, "token": request.token, "report": report}
        try:
            if wanted or not self._send_direct(message):  # after an import: in order, on stdin
                self._send(message)
        except OSError as exc:
            with self.lock:
                if self.by_token.get(request.token) is not request:
                    return 0  # the zygote's end was seen meanwhile: the job was reported there
                self._forget(request)
            raise XpmstoreError(f"the zygote of the local launcher has ended ({exc})") from exc
        return 0  # the pid arrives with the zygote's answer; kill() knows it by identifier

    def _send_direct(self, message: dict[str, Any]) -> bool:
        """Send a job straight to the zygote's spare; False when it must go through the zygote
        (too large for one message, or the socket is full)."""
        data = json.dumps(message).encode()
        if self.jobs is None or len(data) > _DIRECT_MAX:
            return False
        try:
            self.jobs.send(data, socket.MSG_DONTWAIT)
        except OSError:
            return False
        return True

    def close(self) -> None:
        try:
            self.requests.close()
        except OSError:
            pass
        if self.jobs is not None:
            self.jobs.close()  # an idle spare ends with it
        self._settle()

    def _settle(self, deadline: float = 10.0) -> None:
        """Wait until the processes of the jobs that reported their own end are gone (a
        millisecond or so): whoever looks at the workspace after the experiment (another
        submit, ``xpmstore kill``) never finds a finished job's process still alive."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with self.lock:
                left = [pid for pid in self.lingering if process_start(pid) is not None]
                if not left:
                    self.lingering.clear()
                    return
            time.sleep(0.001)


class LocalLauncher(Launcher):
    """Run jobs on this machine, at most ``workers`` at once (default: the number of cores).

    ``gpus``: device ids; each job gets one as ``CUDA_VISIBLE_DEVICES`` and waits for a free one.
    ``fresh_process=True`` runs every job in a new interpreter instead of forking the zygote.
    """

    name = "local"

    def __init__(self, workers: int | None = None, gpus: Sequence[int | str] | None = None,
                 fresh_process: bool = False):
        if workers is not None and workers < 1:
            raise ArgumentValueError(f"LocalLauncher(workers={workers}): expected at least 1")
        self.workers = workers or os.cpu_count() or 1
        self.gpus = [str(g) for g in gpus] if gpus is not None else None
        self.fresh_process = fresh_process
        self._running: set[str] = set()
        self._gpu_of: dict[str, str] = {}
        self._lock = threading.Lock()
        self._zygote: _Zygote | None = None
        self._zygote_lock = threading.Lock()  # one zygote started, whichever thread asks
        self._zygotes: list[_Zygote] = []  # every zygote started (a killed one still has jobs)
        # identifier -> pid of a `python -m xpmstore.scheduler.runner`
        self._spawned: dict[str, int] = {}

    def describe(self) -> str:
        """One line for logs and the launch record."""
        gpus = f", gpus={self.gpus}" if self.gpus is not None else ""
        return f"local(workers={self.workers}{gpus})"

    def capacity(self) -> int:
        """How many workers are free (each with a free GPU, when asked)."""
        with self._lock:
            free = self.workers - len(self._running)
            if self.gpus is not None:
                free = min(free, len(self.gpus) - len(self._gpu_of))
            return max(free, 0)

    def launch(self, request: LaunchRequest) -> int:
        """Start the job (see the module doc); returns its pid (0 when forked by the zygote:
        the pid comes later)."""
        identifier, taskdir, on_exit = request.identifier, request.taskdir, request.on_exit
        environ = dict(request.environ)
        if self.gpus is not None:
            with self._lock:
                free = [g for g in self.gpus if g not in self._gpu_of.values()]
                self._gpu_of[identifier] = free[0]
            environ["CUDA_VISIBLE_DEVICES"] = free[0]

        def finished(ident: str, code: int) -> None:
            with self._lock:
                self._running.discard(identifier)
                self._gpu_of.pop(identifier, None)
                self._spawned.pop(identifier, None)
            on_exit(identifier, code)

        with self._lock:
            self._running.add(identifier)  # the worker is taken until the job exits
        try:
            if request.fresh_process or self.fresh_process or _needs_fresh(environ):
                return self._spawn(identifier, taskdir, environ, finished)
            with self._zygote_lock:
                if self._zygote is not None and not self._zygote.alive():
                    self._zygote.close()  # killed: its jobs are still watched; start another
                    self._zygote = None
                zygote = self._start_zygote()
            # A job reports its own end, just before its process exits (xpmstore.scheduler.zygote),
            # unless it holds a GPU: the next job waits until the device is really let go.
            return zygote.run(replace(request, environ=environ, on_exit=finished),
                              report=self.gpus is None)
        except BaseException:
            with self._lock:  # not launched: free its worker and its GPU
                self._running.discard(identifier)
                self._gpu_of.pop(identifier, None)
            raise

    def _spawn(self, identifier: str, taskdir: Path, environ: dict[str, str],
               finished: ExitCallback) -> int:
        import subprocess

        env = {**os.environ, **environ}
        env["PYTHONPATH"] = _python_path(env.get("PYTHONPATH", ""))
        process = subprocess.Popen(
            [sys.executable, "-m", "xpmstore.scheduler.runner", str(taskdir), json.dumps(environ)],
            start_new_session=True, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        with self._lock:
            self._spawned[identifier] = process.pid

        def wait() -> None:
            finished(identifier, process.wait())

        threading.Thread(target=wait, daemon=True).start()
        return process.pid

    def kill(self, identifier: str, force: bool = False) -> None:
        """Signal the job's process group (SIGTERM, or SIGKILL with ``force``); a job asked of
        the zygote but not started yet is signalled as soon as it starts."""
        with self._lock:
            pid = self._spawned.get(identifier)
        if pid is not None:
            _kill_group(pid, force)
            return
        for zygote in self._zygotes:
            if zygote.kill(identifier, force):
                return

    def _start_zygote(self) -> _Zygote:
        """The zygote, started when there is none (under ``_zygote_lock``)."""
        if self._zygote is None:
            self._zygote = _Zygote()
            self._zygotes.append(self._zygote)
        return self._zygote

    def warm(self) -> None:
        """Start the zygote now (it imports xpmstore while tasks are being submitted); called
        by the scheduler once a job must launch, never when every task is done."""
        if not self.fresh_process:
            with self._zygote_lock:
                self._start_zygote()

    def close(self) -> None:
        """Stop the zygote from taking work; running jobs finish in their own sessions."""
        with self._zygote_lock:
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.close()
