"""The ``xpmstore`` command line: a thin click layer over the library (installed as
``xpmstore_cli``, so that running from the repository root never shadows it).

``main`` holds the group and the entry point; ``commands_objects`` (get, ls, show, rm, pin,
unpin, why, du), ``commands_store`` (gc, fsck, index rebuild) and ``commands_runs`` (jobs, kill,
logs, experiments) the commands; ``context`` the workspace option and one-line errors;
``output`` tables and JSON.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
