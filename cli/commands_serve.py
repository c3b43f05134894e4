"""``xpmstore serve``: the web service over the workspace (docs/serve.md), a thin layer over
:func:`xpmstore.serve.start`, which needs the optional extra ``xpmstore[serve]``."""

from __future__ import annotations

import click

from .context import open_workspace, user_errors, workspace_option

__all__ = ["serve"]


@click.command(short_help="Serve the workspace as a web application (live jobs, results).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any other than loopback needs the token the server"
                   " prints in its URL.")
@click.option("--port", default=8642, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: a free one).")
@click.option("--allow-actions", is_flag=True,
              help="Allow the pages to kill jobs, pin, unpin, rm and pull (read-only without).")
@workspace_option()
@user_errors
def serve(host: str, port: int, allow_actions: bool) -> None:
    """Serve the workspace as a web application until Ctrl-C: experiments and their runs,
    live jobs and logs, objects, provenance graphs, search, results tables, the remote, and
    the JSON API under /api/.

    The first line printed is the URL to open. Read-only unless --allow-actions. Needs the
    extra: pip install 'xpmstore[serve]' (exit code 1 without it).
    """
    from xpmstore.serve import require_extra, start

    if not host.strip():
        raise click.BadParameter("give an address, such as 127.0.0.1", param_hint="--host")
    require_extra()  # what to install, whatever the workspace
    try:
        start(open_workspace(), host=host, port=port, allow_actions=allow_actions)
    except KeyboardInterrupt:
        pass
