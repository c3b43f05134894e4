"""JSON documents read back from disk (or from the remote): every reader goes through here.

A file read back is input: it may be damaged or hostile.  :func:`loads` turns every way a
document can be unreadable — not UTF-8, not JSON, nested so deep that the decoder (or a later
recursive walk of it) would blow the stack — into one :class:`~xpmstore.errors.MalformedFileError`
(a ``ValueError``) whose one-line message names the file.  Pure apart from :func:`read`;
thread-safe.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from ..errors import MalformedFileError

__all__ = ["MAX_DEPTH", "loads", "read", "read_regular", "read_small"]

MAX_DEPTH = 200
"""The deepest nesting of arrays and objects accepted.  xpmstore writes nothing deeper than a
few levels but for params.json, whose identity section nests three levels per nested config:
200 holds a chain of 60 nested configs, and keeps every recursive walk of a document (the
identifier recomputed from params.json) far from Python's recursion limit."""


def _too_deep(document: Any, limit: int) -> bool:
    """Whether ``document`` nests arrays and objects deeper than ``limit`` (iterative)."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def loads(data: bytes | str, where: str) -> Any:
    """The JSON document ``data`` read from ``where`` (named in errors).

    Raises MalformedFileError when it is not UTF-8, not JSON, or nested deeper than MAX_DEPTH.
    """
    try:
        document = json.loads(data)
    except RecursionError:  # the decoder itself gave up: far deeper than MAX_DEPTH
        raise MalformedFileError(f"{where}: JSON nested deeper than {MAX_DEPTH} levels (not a"
                                 " file xpmstore wrote)", where) from None
    except (ValueError, UnicodeDecodeError) as exc:
        reason = str(exc).split("\n")[0] if not isinstance(exc, UnicodeDecodeError) \
            else "not UTF-8"
        raise MalformedFileError(f"{where}: not valid JSON ({reason})", where) from None
    brackets = data.count(b"[") + data.count(b"{") if isinstance(data, bytes) \
        else data.count("[") + data.count("{")
    if brackets > MAX_DEPTH and _too_deep(document, MAX_DEPTH):  # (fewer: it cannot be)
        raise MalformedFileError(f"{where}: JSON nested deeper than {MAX_DEPTH} levels (not a"
                                 " file xpmstore wrote)", where)
    return document


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file ``path``.

    Raises FileNotFoundError when it is absent, MalformedFileError when it is something else (a
    directory; a fifo, never waited on), other OSError as they come.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a fifo: no wait
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    if not regular:
        os.close(fd)
        where = os.fspath(path)
        raise MalformedFileError(f"{where}: not a regular file", where)
    with open(fd, "rb") as handle:
        return handle.read()


def read_small(path: str | os.PathLike[str], limit: int) -> bytes | None:
    """The bytes of the regular file ``path`` when it holds at most ``limit`` bytes; None when it
    is absent, unreadable, larger, not a regular file or a symbolic link (never followed, a fifo
    never waited on).  Never raises OSError: for files that are a cache or a hint."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        data = os.read(fd, limit + 1)
        return data if len(data) <= limit else None
    except OSError:
        return None
    finally:
        os.close(fd)


def read(path: str | os.PathLike[str]) -> Any:
    """The JSON document in the file ``path``.

    Raises FileNotFoundError when it is absent, MalformedFileError when it is not a regular
    file or not a readable document (:func:`read_regular`, :func:`loads`), other OSError as
    they come.
    """
    return loads(read_regular(path), os.fspath(path))
