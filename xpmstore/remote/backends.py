"""The two kinds of remote storage behind one small key/value interface (DESIGN §11).

A :class:`Backend` stores opaque bytes under ``/``-separated keys.  Writes are *create only*: a
key that exists is never overwritten (two writers of one key write equal or equally valid bytes,
so correctness never relies on the condition being honoured).

* :class:`DirectoryBackend` (``file:///shared/xpmstore``): a write goes to a temporary file in the
  key's folder, is fsynced, then ``os.link``-ed to its final name (``EEXIST`` is fine) — a reader
  never sees a partial file.
* :class:`S3Backend` (``s3://bucket/prefix``, any S3-compatible server through ``endpoint_url``;
  credentials from the usual AWS environment and files; boto3 is imported lazily, extra
  ``xpmstore[s3]``): HEAD, then PUT with ``If-None-Match: *`` (412 is fine).  Metadata calls
  time out after 2 s with one retry; transfers have a long read timeout.  An unreachable server
  raises RemoteUnavailableError.

Both are safe across threads and processes.
"""

from __future__ import annotations

import os
import shutil
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from ..atomic import TEMP_MARK, fsync_dir
from ..errors import RemoteError, RemoteUnavailableError

__all__ = ["Backend", "DirectoryBackend", "S3Backend", "open_backend"]

_CHUNK = 1 << 20
METADATA_TIMEOUT = 2.0
TRANSFER_TIMEOUT = 300.0


class Backend(ABC):
    """Create-only storage of bytes under keys; every method may raise RemoteError (and its
    RemoteUnavailableError when the storage cannot be reached)."""

    url: str

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> bool:
        """Store the file at ``path`` under ``key`` unless it exists; True when written."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key`` unless it exists; True when written."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None when absent."""

    @abstractmethod
    def open_read(self, key: str) -> IO[bytes]:
        """A binary stream of the bytes under ``key`` (close it); raises RemoteError when
        absent."""

    def copy_into(self, key: str, out: IO[bytes], limit: int) -> bool:
        """Copy at most ``limit`` bytes of ``key`` into the file ``out`` by a fast path (the
        kernel's, for a directory); False when this backend has none (then stream
        :meth:`open_read`).  Raises RemoteError when ``key`` is absent."""
        return False

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """The keys that start with ``prefix`` (a folder ending in ``/``)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (absent is fine)."""

    @abstractmethod
    def mtime(self, key: str) -> float | None:
        """When ``key`` was written (seconds since the epoch), or None when absent."""

    @abstractmethod
    def scan(self, prefix: str) -> dict[str, tuple[float, int]]:
        """Every key under ``prefix`` (a folder ending in ``/``) → (mtime, size): one listing."""

    @abstractmethod
    def refresh(self, key: str, path: Path) -> None:
        """Make ``key`` new again (its mtime now), ``path`` holding the very same bytes: what a
        push that deduplicates against an old blob does, so that remote gc spares it."""


class DirectoryBackend(Backend):
    """A remote in a directory of a shared file system (see the module doc)."""

    def __init__(self, root: Path, url: str = ""):
        self.root = Path(root)
        self.url = url or f"file://{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def mtime(self, key: str) -> float | None:
        try:
            return self._path(key).stat().st_mtime
        except FileNotFoundError:
            return None

    def _publish(self, key: str, write: Any) -> bool:
        final = self._path(key)
        if final.exists():
            return False
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RemoteError(f"{self.url}: cannot create {final.parent}: {exc}") from None
        temp = final.parent / f".{final.name}{TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())  # bytes on disk before the name is
            try:
                os.link(temp, final)  # atomic and create-only: a reader sees all or nothing
            except FileExistsError:
                return False  # another writer published the same key first: fine
            fsync_dir(final.parent)
            return True
        finally:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass

    def put_file(self, key: str, path: Path) -> bool:
        def copy(handle: IO[bytes]) -> None:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, handle, _CHUNK)

        return self._publish(key, copy)

    def put_bytes(self, key: str, data: bytes) -> bool:
        return self._publish(key, lambda handle: handle.write(data))

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise RemoteError(f"{self.url}: {key} is missing") from None

    def copy_into(self, key: str, out: IO[bytes], limit: int) -> bool:
        with self.open_read(key) as source:
            src, dst, left = source.fileno(), out.fileno(), limit
            try:
                while left > 0:
                    copied = os.copy_file_range(src, dst, min(left, 1 << 30))
                    if copied == 0:
                        break
                    left -= copied
            except OSError:  # no copy_file_range across these file systems: stream instead
                out.seek(0)
                out.truncate()
                return False
        return True

    def list(self, prefix: str) -> list[str]:
        top = self._path(prefix)
        out: list[str] = []
        for current, _dirs, files in os.walk(top):
            rel = os.path.relpath(current, self.root)
            out.extend(f"{rel}/{name}" for name in files if TEMP_MARK not in name)
        return sorted(out)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def scan(self, prefix: str) -> dict[str, tuple[float, int]]:
        out: dict[str, tuple[float, int]] = {}
        for key in self.list(prefix):
            try:
                info = self._path(key).stat()
            except FileNotFoundError:
                continue  # deleted meanwhile
            out[key] = (info.st_mtime, info.st_size)
        return out

    def refresh(self, key: str, path: Path) -> None:
        try:
            os.utime(self._path(key))
        except FileNotFoundError:  # deleted meanwhile: write it again
            self.put_file(key, path)


def _s3_errors() -> tuple[type[BaseException], ...]:
    from botocore import exceptions

    return (exceptions.EndpointConnectionError, exceptions.ConnectTimeoutError,
            exceptions.ReadTimeoutError, exceptions.ConnectionClosedError,
            exceptions.ConnectionError)


