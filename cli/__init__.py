"""The ``xpmstore`` command line: a thin click layer over the library (installed as
``xpmstore_cli``, so that running from the repository root never shadows it).  Each command
parses its arguments, calls one function of :mod:`xpmstore.admin` (or of the store, the remote,
:func:`xpmstore.serve.start`), prints the result and maps errors to exit codes.

``main`` holds the group and the entry point; ``commands_objects`` (get, ls, show, rm, pin,
unpin, why, du), ``commands_store`` (gc, fsck, index rebuild), ``commands_runs`` (jobs, kill,
logs, experiments), ``commands_remote`` (push, pull, remote init), ``commands_table`` (table)
and ``commands_serve`` (serve) the commands; ``context`` the workspace option and one-line
errors; ``output`` tables and JSON.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
