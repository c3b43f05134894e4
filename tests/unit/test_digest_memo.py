"""The index takes over the input-digest memo from the process (docs/identifiers.md,
docs/store.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from xpmstore.core import digests
from xpmstore.store.index import Index
from xpmstore.store.workspace import Workspace


def _old_file(path: Path, data: bytes) -> os.stat_result:
    path.write_bytes(data)
    past = time.time() - 10
    os.utime(path, (past, past))  # a memo recorded within 2 s of mtime is not trusted
    return os.stat(path)


def test_digest_is_recorded_in_the_index_and_read_by_another_process(tmp_path: Path) -> None:
    workspace = Workspace.at(tmp_path / "ws")
    index = Index.for_workspace(workspace)
    st = _old_file(tmp_path / "input.bin", b"some input")
    digests._clear_memo()
    digest = digests.digest_input(tmp_path / "input.bin")
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    assert index.get_digest(key) == digest

    # Another process finds the digest in the index: make the index's answer distinguishable
    # from a fresh hash by recording a different value for the same file version.
    forged = bytes([digests.DIGEST_FILE]) + bytes(32)
    index.put_digest(key, forged)
    index.flush_digests()
    code = (
        "import sys; from pathlib import Path; from xpmstore.core import digests as inputs;"
        " from xpmstore.store.index import Index; from xpmstore.store.workspace import Workspace;"
        f" Index.for_workspace(Workspace.at({str(tmp_path / 'ws')!r}));"
        f" print(inputs.digest_input(Path({str(tmp_path / 'input.bin')!r})).hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == forged.hex()


def test_a_fresh_file_is_not_memoized(tmp_path: Path) -> None:
    workspace = Workspace.at(tmp_path / "ws")
    index = Index.for_workspace(workspace)
    path = tmp_path / "fresh.bin"
    path.write_bytes(b"just written")
    st = os.stat(path)
    digests._clear_memo()
    digests.digest_input(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    assert index.get_digest(key) is None
