"""The mount that holds a path (xpmstore.system.mounts): the mountinfo table parsed, the
longest mount point chosen; the lock error and the index's locality both use it."""

from __future__ import annotations

from pathlib import Path

from xpmstore.system.mounts import mount_of, parse_mountinfo

TABLE = r"""22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
35 22 0:30 / /mnt/team\040share rw,relatime shared:9 master:2 - nfs4 server:/export rw
36 22 0:31 / /mnt/team rw - lustre 10.0.0.1@tcp:/fs rw
37 35 0:32 / /mnt/team\040share/scratch rw - tmpfs tmpfs rw
38 22 0:33 / /mnt/team rw - ext4 /dev/sdb1 rw
not a mountinfo line
"""


def test_the_table_is_parsed_with_its_escapes_and_optional_fields():
    assert parse_mountinfo(TABLE) == [
        ("/", "ext4"), ("/mnt/team share", "nfs4"), ("/mnt/team", "lustre"),
        ("/mnt/team share/scratch", "tmpfs"), ("/mnt/team", "ext4"),
    ]


def test_the_longest_mount_point_holds_a_path_and_the_later_mount_wins_a_tie():
    mounts = parse_mountinfo(TABLE)
    assert mount_of("/mnt/team share/a/b", mounts) == ("/mnt/team share", "nfs4")
    assert mount_of("/mnt/team share/scratch/x", mounts) == ("/mnt/team share/scratch", "tmpfs")
    assert mount_of("/mnt/team/x", mounts) == ("/mnt/team", "ext4")  # mounted over lustre
    assert mount_of("/mnt/teammate", mounts) == ("/", "ext4")  # a prefix of a name is not a mount
    assert mount_of("/etc", []) == ("/", "")  # no table: the root, type unknown


def test_this_machines_table(tmp_path: Path):
    point, kind = mount_of(tmp_path)
    assert kind and str(tmp_path.resolve()).startswith(point)
    assert mount_of("/proc/self") == ("/proc", "proc")
