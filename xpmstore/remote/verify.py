"""What a remote object must satisfy before anything of it is published locally.  Pure.

A remote object (``objects/<ab>/<identifier>``) is one JSON document holding the done manifest
(:mod:`xpmstore.store.manifest`) as written locally, the object's kind and name and, for a task, its
params.json.  :func:`check_object` accepts it only when

* its done manifest parses (:func:`xpmstore.store.manifest.parse`): it matches its own checksum (a
  flipped byte anywhere in it is refused; a manifest pushed before manifests had a checksum is
  accepted on the other checks below, and written locally with its checksum), its fields have
  their types and every path is relative, normalised, outside ``.xpm/`` and listed once;
* it names the identifier asked for, and so does its done manifest;
* the identifier is *recomputed*: from params.json's identity section for a task
  (:func:`xpmstore.core.identifier.from_params`), from the config identifier and file name for a
  ``@cache`` entry — so a manifest of another object, or a tampered identity, is refused;
* params.json's bytes are the ones the manifest lists, and the dependencies the manifest lists
  are those params.json references (:mod:`xpmstore.store.edges`);
* every link stays inside the object (:func:`check_paths`).

The blobs themselves are checked while they are downloaded (size and blake3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from blake3 import blake3

from ..core.identifier import cache_identifier, from_params
from ..errors import (
    CorruptObjectError,
    FormatVersionError,
    MalformedFileError,
    UnsupportedValueError,
)
from ..store import manifest as manifest_module
from ..store.edges import dependencies_problem, params_dependencies
from ..store.manifest import Manifest
from ..store.workspace import KINDS
from ..system import jsonio

__all__ = ["FORMAT", "RemoteObject", "check_object", "check_paths", "encode_object",
           "sharing_problem"]

FORMAT = "xpmstore.remote-object"
VERSION = 1


@dataclass(frozen=True)
class RemoteObject:
    """A checked remote object: its manifest, the done manifest's bytes to publish locally
    (sealed by its checksum), params.json's bytes (tasks) and the identity section (tasks), and
    the dependencies params.json gives (tasks)."""

    manifest: Manifest
    done: bytes
    params: bytes | None
    identity: dict[str, Any] | None
    dependencies: list[str] | None = None


def encode_object(done: bytes, manifest: Manifest, params: bytes | None) -> bytes:
    """The document pushed to ``objects/<ab>/<identifier>``. Pure."""
    document = {
        "format": FORMAT, "version": VERSION, "identifier": manifest.identifier,
        "kind": manifest.kind, "name": manifest.name, "done": done.decode("utf-8"),
        "params": None if params is None else params.decode("utf-8"),
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _bad(identifier: str, why: str, expected: str = "", got: str = "") -> CorruptObjectError:
    return CorruptObjectError(f"remote object {identifier}: {why}", identifier, expected, got)


def sharing_problem(manifest: Manifest) -> str:
    """Why ``manifest``'s object cannot be shared ('' when it can): a path the manifest module
    refuses, a backslash in a path, or a link that leaves the object. Pure."""
    problem = manifest_module.entries_problem(manifest)
    if problem:
        return problem
    for path in [f.path for f in manifest.files] + [link.path for link in manifest.links]:
        if "\\" in path:
            return f"refused path {path!r} (a backslash)"
    leaving = manifest_module.escaping_link(manifest)
    if leaving is not None:
        return f"link {leaving.path!r} -> {leaving.target!r} leaves the object"
    return ""


def check_paths(identifier: str, manifest: Manifest) -> None:
    """Raise CorruptObjectError when a path of ``manifest`` is absolute, holds ``..``, lies in
    ``.xpm/``, is listed twice or beneath another entry, or a link leaves the object."""
    problem = sharing_problem(manifest)
    if problem:
        raise _bad(identifier, problem)


def check_object(identifier: str, data: bytes) -> RemoteObject:
    """Parse and check the remote object ``data`` fetched for ``identifier`` (see the module
    doc).  Raises CorruptObjectError naming the object, FormatVersionError for a newer format."""
    try:
        document = jsonio.loads(data, f"remote object {identifier}")
    except MalformedFileError as exc:
        raise CorruptObjectError(str(exc), identifier) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _bad(identifier, "not a remote object")
    version = document.get("version")
    if type(version) is not int or version < 1:
        raise _bad(identifier, "no valid version")
    if version > VERSION:
        raise FormatVersionError(f"remote object {identifier}: version {version} is newer;"
                                 " upgrade xpmstore")
    done_text, params_text = document.get("done"), document.get("params")
    if not isinstance(done_text, str) or not (params_text is None or isinstance(params_text, str)):
        raise _bad(identifier, "missing fields")
    done = done_text.encode("utf-8")
    manifest = manifest_module.parse(done, f"remote object {identifier}")
    if document.get("identifier") != identifier or manifest.identifier != identifier:
        raise _bad(identifier, "holds the manifest of another object", identifier,
                   str(manifest.identifier))
    if manifest.kind not in KINDS or document.get("kind") != manifest.kind \
            or document.get("name") != manifest.name:
        raise _bad(identifier, "kind or name disagree with its manifest")
    name = manifest.name
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise _bad(identifier, f"refused name {name!r}")
    check_paths(identifier, manifest)
    params = None if params_text is None else params_text.encode("utf-8")
    identity = dependencies = None
    if manifest.kind == "task":
        if params is None:
            raise _bad(identifier, "a task without params.json")
        listed = {f.path: f for f in manifest.files}.get("params.json")
        if listed is None or listed.size != len(params) \
                or listed.blake3 != blake3(params).hexdigest():
            raise _bad(identifier, "params.json differs from the one its manifest lists")
        try:
            document = jsonio.loads(params, f"remote object {identifier}: params.json")
            identity = document["identity"]
            recomputed = from_params(identity)
        except (ValueError, KeyError, TypeError, UnsupportedValueError):
            raise _bad(identifier, "params.json has no valid identity section") from None
        dependencies = params_dependencies(document)
        differs = dependencies_problem(manifest.dependencies, dependencies)
        if differs:
            raise _bad(identifier, differs)
    else:
        extra = manifest.extra
        try:
            recomputed = cache_identifier(str(extra["config"]), str(extra["file"]))
        except (KeyError, ValueError, TypeError):
            raise _bad(identifier, "a cache entry without its config and file") from None
    if recomputed != identifier:
        raise _bad(identifier, "its identity hashes to another identifier", identifier,
                   recomputed)
    sealed = done if manifest.sealed else manifest_module.build(manifest)
    return RemoteObject(manifest, sealed, params, identity, dependencies)
