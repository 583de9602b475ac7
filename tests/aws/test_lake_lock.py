"""The writer lease of an S3 lake on moto's S3 server: conditional puts (If-None-Match / If-Match).

moto checks both conditions on PutObject and If-Match on DeleteObject as S3 does (412); the
takeover of an expired lease is judged on the server's clock, so those tests wait out a 1 s lease.
"""

from __future__ import annotations

import subprocess
import sys
import time

import boto3
import pytest

from cloud_pipeline.storage.lock import HOLDER_KEY, LockHolder, S3Lease, current_writer, writer_lock
from stedi.errors import EXIT_BUSY, LakeBusyError
from stedi.lake import S3Lake
from tests.parts import run_main


def _lake(bucket: str) -> S3Lake:
    return S3Lake(bucket, "lake", client=boto3.client("s3"))


def _lease_body(bucket: str) -> bytes:
    return boto3.client("s3").get_object(Bucket=bucket, Key="lake/" + HOLDER_KEY)["Body"].read()


def test_a_second_writer_is_refused_while_the_lease_is_held(s3_bucket: str, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    lake = _lake(s3_bucket)
    lake.put("customer/landing/c.json", b"{}\n")
    with writer_lock(lake, "20261201T235018123456Z-0001", "run") as held:
        assert LockHolder.from_json(_lease_body(s3_bucket)) == held.holder
        with pytest.raises(LakeBusyError) as busy:
            with writer_lock(_lake(s3_bucket), "other", "erase"):
                pass
        assert "another run (run 20261201T235018123456Z-0001, host " in str(busy.value)
        assert current_writer(lake) == held.holder
        # The real command, in this process: refused at once with exit 4, before any sync.
        code, _, err = run_main(monkeypatch, capsys, "pipeline", "run", "--lake", lake.url)
        assert code == EXIT_BUSY and "holds this lake" in err
        # The holder renews its own lease (a put with If-Match on its ETag).
        held.ensure_held()
    # Released (a delete with If-Match): the next writer takes it at once, also after a run that failed.
    assert current_writer(lake) is None
    with pytest.raises(RuntimeError), writer_lock(lake, "failing", "run"):
        raise RuntimeError("the run failed")
    assert current_writer(lake) is None
    with writer_lock(lake, "next", "run"):
        pass


def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_commit(s3_bucket: str) -> None:
    lake = _lake(s3_bucket)
    killed = S3Lease(lake, LockHolder("killed-run", "another-host", 1, time.time(), "run", lease_seconds=1.0))
    killed.acquire()
    killed._stop.set()  # no renewal: as if the run was killed
    with pytest.raises(LakeBusyError):  # within its time to live it holds
        writer_lock(lake, "early", "run").__enter__()
    time.sleep(2.5)  # S3's Last-Modified and Date have whole seconds
    with writer_lock(lake, "taker", "run") as taker:
        assert LockHolder.from_json(_lease_body(s3_bucket)) == taker.holder
        # The old holder, back from the dead, finds the lease gone before it commits.
        with pytest.raises(LakeBusyError) as lost:
            killed.ensure_held()
        assert "run taker" in str(lost.value)
    killed.release()  # does not delete the lease it lost (there is none left to delete, either)
    assert current_writer(lake) is None


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(s3_bucket: str) -> None:
    lake = _lake(s3_bucket)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = S3Lease(lake, LockHolder.me("dead-run", "run"))
    dead.holder = LockHolder(dead.holder.run_id, dead.holder.host, gone.pid, time.time(), "run")
    dead.acquire()
    dead._stop.set()
    with writer_lock(lake, "alive", "run") as alive:
        assert LockHolder.from_json(_lease_body(s3_bucket)) == alive.holder


def test_two_takeovers_of_one_stale_lease_only_one_wins(s3_bucket: str) -> None:
    lake = _lake(s3_bucket)
    stale = S3Lease(lake, LockHolder("stale", "another-host", 1, time.time(), "run", lease_seconds=1.0))
    stale.acquire()
    stale._stop.set()
    time.sleep(2.5)
    first, second = S3Lease(lake, LockHolder.me("first", "run")), S3Lease(lake, LockHolder.me("second", "run"))
    seen = first._read()
    assert seen is not None and seen[2]
    first.acquire()  # takes the stale lease over
    try:
        # The second read the lease while it was still stale (a race): its takeover is conditional on
        # the ETag it read, and that lease is gone, so S3 refuses it (412) and the second is busy.
        reads = iter([seen])
        second._read = lambda: next(reads, None) or first._read()  # type: ignore[method-assign]
        with pytest.raises(LakeBusyError) as busy:
            second.acquire()
        assert "run first" in str(busy.value)
        assert LockHolder.from_json(_lease_body(s3_bucket)) == first.holder
    finally:
        first.release()


def test_an_s3_lake_must_exist(s3_bucket: str, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from stedi.errors import EXIT_PERMANENT, PermanentError
    from stedi.lake import lake_exists

    lake = _lake(s3_bucket)
    assert not lake_exists(lake)  # an empty prefix is no lake
    code, _, err = run_main(monkeypatch, capsys, "pipeline", "run", "--lake", lake.url)
    assert code == 2 and f"no lake at {lake.url}" in err and "--create" in err
    assert not lake.list("")  # refused before the lease was taken
    lake.put("accelerometer/landing/a.json", b"{}\n")
    assert lake_exists(lake)
    with pytest.raises(PermanentError, match="no bucket 'no-such-bucket-d16'"):
        lake_exists(S3Lake("no-such-bucket-d16", "lake", client=boto3.client("s3")))
    code, _, err = run_main(monkeypatch, capsys, "query", "--lake", "s3://no-such-bucket-d16/lake", "SELECT 1")
    assert code == EXIT_PERMANENT and "no bucket" in err and "aws s3 mb s3://no-such-bucket-d16" in err


def test_no_credentials_is_a_permanent_error(tmp_path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from stedi.errors import EXIT_PERMANENT

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # boto3's default session keeps the credentials it resolved for earlier tests: start a new one.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    for argv in (["pipeline", "status", "--lake", "s3://some-bucket/lake"],
                 ["pipeline", "run", "--lake", "s3://some-bucket/lake"]):
        code, _, err = run_main(monkeypatch, capsys, *argv)
        assert code == EXIT_PERMANENT and "no AWS credentials to read s3://some-bucket/lake" in err, err
        assert "AWS_PROFILE" in err
