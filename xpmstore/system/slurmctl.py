"""Slurm's side of things: job states, sbatch scripts, and the few commands xpmstore runs
(``sbatch``, ``squeue``, ``scontrol``, ``scancel``).

Pure functions (state mapping, script rendering, output parsing) apart from :func:`run_command`
and the queries built on it, which every caller goes through — so the launcher, liveness and
``xpmstore kill`` ask Slurm the same way.  ``squeue`` is always asked about many jobs at once
(``-j ID,ID,…``); finished jobs stay visible to ``squeue -t all`` for ``MinJobAge`` (300 s by
default), after which a job is *vanished*: the caller decides from the task directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SlurmError, XpmstoreError

__all__ = [
    "ACTIVE",
    "COMMAND_TIMEOUT",
    "QUERY_CHUNK",
    "RETRYABLE",
    "SlurmError",
    "SlurmOptions",
    "SlurmStatus",
    "accounted",
    "active_states",
    "cancel",
    "describe_state",
    "exit_code",
    "parse_sbatch",
    "parse_squeue",
    "query",
    "render_script",
    "run_command",
    "submit",
]

ACTIVE = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
    "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD",
})
"""Slurm states of a job that has not ended (it may still run, or is running)."""

RETRYABLE = frozenset({"TIMEOUT", "PREEMPTED", "NODE_FAIL"})
"""End states that ``max_retries`` reruns: the job did not fail by itself."""

_ENDED = {
    "COMPLETED": "completed",
    "FAILED": "failed (non-zero exit)",
    "CANCELLED": "cancelled",
    "TIMEOUT": "ran past its time limit",
    "OUT_OF_MEMORY": "ran out of memory",
    "NODE_FAIL": "its node failed",
    "PREEMPTED": "preempted",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "missed its deadline",
    "SPECIAL_EXIT": "special exit",
    "REVOKED": "revoked",
}

QUERY_CHUNK = 2000
"""Job ids per ``squeue -j`` call: a poll of more jobs makes one call per this many (a list of
~14,500 ids would pass the kernel's 128 KiB limit on one argument)."""

COMMAND_TIMEOUT = 30.0
"""Seconds a Slurm command may take before it counts as failed."""


@dataclass(frozen=True)
class SlurmStatus:
    """One job as ``squeue`` shows it: its id, state (``RUNNING``…) and Slurm's reason."""

    job_id: str
    state: str
    reason: str = ""

    @property
    def active(self) -> bool:
        """Whether the job has not ended."""
        return self.state in ACTIVE


@dataclass(frozen=True)
class SlurmOptions:
    """What an sbatch script asks of Slurm (None: Slurm's default)."""

    partition: str | None = None
    time: str | None = None
    cpus: int | None = None
    mem: str | None = None
    gpus: int | str | None = None
    qos: str | None = None
    account: str | None = None
    extra: tuple[str, ...] = ()

    def merged(self, overrides: Mapping[str, object]) -> SlurmOptions:
        """These options with a SubmitHook's ``launcher_options`` on top (``extra`` is added
        to, the others replaced).  Raises XpmstoreError naming an unknown option."""
        known = {"partition", "time", "cpus", "mem", "gpus", "qos", "account", "extra"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise XpmstoreError(f"launcher_options {unknown}: SlurmLauncher knows "
                                f"{sorted(known)}")
        values: dict[str, Any] = {k: v for k, v in overrides.items() if k != "extra"}
        more: Any = overrides.get("extra") or ()
        if isinstance(more, str):
            more = [more]
        values["extra"] = tuple(self.extra) + tuple(str(e) for e in more)
        return dataclasses.replace(self, **values)

    def directives(self) -> list[str]:
        """The ``#SBATCH`` arguments these options stand for."""
        args = []
        for flag, value in (("--partition", self.partition), ("--time", self.time),
                            ("--cpus-per-task", self.cpus), ("--mem", self.mem),
                            ("--gpus", self.gpus), ("--qos", self.qos),
                            ("--account", self.account)):
            if value is not None:
                args.append(f"{flag}={value}")
        return args + list(self.extra)


def render_script(taskdir: str, command: Sequence[str], options: SlurmOptions,
                  environ: Mapping[str, str], job_name: str) -> str:
    """The sbatch script of one job: Slurm's own output to ``.xpm/slurm-%j.out``, the job's
    environment exported, then ``command`` run in ``taskdir`` (the launcher's: the task's
    runner, which writes ``stdout`` and ``stderr``)."""
    if any(c in taskdir for c in '"\n\\'):
        raise XpmstoreError(f"task directory {taskdir!r}: Slurm's #SBATCH lines cannot hold a"
                            " double quote, backslash or newline; use a workspace path without")
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}",  # quoted: paths with spaces
             f'#SBATCH --output="{taskdir}/.xpm/slurm-%j.out"', f'#SBATCH --chdir="{taskdir}"']
    for directive in options.directives():
        if "\n" in directive:
            raise XpmstoreError(f"Slurm option {directive!r}: must be one line")
        lines.append(f"#SBATCH {directive}")
    for name, value in sorted(environ.items()):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise XpmstoreError(f"job environment variable {name!r}: not a valid name")
        lines.append(f"export {name}={shlex.quote(value)}")
    lines.append('export XPMSTORE_SLURM_JOB_ID="$SLURM_JOB_ID"')  # into the launch record
    lines.append(f"exec {shlex.join(command)}")
    return "\n".join(lines) + "\n"


