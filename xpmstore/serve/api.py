"""The JSON API under ``/api/`` (documented in docs/serve.md), which the pages use.

Each handler runs the library's blocking work on a worker thread (``run_in_threadpool``) and
answers JSON; an error a request caused is ``{"error": one line}`` with its HTTP status
(:func:`.serveconfig.error_status`).  Event streams are in :mod:`.events`.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..core.fromtext import parse_tag_filter
from ..core.identifier import check_identifier
from ..errors import NotFound, PathRefusedError, TextValueError, XpmstoreError
from ..scheduler.runs import is_experiment_name
from ..store.locate import locate
from . import events
from .actions import ACTIONS, run_action
from .catalog import Catalog
from .files import is_listed, open_listed, read_chunk
from .graph import provenance
from .objectview import object_live, object_view
from .remoteview import remote_info, remote_listing, remote_presence
from .resultsview import results_table, table_csv
from .runcache import RunCache
from .runsview import experiments_view, run_view
from .serveconfig import ServeConfig, error_response

__all__ = ["Api", "State", "routes"]

_HANDLED = (XpmstoreError, OSError, ValueError, LookupError, TypeError)
"""Errors a request can cause: answered as JSON errors, never as a server error."""

_STATUSES = ("done", "failed", "running", "queued", "absent")
_KINDS = ("task", "cache")
LOG_LIMIT = 1 << 20
"""Bytes of a log one request returns at most."""


@dataclass
class State:
    """What every handler shares."""

    config: ServeConfig
    catalog: Catalog
    streams: events.Streams
    runs: RunCache


def _integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise TextValueError(f"{name}={text!r}: expected a whole number") from None
    return max(low, min(value, high))


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    text = request.query_params.get(name) or None
    if text is not None and text not in allowed:
        raise TextValueError(f"{name}={text!r}: expected one of {', '.join(allowed)}")
    return text


def _run_names(request: Request) -> tuple[str, str]:
    experiment = request.path_params["experiment"]
    run = request.path_params["run"]
    for text in (experiment, run):
        if not is_experiment_name(text):
            raise TextValueError(f"{text!r}: not an experiment or run name")
    return experiment, run


class Api:
    """The handlers (see docs/serve.md for each answer)."""

    def __init__(self, state: State):
        self.state = state
        self.workspace = state.config.workspace

    async def _answer(self, function: Callable[..., Any], *args: Any) -> Response:
        try:
            result = await run_in_threadpool(function, *args)
        except _HANDLED as error:
            return error_response(error)
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    # --- reading ---------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        streams = self.state.streams
        return JSONResponse({"workspace": str(self.workspace.root),
                             "allow_actions": self.state.config.allow_actions,
                             "streams": streams.active, "streams_opened": streams.opened})

    async def experiments(self, request: Request) -> Response:
        return await self._answer(experiments_view, self.state.runs)

    async def run(self, request: Request) -> Response:
        def answer() -> Any:
            experiment, name = _run_names(request)
            found = run_view(self.state.runs, experiment, name)
            if found is None:
                return JSONResponse({"error": f"no run {name} of experiment {experiment}"},
                                    status_code=404)
            return found

        return await self._answer(answer)

    async def object(self, request: Request) -> Response:
        return await self._answer(object_view, self.workspace, request.path_params["ident"],
                                  self.state.runs)

    async def graph(self, request: Request) -> Response:
        def answer() -> Any:
            depth = _integer(request, "depth", 3, 1, 20)
            return provenance(self.workspace, request.path_params["ident"],
                              self.state.runs.edges(), depth)

        return await self._answer(answer)

    async def remote_of(self, request: Request) -> Response:
        """Whether the remote holds the object: a full identifier need not be here (the
        object page of what was removed, or never pulled, offers to pull it)."""
        def answer() -> Any:
            text = request.path_params["ident"]
            try:
                identifier, _ = locate(self.workspace, text)
            except NotFound:
                if len(check_identifier(text)) != 64:
                    raise
                identifier = text
            return remote_presence(self.workspace, identifier)

        return await self._answer(answer)

    async def remote(self, request: Request) -> Response:
        if request.query_params.get("list"):
            return await self._answer(remote_listing, self.workspace)
        return await self._answer(remote_info, self.workspace)

    async def log(self, request: Request) -> Response:
        """A chunk of a log (or listed file) as text: ``text``, ``offset`` (after it),
        ``size``."""
        def answer() -> Any:
            _, directory = locate(self.workspace, request.path_params["ident"])
            offset = _integer(request, "offset", 0, 0, 1 << 62)
            limit = _integer(request, "limit", 64 * 1024, 1, LOG_LIMIT)
            name = request.query_params.get("name", "stdout")
            try:
                handle = open_listed(directory, name)
            except FileNotFoundError:
                return {"text": "", "offset": 0, "size": 0, "exists": False}
            try:
                data, size = read_chunk(handle, offset, limit)
            finally:
                os.close(handle)
            return {"text": data.decode("utf-8", "replace"), "offset": offset + len(data),
                    "size": size, "exists": True}

        return await self._answer(answer)

    async def file(self, request: Request) -> Response:
        """A listed file or a log, as text/plain or a download; never as HTML."""
        def opened() -> Any:
            _, directory = locate(self.workspace, request.path_params["ident"])
            path = request.query_params.get("path", "")
            return path, open_listed(directory, path)

        try:
            path, handle = await run_in_threadpool(opened)
        except _HANDLED as error:
            return error_response(error)
        size = os.fstat(handle).st_size
        guessed = mimetypes.guess_type(path)[0] or ""
        textual = guessed.startswith("text/") or guessed in ("application/json",) or \
            path.rsplit("/", 1)[-1] in ("stdout", "stderr", "params.json")
        download = bool(request.query_params.get("download")) or not textual
        name = path.rsplit("/", 1)[-1].replace('"', "")
        headers = {"content-length": str(size), "content-security-policy": "sandbox",
                   "cache-control": "no-store"}
        if download:
            headers["content-disposition"] = f'attachment; filename="{name}"'

        async def body() -> AsyncIterator[bytes]:
            offset = 0
            try:
                while offset < size:
                    data, _ = await run_in_threadpool(read_chunk, handle, offset,
                                                      min(1 << 20, size - offset))
                    if not data:
                        break
                    offset += len(data)
                    yield data
            finally:
                os.close(handle)

        media = "text/plain; charset=utf-8" if textual and not download \
            else "application/octet-stream"
        return StreamingResponse(body(), media_type=media, headers=headers)

    async def search(self, request: Request) -> Response:
        def answer() -> Any:
            query = request.query_params
            filters = {
                "kind": _choice(request, "kind", _KINDS),
                "status": _choice(request, "status", _STATUSES),
                "name": query.get("name") or None,
                "prefix": (query.get("prefix") or "").strip().lower() or None,
                "tags": [parse_tag_filter(t) for t in query.getlist("tag") if t],
                "params": [parse_tag_filter(p) for p in query.getlist("param") if p],
            }
            page = _integer(request, "page", 1, 1, 1 << 30)
            per_page = _integer(request, "per_page", 50, 1, 500)
            return self.state.catalog.search(filters, page, per_page)

        return await self._answer(answer)

    async def names(self, request: Request) -> Response:
        return await self._answer(self.state.catalog.names)

    def _table(self, request: Request) -> dict[str, Any]:
        metrics = request.query_params.get("metrics") or "metrics.json"
        return results_table(self.state.catalog, request.path_params["name"], metrics,
                             request.query_params.get("sort"),
                             bool(request.query_params.get("desc")))

    async def table(self, request: Request) -> Response:
        return await self._answer(self._table, request)

    async def table_csv(self, request: Request) -> Response:
        def answer() -> Response:
            table = self._table(request)
            name = "".join(c if c.isalnum() or c in "._-" else "_" for c in table["name"])
            return Response(table_csv(table), media_type="text/csv; charset=utf-8", headers={
                "content-disposition": f'attachment; filename="{name}.csv"'})

        return await self._answer(answer)

    # --- actions ---------------------------------------------------------------------------

    async def action(self, request: Request) -> Response:
        name = request.path_params["action"]
        if name not in ACTIONS:
            return JSONResponse({"error": f"no action {name!r} (one of"
                                          f" {', '.join(sorted(ACTIONS))})"}, status_code=404)
        try:
            options = await request.json() if await request.body() else {}
        except ValueError:
            return JSONResponse({"error": "the body of an action is a JSON object"},
                                status_code=400)
        if not isinstance(options, dict):
            options = {}
        response = await self._answer(run_action, self.workspace, name,
                                      request.path_params["ident"], options)
        self.state.catalog.invalidate()
        return response

    # --- event streams ---------------------------------------------------------------------

    def _stream(self, produce: AsyncIterator[str]) -> Response:
        streams = self.state.streams
        if streams.active >= streams.limit:
            return JSONResponse({"error": "too many open event streams; close some pages"},
                                status_code=503)
        return StreamingResponse(streams.counted(produce), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache",
                                          "x-accel-buffering": "no"})

    async def experiments_events(self, request: Request) -> Response:
        return self._stream(events.watch(lambda: experiments_view(self.state.runs),
                                         lambda: events.workspace_signature(self.workspace)))

    async def run_events(self, request: Request) -> Response:
        try:
            experiment, name = _run_names(request)
        except TextValueError as error:
            return error_response(error)
        return self._stream(events.watch(
            lambda: run_view(self.state.runs, experiment, name),
            lambda: events.run_signature(self.state.runs, experiment, name)))

    async def _directory(self, request: Request) -> Path:
        _, directory = await run_in_threadpool(locate, self.workspace,
                                               request.path_params["ident"])
        return directory

    async def object_events(self, request: Request) -> Response:
        try:
            directory = await self._directory(request)
        except _HANDLED as error:
            return error_response(error)
        return self._stream(events.watch(lambda: object_live(directory),
                                         lambda: events.object_signature(directory)))

    async def log_events(self, request: Request) -> Response:
        name = request.query_params.get("name", "stdout")
        try:
            directory = await self._directory(request)
            if not await run_in_threadpool(is_listed, directory, name):
                raise PathRefusedError(f"{name!r}: not a file of this object's manifest, nor"
                                       " one of its logs")
        except _HANDLED as error:
            return error_response(error)
        return self._stream(events.follow_log(directory, name))


def routes(state: State) -> list[Route]:
    """The routes of the API."""
    api = Api(state)
    return [
        Route("/api/health", api.health),
        Route("/api/experiments", api.experiments),
        Route("/api/runs/{experiment}/{run}", api.run),
        Route("/api/objects/{ident}", api.object),
        Route("/api/objects/{ident}/graph", api.graph),
        Route("/api/objects/{ident}/remote", api.remote_of),
        Route("/api/objects/{ident}/log", api.log),
        Route("/api/objects/{ident}/file", api.file),
        Route("/api/objects/{ident}/actions/{action}", api.action, methods=["POST"]),
        Route("/api/search", api.search),
        Route("/api/names", api.names),
        Route("/api/table/{name}", api.table),
        Route("/api/table/{name}/csv", api.table_csv),
        Route("/api/remote", api.remote),
        Route("/api/events/experiments", api.experiments_events),
        Route("/api/events/runs/{experiment}/{run}", api.run_events),
        Route("/api/events/objects/{ident}", api.object_events),
        Route("/api/events/objects/{ident}/log", api.log_events),
    ]

