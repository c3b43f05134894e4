"""Live pages: server-sent event streams fed by polling the disk cheaply.

A page opens one stream (``EventSource``) per live part.  Each stream polls a *signature* —
a few ``stat`` calls: the run record's size and time, the time of each job's ``.xpm/`` folder
(every state, launch record and done manifest is published there by a rename, which changes
the folder's time) — every :data:`POLL` seconds, and computes the part again when the signature
changed, or every :data:`REFRESH` seconds anyway (a job killed with ``kill -9`` changes no file:
its status changes with its process).  A part is sent only when it differs from the last one
sent.  Logs are followed by their size: what was appended is sent as text.

Every disk access runs on a worker thread (``anyio.to_thread``), never on the event loop.  A
stream ends when its client goes (Starlette cancels it: the poll stops there), and
:class:`Streams` counts the open ones and refuses more than its limit.
"""

from __future__ import annotations

import codecs
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from ..scheduler.runs import is_experiment_name
from ..store.taskstate import object_status
from ..store.workspace import XPM, Workspace
from .files import open_listed, read_chunk
from .runcache import RunCache
from .runsview import job_directory

__all__ = ["LOG_TAIL", "POLL", "REFRESH", "Streams", "follow_log", "object_signature",
           "run_signature", "sse", "watch", "workspace_signature"]

POLL = 0.25
"""Seconds between two polls of a signature (at least)."""
REFRESH = 2.0
"""Seconds after which a part is computed again even when its signature did not change (at
least)."""
SHARE = 10
"""A stream spends at most about 1/SHARE of a core: a signature or a part that takes long to
read is polled or recomputed that many times its cost apart (a run of 10,000 jobs)."""
KEEP_ALIVE = 15.0
"""Seconds of silence after which a comment is sent (proxies and browsers keep the stream)."""
LOG_TAIL = 256 * 1024
"""Bytes of a log sent at most when a stream starts (the end of the file)."""
LOG_CHUNK = 256 * 1024


def sse(data: Any, event: str | None = None) -> str:
    """One server-sent event holding ``data`` as JSON (one line: JSON escapes newlines)."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"


class Streams:
    """The open event streams of a server, counted from their first event to their end (a
    stream whose client went before it started costs nothing); at most ``limit`` at a time
    (checked by the caller before it opens one)."""

    def __init__(self, limit: int = 200):
        self.limit = limit
        self.active = 0
        self.opened = 0

    async def counted(self, events: AsyncIterator[str]) -> AsyncIterator[str]:
        """``events``, counted as open until they end or their client goes."""
        self.active += 1
        self.opened += 1
        try:
            async for event in events:
                yield event
        finally:
            self.active -= 1
            close = getattr(events, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()


def _stat(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def workspace_signature(workspace: Workspace) -> tuple[Any, ...]:
    """The experiments and the size and time of each run record (a new run, a new line)."""
    top = str(workspace.experiments)
    found: list[Any] = []
    try:
        names = sorted(os.listdir(top))
    except OSError:
        return ()
    for name in names:
        try:
            files = sorted(os.listdir(f"{top}/{name}"))
        except OSError:
            continue
        found.extend((name, f, _stat(f"{top}/{name}/{f}")) for f in files)
    return tuple(found)


def run_signature(runs: RunCache, experiment: str, run: str) -> tuple[Any, ...]:
    """The run record's size and time, and the time of each of its jobs' ``.xpm/`` folders."""
    path = runs.workspace.experiments / experiment / f"{run}.jsonl"
    record = _stat(str(path))
    found: list[Any] = [record]
    parsed = runs.run(experiment, run) if is_experiment_name(experiment) else None
    for job in (parsed.jobs.values() if parsed is not None else ()):
        directory = job_directory(runs.workspace, job)
        if directory is not None:
            found.append(_stat(f"{directory}/{XPM}"))
    return tuple(found)


def object_signature(directory: Path) -> tuple[Any, ...]:
    """The times of an object's folder and of its ``.xpm/`` folder."""
    return _stat(str(directory)), _stat(f"{directory}/{XPM}")


async def watch(compute: Callable[[], Any], signature: Callable[[], Any],
                poll: float = POLL, refresh: float = REFRESH) -> AsyncIterator[str]:
    """Events holding ``compute()`` each time it changes (see the module doc); the first
    at once.  ``compute`` and ``signature`` run on worker threads."""
    last_signature: Any = object()
    last_sent: str | None = None
    computed = sent = 0.0
    cost = 0.0  # seconds the last compute took
    while True:
        now = time.monotonic()
        current = await anyio.to_thread.run_sync(signature)
        polled = time.monotonic() - now
        if current != last_signature or now - computed >= max(refresh, SHARE * cost):
            payload = await anyio.to_thread.run_sync(compute)
            cost = time.monotonic() - now - polled
            text = sse(payload)
            last_signature, computed = current, now
            if text != last_sent:
                last_sent, sent = text, now
                yield text
        if now - sent >= KEEP_ALIVE:
            sent = now
            yield ": keep-alive\n\n"
        await anyio.sleep(max(poll, SHARE * polled))


def _open_log(directory: Path, name: str) -> tuple[int, int] | None:
    """(descriptor, inode) of a log, or None while it does not exist."""
    try:
        handle = open_listed(directory, name)
    except FileNotFoundError:
        return None
    return handle, os.fstat(handle).st_ino


async def follow_log(directory: Path, name: str, poll: float = POLL) -> AsyncIterator[str]:
    """Events following the log ``name`` of the object at ``directory`` (a name checked by
    :func:`xpmstore.serve.files.open_listed`, which raises PathRefusedError before any event):
    ``{"text", "offset"}`` for what was appended (the last :data:`LOG_TAIL` bytes first,
    with ``cut`` when earlier bytes are left out), ``reset`` when the file was replaced (a new
    attempt), and ``status`` when the object's status changes."""
    opened = await anyio.to_thread.run_sync(_open_log, directory, name)
    handle, inode = opened if opened is not None else (None, None)
    offset = 0
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    status = None
    checked = sent = 0.0
    try:
        if handle is not None:
            size = os.fstat(handle).st_size
            if size > LOG_TAIL:
                offset = size - LOG_TAIL
                yield sse({"cut": offset}, "cut")
        while True:
            now = time.monotonic()
            if handle is None:
                opened = await anyio.to_thread.run_sync(_open_log, directory, name)
                if opened is not None:
                    handle, inode = opened
            else:
                current = await anyio.to_thread.run_sync(_stat_path, directory / name)
                if current is not None and (current[0] != inode or current[1] < offset):
                    os.close(handle)
                    handle, inode, offset = None, None, 0
                    decoder.reset()
                    yield sse({}, "reset")
                    continue
            if handle is not None:
                data, _ = await anyio.to_thread.run_sync(read_chunk, handle, offset, LOG_CHUNK)
                if data:
                    offset += len(data)
                    sent = now
                    yield sse({"offset": offset, "text": decoder.decode(data)})
                    continue  # more may be waiting: no pause
            if now - checked >= 1.0:
                checked = now
                current_status = await anyio.to_thread.run_sync(object_status, directory)
                if current_status != status:
                    status, sent = current_status, now
                    yield sse({"status": status}, "status")
            if now - sent >= KEEP_ALIVE:
                sent = now
                yield ": keep-alive\n\n"
            await anyio.sleep(poll)
    finally:
        if handle is not None:
            os.close(handle)


def _stat_path(path: Path) -> tuple[int, int] | None:
    """(inode, size) of a path, None when it is gone."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size
