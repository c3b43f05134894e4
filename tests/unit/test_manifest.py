"""The done manifest (xpmstore.store.manifest): build and parse, scan a directory, verify it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from blake3 import blake3

from xpmstore.errors import CorruptObjectError, FormatVersionError
from xpmstore.store import manifest
from xpmstore.store.manifest import FileEntry, LinkEntry, Manifest, build, parse, scan, verify
from xpmstore.system.atomic import TEMP_MARK

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
    for damaged in ("1", None, 0):  # damage, not a newer version: no "upgrade" advice
        document["version"] = damaged
        with pytest.raises(CorruptObjectError, match="version"):
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


# --- a manifest read back is input (issue 16: items 6, 7, 9b) --------------------------------


def sealed(document: dict[str, object]) -> bytes:
    """``document`` with a checksum that matches it (an edit made on purpose, not corruption)."""
    document = {k: v for k, v in document.items() if k != "checksum"}
    return json.dumps({**document, "checksum": manifest.checksum(document)}).encode()


def test_build_seals_the_manifest_with_its_own_blake3() -> None:
    data = build(sample())
    document = json.loads(data)
    body = {k: v for k, v in document.items() if k != "checksum"}
    assert document["checksum"] == blake3(json.dumps(
        body, separators=(",", ":"), sort_keys=True).encode()).hexdigest()
    assert parse(data).sealed


def test_a_renamed_file_breaks_the_checksum() -> None:
    data = build(sample())
    flipped = data.replace(b'"a.txt"', b'"n.txt"')
    with pytest.raises(CorruptObjectError, match="checksum"):
        parse(flipped, where="X/.xpm/done")


def test_a_manifest_written_before_checksums_is_read_as_before() -> None:
    document = json.loads(build(sample()))
    del document["checksum"]
    legacy = parse(json.dumps(document).encode())
    assert legacy == sample() and not legacy.sealed
    assert parse(build(legacy)).sealed  # what fsck --repair and a pull write


HOSTILE_PATHS = ["../../outside/secret.txt", "/etc/passwd", "a/../../x", "./a", "a//b", "a/.",
                 "", ".xpm/done", "a\0b"]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_parse_refuses_a_path_outside_the_object_even_sealed(path: str) -> None:
    document = json.loads(build(sample()))
    document["files"].append([path, 3, False, "00" * 32])
    with pytest.raises(CorruptObjectError, match="refused path") as info:
        parse(sealed(document), where="X/.xpm/done")
    assert "X/.xpm/done" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("files", "links"), [
    ([["a.txt", 1, False, "00" * 32]], [["a.txt", "b"]]),      # listed twice
    ([["latest/x", 1, False, "00" * 32]], []),                 # beneath a listed link
    ([["a.txt/x", 1, False, "00" * 32]], []),                  # beneath a listed file
])
def test_parse_refuses_entries_that_overlap(files: list[object], links: list[object]) -> None:
    document = json.loads(build(sample()))
    document["files"] += files
    document["links"] += links
    with pytest.raises(CorruptObjectError, match="refused path"):
        parse(sealed(document))


@pytest.mark.parametrize(("field", "value"), [
    ("identifier", "AB" * 32), ("identifier", "ab"), ("kind", "other"), ("name", "../x"),
    ("created", "yesterday"), ("created", True),
    ("files", [["a.txt", -1, False, "00" * 32]]), ("files", [["a.txt", True, False, "00" * 32]]),
    ("files", [["a.txt", 3, False, "zz" * 32]]), ("files", [["a.txt", 3, "no", "00" * 32]]),
    ("links", [["l", 3]]), ("extra", []), ("extra", {"dependencies": ["not hex"]}),
    ("extra", {"dependencies": ["zz" * 32]}), ("extra", {"dependencies": "ab" * 32}),
    ("extra", {"tags": []}),
])
def test_parse_refuses_fields_of_the_wrong_kind(field: str, value: object) -> None:
    document = json.loads(build(sample()))
    document[field] = value
    with pytest.raises(CorruptObjectError, match="malformed") as info:
        parse(sealed(document), where="X/.xpm/done")
    assert "X/.xpm/done" in str(info.value)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_parse_refuses_hostile_nesting_in_one_line(text: str) -> None:
    with pytest.raises(CorruptObjectError, match="nested") as info:
        parse(text.encode(), where="X/.xpm/done")
    assert "X/.xpm/done" in str(info.value)


@pytest.mark.parametrize(("links", "leaving"), [
    ([LinkEntry("l", "/etc")], "l"),
    ([LinkEntry("s", "."), LinkEntry("l", "s/..")], "l"),            # through a link to "."
    ([LinkEntry("d/s", ".."), LinkEntry("d/l", "s/../..")], "d/l"),
    ([LinkEntry("d/up", "../.."), LinkEntry("ok", "d")], "d/up"),
    ([LinkEntry("l", "missing/../../x")], "l"),  # through a missing folder: refused anyway
])
def test_escaping_link_follows_the_objects_own_links(links: list[LinkEntry],
                                                     leaving: str) -> None:
    found = manifest.escaping_link(Manifest(ID, "cache", "pkg.T", 1.0, [], links))
    assert found is not None and found.path == leaving


def test_links_that_stay_inside_are_fine() -> None:
    links = [LinkEntry("s", "."), LinkEntry("l", "s/a.txt"), LinkEntry("d/up", "../a.txt"),
             LinkEntry("d/here", "./x/../y"), LinkEntry("dangling", "missing/file"),
             LinkEntry("a", "b"), LinkEntry("b", "a")]  # a loop reaches nothing
    assert manifest.escaping_link(Manifest(ID, "cache", "pkg.T", 1.0, [], links)) is None


def test_verify_never_follows_a_link_to_a_listed_file(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = make_object(tmp_path / "obj")
    made = manifest.make(root, ID, "task", "pkg.Learn")
    (root / "via").symlink_to(outside)  # a folder link on disk...
    made.files.append(FileEntry("via/secret.txt", 6, False, blake3(b"secret").hexdigest()))
    assert verify(root, made) == [  # ...and a file listed through it: never read
        "via/secret.txt: beneath a link or a file, not a folder (not followed)"]
