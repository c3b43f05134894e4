"""The mount that holds a path: its mount point and file-system type, from
``/proc/self/mountinfo`` (Linux; elsewhere the root, type unknown).

:func:`parse_mountinfo` is pure; :func:`mount_of` reads the table once per call.  Thread-safe.
"""

from __future__ import annotations

import os
import re

__all__ = ["mount_of", "parse_mountinfo"]

_ESCAPE = re.compile(r"\\([0-7]{3})")


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, file-system type) of each well-formed line of a mountinfo table, in its
    order (a mount listed later is on top of an earlier one at the same point).  The kernel's
    octal escapes (``\\040`` for a space) are decoded."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        try:
            separator = fields.index("-")  # optional fields stand between field 6 and "-"
            point, kind = fields[4], fields[separator + 1]
        except (ValueError, IndexError):
            continue
        mounts.append((_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), point), kind))
    return mounts


def mount_of(path: str | os.PathLike[str],
             mounts: list[tuple[str, str]] | None = None) -> tuple[str, str]:
    """(mount point, file-system type) of the mount that holds ``path`` (symbolic links
    resolved): the longest mount point that contains it, the later one on a tie.  ``mounts``
    defaults to this process's table; ``("/", "")`` when it cannot be read."""
    if mounts is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
                mounts = parse_mountinfo(handle.read())
        except OSError:
            mounts = []
    target = os.path.realpath(path)
    best, kind = "", ""
    for point, fstype in mounts:
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fstype
    return (best, kind) if best else ("/", "")
