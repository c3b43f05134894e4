"""The remote: a cache of done objects shared by a team's machines (docs/remote.md).

Two kinds behind one interface (:mod:`.backends`): a directory of a shared file system
(``file:///…``) and an S3-compatible bucket (``s3://bucket/prefix``, :mod:`.s3`).  :mod:`.layout`
holds the layout and the settings and opens a remote, :mod:`.verify` the pure checks of what is
pulled, :mod:`.transfer` the pull (:mod:`.trailing` hashes a copy as it is made),
:mod:`.upload` the push and its repair of damaged remote copies, :mod:`.interrupt` how a Ctrl-C
stops the transfers in flight, :mod:`.presence` how presence is asked in bulk, :mod:`.sync`
what the scheduler does with them, :mod:`.cachepull` and :mod:`.cachepush` what ``@cache``
does, and :mod:`.reach` what one process knows of its remote (unreachable or not).
"""

from __future__ import annotations

from .backends import Backend, DirectoryBackend
from .layout import Remote, RemoteSettings, open_backend, open_remote, remote_settings
from .s3 import S3Backend
from .sync import RemoteSync
from .transfer import fetch, pull, remote_entries
from .upload import PushReport, push, push_one, verify_one
from .verify import check_object

__all__ = [
    "Backend",
    "DirectoryBackend",
    "PushReport",
    "Remote",
    "RemoteSettings",
    "RemoteSync",
    "S3Backend",
    "check_object",
    "fetch",
    "open_backend",
    "open_remote",
    "pull",
    "push",
    "push_one",
    "remote_entries",
    "remote_settings",
    "verify_one",
]
