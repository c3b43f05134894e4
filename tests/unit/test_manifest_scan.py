"""The manifest's scan (xpmstore.store.manifest.scan) lists exactly what a plain ``os.walk`` of the
object lists, with the same hashes: empty files (never read), small files (one read), files
that mapped and hashed on all cores, links to files and to folders, excluded globs and the
temporary files of atomic writes."""

from __future__ import annotations

import fnmatch
import os
import random
import stat
from pathlib import Path

import pytest
from blake3 import blake3

from xpmstore.store.manifest import FileEntry, LinkEntry, scan
from xpmstore.system.atomic import TEMP_MARK


def walk_reference(root: Path, exclude: tuple[str, ...]) -> tuple[list[FileEntry],
                                                                  list[LinkEntry]]:
    """What the manifest lists, by the obvious means (os.walk, whole reads)."""
    files, links = [], []
    for current, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(current, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d != ".xpm"]
            rel_dir = ""
        for name in dirnames:
            rel = os.path.join(rel_dir, name)
            full = os.path.join(current, name)
            if os.path.islink(full) and not any(fnmatch.fnmatchcase(rel, p) for p in exclude):
                links.append(LinkEntry(rel, os.readlink(full)))
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(current, d))]
        for name in filenames:
            rel = os.path.join(rel_dir, name)
            if any(fnmatch.fnmatchcase(rel, p) for p in exclude) or TEMP_MARK in name:
                continue
            full = os.path.join(current, name)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                links.append(LinkEntry(rel, os.readlink(full)))
            else:
                data = Path(full).read_bytes()
                files.append(FileEntry(rel, len(data), bool(st.st_mode & 0o111),
                                       blake3(data).hexdigest()))
    return sorted(files, key=lambda f: f.path), sorted(links, key=lambda link: link.path)


@pytest.mark.parametrize("seed", range(5))
def test_scan_lists_what_a_walk_lists(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "obj"
    folders = [root]
    root.mkdir()
    (root / ".xpm").mkdir()
    (root / ".xpm" / "done").write_text("never listed")
    for index in range(40):
        parent = rng.choice(folders)
        kind = rng.choice(["empty", "small", "small", "folder", "link", "dirlink", "temp"])
        path = parent / f"{kind}{index}"
        if kind == "empty":
            path.write_bytes(b"")
        elif kind == "small":
            path.write_bytes(rng.randbytes(rng.randrange(1, 5000)))
            if rng.random() < 0.3:
                path.chmod(0o755)
        elif kind == "folder":
            path.mkdir()
            folders.append(path)
        elif kind == "link":
            path.symlink_to(rng.choice(["small1", "/nonexistent", "../x"]))
        elif kind == "dirlink":
            path.symlink_to(os.path.relpath(rng.choice(folders), parent))
        else:
            (parent / f".out{index}{TEMP_MARK}12-abcd1234").write_text("half written")
    (root / "big.bin").write_bytes(rng.randbytes((1 << 20) + 17))  # hashed by hash_file
    exclude = ("folder*/small*", "*.tmp") if seed % 2 else ()
    assert scan(root, exclude) == walk_reference(root, exclude)
    files, _ = scan(root, exclude)
    assert all(f.blake3 == blake3(b"").hexdigest() for f in files if f.size == 0)
