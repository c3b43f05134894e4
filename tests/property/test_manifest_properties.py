"""The done manifest read back as input (issue 16): hostile paths, flipped bytes, links that
leave the object, and the dependencies read from params.json — properties over generated
manifests, with hypothesis.

* a manifest that lists a path outside its object is refused, sealed or not;
* one flipped byte anywhere in a sealed manifest is refused, or reads back the very same
  manifest (the byte was the checksum's own key: the manifest merely reads as unsealed);
* :func:`xpmstore.store.manifest.escaping_link` agrees with the kernel: links made on disk by the
  manifest resolve inside the object exactly when it says none leaves;
* the dependencies read back from params.json are those the live config has.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpmstore import Meta, Param, Task
from xpmstore.core.config import dependencies
from xpmstore.core.params import params_of
from xpmstore.errors import CorruptObjectError, FormatVersionError
from xpmstore.store.edges import params_dependencies
from xpmstore.store.manifest import FileEntry, LinkEntry, Manifest, build, escaping_link, parse

from .strategies import values

HEX = "0123456789abcdef"
names = st.text("abcxyz.-_", min_size=1, max_size=6).filter(lambda n: n not in (".", ".."))
relative_paths = st.lists(names, min_size=1, max_size=3).map("/".join).filter(
    lambda p: not p.startswith(".xpm"))
digests = st.text(HEX, min_size=64, max_size=64)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    """A manifest whose entries are all fine: distinct, none beneath another."""
    paths = draw(st.lists(relative_paths, max_size=6, unique=True))
    chosen: list[str] = []
    for path in paths:
        if not any(path.startswith(p + "/") or p.startswith(path + "/") for p in chosen):
            chosen.append(path)
    split = draw(st.integers(0, len(chosen)))
    files = [FileEntry(p, draw(st.integers(0, 2**40)), draw(st.booleans()), draw(digests))
             for p in chosen[:split]]
    links = [LinkEntry(p, draw(relative_paths)) for p in chosen[split:]]
    extra: dict[str, Any] = draw(st.sampled_from([{}, {"tags": {"lr": 0.1, "name": "é"}}]))
    extra = {**extra, "dependencies": draw(st.lists(digests, max_size=3))}
    return Manifest(draw(digests), draw(st.sampled_from(["task", "cache"])), "pkg.Task",
                    draw(st.floats(0, 2e9)), files, links, extra)


hostile_paths = st.one_of(
    st.sampled_from(["..", "../x", "../../outside/secret.txt", "/etc/passwd", "", ".", "./a",
                     "a//b", "a/", ".xpm/done", ".xpm", "a\0b"]),
    st.builds(lambda a, b: f"{a}/../../{b}", names, names),
    st.builds(lambda a: f"/{a}", relative_paths),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(manifests())
def test_a_manifest_reads_back_as_written(manifest: Manifest) -> None:
    again = parse(build(manifest))
    assert again == manifest and again.sealed


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(manifests(), hostile_paths, st.booleans())
def test_a_path_outside_the_object_is_refused(manifest: Manifest, path: str,
                                              as_link: bool) -> None:
    if as_link:
        manifest.links.append(LinkEntry(path, "a"))
    else:
        manifest.files.append(FileEntry(path, 1, False, "00" * 32))
    data = build(manifest)  # sealed: the path itself must be refused, not the checksum
    try:
        parse(data)
    except CorruptObjectError as exc:
        assert "refused path" in str(exc) and "\n" not in str(exc)
    else:
        raise AssertionError(f"{path!r} accepted")


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(manifests(), st.data())
def test_a_flipped_byte_is_refused_or_changes_nothing(manifest: Manifest,
                                                      data: st.DataObject) -> None:
    original = build(manifest)
    where = data.draw(st.integers(0, len(original) - 1))
    mask = data.draw(st.integers(1, 255))
    flipped = original[:where] + bytes([original[where] ^ mask]) + original[where + 1:]
    try:
        found = parse(flipped)
    except (CorruptObjectError, FormatVersionError):
        return
    assert found == manifest and not found.sealed, f"byte {where} ^ {mask:#x} was accepted"


targets = st.lists(st.sampled_from([".", "..", "a", "b", "d", "x", "y"]), min_size=1,
                   max_size=4).map("/".join)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(["a", "b", "d/x", "d/y"]), targets, min_size=1))
def test_escaping_link_agrees_with_the_kernel(links: dict[str, str]) -> None:
    """Every link the kernel resolves outside the object is found; a link said to leave is one
    the kernel resolves outside, or cannot resolve (it climbs through a missing folder, or
    loops past the kernel's count)."""
    manifest = Manifest("ab" * 32, "cache", "pkg.T", 1.0, [],
                        [LinkEntry(path, target) for path, target in sorted(links.items())])
    outside, unresolved, looping = [], [], []
    with tempfile.TemporaryDirectory() as top:
        root = Path(top) / "obj"
        (root / "d").mkdir(parents=True)
        for path, target in links.items():
            os.symlink(target, root / path)
        real_root = os.path.realpath(root)
        for path in links:
            try:
                os.stat(root / path)
            except FileNotFoundError:
                unresolved.append(path)  # dangling: may still point outside, checked below
            except OSError as exc:
                assert exc.errno == errno.ELOOP
                looping.append(path)  # a loop reaches nothing
                continue
            resolved = os.path.realpath(root / path)
            if resolved != real_root and not resolved.startswith(real_root + "/"):
                outside.append(path)
    found = escaping_link(manifest)
    if outside:
        assert found is not None, f"{outside} leave the object, unseen"
    if found is not None:
        assert found.path in outside + unresolved + looping, \
            f"{found} said to leave, but the kernel keeps it inside"


class Holder(Task):
    """A task holding any value in a Param and in a Meta field (both make dependencies)."""

    __xpmid__ = "prop.Holder"
    value: Param[Any] = None
    side: Meta[Any] = None


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(values, values)
def test_params_json_gives_the_dependencies_of_the_task(value: Any, side: Any) -> None:
    task = Holder(value=value, side=side)
    expected = sorted({d.__identifier__ for d in dependencies(task)})
    assert params_dependencies(params_of(task)) == expected
