"""A TCP relay on loopback between the remote's clients and a server (the SeaweedFS server the
suite starts), which counts the bytes it forwards each way and can hold them back: the tests of
an interrupted transfer stop an upload (or a download) in its middle, at a known byte, for as
long as they need, then let it go on slowly."""

from __future__ import annotations

import socket
import threading
import time

__all__ = ["Relay"]

_DIRECTIONS = ("up", "down")  # client → server, server → client


class Relay:
    """Listens on 127.0.0.1 and forwards each connection to 127.0.0.1:``port``.  Thread-safe."""

    def __init__(self, port: int):
        self._target = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._changed = threading.Condition()
        self._counts = dict.fromkeys(_DIRECTIONS, 0)
        self._holds: dict[str, int | None] = dict.fromkeys(_DIRECTIONS, None)
        self._rates: dict[str, float | None] = dict.fromkeys(_DIRECTIONS, None)
        self._next = dict.fromkeys(_DIRECTIONS, 0.0)  # when the next chunk may go (a rate)
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        """The URL to give as ``endpoint_url``."""
        return f"http://127.0.0.1:{self.port}"

    def count(self, direction: str) -> int:
        """The bytes forwarded so far ``"up"`` (to the server) or ``"down"`` (to the
        clients)."""
        with self._changed:
            return self._counts[direction]

    def hold(self, direction: str, after: int) -> None:
        """Forward nothing more in ``direction`` once ``after`` bytes went that way (the
        clients' sends then block: a transfer stopped in its middle)."""
        with self._changed:
            self._holds[direction] = after
            self._changed.notify_all()

    def release(self, direction: str, rate: float | None = None) -> None:
        """Forward again in ``direction``: at most ``rate`` bytes a second (None: at once)."""
        with self._changed:
            self._holds[direction] = None
            self._rates[direction] = rate
            self._next[direction] = time.monotonic()
            self._changed.notify_all()

    def cut(self) -> None:
        """Cut every connection open now (a network that drops them); new ones are relayed."""
        with self._changed:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _cut(sock)

    def close(self) -> None:
        """Stop listening and cut every connection."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            sockets = list(self._sockets)
        self._listener.close()
        for sock in sockets:
            _cut(sock)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._changed:
                self._sockets += [client, server]
            for source, target, direction in ((client, server, "up"), (server, client, "down")):
                threading.Thread(target=self._pump, args=(source, target, direction),
                                 daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, direction: str) -> None:
        try:
            while True:
                data = source.recv(1 << 16)
                if not data:
                    break
                if not self._admit(direction, len(data)):
                    break
                target.sendall(data)
                with self._changed:
                    self._counts[direction] += len(data)
                    self._changed.notify_all()
        except OSError:
            pass
        finally:  # one side ended: so does the connection (a PUT cut short is never stored)
            _cut(source)
            _cut(target)

    def _admit(self, direction: str, size: int) -> bool:
        """Wait until ``size`` bytes may go ``direction``; False when the relay closed."""
        with self._changed:
            while not self._closed:
                hold = self._holds[direction]
                if hold is None or self._counts[direction] < hold:
                    break
                self._changed.wait()
            if self._closed:
                return False
            rate = self._rates[direction]
            delay = 0.0
            if rate:
                now = time.monotonic()
                start = max(now, self._next[direction])
                self._next[direction] = start + size / rate
                delay = start - now
        if delay > 0:
            time.sleep(delay)  # the rate of a slow link, not a synchronisation
        return True


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
