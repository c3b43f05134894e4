"""``If-None-Match: *`` on S3 writes (docs/remote.md), against the real SeaweedFS of the suite: the
probe's verdict is what the server actually does (asked here directly, with boto3), it is
probed once per remote and process and logged once, readers never probe, and writes are correct
whatever the verdict — including for a writer that loses a race between its HEAD and its PUT."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from xpmstore.remote import Remote, pull, push_one
from xpmstore.remote.s3 import CONDITIONAL_VERDICTS, PROBE_KEY, S3Backend

from ..s3server import S3Server
from ..storehelpers import Terms, active, make_workspace
from .conftest import new_bucket
from .test_cache_push import entry_of


def what_the_server_does(server: S3Server) -> str:
    """Two conditional PUTs of one key, straight through boto3: the server's own answer."""
    client = server.client()
    bucket = new_bucket(server)
    put = client.put_object  # type: ignore[attr-defined]
    put(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    try:
        put(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    except ClientError as exc:
        status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        return "honoured" if status == 412 else "refused"
    return "ignored"


def test_the_probe_finds_what_the_server_does_once_per_process(
        s3_server: S3Server, caplog: pytest.LogCaptureFixture) -> None:
    expected = what_the_server_does(s3_server)
    assert expected == "honoured"  # SeaweedFS 4.x answers 412 to a second conditional PUT
    bucket = new_bucket(s3_server)
    caplog.set_level(logging.INFO, logger="xpmstore.remote")
    backends = [S3Backend(bucket, "team", s3_server.endpoint) for _ in range(3)]
    with ThreadPoolExecutor(6) as pool:  # first writes of three backends at once
        written = list(pool.map(lambda i: backends[i % 3].put_bytes(f"k/{i}", b"x"), range(6)))
    assert written == [True] * 6
    assert [b.conditional_writes() for b in backends] == [expected] * 3
    records = [r for r in caplog.records if "If-None-Match" in r.getMessage()]
    assert len(records) == 1 and records[0].levelno == logging.INFO
    assert expected in records[0].getMessage() and bucket in records[0].getMessage()


def test_readers_never_probe(s3_server: S3Server, tmp_path: Path, counters: Path) -> None:
    bucket = new_bucket(s3_server)
    writer = S3Backend(bucket, "team", s3_server.endpoint, conditional="honoured")
    first = make_workspace(tmp_path / "first")
    with active(first):
        Terms(n=1).load(str(counters))
    assert push_one(Remote(writer), first.root / "cache" / "tests.store.Terms" / entry_of(1))
    reader = S3Backend(bucket, "team", s3_server.endpoint)
    pull(make_workspace(tmp_path / "second"), entry_of(1), Remote(reader))
    assert not reader.exists(PROBE_KEY)


class LateWriter(S3Backend):
    """A writer whose HEAD came just before another writer's PUT: it sees every key absent."""

    def exists(self, key: str) -> bool:
        return False


@pytest.mark.parametrize("verdict", CONDITIONAL_VERDICTS)
def test_writes_are_correct_whatever_the_verdict(
        s3_server: S3Server, tmp_path: Path, counters: Path, verdict: str) -> None:
    bucket = new_bucket(s3_server)
    backend = S3Backend(bucket, "team", s3_server.endpoint, conditional=verdict)
    assert backend.put_bytes("k", b"first") and not backend.put_bytes("k", b"second")
    assert backend.get_bytes("k") == b"first"  # HEAD, then no PUT

    late = LateWriter(bucket, "team", s3_server.endpoint, conditional=verdict)
    overwrote = late.put_bytes("k", b"late")
    # honoured: 412, nothing written; otherwise the late writer overwrites, which is why
    # every key holds content-addressed or equally valid bytes
    assert overwrote == (verdict != "honoured")
    assert backend.get_bytes("k") == (b"late" if overwrote else b"first")

    first = make_workspace(tmp_path / "first")
    with active(first):
        Terms(n=2).load(str(counters))
    entry = first.root / "cache" / "tests.store.Terms" / entry_of(2)
    assert push_one(Remote(backend), entry)
    # a second push of the object that lost the race: refused (412) or written again, both valid
    assert push_one(Remote(late), entry) == (verdict != "honoured")
    pulled = pull(make_workspace(tmp_path / "second"), entry_of(2), Remote(backend))
    assert (pulled / "terms.txt").read_text() == "terms of 2\n" * 3
    assert not backend.exists(PROBE_KEY)  # the verdict was given: nothing probed
