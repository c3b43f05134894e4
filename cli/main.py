"""The ``xpmstore`` command group and its entry point.

Exit codes: 0 success, 1 not found or failed, 2 bad input.  A user error is one line on stderr,
never a traceback.  Commands live in ``commands_*.py`` and import the library inside their body,
so that ``xpmstore --help`` and ``xpmstore get`` start fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from xpmstore import __version__
from xpmstore.errors import XpmstoreError

from . import (
    commands_objects,
    commands_remote,
    commands_runs,
    commands_serve,
    commands_store,
    commands_table,
)
from .context import exit_code, one_line, workspace_option

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xpmstore")
@workspace_option(envvar="XPMSTORE_WORKSPACE")
def cli() -> None:
    """Run experiments as typed, content-addressed tasks, and manage their store.

    \b
    xpmstore ls --status failed            what failed
    xpmstore show 3fa9c1                   params, state, reason, logs of one object
    xpmstore get 3fa9c1                    the path of a result
    xpmstore why mypkg.tasks:Learn lr=0.1  why is this not here?
    xpmstore gc --dry-run                  what gc would delete

    Every command takes --workspace DIR (here or after the command; default:
    $XPMSTORE_WORKSPACE, else the `workspace` user setting, else ~/.local/share/xpmstore).
    Identifiers may be shortened to any unique prefix. Output is a table on a terminal and
    tab-separated text otherwise; --json where the output is data. Exit codes: 0 ok, 1 not
    found or failed, 2 bad input.
    """


@cli.command("identify")
@click.argument("path", type=click.Path(exists=True, dir_okay=True))
def identify(path: str) -> None:
    """Print the identifier recomputed from PATH (a params.json or a directory holding one).

    No user code is imported: the identity section alone is hashed.
    """
    from xpmstore.core.params import from_params_file

    click.echo(from_params_file(path))


for _command in (commands_objects.get, commands_objects.ls, commands_objects.show,
                 commands_objects.rm, commands_objects.pin, commands_objects.unpin,
                 commands_objects.why, commands_objects.du, commands_store.gc,
                 commands_store.fsck, commands_store.index, commands_runs.jobs,
                 commands_runs.kill, commands_runs.logs, commands_runs.experiments,
                 commands_remote.push, commands_remote.pull, commands_remote.remote,
                 commands_serve.serve, commands_table.table_command):
    cli.add_command(_command)


_NO_ARGS: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())
"""What click (>= 8.2) raises for a group given no command; older versions print the help."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xpmstore`` console script; returns the exit code."""
    try:
        code = cli.main(args=argv, prog_name="xpmstore", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except _NO_ARGS as bare:  # `xpmstore` or `xpmstore index` alone: the help, as with --help
        click.echo(bare.ctx.get_help())
        return 0
    except click.ClickException as error:  # usage errors too: one line, no usage block
        click.echo(f"xpmstore: {one_line(error.format_message())}", err=True)
        return 2 if error.exit_code == 2 else 1
    except click.exceptions.Abort:  # Ctrl-C, or no answer to a question (stdin closed)
        click.echo("xpmstore: aborted", err=True)
        return 1
    except XpmstoreError as error:
        click.echo(f"xpmstore: {one_line(str(error))}", err=True)
        return exit_code(error)
    # the code of a command that ended with ctx.exit(code); None when it returned
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
