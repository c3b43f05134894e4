"""The ``xpmstore`` command group and its entry point.

Exit codes: 0 success, 1 not found or failed, 2 bad input.  A user error is one line on stderr,
never a traceback.
"""

from __future__ import annotations

import sys

import click

from xpmstore import __version__
from xpmstore.errors import (
    ClassNotFoundError,
    InvalidIdentifierError,
    NotFound,
    XpmstoreError,
)

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xpmstore")
def cli() -> None:
    """Run experiments as typed, content-addressed tasks, and manage their store.

    Every command takes --workspace (or XPMSTORE_WORKSPACE). Exit codes: 0 ok, 1 not found or
    failed, 2 bad input.
    """


@cli.command("identify")
@click.argument("path", type=click.Path(exists=True, dir_okay=True))
def identify(path: str) -> None:
    """Print the identifier recomputed from PATH (a params.json or a directory holding one).

    No user code is imported: the identity section alone is hashed.
    """
    from xpmstore.serialize import from_params_file

    click.echo(from_params_file(path))


def _exit_code(error: XpmstoreError) -> int:
    if isinstance(error, (NotFound, ClassNotFoundError)):
        return 1
    if isinstance(error, (InvalidIdentifierError, ValueError, TypeError)):
        return 2
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xpmstore`` console script; returns the exit code."""
    try:
        cli.main(args=argv, prog_name="xpmstore", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as error:  # usage errors too: one line, no usage block
        click.echo(f"xpmstore: {' '.join(error.format_message().split())}", err=True)
        return 2 if error.exit_code == 2 else 1
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except XpmstoreError as error:
        click.echo(f"xpmstore: {error}", err=True)
        return _exit_code(error)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
