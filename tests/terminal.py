"""A real pseudo terminal for the tests of what a person sees: run a process with its stdin,
stdout and stderr on a pty of a given size, collect every byte it writes, and replay them in a
terminal emulator (pyte) to get the lines left on the screen and in its scrollback."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyte

COLUMNS = 120
LINES = 40


@dataclass
class TerminalRun:
    """What a process wrote to its terminal, and how it ended."""

    returncode: int
    raw: bytes

    def lines(self, columns: int = COLUMNS, lines: int = LINES) -> list[str]:
        """The lines left on the screen and in its scrollback, trailing blanks dropped."""
        screen = pyte.HistoryScreen(columns, lines, history=100_000)
        stream = pyte.ByteStream(screen)
        stream.feed(self.raw.replace(b"\n", b"\r\n"))  # the pty's onlcr, which raw mode skips
        history = ["".join(char.data for char in row.values()).rstrip()
                   for row in (dict(sorted(line.items())) for line in screen.history.top)]
        shown = [line.rstrip() for line in screen.display]
        found = history + shown
        while found and not found[-1]:
            found.pop()
        return found


class Terminal:
    """A process running on a pty of ``columns`` × ``lines``: read what it writes as it goes
    (:meth:`wait_for`), then :meth:`finish`."""

    def __init__(self, argv: Sequence[str | Path], *, env: dict[str, str], cwd: Path,
                 columns: int = COLUMNS, lines: int = LINES):
        self.columns, self.lines_count = columns, lines
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        attributes = termios.tcgetattr(slave)
        attributes[1] &= ~termios.ONLCR  # keep the bytes as written (the emulator adds \r)
        termios.tcsetattr(slave, termios.TCSANOW, attributes)
        environ = {**env, "COLUMNS": str(columns), "LINES": str(lines),
                   "TERM": "xterm-256color"}
        self.process = subprocess.Popen([str(a) for a in argv], stdin=slave, stdout=slave,
                                        stderr=slave, env=environ, cwd=cwd,
                                        start_new_session=True)
        os.close(slave)
        self.master = master
        self.raw = bytearray()
        self.ended = False

    def _read(self, wait: float) -> None:
        if self.ended:
            return
        ready, _, _ = select.select([self.master], [], [], wait)
        if not ready:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            data = b""
        if data:
            self.raw += data
        else:
            self.ended = True

    def screen(self) -> list[str]:
        """The lines on the screen (and in its scrollback) now."""
        return TerminalRun(0, bytes(self.raw)).lines(self.columns, self.lines_count)

    def wait_for(self, condition: Callable[[list[str]], bool], what: str,
                 deadline: float = 60.0) -> list[str]:
        """Read until ``condition(screen)`` holds; returns that screen.  AssertionError (with
        the screen) after ``deadline`` seconds or when the process ends first."""
        end = time.monotonic() + deadline
        while True:
            lines = self.screen()
            if condition(lines):
                return lines
            if self.ended or time.monotonic() > end:
                raise AssertionError(f"never saw {what}; the screen:\n" + "\n".join(lines))
            self._read(0.2)

    def finish(self, timeout: float = 120.0) -> TerminalRun:
        """Read until the process closes its terminal, and wait for it."""
        end = time.monotonic() + timeout
        while not self.ended:
            if time.monotonic() > end:
                os.killpg(self.process.pid, 9)
                raise TimeoutError(f"{self.process.args} ran past {timeout} s")
            self._read(1.0)
        os.close(self.master)
        return TerminalRun(self.process.wait(timeout=timeout), bytes(self.raw))


def run_on_terminal(argv: Sequence[str | Path], *, env: dict[str, str], cwd: Path,
                    columns: int = COLUMNS, lines: int = LINES,
                    timeout: float = 120.0) -> TerminalRun:
    """Run ``argv`` with a pty of ``columns`` × ``lines`` as its terminal; return what it
    wrote.  Raises TimeoutError (after killing it) when it runs past ``timeout``."""
    return Terminal(argv, env=env, cwd=cwd, columns=columns, lines=lines).finish(timeout)
