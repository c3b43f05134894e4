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

__all__ = ["BULK_THRESHOLD", "LIST_KEYS_PER_ID", "SAMPLE_LIMIT", "Remote", "RemoteSettings",
           "listing_pays", "open_backend", "open_remote", "remote_settings"]

BULK_THRESHOLD = 64
"""Below this many identifiers, presence is always a HEAD each (on a thread pool)."""
SAMPLE_LIMIT = 1000
"""Keys counted in one prefix to estimate how full the prefixes are (one S3 listing page)."""
LIST_KEYS_PER_ID = 20
"""Listing wins while it reads at most this many keys per identifier asked about (a listing page
is parsed under the GIL, HEADs run on a thread pool: docs/scale.md has the arithmetic)."""
"""From this many identifiers on, presence is decided by listing 2-hex prefixes."""
_THREADS = 16


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


def _two(identifier: str) -> str:
    return identifier[:2]


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
        return f"cas/{_two(digest)}/{digest}"

    @staticmethod
    def object_key(identifier: str) -> str:
        """The key of the remote object ``identifier``."""
        return f"objects/{_two(identifier)}/{identifier}"

    def has_blob(self, digest: str) -> bool:
        """Whether the blob ``digest`` is in the remote."""
        return self.backend.exists(self.blob_key(digest))

    def put_blob(self, digest: str, path: Any) -> bool:
        """Upload the file ``path`` as blob ``digest`` unless present; True when written."""
        return self.backend.put_file(self.blob_key(digest), path)

    def open_blob(self, digest: str) -> IO[bytes]:
        """A stream of the blob ``digest``; raises RemoteError when missing."""
        return self.backend.open_read(self.blob_key(digest))

    def put_object(self, identifier: str, data: bytes) -> bool:
        """Publish a remote object document (after its blobs); True when written."""
        return self.backend.put_bytes(self.object_key(identifier), data)

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

    def present(self, identifiers: Iterable[str]) -> set[str]:
        """Which of ``identifiers`` the remote holds, never by N sequential requests: a listing
        of the 2-hex prefixes that hold them when they are many *against the remote's size*
        (see :func:`listing_pays`: one page of one prefix tells how full the prefixes are),
        else a HEAD each on a thread pool."""
        wanted = set(identifiers)
        if not wanted:
            return set()
        if len(wanted) >= BULK_THRESHOLD:
            prefixes = {_two(i) for i in wanted}
            fullest = max(prefixes, key=lambda p: sum(1 for i in wanted if i.startswith(p)))
            per_prefix = self.backend.count_upto(f"objects/{fullest}/", SAMPLE_LIMIT)
            if listing_pays(per_prefix, len(prefixes), len(wanted)):
                return wanted & self.identifiers(prefixes)
        ordered = sorted(wanted)
        with ThreadPoolExecutor(min(_THREADS, len(ordered))) as pool:
            found = pool.map(lambda i: self.backend.exists(self.object_key(i)), ordered)
            return {i for i, here in zip(ordered, found, strict=True) if here}


def listing_pays(per_prefix: int, prefixes: int, wanted: int) -> bool:
    """Whether listing ``prefixes`` 2-hex prefixes of about ``per_prefix`` objects each is
    cheaper than a HEAD for each of ``wanted`` identifiers: it is while the listing reads at
    most LIST_KEYS_PER_ID keys per identifier, and never once a prefix fills a page
    (``per_prefix`` = SAMPLE_LIMIT: more than 256,000 objects, say 10 million, where a HEAD
    each is far cheaper than reading every key).  Pure."""
    if per_prefix >= SAMPLE_LIMIT:
        return False
    return per_prefix * prefixes <= LIST_KEYS_PER_ID * wanted


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
