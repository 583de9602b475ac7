"""S3 lakes from a laptop, against moto's S3 server: the pipeline runs on a local cache of the
bucket, fetches by ETag, and publishes back so that readers never see a half-written zone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cloud_pipeline.config import PipelineOptions
from cloud_pipeline.runner import PipelineRun, run_pipeline
from cloud_pipeline.storage.catalog import table_frames
from cloud_pipeline.storage.s3_cache import CachedStore, S3Cache, cache_folder, check_sse, open_store
from cloud_pipeline.storage.state import PipelineState, RunRecord, TableVersion
from cloud_pipeline.storage.store import STATE_KEY, PipelineStore
from simulator.fleet import generate_fleet
from stedi.contract import QUARANTINE_TABLE, RUNS_FOLDER, TABLES, TABLES_BY_NAME
from stedi.lake import FolderLake, LakeError, S3Lake
from tests.pipeline.helpers import rows

SALT = "tests-s3-salt"
OPTIONS = PipelineOptions(salt=SALT)
ZONE_TABLES = [t.name for t in TABLES if t.zone != "landing"]


def _lake(bucket: str) -> S3Lake:
    return S3Lake(bucket, "lakes/one", client=boto3.client("s3"))


def _run_record(lake: S3Lake, run_id: str) -> RunRecord:
    return RunRecord.from_json(lake.get(f"{RUNS_FOLDER}{run_id}.json"))


def _s3(record: RunRecord) -> dict[str, int]:
    assert record.s3 is not None, "a run of an S3 lake records what it moved"
    return record.s3


def _table_rows(spark, store: PipelineStore) -> dict[str, list[tuple[Any, ...]]]:  # type: ignore[no-untyped-def]
    frames = table_frames(spark, store)
    out = {name: rows(df) for name, df in frames.items() if name != QUARANTINE_TABLE}
    # A quarantined line names the run that staged it: the lakes' runs differ, the lines must not.
    quarantine = frames[QUARANTINE_TABLE]
    out[QUARANTINE_TABLE] = rows(quarantine, *[c for c in quarantine.columns if c != "run_id"])
    return out


# --- the cache alone (no Spark) -------------------------------------------------------------


def test_cache_folder_is_per_bucket_and_prefix(tmp_path: Path) -> None:
    a = cache_folder(S3Lake("b", "x/y", client=object()), tmp_path)
    b = cache_folder(S3Lake("b", "x_y", client=object()), tmp_path)
    root = cache_folder(S3Lake("b", "", client=object()), tmp_path)
    assert a.parent == b.parent == root.parent == tmp_path / "b"
    assert a != b and a.name.startswith("x_y-") and root.name.startswith("_root-")
    with pytest.raises(LakeError):
        check_sse("AES128", None)
    with pytest.raises(LakeError):
        check_sse("AES256", "key-1")


def test_mirror_fetches_by_etag_and_drops_deleted_objects(s3_bucket: str, tmp_path: Path) -> None:
    lake = _lake(s3_bucket)
    for i in range(3):
        lake.put(f"customer/landing/c{i}.json", b'{"email": "a@b"}\n' * (i + 1))
    lake.put("customer/landing/.hidden.json", b"{}\n")  # not a landing file for readers

    def mirror() -> S3Cache:
        cache = S3Cache(lake, tmp_path)
        cache.mirror("customer/landing/")
        cache.save_index()
        return cache

    first = mirror()
    assert (first.stats.fetched, first.stats.reused, first.stats.bytes_down) == (3, 0, 17 * 6)
    assert first.local.get("customer/landing/c2.json") == b'{"email": "a@b"}\n' * 3
    again = mirror()
    assert (again.stats.fetched, again.stats.reused, again.stats.removed) == (0, 3, 0)

    lake.put("customer/landing/c1.json", b"changed\n")  # new ETag
    lake.delete("customer/landing/c0.json")
    (again.local.root / "customer/landing/c2.json").write_bytes(b"tampered locally\n")
    third = mirror()
    assert (third.stats.fetched, third.stats.reused, third.stats.removed) == (2, 0, 1)
    assert not (third.local.root / "customer/landing/c0.json").exists()
    assert third.local.get("customer/landing/c1.json") == b"changed\n"
    assert third.local.get("customer/landing/c2.json") == b'{"email": "a@b"}\n' * 3


def test_one_process_per_cache_and_no_publish_of_a_partial_version(s3_bucket: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    lake = _lake(s3_bucket)
    cache = S3Cache(lake, tmp_path)
    S3Cache(lake, tmp_path)  # the same process may open it again
    code = ("import sys; from pathlib import Path; from cloud_pipeline.storage.s3_cache import S3Cache; "
            "from stedi.lake import S3Lake, LakeError\n"
            f"try: S3Cache(S3Lake({s3_bucket!r}, 'lakes/one', client=object()), Path({str(tmp_path)!r}))\n"
            "except LakeError as e: sys.exit(str(e))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert other.returncode == 1 and "in use by another stedi command" in other.stderr

    # A version folder without Spark's _SUCCESS marker (a write that did not finish) is refused.
    before = PipelineState()
    after = PipelineState()
    after.tables["customer_trusted"] = TableVersion("v-r1", "parquet", "r1", 1)
    cache.local.put(f"{TABLES_BY_NAME['customer_trusted'].folder}v-r1/part-0.parquet", b"PAR1")
    with pytest.raises(LakeError, match="incomplete"):
        cache.publish(before, after)
    assert lake.list("") == []


# --- the pipeline on an S3 lake ---------------------------------------------------------------


@pytest.mark.slow
def test_s3_lake_gives_the_folder_lakes_tables_and_reruns_fetch_nothing(  # type: ignore[no-untyped-def]
    spark, s3_bucket: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("STEDI_CACHE", str(tmp_path / "cache"))
    folder = FolderLake(tmp_path / "folder")
    lake = _lake(s3_bucket)
    url = f"s3://{s3_bucket}/lakes/one"
    for target in (folder, lake):
        fleet = generate_fleet(target, customers=20, seed=7, dirty=True, customers_per_file=5)

    expected = run_pipeline(spark, folder.url, OPTIONS)
    first = run_pipeline(spark, url, OPTIONS)
    assert first.balanced and first.record.reconciliation == expected.record.reconciliation
    assert first.tables == expected.tables
    record = _run_record(lake, first.run_id)
    assert record.lake == url and _s3(record)["fetched"] == fleet.files == 14 and _s3(record)["uploaded"] > 0

    # What S3 readers see, through a cache of their own, equals the folder lake, row for row.
    want = _table_rows(spark, open_store(folder.url))
    reader = open_store(url, "query", cache_root=tmp_path / "reader")
    assert _table_rows(spark, reader) == want
    assert want[QUARANTINE_TABLE] and all(want[name] for name in ZONE_TABLES)
    state = PipelineState.from_json(lake.get(STATE_KEY))
    for name, current in state.tables.items():
        assert lake.get(TABLES_BY_NAME[name].folder + "_CURRENT").decode().strip() == current.version

    # Nothing new: nothing fetched, nothing rebuilt or uploaded but the run's record, same rows.
    second = run_pipeline(spark, url, OPTIONS)
    record = _run_record(lake, second.run_id)
    assert _s3(record)["fetched"] == 0 and _s3(record)["reused"] > fleet.files and _s3(record)["uploaded"] == 0
    assert second.record.new_landing_files == {"customer": 0, "accelerometer": 0, "step_trainer": 0}
    assert second.record.unchanged_since == first.run_id
    assert _table_rows(spark, open_store(url, "query", cache_root=tmp_path / "reader")) == want
    versions = {o.key.split("/")[2] for name in ZONE_TABLES for o in lake.list(TABLES_BY_NAME[name].folder)
                if o.key.split("/")[2].startswith("v-")}
    assert versions == {f"v-{first.run_id}"}

    # One new delivery per entity: only those three objects are fetched.
    for target in (folder, lake):
        generate_fleet(target, customers=5, seed=7, customer_offset=20, customers_per_file=5)
    third = run_pipeline(spark, url, OPTIONS)
    record = _run_record(lake, third.run_id)
    assert _s3(record)["fetched"] == 3
    assert third.record.new_landing_files == {"customer": 1, "accelerometer": 1, "step_trainer": 1}
    versions = {o.key.split("/")[2] for name in ZONE_TABLES for o in lake.list(TABLES_BY_NAME[name].folder)
                if o.key.split("/")[2].startswith("v-")}
    # The version each table had before stays on S3 until the next commit (queries planned before
    # this one read it); older ones go (test_runner: the version before that one).
    assert versions == {f"v-{first.run_id}", f"v-{third.run_id}"}
    run_pipeline(spark, folder.url, OPTIONS)
    assert _table_rows(spark, open_store(url, "query", cache_root=tmp_path / "reader")) == _table_rows(
        spark, open_store(folder.url)
    )


class PublishKilled(RuntimeError):
    pass


@pytest.mark.slow
def test_reader_never_sees_a_half_published_run(spark, s3_bucket: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    lake = _lake(s3_bucket)
    url = f"s3://{s3_bucket}/lakes/one"
    generate_fleet(lake, customers=6, seed=2, customers_per_file=3)
    cache = tmp_path / "cache"
    first = PipelineRun(spark, open_store(url, "run", cache_root=cache), OPTIONS).run()
    before = _table_rows(spark, open_store(url, "query", cache_root=tmp_path / "reader"))
    state_before = lake.get(STATE_KEY)

    generate_fleet(lake, customers=3, seed=2, customer_offset=6)
    store = open_store(url, "run", cache_root=cache)
    assert isinstance(store, CachedStore)

    def kill() -> None:
        raise PublishKilled("killed after the new versions were uploaded")

    store.before_switch = kill
    run = PipelineRun(spark, store, OPTIONS)
    with pytest.raises(PublishKilled):
        run.run()
    orphan = f"{TABLES_BY_NAME['customer_trusted'].folder}v-{run.run_id}/"
    assert lake.list(orphan), "the new version was uploaded before the switch"
    assert lake.get(STATE_KEY) == state_before
    assert lake.get(TABLES_BY_NAME["customer_trusted"].folder + "_CURRENT").decode().strip() == f"v-{first.run_id}"
    # Landing is raw (the new delivery is there); every zone still reads as the previous run.
    during = _table_rows(spark, open_store(url, "query", cache_root=tmp_path / "reader"))
    assert len(during["customer_landing"]) == len(before["customer_landing"]) + 3
    for name in [*ZONE_TABLES, QUARANTINE_TABLE]:
        assert during[name] == before[name], name

    # S3 refusing the uploads is a clear error that says readers are unaffected, not a traceback.
    def refuse(self, key: str, data: bytes, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject")

    monkeypatch.setattr(S3Lake, "put", refuse)
    with pytest.raises(LakeError, match="failed before the switch"):
        PipelineRun(spark, open_store(url, "run", cache_root=cache), OPTIONS).run()
    monkeypatch.undo()
    assert lake.get(STATE_KEY) == state_before

    # The next run, from another laptop's (empty) cache, publishes the new rows and removes what
    # the killed one left behind.  The state names landing files by S3 ETag, so that cache too
    # stages only the new delivery.
    after = PipelineRun(spark, open_store(url, "run", cache_root=tmp_path / "laptop-2"), OPTIONS).run()
    assert after.record.new_landing_files == {"customer": 1, "accelerometer": 1, "step_trainer": 1}
    assert not lake.list(orphan) and not lake.list(f"_pipeline/staging/{run.run_id}/")
    now = _table_rows(spark, open_store(url, "query", cache_root=tmp_path / "reader"))
    assert len(now["customer_trusted"]) > len(before["customer_trusted"])


def test_cli_on_s3_with_sse_erase_query_status(spark, s3_bucket: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from stedi_app.cli import app

    monkeypatch.setenv("STEDI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("STEDI_CUSTOMER_KEY_SALT", SALT)
    lake = _lake(s3_bucket)
    url = f"s3://{s3_bucket}/lakes/one"
    generate_fleet(lake, customers=6, seed=4, dirty=True, customers_per_file=3)
    cli = CliRunner()

    done = cli.invoke(app, ["pipeline", "run", "--lake", url, "--sse", "AES256"])
    assert done.exit_code == 0, done.output
    client = boto3.client("s3")
    state = PipelineState.from_json(lake.get(STATE_KEY))
    version = state.tables["machine_learning_curated"].version
    uploaded = [o.key for o in lake.list(TABLES_BY_NAME["machine_learning_curated"].folder + version + "/")]
    for key in [STATE_KEY, uploaded[0], f"{RUNS_FOLDER}{state.last_run}.json"]:
        head = client.head_object(Bucket=s3_bucket, Key=f"lakes/one/{key}")
        assert head.get("ServerSideEncryption") == "AES256", key
    assert cli.invoke(app, ["pipeline", "run", "--lake", url, "--sse", "AES128"]).exit_code != 0
    assert not lake.exists("_pipeline/lock/writer.json")  # the run's writer lease is gone with it

    status = cli.invoke(app, ["pipeline", "status", "--lake", url, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["last_run"] == state.last_run

    found = cli.invoke(app, ["query", "--lake", url, "--json", "SELECT min(email) AS email FROM customer_trusted"])
    assert found.exit_code == 0, found.output
    email = json.loads(found.output.strip().splitlines()[-1])["email"]
    sql = "SELECT count(*) AS n FROM accelerometer_trusted WHERE user = '{}'"
    readings = cli.invoke(app, ["query", "--lake", url, "--json", sql.format(email)])
    assert json.loads(readings.output.strip().splitlines()[-1])["n"] > 0

    # A gateway uploaded the customer's accelerometer files with SSE-S3: rewritten, they keep it.
    theirs = [o.key for o in lake.list("accelerometer/landing/") if email.encode() in lake.get(o.key)]
    assert theirs
    for key in theirs:
        lake.put(key, lake.get(key), sse="AES256")
    erased = cli.invoke(app, ["pipeline", "erase", "--lake", url, "--email", email])
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.output.strip().splitlines()[-1])["files_rewritten"] > 0
    for obj in lake.list(""):
        if obj.key.endswith((".json", ".jsonl")) and not obj.key.startswith("_pipeline/"):
            assert email.encode() not in lake.get(obj.key), obj.key
    rewritten = [o.key for o in lake.list("accelerometer/landing/") if o.key in theirs]
    assert rewritten, "the files still hold other customers' readings"
    for key in rewritten:
        assert client.head_object(Bucket=s3_bucket, Key=f"lakes/one/{key}").get("ServerSideEncryption") == "AES256"
    for obj in lake.list("customer/landing/"):  # these had none, and get none
        assert client.head_object(Bucket=s3_bucket, Key=f"lakes/one/{obj.key}").get("ServerSideEncryption") is None
    gone = cli.invoke(app, ["query", "--lake", url, "--json", sql.format(email)])
    assert gone.exit_code == 0, gone.output
    assert json.loads(gone.output.strip().splitlines()[-1])["n"] == 0
    records = [json.loads(lake.get(o.key)) for o in lake.list(RUNS_FOLDER)]
    assert any(r.get("customer_key") and r.get("rebuilt_by_run") for r in records), "the erase is recorded in S3"
