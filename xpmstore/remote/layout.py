"""The remote's layout and settings, and opening a remote from them (docs/remote.md).

```
cas/<ab>/<blake3>           a file's bytes, shared by every object that holds them
objects/<ab>/<identifier>   a remote object: done manifest, kind, name, params.json
```

Blobs are written before the manifest that lists them, so a reader that finds a manifest finds
its blobs (an interrupted push leaves at most blobs nobody lists).  Settings, from the
workspace's ``xpmstore.toml`` (first) or the user settings file::

    [remote]
    url = "s3://bucket/prefix"      # or "file:///shared/xpmstore"; $XPMSTORE_REMOTE overrides
    endpoint_url = "http://127.0.0.1:8333"
    push = "auto"                   # or "manual" (the default)
    pull = "auto"                   # or "manual"
    pull_cache = true               # pull @cache entries (pickles execute code when loaded)

``remote = "URL"`` alone is accepted too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from ..core.identifier import check_identifier, unique_match
from ..errors import InvalidIdentifierError, RemoteError
from ..store.workspace import Workspace, user_settings
from .backends import Backend, DirectoryBackend
from .interrupt import Interrupt
from .presence import SAMPLE_LIMIT, PresenceMemo, prefix_of

__all__ = ["Remote", "RemoteSettings", "open_backend", "open_remote", "remote_settings"]

_THREADS = 16
_PRESENCE_THREADS = 32
"""Threads of a presence question (HEADs wait on the network; the S3 client pools 32
connections)."""


@dataclass(frozen=True)
class RemoteSettings:
    """The ``[remote]`` settings (see the module doc)."""

    url: str
    endpoint_url: str | None = None
    region: str | None = None
    push: str = "manual"
    pull: str = "auto"
    pull_cache: bool = True


def _section(settings: dict[str, Any]) -> dict[str, Any]:
    value = settings.get("remote")
    if isinstance(value, str):
        return {"url": value}
    return dict(value) if isinstance(value, dict) else {}


def remote_settings(workspace: Workspace) -> RemoteSettings | None:
    """The remote configured for ``workspace`` (its xpmstore.toml, else the user settings;
    ``$XPMSTORE_REMOTE`` overrides the URL), or None.  Raises RemoteError for a bad value."""
    section = _section(workspace.settings) or _section(user_settings())
    url = os.environ.get("XPMSTORE_REMOTE") or section.get("url")
    if not url:
        return None
    push, pull = str(section.get("push", "manual")), str(section.get("pull", "auto"))
    if push not in ("auto", "manual") or pull not in ("auto", "manual"):
        raise RemoteError(f"remote settings: push and pull are 'auto' or 'manual', got"
                          f" push={push!r} pull={pull!r}")
    endpoint = section.get("endpoint_url") or os.environ.get("XPMSTORE_REMOTE_ENDPOINT_URL")
    return RemoteSettings(str(url), str(endpoint) if endpoint else None,
                          section.get("region"), push, pull,
                          bool(section.get("pull_cache", True)))


class Remote:
    """A remote store over a :class:`~xpmstore.remote.backends.Backend` (see the module doc).

    Every method may raise RemoteError, RemoteUnavailableError when unreachable.  Safe across
    threads and processes.
    """

    def __init__(self, backend: Backend, settings: RemoteSettings | None = None):
        self.backend = backend
        self.settings = settings or RemoteSettings(backend.url)
        self.url = backend.url

    @staticmethod
    def blob_key(digest: str) -> str:
        """The key of the blob with blake3 ``digest``."""
        return f"cas/{prefix_of(digest)}/{digest}"

    @staticmethod
    def object_key(identifier: str) -> str:
        """The key of the remote object ``identifier``."""
        return f"objects/{prefix_of(identifier)}/{identifier}"

    def has_blob(self, digest: str) -> bool:
        """Whether the blob ``digest`` is in the remote."""
        return self.backend.exists(self.blob_key(digest))

    def put_blob(self, digest: str, path: Any, *, replace: bool = False,
                 interrupt: Interrupt | None = None) -> bool:
        """Upload the file ``path`` as blob ``digest`` unless present (``replace``: over a
        damaged one, atomically); True when written.  Raises TransferInterrupted (nothing
        published) once ``interrupt`` is set."""
        return self.backend.put_file(self.blob_key(digest), path, replace=replace,
                                     interrupt=interrupt)

    def open_blob(self, digest: str) -> IO[bytes]:
        """A stream of the blob ``digest``; raises RemoteError when missing."""
        return self.backend.open_read(self.blob_key(digest))

    def put_object(self, identifier: str, data: bytes, *, replace: bool = False) -> bool:
        """Publish a remote object document (after its blobs) unless present (``replace``: over
        a damaged one, atomically); True when written."""
        return self.backend.put_bytes(self.object_key(identifier), data, replace=replace)

    def get_object(self, identifier: str) -> bytes | None:
        """The remote object document of ``identifier``, or None when absent (unchecked: see
        :func:`xpmstore.remote.verify.check_object`)."""
        return self.backend.get_bytes(self.object_key(identifier))

    def delete_object(self, identifier: str) -> None:
        """Remove the remote object ``identifier`` (its blobs stay)."""
        self.backend.delete(self.object_key(identifier))

    def identifiers(self, prefixes: Iterable[str] | None = None) -> set[str]:
        """Identifiers of every remote object (or of those under the given 2-hex prefixes)."""
        if prefixes is None:
            return {key.rsplit("/", 1)[1] for key in self.backend.list("objects/")}
        chosen = sorted(set(prefixes))
        with ThreadPoolExecutor(min(_THREADS, max(1, len(chosen)))) as pool:
            listed = pool.map(lambda p: self.backend.list(f"objects/{p}/"), chosen)
            return {key.rsplit("/", 1)[1] for keys in listed for key in keys}

    def resolve(self, text: str) -> str:
        """The identifier of the remote object that ``text`` (an identifier or a unique prefix
        of at least 2 characters) names.  Raises NotFound, AmbiguousPrefixError,
        InvalidIdentifierError."""
        check_identifier(text)
        where = f" in the remote {self.url}"
        if len(text) == 64:
            return unique_match(text, [text] if self.backend.exists(self.object_key(text))
                                else [], where=where)
        if len(text) < 2:
            raise InvalidIdentifierError(f"{text!r}: give at least 2 characters to look a"
                                         " prefix up in the remote")
        return unique_match(text, (i for i in self.identifiers([text[:2]])
                                   if i.startswith(text)), where=where)

    def present(self, identifiers: Iterable[str], memo: PresenceMemo | None = None) -> set[str]:
        """Which of ``identifiers`` the remote holds, never by N sequential requests: for each
        2-hex prefix, a listing of the prefix or a HEAD for each identifier on 32 threads,
        whichever is cheaper against the remote's size (one page of one prefix estimates it;
        :mod:`.presence` has the rule).  With ``memo`` (an experiment's, kept for its run),
        only what it has not learned yet is asked, and the answers are kept in it."""
        memo = memo if memo is not None else PresenceMemo()
        found, unknown = memo.recall(identifiers)
        if not unknown:
            return found
        sample = memo.needs_estimate(unknown)
        if sample is not None:
            memo.per_prefix = self.backend.count_upto(f"objects/{sample}/", SAMPLE_LIMIT)
        listings, heads = memo.choose(unknown)
        listed, headed = self._ask(listings, heads)
        memo.learn(listed, headed)
        return found | {i for i in unknown
                        if headed.get(i, False) or i in listed.get(prefix_of(i), ())}

    def _ask(self, prefixes: list[str], identifiers: list[str]
             ) -> tuple[dict[str, set[str]], dict[str, bool]]:
        """(each prefix → the identifiers listed under it, each identifier → its HEAD's
        answer), the requests sent on one thread pool."""
        def list_one(prefix: str) -> set[str]:
            names = (key.rsplit("/", 1)[1] for key in self.backend.list(f"objects/{prefix}/"))
            return {name for name in names if prefix_of(name) == prefix}

        def head_one(identifier: str) -> bool:
            return self.backend.exists(self.object_key(identifier))

        count = len(prefixes) + len(identifiers)
        if count == 0:
            return {}, {}
        with ThreadPoolExecutor(min(_PRESENCE_THREADS, count)) as pool:
            listings = pool.map(list_one, prefixes)
            heads = pool.map(head_one, identifiers)
            return (dict(zip(prefixes, listings, strict=True)),
                    dict(zip(identifiers, heads, strict=True)))


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
        from .s3 import S3Backend

        return S3Backend(parsed.netloc, parsed.path, endpoint_url, region, url)
    raise RemoteError(f"remote {url!r}: unknown scheme {parsed.scheme!r} (file:// or s3://)")


def open_remote(workspace: Workspace, url: str | None = None) -> Remote | None:
    """The remote configured for ``workspace`` (or at ``url``), or None when none is.

    Raises RemoteError for a malformed URL, or an s3:// URL without boto3 installed.
    """
    settings = remote_settings(workspace)
    if url is not None:
        base = settings or RemoteSettings(url)
        settings = RemoteSettings(url, base.endpoint_url, base.region, base.push, base.pull,
                                  base.pull_cache)
    if settings is None:
        return None
    return Remote(open_backend(settings.url, settings.endpoint_url, settings.region), settings)
