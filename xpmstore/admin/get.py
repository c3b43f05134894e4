"""Copying an object out of the store: ``xpmstore get ID --to DIR`` (docs/cli.md).

The copy holds the object's files and links, without its ``.xpm/`` bookkeeping, and is checked
against the done manifest (sizes and blake3) once written, so what lands in ``DIR`` is exactly
what the object holds.  Like ``cp -r``: when ``DIR`` exists (a directory), the copy goes to
``DIR/<identifier>``; otherwise ``DIR`` itself becomes the copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import CorruptObjectError, NotFound
from ..store.manifest import verify
from ..store.taskdirs import read_manifest
from ..store.workspace import XPM

__all__ = ["copy_out"]


def copy_out(directory: Path, to: Path) -> Path:
    """Copy the done object at ``directory`` to ``to`` (see the module doc); returns the copy.

    Raises NotFound (not done), FileExistsError (the destination exists), CorruptObjectError
    (the copy does not match the manifest: it is removed).
    """
    manifest = read_manifest(directory)
    if manifest is None:
        raise NotFound(f"{directory} is not done")
    destination = to / directory.name if to.is_dir() else to
    if destination.exists() or destination.is_symlink():
        raise FileExistsError(f"{destination} exists already")

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [XPM] if Path(folder) == directory else []

    shutil.copytree(directory, destination, symlinks=True, ignore=ignore)
    problems = verify(destination, manifest)
    if problems:
        shutil.rmtree(destination, ignore_errors=True)
        raise CorruptObjectError(f"{directory}: {problems[0]} (run xpmstore fsck)",
                                 identifier=directory.name)
    return destination
