"""A TCP server on loopback that accepts every connection and closes it at once, counting them:
a remote that is there but never answers (every S3 call fails fast: "connection closed"), and a
witness of whether a process tried to reach it."""

from __future__ import annotations

import socket
import threading

__all__ = ["ClosingListener"]

_SENTINEL = b"xpm-sentinel"


class ClosingListener:
    """Listens on 127.0.0.1:``port``; :meth:`settled_count` is how many connections arrived."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port: int = self._sock.getsockname()[1]
        self._count = 0
        self._sentinels = 0
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """The URL to give as ``endpoint_url``."""
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(10)
                try:
                    first = conn.recv(len(_SENTINEL))
                except OSError:
                    first = b""
            with self._changed:
                if first == _SENTINEL:
                    self._sentinels += 1
                else:
                    self._count += 1
                self._changed.notify_all()

    def settled_count(self) -> int:
        """The connections made so far by others: a connection of our own is sent through the
        (first in, first out) accept queue and waited for, so none made before is left
        uncounted."""
        with self._changed:
            wanted = self._sentinels + 1
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            sock.sendall(_SENTINEL)
            with self._changed:
                if not self._changed.wait_for(lambda: self._sentinels >= wanted, timeout=30):
                    raise RuntimeError("the listener did not accept our own connection")
                return self._count

    def close(self) -> None:
        """Stop listening."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join()