def parse_sbatch(output: str) -> str:
    """The job id printed by ``sbatch --parsable`` (``ID`` or ``ID;CLUSTER``)."""
    text = output.strip().splitlines()[-1] if output.strip() else ""
    job_id = text.split(";", 1)[0].strip()
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed {output.strip()!r}, not a job id")
    return job_id


def parse_squeue(output: str) -> dict[str, SlurmStatus]:
    """``squeue -h -o '%i|%T|%r'`` lines as {job id: status}."""
    found = {}
    for line in output.splitlines():
        parts = line.strip().split("|", 2)
        if len(parts) >= 2 and parts[0]:
            found[parts[0]] = SlurmStatus(parts[0], parts[1].strip().upper(),
                                          parts[2].strip() if len(parts) > 2 else "")
    return found


def describe_state(status: SlurmStatus) -> str:
    """The reason a job records for a Slurm end state: ``TIMEOUT (Slurm job 12: ran past its
    time limit)``."""
    what = _ENDED.get(status.state, status.state.lower())
    extra = f"; {status.reason}" if status.reason and status.reason != "None" else ""
    return f"{status.state} (Slurm job {status.job_id}: {what}{extra})"


def run_command(args: Sequence[str], stdin: str | None = None) -> str:
    """Run a Slurm command; its stdout.  Raises SlurmError with its message (one line) when
    it fails or is missing."""
    try:
        done = subprocess.run(list(args), input=stdin, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT, check=False)
    except FileNotFoundError:
        raise SlurmError(f"{args[0]}: not found; is Slurm installed and on PATH?") from None
    except OSError as exc:  # E2BIG and the like: never let a poll thread die of it
        raise SlurmError(f"{args[0]}: could not be run: {exc}") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{args[0]}: no answer within {COMMAND_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        message = " ".join((done.stderr or done.stdout).split())[:300]
        raise SlurmError(f"{args[0]} failed (exit {done.returncode}): {message}")
    return done.stdout


def submit(script_path: str, after: Iterable[str] = ()) -> str:
    """``sbatch --parsable [--dependency=afterok:…] SCRIPT``; the new job's id."""
    args = ["sbatch", "--parsable"]
    after = list(after)
    if after:
        args.append("--dependency=afterok:" + ":".join(after))
    return parse_sbatch(run_command([*args, script_path]))


def query(job_ids: Iterable[str]) -> dict[str, SlurmStatus]:
    """The status of many jobs in one ``squeue`` call; ids Slurm no longer knows are absent."""
    ids = sorted(set(job_ids), key=lambda i: (len(i), i))
    found: dict[str, SlurmStatus] = {}
    for start in range(0, len(ids), QUERY_CHUNK):
        found.update(_query_chunk(ids[start:start + QUERY_CHUNK]))
    return found


def _query_chunk(ids: list[str]) -> dict[str, SlurmStatus]:
    args = ["squeue", "-h", "-t", "all", "-o", "%i|%T|%r"]
    try:
        return parse_squeue(run_command([*args, "-j", ",".join(ids)]))
    except SlurmError as exc:
        if "Invalid job id" not in str(exc):
            raise
    # Some id was purged and this squeue refuses the whole list: ask for this user's jobs.
    listed = parse_squeue(run_command([*args, "-u", str(os.getuid())]))
    return {i: listed[i] for i in ids if i in listed}


def accounted(job_id: str) -> SlurmStatus | None:
    """The end state of a job ``squeue`` no longer shows, from ``sacct`` where Slurm keeps
    accounting; None without accounting (``sacct`` then fails) or when it does not know."""
    try:
        text = run_command(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State"])
    except SlurmError:
        return None
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 2 and parts[0] == job_id and parts[1]:
            return SlurmStatus(job_id, parts[1].split()[0].upper())  # "CANCELLED by 0"
    return None


def exit_code(job_id: str) -> int | None:
    """The exit code of an ended job (``scontrol show job``), or None when unknown."""
    try:
        text = run_command(["scontrol", "-o", "show", "job", job_id])
    except SlurmError:
        return None
    found = re.search(r"\bExitCode=(\d+):(\d+)", text)
    if found is None:
        return None
    code, signal = int(found.group(1)), int(found.group(2))
    return -signal if signal and not code else code


def cancel(job_ids: Iterable[str], force: bool = False) -> None:
    """``scancel`` the jobs (``--signal=KILL`` with ``force``)."""
    ids = list(job_ids)
    if ids:
        run_command(["scancel", *(["--signal=KILL", "--full"] if force else []), *ids])


_cache_lock = threading.Lock()
_cache: dict[str, tuple[float, SlurmStatus | None]] = {}
_CACHE_TTL = 1.0


def active_states(job_ids: Iterable[str]) -> dict[str, bool] | None:
    """For liveness: whether each job is active, from one ``squeue`` (answers cached for a
    second).  None when this machine has no ``squeue`` (liveness then uses its other rules);
    when ``squeue`` is there but fails (a busy or restarting controller), every job counts as
    active: a job is never taken for dead, and run twice, because Slurm did not answer."""
    now = time.monotonic()
    ids = set(job_ids)
    with _cache_lock:
        fresh = {i: _cache[i][1] for i in ids if i in _cache and now - _cache[i][0] < _CACHE_TTL}
    missing = ids - set(fresh)
    if missing:
        try:
            found = query(missing)
        except SlurmError as exc:
            if "not found" in str(exc):
                return None
            return {**{i: True for i in missing}, **{i: s is not None and s.active
                                                    for i, s in fresh.items()}}
        with _cache_lock:
            for job_id in missing:
                _cache[job_id] = (now, found.get(job_id))
                fresh[job_id] = found.get(job_id)
    return {i: s is not None and s.active for i, s in fresh.items()}
