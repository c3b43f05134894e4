"""Running the server: bind, print the URL on the first line, serve until Ctrl-C (uvicorn).

Bound to a loopback address (the default, 127.0.0.1), the server answers only requests that
name a loopback host and needs no token.  Bound to any other address, it makes a token and
prints it in its URL (like Jupyter): every request must carry it (see :mod:`.app`).
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys
import threading
from typing import TextIO

from ..store.workspace import Workspace
from .app import LOOPBACK_HOSTS, ServeConfig, make_app

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "bind", "is_loopback", "serve", "server_url"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8642


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (port 0: a free one).  Raises OSError (the
    address is in use, cannot be assigned...)."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def server_url(host: str, port: int, token: str | None) -> str:
    """The URL to open (with the token when there is one)."""
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(workspace: Workspace, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          allow_actions: bool = False, out: TextIO | None = None) -> None:
    """Serve ``workspace`` until interrupted, printing the URL first (on ``out``, stdout by
    default) and a line about the mode on stderr.  Raises OSError when it cannot bind."""
    import uvicorn

    loopback = is_loopback(host)
    token = None if loopback else secrets.token_urlsafe(24)
    config = ServeConfig(workspace=workspace, allow_actions=allow_actions, token=token,
                         allowed_hosts=list(LOOPBACK_HOSTS) if loopback else ["*"])
    app = make_app(config)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    stream = out if out is not None else sys.stdout
    print(server_url(host, port, token), file=stream, flush=True)
    mode = "actions allowed" if allow_actions else "read-only (--allow-actions to allow kill," \
        " pin, rm, pull)"
    print(f"serving {workspace.root}, {mode}; Ctrl-C stops", file=sys.stderr, flush=True)
    catalog = app.state.serve.catalog
    threading.Thread(target=catalog.warm, name="xpmstore-catalog", daemon=True).start()
    server = uvicorn.Server(uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off",
        timeout_graceful_shutdown=1, server_header=False))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
