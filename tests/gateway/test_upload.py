"""Upload to a folder lake and to moto's S3 server: contract records, content keys, retries,
permanent errors, and an S3 outage (a switchable proxy in front of moto) with recovery."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from pathlib import Path
from typing import Any

import boto3
import pytest

from gateway.customers import Customers
from gateway.records import batch_keys
from gateway.spool import Spool
from gateway.uploader import PermanentUploadError, Uploader, UploadSettings, open_gateway_lake, run_blocking
from stedi.contract import ACCELEROMETER_LANDING, STEP_TRAINER_LANDING
from stedi.lake import FolderLake, LakeObject
from tests.gateway.proxy import TcpProxy
from tests.gateway.util import USER, landing_lines, rows, seqs

SERIAL = "3f0c1e1a-8c7e-4d8e-9a51-0c3f5a7b9d21"


def _check_types(record: dict[str, object], table_fields: tuple[str, ...], types: dict[str, str]) -> None:
    assert tuple(record) == table_fields
    for name, kind in types.items():
        value = record[name]
        if kind == "long":
            assert type(value) is int, name
        elif kind == "double":
            assert isinstance(value, float), name
        else:
            assert isinstance(value, str), name


def test_folder_upload_writes_contract_records_under_content_keys(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "home")
    spool.add_readings(SERIAL, 513, rows(0, 120))
    lake = FolderLake(tmp_path / "lake")
    uploader = Uploader(spool, lake, UploadSettings(batch_bytes=100 * 230))
    assert uploader.drain_sync() == 120
    keys = [o.key for o in lake.list()]
    assert f"step_trainer/landing/{SERIAL}/513/0000000000-0000000099.jsonl" in keys
    assert f"accelerometer/landing/{SERIAL}/513/0000000100-0000000119.jsonl" in keys
    assert len(keys) == 4
    steps = landing_lines(lake, "step_trainer")
    accel = landing_lines(lake, "accelerometer")
    assert [r["seq"] for r in steps] == list(range(120))
    for step, acc in zip(steps, accel, strict=True):
        _check_types(step, STEP_TRAINER_LANDING.field_names, {f.name: f.type for f in STEP_TRAINER_LANDING.fields})
        _check_types(acc, ACCELEROMETER_LANDING.field_names, {f.name: f.type for f in ACCELEROMETER_LANDING.fields})
        assert acc["timestamp"] == step["sensorReadingTime"] and acc["user"] == USER
        assert step["serialNumber"] == SERIAL and step["bootId"] == 513
    assert spool.pending == 0


def test_a_retried_upload_overwrites_instead_of_duplicating(tmp_path: Path) -> None:
    """A crash after the put but before the spool forgets the batch: the batch goes again, same key."""
    spool = Spool(tmp_path / "home")
    spool.add_readings(SERIAL, 1, rows(0, 30))
    lake = FolderLake(tmp_path / "lake")
    uploader = Uploader(spool, lake, UploadSettings(gzip=True))
    (batch,) = uploader.cut(force=True)
    uploader.send(uploader.prepare(batch))  # put done ... then the process dies
    spool.close()

    spool = Spool(tmp_path / "home")
    uploader = Uploader(spool, lake, UploadSettings(gzip=True))
    assert [b.id for b in spool.open_batches()] == [batch.id]  # same boundaries after the crash
    first = {o.key: lake.get(o.key) for o in lake.list()}
    assert uploader.drain_sync() == 30
    assert {o.key: lake.get(o.key) for o in lake.list()} == first  # same keys, same bytes
    assert all(k.endswith(".json.gz") for k in first)
    assert seqs(lake) == list(range(30))
    assert json.loads(gzip.decompress(first[batch_keys(batch, gzipped=True)[0]]).splitlines()[0])["seq"] == 0


KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0b4e2c4a-stedi-test"


@pytest.mark.parametrize(("sse", "kms_key"), [("AES256", None), ("aws:kms", KMS_KEY)])
def test_s3_upload_with_server_side_encryption(s3_bucket: str, tmp_path: Path, sse: str, kms_key: str | None) -> None:
    spool = Spool(tmp_path / "home")
    spool.add_readings(SERIAL, 2, rows(0, 50))
    lake = open_gateway_lake(f"s3://{s3_bucket}/stedi")
    uploader = Uploader(spool, lake, UploadSettings(sse=sse, kms_key_id=kms_key))
    assert uploader.drain_sync() == 50
    key = f"stedi/step_trainer/landing/{SERIAL}/2/0000000000-0000000049.jsonl"
    head = boto3.client("s3").head_object(Bucket=s3_bucket, Key=key)
    assert head["ServerSideEncryption"] == sse
    assert head.get("SSEKMSKeyId") == kms_key
    assert seqs(lake) == list(range(50))


def test_permanent_error_stops_clearly_and_the_spool_keeps_the_data(s3_server: str, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "home")
    spool.add_readings(SERIAL, 3, rows(0, 10))
    uploader = Uploader(spool, open_gateway_lake("s3://no-such-bucket-stedi/x"), UploadSettings())
    with pytest.raises(PermanentUploadError, match="NoSuchBucket.*spool keeps the data"):
        uploader.drain_sync()
    assert spool.pending == 10 and len(spool.open_batches()) == 1

    async def run() -> None:
        await uploader.run(asyncio.Event(), asyncio.Event(), tick_s=0.05)

    with pytest.raises(PermanentUploadError):
        asyncio.run(asyncio.wait_for(run(), 30))
    assert spool.pending == 10


def test_s3_outage_spool_grows_then_drains(s3_server: str, s3_bucket: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    port = int(s3_server.rsplit(":", 1)[1])
    proxy = TcpProxy(port)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    spool = Spool(tmp_path / "home")
    lake = open_gateway_lake(f"s3://{s3_bucket}/lake")
    uploader = Uploader(spool, lake, UploadSettings(batch_age_s=0.05, backoff_base_s=0.05, backoff_max_s=0.3))
    depth: list[int] = []

    async def scenario() -> None:
        stop, flush = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(uploader.run(stop, flush, tick_s=0.05))
        seq = 0
        for phase in ("up", "down", "up"):
            if phase == "down":
                proxy.off()
            else:
                proxy.on()
            for _ in range(20):
                spool.add_readings(SERIAL, 9, rows(seq, 20))
                seq += 20
                await asyncio.sleep(0.05)
            depth.append(spool.pending)
        flush.set()
        await asyncio.wait_for(task, 60)

    try:
        asyncio.run(scenario())
        landed = seqs(lake)
    finally:
        proxy.close()
    up, down, _ = depth
    assert down >= up + 300, depth  # during the outage nothing left the spool
    assert uploader.retries > 0
    assert spool.pending == 0  # and after it everything drained
    assert landed == list(range(1200))


class FlakyLake(FolderLake):
    """A folder lake whose next ``failures`` puts fail like a dropped connection (transient)."""

    def __init__(self, root: Path, failures: int):
        super().__init__(root)
        self.failures = failures

    def put(self, key: str, data: bytes, **kwargs: Any) -> LakeObject:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionResetError("connection reset by peer")
        return super().put(key, data, **kwargs)


def test_transient_errors_are_retried_with_backoff_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.uploader")
    settings = UploadSettings(backoff_base_s=0.01, backoff_max_s=0.02)
    spool = Spool(tmp_path / "home")
    Customers(spool).register(email="ann@example.com", name="Ann", phone="1", birthday="1980-01-01", serial=SERIAL)

    # A command: gives up after max_attempts tries, the record stays in the spool.
    lake = FlakyLake(tmp_path / "lake", failures=3)
    uploader = Uploader(spool, lake, settings)
    waits: list[float] = []
    with pytest.raises(ConnectionResetError):
        uploader.upload_customers(sleep=waits.append, max_attempts=3)
    assert uploader.retries == 2 and len(waits) == 2 and spool.stats().customer_events == 1
    assert 0 <= waits[0] <= 0.01 and 0 <= waits[1] <= 0.02  # exponential, capped, full jitter
    assert uploader.last_error == "ConnectionResetError: connection reset by peer"
    # ...and succeeds once the lake answers; a command does not log the recovery (it reports itself).
    caplog.clear()
    lake.failures = 1
    assert uploader.upload_customers(sleep=waits.append) == 1
    assert uploader.retries == 3 and uploader.last_error is None and spool.stats().uploaded_objects == 1
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("customer record customer/landing/")
    assert said[0].endswith("failed (ConnectionResetError: connection reset by peer); retry 1 in 0.0s")

    # The service: retries until the put works and says it recovered.
    spool.add_readings(SERIAL, 4, rows(0, 10))
    lake.failures = 2
    caplog.clear()

    async def drain() -> None:
        flush = asyncio.Event()
        flush.set()
        await uploader.run(asyncio.Event(), flush, tick_s=0.01)

    asyncio.run(asyncio.wait_for(drain(), 30))
    assert spool.pending == 0 and uploader.retries == 5 and uploader.last_error is None
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == ["WARNING", "WARNING", "INFO"]
    assert said[0][1].startswith("batch 1 failed (ConnectionResetError: connection reset by peer); retry 1 in")
    assert said[1][1].startswith("batch 1 failed (ConnectionResetError: connection reset by peer); retry 2 in")
    assert said[2][1] == "upload recovered after 2 retries"


def test_blocking_uploads_need_no_event_loop_and_refuse_one_that_suspends(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "home")
    spool.add_readings(SERIAL, 5, rows(0, 10))
    uploader = Uploader(spool, FolderLake(tmp_path / "lake"))

    async def from_a_running_loop() -> int:
        return uploader.drain_sync()  # blocking, as a command called from async code would

    assert asyncio.run(from_a_running_loop()) == 10
    with pytest.raises(RuntimeError, match="suspended"):
        run_blocking(asyncio.sleep(0))
