"""A damaged index costs a rebuild, never an outage: real LMDB files truncated, pages
overwritten, bytes flipped, a full file system, read by the real command line in subprocesses
and by an experiment that must finish.

Every workspace is a copy of one made once per module (tests.storehelpers.Tiny tasks run in
this process); the damage is done to the copy's ``.xpmstore/index/data.mdb``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import lmdb
import pytest

from xpmstore.store.index import Index
from xpmstore.store.taskdirs import run_here
from xpmstore.store.workspace import Workspace

from ..clihelpers import console
from ..helpers import PYTHON, REPO_ROOT
from ..storehelpers import DEADLINE, Tiny, make_workspace

OBJECTS = 40
"""Done tasks of the template workspace: enough for an index of a few dozen pages."""

COMMANDS = (["ls", "--json"], ["get", "ID"], ["show", "ID"], ["fsck"], ["gc", "--dry-run"],
            ["du"], ["ls", "--json"], ["index", "rebuild"], ["ls", "--json"])
"""What a user runs on a damaged index, in order (ID: the object the damage aims at)."""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template") / "ws"
    workspace = make_workspace(root)
    for i in range(OBJECTS):
        run_here(workspace, Tiny(i=i))
    Index.for_workspace(workspace).close()
    return root


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ws"
    shutil.copytree(template, copy, symlinks=True)
    return copy


def identifiers(root: Path) -> list[str]:
    return sorted(os.listdir(root / "jobs" / "tests.store.Tiny"))


def index_dir(root: Path) -> Path:
    return root / ".xpmstore" / "index"


def moved_aside(root: Path) -> list[str]:
    return sorted(p.name for p in (root / ".xpmstore").iterdir() if ".damaged-" in p.name)


def geometry(root: Path) -> tuple[int, int]:
    """(page size, last page) of a sound index, read before it is damaged."""
    env = lmdb.open(str(index_dir(root)), readonly=True, lock=False, max_dbs=8)
    try:
        return env.stat()["psize"], env.info()["last_pgno"]
    finally:
        env.close()


def record_offsets(root: Path, ident: str) -> list[int]:
    """Where the path of ``ident``'s record lies in data.mdb: in its live page, and in the stale
    copies of it that free pages may still hold (all are damaged, so the live one is)."""
    needle = f'"path":"jobs/tests.store.Tiny/{ident}"'.encode()
    data = (index_dir(root) / "data.mdb").read_bytes()
    found = []
    offset = data.find(needle)
    while offset >= 0:
        found.append(offset + len('"path":"jobs/tests.store.'))
        offset = data.find(needle, offset + 1)
    assert found, "the record is not in the data file"
    return found


def overwrite_pages(root: Path, ident: str, make: Callable[[int], bytes],
                    psize: int | None = None) -> None:
    """Overwrite every page holding ``ident``'s record with ``make(page size)``."""
    psize = psize or geometry(root)[0]
    with open(index_dir(root) / "data.mdb", "r+b") as handle:
        for page in sorted({offset // psize for offset in record_offsets(root, ident)}):
            handle.seek(page * psize)
            handle.write(make(psize))


def junk_page(psize: int) -> bytes:
    """Random bytes whose page flags name neither a branch nor a leaf (what LMDB reports as
    corrupted rather than follows)."""
    rng = random.Random(psize)
    while True:
        data = rng.randbytes(psize)
        if int.from_bytes(data[10:12], "little") & 0x3 == 0:
            return data


def run(root: Path, args: list[str], ident: str) -> subprocess.CompletedProcess[str]:
    return console(root, *[ident if a == "ID" else a for a in args])


def check_answer(root: Path, args: list[str], ident: str,
                 done: subprocess.CompletedProcess[str]) -> None:
    """The command succeeded, said at most one line on stderr, and told the truth."""
    shown = f"{' '.join(args)}: exit {done.returncode}, stderr {done.stderr!r}"
    assert done.returncode == 0, shown
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 1, shown
    if args[0] == "ls":
        listed = {e["identifier"]: e for e in json.loads(done.stdout)}
        assert sorted(listed) == identifiers(root), shown
        assert all(e["status"] == "done" for e in listed.values()), shown
        entry = listed[ident]
        assert entry["path"] == str(root / "jobs" / "tests.store.Tiny" / ident), shown
    elif args[0] == "get":
        assert done.stdout.strip() == str(root / "jobs" / "tests.store.Tiny" / ident), shown
    elif args[0] == "index":
        assert f"{OBJECTS} objects" in done.stdout, shown


def run_commands(root: Path, ident: str, first_may_crash: bool = False) -> list[str]:
    """Run :data:`COMMANDS`, checking each answer; returns the stderr lines."""
    said = []
    for number, args in enumerate(COMMANDS):
        done = run(root, args, ident)
        if number == 0 and first_may_crash and done.returncode < 0:
            continue  # LMDB aborted on the page: the next process must heal
        check_answer(root, args, ident, done)
        said.extend(done.stderr.splitlines())
    return said


# --- 1. a data file cut short: SIGBUS before ---------------------------------------------------


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.95])
def test_a_truncated_data_file_is_healed_by_the_first_command(ws: Path, keep: float) -> None:
    psize, last = geometry(ws)
    os.truncate(index_dir(ws) / "data.mdb", int((last + 1) * psize * keep))
    said = run_commands(ws, identifiers(ws)[7])
    assert len(moved_aside(ws)) == 1
    assert any("is damaged" in line and "moved it to" in line for line in said), said