class S3Backend(Backend):
    """A remote in an S3 bucket (see the module doc).  ``endpoint_url`` selects a server other
    than AWS (MinIO, Ceph, SeaweedFS...); path-style addressing is used with it."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, url: str = ""):
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise RemoteError("an s3:// remote needs boto3: pip install 'xpmstore[s3]'") from None
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = url or f"s3://{bucket}/{self.prefix}"
        region = region or os.environ.get("AWS_REGION") or os.environ.get(
            "AWS_DEFAULT_REGION") or "us-east-1"
        style = {"addressing_style": "path"} if endpoint_url else {}
        session = boto3.session.Session()

        def client(read_timeout: float) -> Any:
            config = Config(connect_timeout=METADATA_TIMEOUT, read_timeout=read_timeout,
                            retries={"total_max_attempts": 2, "mode": "standard"}, s3=style,
                            max_pool_connections=32)
            return session.client("s3", endpoint_url=endpoint_url, region_name=region,
                                  config=config)

        self._meta = client(METADATA_TIMEOUT)
        self._data = client(TRANSFER_TIMEOUT)
        self._conditional = True  # whether the server accepts If-None-Match (probed on use)
        self._unreachable = _s3_errors()

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _call(self, what: str, key: str, call: Any, *missing: str) -> Any:
        """Run ``call``; None when the error code is one of ``missing``; errors translated."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in missing or status in missing:
                return None
            raise RemoteError(f"{self.url}: {what} {key}: {code or status}"
                              f" {error.get('Message', '')}".rstrip()) from None
        except self._unreachable as exc:
            raise RemoteUnavailableError(f"{self.url}: cannot connect ({exc})") from None
        except BotoCoreError as exc:
            raise RemoteError(f"{self.url}: {what} {key}: {exc}") from None

    def exists(self, key: str) -> bool:
        return self.mtime(key) is not None

    def mtime(self, key: str) -> float | None:
        head = self._call("HEAD", key, lambda: self._meta.head_object(
            Bucket=self.bucket, Key=self._key(key)), "404", "NoSuchKey", "NotFound")
        return None if head is None else head["LastModified"].timestamp()

    def _put(self, key: str, body: Any, client: Any) -> bool:
        if self.exists(key):
            return False
        if self._conditional:
            try:
                result = self._call("PUT", key, lambda: client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=body, IfNoneMatch="*"),
                    "412", "PreconditionFailed")
                return result is not None
            except RemoteError as exc:
                if "NotImplemented" not in str(exc):
                    raise
                self._conditional = False  # logged once: writes are still correct without it
                print(f"xpmstore: note: {self.url} ignores If-None-Match; writes stay correct"
                      " (two manifests of one identifier are both valid)", file=sys.stderr)
                if hasattr(body, "seek"):
                    body.seek(0)
        self._call("PUT", key, lambda: client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=body))
        return True

    def put_file(self, key: str, path: Path) -> bool:
        with open(path, "rb") as body:
            return self._put(key, body, self._data)

    def put_bytes(self, key: str, data: bytes) -> bool:
        return self._put(key, data, self._meta)

    def get_bytes(self, key: str) -> bytes | None:
        got = self._call("GET", key, lambda: self._meta.get_object(
            Bucket=self.bucket, Key=self._key(key)), "404", "NoSuchKey", "NotFound")
        if got is None:
            return None
        return self._call("GET", key, lambda: got["Body"].read())

    def open_read(self, key: str) -> IO[bytes]:
        got = self._call("GET", key, lambda: self._data.get_object(
            Bucket=self.bucket, Key=self._key(key)), "404", "NoSuchKey", "NotFound")
        if got is None:
            raise RemoteError(f"{self.url}: {key} is missing")
        return got["Body"]

    def _pages(self, prefix: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key(prefix)}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("LIST", prefix, lambda kw=kwargs: self._meta.list_objects_v2(**kw))
            yield page
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def list(self, prefix: str) -> list[str]:
        skip = len(self.prefix)
        return sorted(item["Key"][skip:] for page in self._pages(prefix)
                      for item in page.get("Contents", ()))

    def scan(self, prefix: str) -> dict[str, tuple[float, int]]:
        skip = len(self.prefix)
        return {item["Key"][skip:]: (item["LastModified"].timestamp(), int(item["Size"]))
                for page in self._pages(prefix) for item in page.get("Contents", ())}

    def refresh(self, key: str, path: Path) -> None:
        with open(path, "rb") as body:  # same bytes (content-addressed): an overwrite is safe
            self._call("PUT", key, lambda: self._data.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=body))

    def delete(self, key: str) -> None:
        self._call("DELETE", key, lambda: self._meta.delete_object(
            Bucket=self.bucket, Key=self._key(key)), "404", "NoSuchKey")


def open_backend(url: str, endpoint_url: str | None = None, region: str | None = None) -> Backend:
    """The backend that ``url`` names: ``file:///path`` (or a plain absolute path) or
    ``s3://bucket/prefix``.  Raises RemoteError for another scheme or a missing bucket name."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path if parsed.scheme else url)
        if not os.path.isabs(path):
            raise RemoteError(f"remote {url!r}: a directory remote needs an absolute path"
                              " (file:///shared/xpmstore)")
        return DirectoryBackend(Path(path), url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise RemoteError(f"remote {url!r}: expected s3://bucket/prefix")
        return S3Backend(parsed.netloc, parsed.path, endpoint_url, region, url)
    raise RemoteError(f"remote {url!r}: unknown scheme {parsed.scheme!r} (file:// or s3://)")

