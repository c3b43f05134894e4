"""The HTML pages: one template, a shell that ``static/app.js`` fills from the JSON API.

Each page names itself and its arguments (``data-*`` attributes of ``<main>``, escaped by
Jinja2); the script fetches ``/api/…`` and opens the page's event streams.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

if TYPE_CHECKING:
    from .api import State

__all__ = ["PAGES", "routes"]

HERE = Path(__file__).resolve().parent

PAGES: list[tuple[str, str, str]] = [
    ("/", "experiments", "Experiments"),
    ("/runs/{experiment}/{run}", "run", "Run"),
    ("/objects/{ident}", "object", "Object"),
    ("/objects/{ident}/graph", "graph", "Provenance"),
    ("/search", "search", "Search"),
    ("/table", "tables", "Results"),
    ("/table/{name}", "table", "Results"),
    ("/remote", "remote", "Remote"),
]
"""(path, page name, title) of every page."""


def routes(state: State) -> list[Route]:
    """A route for each page of :data:`PAGES`."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def handler(page: str, title: str) -> Callable[[Request], Awaitable[Response]]:
        async def render(request: Request) -> Response:
            args = dict(request.path_params)
            shown = " ".join([title, *(str(v)[:24] for v in args.values())])
            return templates.TemplateResponse(request, "page.html", {
                "page": page, "title": shown, "args": args,
                "workspace": str(state.config.workspace.root),
                "allow_actions": state.config.allow_actions,
            })

        return render

    return [Route(path, handler(page, title), name=page) for path, page, title in PAGES]