def test_index_rebuild_never_opens_the_old_index(ws: Path) -> None:
    psize, last = geometry(ws)
    os.truncate(index_dir(ws) / "data.mdb", (last + 1) * psize // 2)
    done = console(ws, "index", "rebuild")
    assert done.returncode == 0 and done.stderr == "", done
    assert f"{OBJECTS} objects" in done.stdout
    listed = console(ws, "ls", "--json")
    assert listed.returncode == 0 and listed.stderr == "", listed
    assert sorted(e["identifier"] for e in json.loads(listed.stdout)) == identifiers(ws)


# --- 2. an overwritten page: lmdb errors (and a hung experiment) before ---------------------


def test_an_overwritten_page_is_healed(ws: Path) -> None:
    ident = identifiers(ws)[11]
    overwrite_pages(ws, ident, junk_page)
    said = run_commands(ws, ident)
    assert len(moved_aside(ws)) == 1
    assert any("is damaged" in line for line in said), said


def test_a_zeroed_page_costs_at_most_the_process_that_reads_it(ws: Path) -> None:
    """LMDB asserts (abort) on some pages instead of returning an error: that process dies,
    and the next one, seeing that a process died reading the index, walks it and heals."""
    ident = identifiers(ws)[23]
    overwrite_pages(ws, ident, bytes)
    run_commands(ws, ident, first_may_crash=True)
    assert len(moved_aside(ws)) == 1


EXPERIMENT = textwrap.dedent("""
    import io, sys
    from xpmstore import experiment
    from xpmstore.launchers import LocalLauncher
    from xpmstore.scheduler.progress import Progress
    from xpmstore.store.workspace import Workspace
    from tests.storehelpers import Tiny

    workspace = Workspace.at(sys.argv[1])
    with experiment(workspace, "heal", launcher=LocalLauncher(workers=2),
                    progress=Progress("heal", stream=io.StringIO())):
        for i in range(int(sys.argv[2])):
            Tiny(i=i).submit()
    print("finished")
""")


@pytest.mark.parametrize("damage", ["page", "truncate"])
def test_an_experiment_over_a_damaged_index_finishes(ws: Path, damage: str) -> None:
    psize, last = geometry(ws)
    ident = identifiers(ws)[5]
    if damage == "page":
        overwrite_pages(ws, ident, junk_page)
    else:
        os.truncate(index_dir(ws) / "data.mdb", (last + 1) * psize // 3)
    total = OBJECTS + 30  # 40 done already, 30 to run
    done = subprocess.run([PYTHON, "-c", EXPERIMENT, str(ws), str(total)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=DEADLINE * 3, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "finished", done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(identifiers(ws)) == total
    assert all((ws / "jobs" / "tests.store.Tiny" / i / ".xpm" / "done").exists()
               for i in identifiers(ws))
    assert len(moved_aside(ws)) == 1
    listed = console(ws, "ls", "--json")
    assert listed.returncode == 0 and listed.stderr == "", listed
    assert len(json.loads(listed.stdout)) == total


def test_processes_healing_at_once_move_the_index_aside_once(ws: Path) -> None:
    psize, last = geometry(ws)
    os.truncate(index_dir(ws) / "data.mdb", (last + 1) * psize // 2)
    ident = identifiers(ws)[3]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("XPMSTORE")}
    environ["XPMSTORE_WORKSPACE"] = str(ws)
    started = [subprocess.Popen([str(Path(PYTHON).parent / "xpmstore"), "ls", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=environ, cwd=REPO_ROOT) for _ in range(4)]
    for process in started:
        out, err = process.communicate(timeout=DEADLINE)
        check_answer(ws, ["ls", "--json"], ident,
                     subprocess.CompletedProcess(process.args, process.returncode, out, err))
    assert len(moved_aside(ws)) == 1


def test_a_process_with_the_old_index_open_writes_into_the_rebuilt_one(ws: Path) -> None:
    index = Index.open(index_dir(ws))
    assert index.count() == OBJECTS
    rebuilt = console(ws, "index", "rebuild")
    assert rebuilt.returncode == 0, rebuilt
    fake = "f" * 64
    index.put(fake, {"kind": "task", "name": "x.Y", "path": f"jobs/x.Y/{fake}", "created": 1.0})
    seen = subprocess.run(
        [PYTHON, "-c", "import sys; from xpmstore.store.index import Index;"
                       " print(Index.open(sys.argv[1]).get(sys.argv[2]) is not None)",
         str(index_dir(ws)), fake], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    index.close()
    assert seen.stdout.strip() == "True"


def test_threads_of_a_process_heal_the_index_once(ws: Path) -> None:
    """Pages overwritten under an index this process has open, then read by 4 threads at once:
    one heals, the others adopt the new files (the old environment is never closed under
    them), and every answer is whole."""
    psize, _ = geometry(ws)
    index = Index.for_workspace(Workspace.at(ws))
    assert index.count() == OBJECTS
    overwrite_pages(ws, identifiers(ws)[13], junk_page, psize)
    start = threading.Barrier(4)
    found: list[list[str]] = []

    def reader() -> None:
        start.wait()
        for _ in range(20):
            found.append(sorted(ident for ident, _ in index.summaries()))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE)
    index.close()
    assert len(found) == 80 and all(f == identifiers(ws) for f in found)
    assert len(moved_aside(ws)) == 1


# --- 3. a flipped byte in a record --------------------------------------------------------------


@pytest.mark.parametrize("bit", [0x20, 0x80])  # 'T' -> 't' (still JSON), or not UTF-8 at all
def test_a_flipped_byte_in_a_record_is_recomputed_from_its_directory(ws: Path, bit: int) -> None:
    ident = identifiers(ws)[17]
    with open(index_dir(ws) / "data.mdb", "r+b") as handle:
        for offset in record_offsets(ws, ident):  # the T of "Tiny" in the record's path
            handle.seek(offset)
            byte = handle.read(1)[0]
            handle.seek(offset)
            handle.write(bytes([byte ^ bit]))
    said = run_commands(ws, ident)
    assert any("damaged record" in line and ident[:16] in line for line in said), said
    assert moved_aside(ws) == []


# --- 5. read-only commands on a folder that is not a workspace -----------------------------


@pytest.mark.parametrize("args", [["ls"], ["du"], ["get", "ab"], ["show", "ab"],
                                  ["gc", "--dry-run"], ["fsck"]])
def test_read_only_commands_create_nothing_outside_a_workspace(tmp_path: Path,
                                                               args: list[str]) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    done = console(folder, *args)
    assert done.returncode == 1, done
    assert done.stderr.startswith("xpmstore: ") and len(done.stderr.splitlines()) == 1, done
    assert "not an xpmstore workspace" in done.stderr
    assert sorted(os.listdir(folder)) == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["plain"]


# --- 5b. a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (the suite runs as root); fails, never skips, when it cannot be mounted."""
    point = tmp_path / "disk"
    point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.fail(f"the full-disk tests mount a tmpfs and need root: mount said"
                    f" {mounted.stderr.strip()!r}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill_disk(point: Path) -> None:
    with open(point / "filler", "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    os.sync()


@pytest.mark.parametrize("state", ["no lock file", "no index", "objects not indexed"])
def test_a_full_disk_never_kills_a_command(template: Path, small_disk: Path, state: str) -> None:
    root = small_disk / "ws"
    shutil.copytree(template, root, symlinks=True)
    if state == "no lock file":
        (index_dir(root) / "lock.mdb").unlink()
    elif state == "no index":
        shutil.rmtree(index_dir(root))
    else:  # the index knows none of them: reading must record them, and cannot
        shutil.rmtree(index_dir(root))
        Index.for_workspace(make_workspace(root)).close()
        psize, last = geometry(root)  # without the slack kept past its pages: writes fail
        os.truncate(index_dir(root) / "data.mdb", (last + 1) * psize)
    fill_disk(small_disk)
    ident = identifiers(root)[29]
    for args in (["ls", "--json"], ["get", "ID"], ["show", "ID"], ["fsck"], ["gc", "--dry-run"],
                 ["du"]):
        done = run(root, args, ident)
        check_answer(root, args, ident, done)
        if args[0] == "ls":  # the index could not be made or written: kept in memory
            assert "No space left on device" in done.stderr and "in memory" in done.stderr
    assert moved_aside(root) == []
    before = sorted(os.listdir(root / ".xpmstore"))
    rebuilt = console(root, "index", "rebuild")  # a new index cannot be written: refused
    assert rebuilt.returncode == 1 and "Traceback" not in rebuilt.stderr, rebuilt
    assert rebuilt.stderr.startswith("xpmstore: cannot write a new index"), rebuilt
    assert len(rebuilt.stderr.splitlines()) == 1, rebuilt
    assert sorted(os.listdir(root / ".xpmstore")) == before  # nothing left, nothing replaced


def test_fsck_walks_the_index_and_rebuilds_a_damaged_one(ws: Path) -> None:
    """A zeroed page that no lookup has read yet: fsck finds it before anything aborts."""
    ident = identifiers(ws)[31]
    overwrite_pages(ws, ident, bytes)
    done = console(ws, "fsck")
    assert done.returncode == 0, done
    assert len(moved_aside(ws)) == 1 and "is damaged" in done.stderr, done
    run_commands(ws, ident)
