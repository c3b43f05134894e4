"""The Starlette application of ``xpmstore serve``: routes, errors as JSON, and the guards.

Guards, in the order a request meets them:

* **Host**: bound to a loopback address, only requests naming a loopback host are answered (a
  web page of another site cannot reach the server through DNS rebinding).
* **Token**: when the server has one (any non-loopback ``--host``), every request must carry
  it: ``?token=`` once (it is then kept in a cookie restricted to this site), the cookie, or
  ``Authorization: Bearer``.
* **Actions**: every ``POST`` is an action; refused (403) unless the server allows actions, and
  unless it carries the header ``X-Xpmstore-Action`` (which a form or a page of another site
  cannot send without a CORS pre-flight, which this server never grants).
* Every answer carries a Content-Security-Policy allowing only this site's own scripts, and
  files of objects are never served as HTML (see :mod:`.api`).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..store.lookup import Store
from .catalog import Catalog
from .events import Streams
from .runcache import RunCache
from .serveconfig import ServeConfig, error_response, error_status

__all__ = ["LOOPBACK_HOSTS", "ServeConfig", "error_response", "error_status", "make_app"]

HERE = Path(__file__).resolve().parent
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_COOKIE = "xpmstore_token"
ACTION_HEADER = "x-xpmstore-action"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
       " connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
       " frame-ancestors 'none'")


def host_name(header: str) -> str:
    """The host name of a ``Host`` header, without its port (``[::1]:8642`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """The host, token and action guards and the security headers (see the module doc), as plain
    ASGI middleware (it never buffers a streamed answer)."""

    def __init__(self, app: ASGIApp, config: ServeConfig):
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refused = self._refusal(request)
        if refused is not None:
            await refused(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"no-referrer"))
            await send(message)

        await self.app(scope, receive, with_headers)

    def _refusal(self, request: Request) -> Response | None:
        allowed = self.config.allowed_hosts
        if "*" not in allowed and host_name(request.headers.get("host", "")) not in allowed:
            return PlainTextResponse("xpmstore serve: invalid host header", status_code=400)
        token = self.config.token
        if token is not None:
            given = request.query_params.get("token")
            if given is not None and secrets.compare_digest(given, token):
                return self._keep_token(request, token)
            cookie = request.cookies.get(TOKEN_COOKIE, "")
            bearer = request.headers.get("authorization", "")
            if not (secrets.compare_digest(cookie, token)
                    or secrets.compare_digest(bearer, f"Bearer {token}")):
                return PlainTextResponse(
                    "xpmstore serve: this server needs its token: open the URL it printed"
                    " (…?token=…)", status_code=401)
        if request.method == "POST":
            if not self.config.allow_actions:
                return JSONResponse({"error": "read-only server: actions (kill, pin, unpin, rm,"
                                     " pull) need xpmstore serve --allow-actions"},
                                    status_code=403)
            if ACTION_HEADER not in request.headers:
                return JSONResponse({"error": f"an action needs the header {ACTION_HEADER}"},
                                    status_code=403)
        return None

    @staticmethod
    def _keep_token(request: Request, token: str) -> Response:
        """Redirect to the same URL without the token, which a cookie now carries."""
        rest = [(k, v) for k, v in parse_qsl(request.url.query) if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response


def make_app(config: ServeConfig) -> Starlette:
    """The application serving ``config.workspace``."""
    from . import api, pages

    state = api.State(config=config, catalog=Catalog(Store(config.workspace),
                                                     max_age=config.catalog_age),
                      streams=Streams(config.max_streams),
                      runs=RunCache(config.workspace))
    routes = [
        *api.routes(state),
        *pages.routes(state),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(Guard, config=config)]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={404: _not_found, 405: _not_allowed})
    app.state.serve = state
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"no such page: {request.url.path}"}, status_code=404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"{request.method} is not allowed here"}, status_code=405)

