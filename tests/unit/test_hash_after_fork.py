"""A file of 1 MiB or more is hashed on all cores, on the thread pool of blake3 (rayon's global
pool, started by the first such hash).  A process forked after that inherits the pool's state but
not its threads: a hash there on the same pool waited forever — a job forked from a zygote whose
task module computed an identifier over a large input file hung writing its done manifest.  A
forked child hashes without that pool (xpmstore.core.digests.hash_file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xpmstore.core import digests

FORKED_HASH = '''
import os, signal, sys, time
from xpmstore.core import digests

digests._OWN_POOL_SIZE = int(sys.argv[2])  # the size from which a forked child makes a pool
path = sys.argv[1]
expected = digests.hash_file(path)  # the parent hashes first: the global pool starts here
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write_end, digests.hash_file(path))
    os._exit(0)
deadline = time.monotonic() + 30
while os.waitpid(pid, os.WNOHANG) == (0, 0):
    if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)  # it hangs: never leave it behind
        os.waitpid(pid, 0)
        print("the forked child's hash never ended")
        sys.exit(1)
    time.sleep(0.01)
print("same" if os.read(read_end, 64) == expected else "different")
'''


@pytest.mark.parametrize("own_pool_size", [1 << 20, 1 << 40], ids=["own-pool", "one-thread"])
def test_a_child_forked_after_a_large_hash_hashes_large_files(tmp_path: Path,
                                                              own_pool_size: int) -> None:
    path = tmp_path / "large.bin"
    path.write_bytes(bytes(range(256)) * (3 << 12))  # 3 MiB: above the threshold of all cores
    assert path.stat().st_size >= digests._MMAP_THRESHOLD
    done = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", FORKED_HASH,
                           str(path), str(own_pool_size)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "same"), done.stdout + done.stderr
