"""Fixtures of the ``xpmstore serve`` tests: real servers (``xpmstore serve`` processes on free
ports), real experiments (processes running :mod:`tests.serve.servetasks`), and a real browser:
headless Chromium from Debian, installed by ``scripts/browser-up`` when missing (root and
apt-get), driven by Playwright from PyPI through ``executable_path`` (no browser download).

Without root or apt-get, every browser test FAILS with the one-line reason (never skipped: a
skipped test must not pass for a tested one).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from xpmstore.store.taskstate import object_status

from ..clihelpers import XPMSTORE
from ..helpers import PYTHON, REPO_ROOT

BROWSER_UP = REPO_ROOT / "scripts" / "browser-up"
UP_TIMEOUT = 900.0  # a first run installs chromium with apt-get
DEADLINE = 60.0
"""Seconds a test waits for a condition before it fails (never an expected duration)."""

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"]
"""Root needs --no-sandbox; the others stop background connections that a closed network
refuses."""


def wait_for(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns a true value (returned), or fail naming ``what``."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        time.sleep(0.02)


@dataclass
class Server:
    """A running ``xpmstore serve`` process."""

    url: str
    process: subprocess.Popen[str]
    stderr: list[str]

    @property
    def base(self) -> str:
        """The URL without its path and query."""
        return self.url.split("/?")[0].rstrip("/")

    def get(self, path: str, **kwargs: Any) -> httpx2.Response:
        """GET ``path`` of the server."""
        return httpx2.get(self.base + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx2.Response:
        """POST to ``path`` of the server."""
        return httpx2.post(self.base + path, timeout=30, **kwargs)


@contextlib.contextmanager
def serving(workspace: Path, *options: str) -> Iterator[Server]:
    """``xpmstore serve -w WORKSPACE --port 0 OPTIONS…`` until the block ends (then Ctrl-C, and
    the server must exit 0)."""
    process = subprocess.Popen([XPMSTORE, "serve", "-w", str(workspace), "--port", "0", *options],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=REPO_ROOT)
    assert process.stdout is not None and process.stderr is not None
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True).start()  # type: ignore[arg-type]
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    reader.join(DEADLINE)
    try:
        if not lines or not lines[0].startswith("http://"):
            pytest.fail(f"xpmstore serve did not print its URL: {lines} {stderr}", pytrace=False)
        server = Server(lines[0].strip(), process, stderr)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail("xpmstore serve did not stop on Ctrl-C", pytrace=False)
    assert process.returncode == 0, (process.returncode, stderr)


@dataclass
class Experiment:
    """An experiment of :mod:`tests.serve.servetasks` running in its own process."""

    workspace: Path
    gate: Path
    process: subprocess.Popen[str]

    def release(self, name: str) -> None:
        """Let the Gated task ``name`` finish."""
        (self.gate / f"{name}.go").touch()

    def task_dir(self, name: str) -> Path:
        """The directory of the Gated task ``name`` (once its job started)."""
        def found() -> Path | None:
            for directory in self.workspace.glob("jobs/servetests.Gated/*"):
                if f"started {name}\n" in _read(directory / "stdout"):
                    return directory
            return None

        return wait_for(found, f"the Gated task {name} to start")

    def wait(self) -> None:
        """Wait for the experiment's process to end (it must succeed)."""
        _, err = self.process.communicate(timeout=DEADLINE)
        assert self.process.returncode == 0, err


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@pytest.fixture
def start_experiment(tmp_path: Path) -> Iterator[Callable[..., Experiment]]:
    """Start an experiment process: ``start_experiment(workspace, "a", "b:4:0.01", …)``; its
    tasks wait for their gates (released at the end of the test if the test did not)."""
    started: list[Experiment] = []

    def start(workspace: Path, *specs: str, released: bool = False) -> Experiment:
        gate = tmp_path / f"gate-{len(started)}"
        gate.mkdir()
        if released:
            for spec in specs:
                (gate / f"{spec.split(':')[0]}.go").touch()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        process = subprocess.Popen(
            [PYTHON, "-c", "from tests.serve.servetasks import drive; drive()", str(workspace),
             str(gate), *specs], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        running = Experiment(workspace, gate, process)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            for path in running.workspace.glob("jobs/servetests.Gated/*/stdout"):
                for line in _read(path).splitlines():
                    if line.startswith("started "):
                        running.release(line.split(" ", 1)[1])
            try:
                running.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()


@pytest.fixture(scope="session")
def done_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace where an experiment of three Gated tasks (and their Scored tasks) is done."""
    from .servetasks import submit

    workspace = tmp_path_factory.mktemp("served") / "ws"
    gate = workspace.parent / "gate"
    gate.mkdir()
    specs = ["a:2:0.1", "b:4:0.1", "c:4:0.01"]
    for spec in specs:
        (gate / f"{spec.split(':')[0]}.go").touch()
    submit(str(workspace), str(gate), specs)
    return workspace


def status_of(directory: Path) -> str:
    """The status of an object directory, read from the disk."""
    return object_status(directory)


# --- the browser -----------------------------------------------------------------------------

def _browser_up() -> str:
    """Run scripts/browser-up; the path of chromium, or the test fails with the reason."""
    try:
        done = subprocess.run([str(BROWSER_UP)], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=UP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/browser-up did not finish in {UP_TIMEOUT:.0f} s", pytrace=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.fail(f"scripts/browser-up failed: {reason}", pytrace=False)
    for line in done.stdout.splitlines():
        if line.startswith("CHROMIUM="):
            return line.split("=", 1)[1]
    pytest.fail(f"scripts/browser-up printed no CHROMIUM= line: {done.stdout!r}", pytrace=False)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's) driven by Playwright, for the whole session."""
    chromium = _browser_up()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """A new page; the test fails if a script of the page raised.  ``page.shot(name)`` saves a
    screenshot under the test's tmp dir (``screenshots/NAME.png``)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    shots = tmp_path / "screenshots"
    shots.mkdir()

    def shot(name: str) -> Path:
        path = shots / f"{name}.png"
        opened.screenshot(path=str(path), full_page=True)
        return path

    opened.shot = shot
    try:
        yield opened
    finally:
        context.close()
    assert errors == [], errors
