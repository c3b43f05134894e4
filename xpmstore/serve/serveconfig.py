"""What a server serves and allows (:class:`ServeConfig`), and how an error a request caused
becomes an answer (:func:`error_response`): shared by the application and its API routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

from ..errors import (
    AmbiguousPrefixError,
    HasDependentsError,
    NotFound,
    ObjectInUseError,
    PathRefusedError,
    RemoteError,
    XpmstoreError,
)
from ..store.workspace import Workspace

__all__ = ["ServeConfig", "error_response", "error_status"]


@dataclass
class ServeConfig:
    """What a server serves and allows."""

    workspace: Workspace
    allow_actions: bool = False
    token: str | None = None
    """Required of every request when set (any non-loopback host)."""
    allowed_hosts: list[str] = field(default_factory=lambda: ["*"])
    """Host names requests may name (``["*"]``: any; the loopback names when bound to
    loopback)."""
    max_streams: int = 200
    catalog_age: float = 10.0
    """Seconds a listing of the workspace serves searches before it is made again."""



def error_status(error: BaseException) -> int:
    """The HTTP status of an error a request caused."""
    if isinstance(error, PathRefusedError):
        return 403
    if isinstance(error, NotFound | FileNotFoundError):
        return 404
    if isinstance(error, ObjectInUseError | HasDependentsError):
        return 409
    if isinstance(error, RemoteError):
        return 502
    if isinstance(error, ValueError | TypeError | LookupError):
        return 400
    return 409 if isinstance(error, XpmstoreError) else 500


def error_response(error: BaseException) -> JSONResponse:
    """``{"error": one line}`` with the status :func:`error_status` gives (and the candidates
    of an ambiguous prefix)."""
    message = " ".join((str(error) or type(error).__name__).split())
    body: dict[str, Any] = {"error": message}
    if isinstance(error, AmbiguousPrefixError):
        body["candidates"] = error.candidates[:50]
    return JSONResponse(body, status_code=error_status(error))
