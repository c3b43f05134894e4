"""The done manifest (xpmstore.manifest): build and parse, scan a directory, verify it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from blake3 import blake3

from xpmstore import manifest
from xpmstore.atomic import TEMP_MARK
from xpmstore.errors import CorruptObjectError, FormatVersionError
from xpmstore.manifest import FileEntry, LinkEntry, Manifest, build, parse, scan, verify

ID = "ab" * 32


def sample() -> Manifest:
    return Manifest(
        identifier=ID, kind="task", name="pkg.Learn", created=1700000000.25,
        files=[FileEntry("a.txt", 3, False, "00" * 32), FileEntry("bin/run", 10, True, "11" * 32)],
        links=[LinkEntry("latest", "a.txt")],
        extra={"tags": {"lr": 0.1}, "dependencies": ["cd" * 32]},
    )


def test_build_parse_round_trip() -> None:
    original = sample()
    data = build(original)
    again = parse(data)
    assert again == original
    assert again.size == 13
    assert build(again) == data  # stable bytes
    document = json.loads(data)
    assert document["format"] == "xpmstore.done" and document["version"] == manifest.VERSION
    assert document["size"] == 13


def test_build_without_extra_has_no_extra_key() -> None:
    bare = Manifest(ID, "cache", "pkg.T", 1.0)
    assert "extra" not in json.loads(build(bare))
    assert parse(build(bare)) == bare


@pytest.mark.parametrize("data", [b"", b"not json", b"\xff\xfe", b"[]", b"{}",
                                  b'{"format": "other", "version": 1}'])
def test_parse_refuses_what_is_not_a_manifest(data: bytes) -> None:
    with pytest.raises(CorruptObjectError) as info:
        parse(data, where="X/.xpm/done")
    assert "X/.xpm/done" in str(info.value)


def test_parse_refuses_missing_or_malformed_fields() -> None:
    document = json.loads(build(sample()))
    for key in ("identifier", "files", "links", "created"):
        broken = dict(document)
        del broken[key]
        with pytest.raises(CorruptObjectError):
            parse(json.dumps(broken).encode())
    broken = dict(document, files=[["a.txt", 3]])
    with pytest.raises(CorruptObjectError):
        parse(json.dumps(broken).encode())


def test_parse_refuses_a_newer_version_clearly() -> None:
    document = json.loads(build(sample()))
    document["version"] = manifest.VERSION + 1
    with pytest.raises(FormatVersionError) as info:
        parse(json.dumps(document).encode(), where="the/done")
    assert "upgrade" in str(info.value) and "the/done" in str(info.value)
    document["version"] = "1"
    with pytest.raises(FormatVersionError):
        parse(json.dumps(document).encode())


def make_object(root: Path) -> Path:
    root.mkdir()
    (root / "a.txt").write_text("abc")
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "sub" / "deep" / "data.bin").write_bytes(b"\x00" * 1000)
    run = root / "run.sh"
    run.write_text("#!/bin/sh\n")
    run.chmod(0o755)
    (root / "latest").symlink_to("a.txt")
    (root / "dirlink").symlink_to("sub")
    (root / "dangling").symlink_to("/nonexistent/target")
    (root / ".xpm").mkdir()
    (root / ".xpm" / "state.json").write_text("{}")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "step1.pt").write_bytes(b"big")
    return root


def test_scan_lists_files_and_links_but_not_xpm(tmp_path: Path) -> None:
    root = make_object(tmp_path / "obj")
    files, links = scan(root)
    assert [f.path for f in files] == ["a.txt", "checkpoints/step1.pt", "run.sh",
                                       "sub/deep/data.bin"]
    by_path = {f.path: f for f in files}
    assert by_path["a.txt"] == FileEntry("a.txt", 3, False, blake3(b"abc").hexdigest())
    assert by_path["run.sh"].executable is True
    assert by_path["sub/deep/data.bin"].size == 1000
    assert links == [LinkEntry("dangling", "/nonexistent/target"), LinkEntry("dirlink", "sub"),
                     LinkEntry("latest", "a.txt")]


def test_scan_excludes_globs(tmp_path: Path) -> None:
    root = make_object(tmp_path / "obj")
    files, links = scan(root, exclude=["checkpoints/*", "*.sh", "latest", "dirlink"])
    assert [f.path for f in files] == ["a.txt", "sub/deep/data.bin"]
    assert [link.path for link in links] == ["dangling"]


def test_scan_skips_temporary_files_of_atomic_writes(tmp_path: Path) -> None:
    root = make_object(tmp_path / "obj")
    (root / f".a.txt{TEMP_MARK}123-0a1b2c3d").write_text("half written")
    (root / "sub" / f".x{TEMP_MARK}9-deadbeef").write_text("half written")
    files, _ = scan(root)
    assert all(TEMP_MARK not in f.path for f in files)
    assert len(files) == 4


def test_scan_refuses_special_files(tmp_path: Path) -> None:
    root = make_object(tmp_path / "obj")
    os.mkfifo(root / "pipe")
    with pytest.raises(CorruptObjectError) as info:
        scan(root)
    assert "pipe" in str(info.value)


def test_make_and_verify_intact(tmp_path: Path) -> None:
    root = make_object(tmp_path / "obj")
    made = manifest.make(root, ID, "task", "pkg.Learn", extra={"tags": {}})
    assert made.identifier == ID and made.kind == "task"
    assert made.size == 3 + 1000 + len("#!/bin/sh\n") + 3
    assert verify(root, made) == []
    assert verify(root, parse(build(made))) == []


def test_verify_reports_every_difference(tmp_path: Path) -> None:
    root = make_object(tmp_path / "obj")
    made = manifest.make(root, ID, "task", "pkg.Learn")
    (root / "a.txt").write_text("xyz")  # same size, other content
    (root / "sub" / "deep" / "data.bin").write_bytes(b"\x00" * 999)
    os.unlink(root / "run.sh")
    (root / "checkpoints" / "step1.pt").unlink()
    (root / "checkpoints" / "step1.pt").mkdir()
    os.unlink(root / "latest")
    os.unlink(root / "dirlink")
    (root / "dirlink").symlink_to("elsewhere")
    os.unlink(root / "dangling")
    problems = verify(root, made)
    assert problems == [
        "a.txt: content differs from the manifest",
        "checkpoints/step1.pt: not a regular file",
        "run.sh: missing",
        "sub/deep/data.bin: size 999, expected 1000",
        "dangling: link missing",
        "dirlink: link target changed",
        "latest: link missing",
    ]


def test_verify_a_file_replaced_by_a_link(tmp_path: Path) -> None:
    root = make_object(tmp_path / "obj")
    made = manifest.make(root, ID, "task", "pkg.Learn")
    os.unlink(root / "a.txt")
    (root / "a.txt").symlink_to("run.sh")
    assert verify(root, made) == ["a.txt: not a regular file"]
