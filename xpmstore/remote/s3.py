"""A remote in an S3-compatible bucket (docs/remote.md): ``s3://bucket/prefix``.

AWS S3 or any S3-compatible server through ``endpoint_url`` (MinIO, Ceph, SeaweedFS...; path-style
addressing then); credentials from the usual AWS environment and files; boto3 is imported when a
backend is built (extra ``xpmstore[s3]``).  Metadata calls time out after 2 s with one retry;
transfers have a long read timeout.  An unreachable server, a missing bucket or refused
credentials raise RemoteUnavailableError; a write refused (403) RemoteUnwritableError — either
way the remote is judged down once, never warned about call after call.

**Writes are create-only without relying on the server**: HEAD, then PUT.  The PUT carries
``If-None-Match: *`` (a 412 answer means another writer got there first: fine) only when the
server honours it.  Whether it does is **probed** once per remote and process, on the first
write, by two conditional PUTs of ``probe/if-none-match`` (the second must be refused with 412);
the verdict is logged at INFO on the ``xpmstore.remote`` logger and kept in
:meth:`S3Backend.conditional_writes`:

* ``honoured``: the header is sent; a writer that loses a race gets 412 and writes nothing;
* ``ignored``: the server overwrites anyway; the header is not sent;
* ``refused``: the server rejects the header (501 NotImplemented, as AWS did before 2024); the
  header is not sent.

Correctness never depends on it: keys are content-addressed (``cas/``) or name an identifier
whose two manifests are both valid (``objects/``), so a lost race overwrites equal or equally
valid bytes.  A write asked to ``replace`` (a repair) is a plain PUT: S3 swaps an object's bytes
atomically.  A file's body is read through an
:class:`~xpmstore.remote.interrupt.InterruptibleReader`: an interrupted upload stops within a
chunk, and the server stores nothing of a PUT whose body never ended.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, cast

from ..errors import RemoteError, RemoteUnavailableError, RemoteUnwritableError
from .backends import Backend
from .interrupt import Interrupt, InterruptibleReader

__all__ = [
    "CONDITIONAL_VERDICTS",
    "METADATA_TIMEOUT",
    "PROBE_KEY",
    "TRANSFER_TIMEOUT",
    "S3Backend",
]

METADATA_TIMEOUT = 2.0
TRANSFER_TIMEOUT = 300.0
PROBE_KEY = "probe/if-none-match"
"""The key the If-None-Match probe writes (outside ``cas/``, ``objects/`` and ``pins/``)."""
CONDITIONAL_VERDICTS = ("honoured", "ignored", "refused")

_DENIED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                     "AllAccessDisabled"})
_WRITES = frozenset({"PUT", "DELETE", "CREATE"})
_log = logging.getLogger("xpmstore.remote")
_probe_lock = threading.Lock()
_probed: dict[tuple[str, str, str], str] = {}  # (endpoint, bucket, prefix) → verdict
_buckets_seen: set[tuple[str, str]] = set()  # (endpoint, bucket) found to exist


def _s3_errors() -> tuple[type[BaseException], ...]:
    from botocore import exceptions

    return (exceptions.EndpointConnectionError, exceptions.ConnectTimeoutError,
            exceptions.ReadTimeoutError, exceptions.ConnectionClosedError,
            exceptions.ConnectionError)


class S3Backend(Backend):
    """A remote in an S3 bucket (see the module doc).  ``endpoint_url`` selects a server other
    than AWS (MinIO, Ceph, SeaweedFS...); path-style addressing is used with it.
    ``conditional``: one of CONDITIONAL_VERDICTS to use instead of probing the server."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, url: str = "", conditional: str | None = None):
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
        if conditional is not None and conditional not in CONDITIONAL_VERDICTS:
            raise ValueError(f"conditional: one of {CONDITIONAL_VERDICTS}, got {conditional!r}")
        self._verdict = conditional
        self._where = (endpoint_url or "", bucket, self.prefix)
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
            if code == "NoSuchBucket":
                raise self._no_bucket() from None
            if code in _DENIED or status == "403":
                denied = RemoteUnwritableError if what in _WRITES else RemoteUnavailableError
                raise denied(f"{self.url}: {what} {key}: access denied ({code or status})")\
                    from None
            raise RemoteError(f"{self.url}: {what} {key}: {code or status}"
                              f" {error.get('Message', '')}".rstrip()) from None
        except self._unreachable as exc:
            raise RemoteUnavailableError(f"{self.url}: cannot connect ({exc})") from None
        except BotoCoreError as exc:
            raise RemoteError(f"{self.url}: {what} {key}: {exc}") from None

    def _no_bucket(self) -> RemoteUnavailableError:
        return RemoteUnavailableError(
            f"{self.url}: the bucket {self.bucket} does not exist; create it on purpose"
            " with `xpmstore remote init`")

    def _check_bucket(self) -> None:
        """Raise RemoteUnavailableError unless the bucket exists (called when a HEAD finds no
        key: its 404 has no body, so it cannot say whether the bucket is missing).  A missing
        bucket — a typo in the settings — must never read as an empty remote, nor be created
        by the PUT that follows (SeaweedFS creates a bucket on the first PUT into it).  Once
        found, a bucket is not asked about again by this process."""
        if (self._where[0], self.bucket) in _buckets_seen:
            return
        found = self._call("HEAD", "(the bucket)", lambda: self._meta.head_bucket(
            Bucket=self.bucket), "404", "NoSuchBucket", "NotFound")
        if found is None:
            raise self._no_bucket()
        _buckets_seen.add((self._where[0], self.bucket))

    def exists(self, key: str) -> bool:
        return self.mtime(key) is not None

    def mtime(self, key: str) -> float | None:
        head = self._call("HEAD", key, lambda: self._meta.head_object(
            Bucket=self.bucket, Key=self._key(key)), "404", "NoSuchKey", "NotFound")
        if head is None:
            self._check_bucket()
            return None
        return head["LastModified"].timestamp()

    def conditional_writes(self) -> str:
        """How the server treats ``If-None-Match: *`` on a PUT: ``honoured``, ``ignored`` or
        ``refused`` (see the module doc); probed once per remote and process, on first use.
        Raises RemoteError (RemoteUnavailableError) when the probe cannot be sent."""
        if self._verdict is None:
            with _probe_lock:
                verdict = _probed.get(self._where)
                if verdict is None:
                    verdict, detail = self._probe()
                    _probed[self._where] = verdict
                    _log.info("%s: If-None-Match: * is %s by the server%s%s", self.url,
                              verdict, detail, "" if verdict == "honoured" else
                              "; writes stay correct without it (HEAD, then PUT)")
            self._verdict = verdict
        return self._verdict

    def _probe(self) -> tuple[str, str]:
        """(verdict, detail) from conditional PUTs of PROBE_KEY: the second, at the latest,
        must be answered 412."""
        from botocore.exceptions import BotoCoreError, ClientError

        for _ in range(2):
            try:
                self._meta.put_object(Bucket=self.bucket, Key=self._key(PROBE_KEY),
                                      Body=b"xpmstore: probe of If-None-Match\n",
                                      IfNoneMatch="*")
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if status == 412 or code == "PreconditionFailed":
                    return "honoured", ""
                return "refused", f" ({code or status})"
            except self._unreachable as exc:
                raise RemoteUnavailableError(f"{self.url}: cannot connect ({exc})") from None
            except BotoCoreError as exc:
                raise RemoteError(f"{self.url}: PUT {PROBE_KEY}: {exc}") from None
        return "ignored", " (a second conditional PUT of one key succeeded)"

    def _put(self, key: str, body: Any, client: Any, replace: bool = False) -> bool:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "Body": body}
        if not replace:
            if self.exists(key):
                return False
            if self.conditional_writes() == "honoured":
                kwargs["IfNoneMatch"] = "*"
        return self._call("PUT", key, lambda: client.put_object(**kwargs), "412",
                          "PreconditionFailed") is not None

    def put_file(self, key: str, path: Path, *, replace: bool = False,
                 interrupt: Interrupt | None = None) -> bool:
        with open(path, "rb") as raw:
            body = raw if interrupt is None else InterruptibleReader(raw, interrupt)
            return self._put(key, body, self._data, replace)

    def put_bytes(self, key: str, data: bytes, *, replace: bool = False) -> bool:
        return self._put(key, data, self._meta, replace)

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
        return cast(IO[bytes], _Download(self, key, got))

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

    def count_upto(self, prefix: str, limit: int) -> int:
        page = self._call("LIST", prefix, lambda: self._meta.list_objects_v2(
            Bucket=self.bucket, Prefix=self._key(prefix), MaxKeys=limit))
        return limit if page.get("IsTruncated") else min(len(page.get("Contents", ())), limit)

    def list(self, prefix: str) -> list[str]:
        skip = len(self.prefix)
        return sorted(item["Key"][skip:] for page in self._pages(prefix)
                      for item in page.get("Contents", ()))

    def scan(self, prefix: str) -> dict[str, tuple[float, int]]:
        skip = len(self.prefix)
        return {item["Key"][skip:]: (item["LastModified"].timestamp(), int(item["Size"]))
                for page in self._pages(prefix) for item in page.get("Contents", ())}

    def refresh(self, key: str, path: Path, interrupt: Interrupt | None = None) -> None:
        self.put_file(key, path, replace=True, interrupt=interrupt)  # same bytes: a safe overwrite

    def delete(self, key: str) -> None:
        self._call("DELETE", key, lambda: self._meta.delete_object(
            Bucket=self.bucket, Key=self._key(key)), "404", "NoSuchKey")

    def init(self) -> str:
        found = self._call("HEAD", "(the bucket)", lambda: self._meta.head_bucket(
            Bucket=self.bucket), "404", "NoSuchBucket", "NotFound")
        if found is not None:
            return f"{self.url}: ready (the bucket {self.bucket} exists)"
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = self._meta.meta.region_name
        if region and region != "us-east-1":  # (AWS refuses the constraint for us-east-1)
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self._call("CREATE", f"bucket {self.bucket}",
                   lambda: self._meta.create_bucket(**kwargs), "BucketAlreadyOwnedByYou")
        return f"{self.url}: created the bucket {self.bucket}"


class _Download:
    """The body of a GET, read as a file: botocore's errors become RemoteError
    (RemoteUnavailableError for a timeout), and a body that ends before the length the server
    announced — a connection dropped in the middle — is a RemoteError too, never a short blob
    that a pull would call damaged."""

    def __init__(self, backend: S3Backend, key: str, got: dict[str, Any]):
        self._backend = backend
        self._key = key
        self._body = got["Body"]
        length = got.get("ContentLength")
        self._length = int(length) if length is not None else None
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        """At most ``size`` bytes (all that is left when negative); b"" at the end."""
        amount = None if size < 0 else size
        chunk: bytes = self._backend._call("GET", self._key, lambda: self._body.read(amount))
        self._read += len(chunk)
        if not chunk and size != 0 and self._length is not None and self._read < self._length:
            raise RemoteError(f"{self._backend.url}: GET {self._key}: the connection closed"
                              f" after {self._read} of {self._length} bytes")
        return chunk

    def close(self) -> None:
        """Release the connection."""
        self._body.close()

    def __enter__(self) -> _Download:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
