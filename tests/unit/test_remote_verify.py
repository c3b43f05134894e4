"""xpmstore.remote.verify: what a pulled object must satisfy — pure, no disk, no server."""

from __future__ import annotations

import json

import pytest
from blake3 import blake3

from xpmstore.core.identifier import cache_identifier
from xpmstore.errors import CorruptObjectError
from xpmstore.remote.verify import check_object, check_paths, encode_object
from xpmstore.store.manifest import FileEntry, LinkEntry, Manifest, build

from ..helpers import refused

CONFIG = "ab" * 32
ENTRY = cache_identifier(CONFIG, "terms.txt")


def cache_object(files: list[FileEntry] | None = None, links: list[LinkEntry] | None = None,
                 identifier: str = ENTRY) -> tuple[Manifest, bytes]:
    m = Manifest(identifier, "cache", "tests.Terms", 1.0,
                 files or [FileEntry("terms.txt", 3, False, blake3(b"abc").hexdigest())],
                 links or [], {"config": CONFIG, "file": "terms.txt"})
    return m, encode_object(build(m), m, None)


def test_a_sound_cache_entry_is_accepted() -> None:
    m, data = cache_object()
    checked = check_object(ENTRY, data)
    assert checked.manifest == m and checked.params is None


@pytest.mark.parametrize("path", ["/etc/passwd", "../up", "a/../../b", ".xpm/done", "a//b", ""])
def test_paths_outside_the_object_are_refused(path: str) -> None:
    m, _ = cache_object([FileEntry(path, 1, False, "00" * 32)])
    with refused(CorruptObjectError, ValueError, ENTRY, "refused path"):
        check_paths(ENTRY, m)


@pytest.mark.parametrize(("path", "target"), [("link", "/etc"), ("link", ".."),
                                              ("link", "../x"), ("sub/link", "../../x"),
                                              ("sub/link", "a/../../../x")])
def test_links_leaving_the_object_are_refused(path: str, target: str) -> None:
    m, _ = cache_object(links=[LinkEntry(path, target)])
    with refused(CorruptObjectError, ValueError, "leaves the object"):
        check_paths(ENTRY, m)


def test_links_inside_the_object_are_fine() -> None:
    m, _ = cache_object(links=[LinkEntry("sub/link", "../terms.txt"), LinkEntry("l", "sub")])
    check_paths(ENTRY, m)


def test_a_manifest_of_another_identifier_is_refused() -> None:
    _, data = cache_object()
    other = "cd" * 32
    with refused(CorruptObjectError, ValueError, other, "another object"):
        check_object(other, data)


def test_an_identity_that_hashes_elsewhere_is_refused() -> None:
    m, _ = cache_object()
    m.extra["file"] = "other.txt"  # the manifest claims ENTRY but its identity says otherwise
    with refused(CorruptObjectError, ValueError, ENTRY, "another identifier"):
        check_object(ENTRY, encode_object(build(m), m, None))


def test_garbage_and_a_task_without_params_are_refused() -> None:
    with refused(CorruptObjectError, ValueError, ENTRY):
        check_object(ENTRY, b"\x00garbage")
    m, _ = cache_object()
    task = Manifest(ENTRY, "task", "tests.T", 1.0, m.files, [], {})
    with refused(CorruptObjectError, ValueError, "params.json"):
        check_object(ENTRY, encode_object(build(task), task, None))
    params = json.dumps({"identity": {"name": "x", "fields": {}}}).encode()
    with refused(CorruptObjectError, ValueError, "params.json"):
        check_object(ENTRY, encode_object(build(task), task, params))
