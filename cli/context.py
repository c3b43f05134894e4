"""What every command shares: the workspace option, and errors as one line with an exit code.

Exit codes: 0 success, 1 not found or failed, 2 bad input.  A command decorated with
:func:`user_errors` turns an xpmstore error (or an OS error) into a :class:`CliError` (exit code
1) or a :class:`BadInputError` (2), which prints one line, ``xpmstore: <message>``, on stderr,
never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from xpmstore.errors import (
    ClassNotFoundError,
    ConfigError,
    CorruptObjectError,
    FormatVersionError,
    InvalidIdentifierError,
    NotFound,
    TextValueError,
    XpmstoreError,
)

if TYPE_CHECKING:
    from xpmstore.store.workspace import Workspace

__all__ = ["BadInputError", "CliError", "ask", "exit_code", "one_line", "open_workspace",
           "user_errors", "workspace_option"]

F = TypeVar("F", bound=Callable[..., Any])
_KEY = "xpmstore.workspace"


def one_line(text: str) -> str:
    """``text`` on one line, printable whatever it holds (lone surrogates are escaped)."""
    return " ".join(text.split()).encode("utf-8", "backslashreplace").decode("utf-8")


class CliError(click.ClickException):
    """A user error: one line on stderr, and exit code 1 (:class:`BadInputError`: 2)."""

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``xpmstore: <message>`` on one line (stderr unless ``file``)."""
        click.echo(f"xpmstore: {one_line(self.format_message())}", err=file is None, file=file)


class BadInputError(CliError):
    """A user error of bad input: one line on stderr, and exit code 2."""

    exit_code = 2


def exit_code(error: BaseException) -> int:
    """1 for something not found or failed, 2 for bad input."""
    if isinstance(error, (NotFound, ClassNotFoundError, CorruptObjectError)):
        return 1
    if isinstance(error, (InvalidIdentifierError, TextValueError, ConfigError,
                          FormatVersionError, FileExistsError)):
        return 2
    if isinstance(error, XpmstoreError) and isinstance(error, (ValueError, TypeError)):
        return 2
    return 1


def user_errors(command: F) -> F:
    """Decorate a command so that its xpmstore and OS errors become :class:`CliError`."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (XpmstoreError, OSError) as error:
            message = str(error) or type(error).__name__
            if isinstance(error, OSError) and not isinstance(error, XpmstoreError):
                message = f"{error.strerror or error}" + (
                    f": {error.filename}" if error.filename else "")
            raise (BadInputError if exit_code(error) == 2 else CliError)(message) from error

    return wrapper  # type: ignore[return-value]


def _remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.find_root().meta[_KEY] = value


def workspace_option(*, envvar: str | None = None) -> Callable[[F], F]:
    """The ``--workspace`` option (on the group, reading ``XPMSTORE_WORKSPACE``, and on every
    command, where it overrides the group's)."""
    return click.option(
        "--workspace", "-w", metavar="DIR", envvar=envvar, expose_value=False,
        callback=_remember, is_eager=True,
        help="The workspace (default: $XPMSTORE_WORKSPACE, else the `workspace` user setting,"
             " else ~/.local/share/xpmstore).",
    )


def open_workspace(new: bool = False) -> Workspace:
    """The workspace chosen by ``--workspace`` (or the default one); NotFound when it is not a
    directory, or (unless ``new``: a pull may fill a new one) when it is a folder that is not a
    workspace (nothing is created in either)."""
    from xpmstore.store.workspace import MARKERS, Workspace

    where = click.get_current_context().find_root().meta.get(_KEY)
    workspace = Workspace.at(where)
    if not workspace.root.is_dir():
        raise NotFound(f"no workspace at {workspace.root} (give --workspace DIR or set"
                       " XPMSTORE_WORKSPACE)")
    if not new and not workspace.exists():
        raise NotFound(f"{workspace.root} is not an xpmstore workspace (it holds none of"
                       f" {', '.join(MARKERS)}); give --workspace DIR or set XPMSTORE_WORKSPACE")
    return workspace


def ask(question: str) -> bool:
    """Ask ``question`` on stderr (default: no); CliError (exit code 1) when no answer comes
    (stdin closed, or Ctrl-C): nothing is done without a yes."""
    try:
        return click.confirm(question, default=False, err=True)
    except click.exceptions.Abort:
        click.echo(err=True)  # ends the question's line
        raise CliError("no answer, nothing deleted: answer y, or give -y to delete without"
                       " asking") from None
