"""The object directories of a workspace: every one, or those an identifier or a prefix names.

An object directory is ``jobs/<name>/<id>`` or ``cache/<name>/<id>``: a class folder that is a
directory (not a link) whose name does not start with a dot, holding a directory (not a link)
named by a full identifier.  This module is the one place that walks them, so that listings, gc,
lookups and the index's heal see the same objects.  Reads only; safe across processes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ..core.identifier import is_full_identifier
from .workspace import DONE, KINDS, Workspace

__all__ = ["ObjectDir", "find_object_dirs", "list_object_dirs", "scan_objects"]


class ObjectDir(NamedTuple):
    """One object directory found by :func:`scan_objects` (paths as strings: no ``Path`` object
    per directory)."""

    identifier: str
    kind: str
    name: str
    path: str
    done: bool


def _class_folders(workspace: Workspace) -> list[tuple[str, os.DirEntry[str]]]:
    """(kind, entry) of every class folder of the workspace, sorted by kind and name."""
    found: list[tuple[str, os.DirEntry[str]]] = []
    for kind, folder in KINDS.items():
        try:
            with os.scandir(workspace.root / folder) as tops:
                found.extend((kind, top) for top in sorted(tops, key=lambda e: e.name)
                             if not top.name.startswith(".") and top.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            continue
    return found


def _object_entries(workspace: Workspace,
                    prefix: str = "") -> Iterator[tuple[str, str, os.DirEntry[str]]]:
    """(kind, class name, entry) of every object directory whose identifier starts with
    ``prefix``."""
    for kind, top in _class_folders(workspace):
        try:
            with os.scandir(top.path) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith(prefix) and is_full_identifier(name) \
                            and entry.is_dir(follow_symlinks=False):
                        yield kind, top.name, entry
        except (FileNotFoundError, NotADirectoryError):  # removed meanwhile
            continue


def scan_objects(workspace: Workspace) -> list[ObjectDir]:
    """Every object directory, with whether it is done (one ``stat`` each): for listings and gc.
    """
    exists = os.path.exists
    return [ObjectDir(entry.name, kind, name, entry.path, exists(entry.path + "/" + DONE))
            for kind, name, entry in _object_entries(workspace)]


def list_object_dirs(workspace: Workspace) -> list[Path]:
    """Every object directory (done or not), without a ``stat`` of its own."""
    return [Path(entry.path) for _, _, entry in _object_entries(workspace)]


def find_object_dirs(workspace: Workspace, text: str) -> list[tuple[str, Path]]:
    """(identifier, directory) of every object directory named ``text`` (a full identifier: one
    ``lstat`` per class folder) or starting with it (a prefix: a listing of each class folder),
    in class-folder order.  ``text`` must be checked (:func:`~xpmstore.core.identifier.
    check_identifier`) before: it becomes part of a path."""
    if not is_full_identifier(text):
        return [(entry.name, Path(entry.path)) for _, _, entry in _object_entries(workspace, text)]
    found = []
    for _, top in _class_folders(workspace):
        candidate = f"{top.path}/{text}"
        try:
            if stat.S_ISDIR(os.lstat(candidate).st_mode):
                found.append((text, Path(candidate)))
        except OSError:
            continue
    return found
