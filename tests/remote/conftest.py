"""Fixtures of the remote's tests: a real SeaweedFS S3 server started once for this folder by the
suite itself (:mod:`tests.s3server`), and workspaces that share one remote."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from xpmstore.remote import Remote, cachepush, reach
from xpmstore.store.workspace import Workspace

from ..s3server import S3Server
from ..storehelpers import isolate, make_workspace


@pytest.fixture(scope="package")
def s3_server() -> Iterator[S3Server]:
    """SeaweedFS ``weed mini`` on free loopback ports, for the tests of this folder (stopped
    after them, so that it takes no CPU from the stress tests)."""
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    isolate(monkeypatch, tmp_path)
    monkeypatch.delenv("XPMSTORE_REMOTE", raising=False)
    monkeypatch.delenv(reach.DOWN_VARIABLE, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "any")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "any")
    reach.reset()
    yield
    cachepush.wait()  # this test's background pushes end with it
    reach.reset()


@pytest.fixture
def counters(tmp_path: Path) -> Path:
    """A folder where tasks and ``@cache`` methods count their computations."""
    folder = tmp_path / "counters"
    folder.mkdir()
    return folder


def new_bucket(server: S3Server) -> str:
    """A fresh, empty bucket on ``server``; returns its name."""
    bucket = f"xpm-{uuid.uuid4().hex[:16]}"
    server.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return bucket


def closed_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


RemoteFactory = Callable[..., Workspace]


@pytest.fixture(params=["dir", "s3"])
def remote_kind(request: pytest.FixtureRequest) -> str:
    """Each test that uses it runs against a directory remote and against SeaweedFS."""
    return str(request.param)


@pytest.fixture
def remote_section(remote_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The ``[remote]`` TOML lines of a fresh remote of ``remote_kind``."""
    if remote_kind == "dir":
        (tmp_path / "remote").mkdir()  # as `xpmstore remote init` would: a push never does
        return f'url = "file://{tmp_path / "remote"}"\n'
    server: S3Server = request.getfixturevalue("s3_server")
    return f'url = "s3://{new_bucket(server)}/team"\nendpoint_url = "{server.endpoint}"\n'


@pytest.fixture
def workspaces(tmp_path: Path, remote_section: str) -> RemoteFactory:
    """``workspaces(name, push="auto")``: a workspace whose xpmstore.toml names the shared
    remote."""

    def make(name: str, push: str = "auto", extra: str = "") -> Workspace:
        root = tmp_path / name
        root.mkdir()
        (root / "xpmstore.toml").write_text(f"[remote]\n{remote_section}push = \"{push}\"\n"
                                            + extra)
        return make_workspace(root)

    return make


def environ_without_proxy() -> dict[str, str]:
    """The environment with no HTTP proxy (loopback servers)."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def flipped(data: bytes) -> bytes:
    """``data`` with its last byte changed (same size)."""
    return data[:-1] + bytes([data[-1] ^ 1])


def damage(remote: Remote, key: str) -> bytes:
    """Rewrite ``key`` with one byte flipped, through the remote's own storage; the new
    bytes."""
    data = remote.backend.get_bytes(key)
    assert data
    remote.backend.delete(key)
    remote.backend.put_bytes(key, flipped(data))
    return flipped(data)
