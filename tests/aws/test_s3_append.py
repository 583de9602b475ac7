"""An appended version published to S3 (moto's server): the files it links from the previous version
are copied inside S3, not uploaded again, and readers of the bucket see the folder lake's rows; so
do they after a withdrawal rewrote the customer's rows."""

from __future__ import annotations

from pathlib import Path

import boto3

from cloud_pipeline.config import PipelineOptions
from cloud_pipeline.runner import run_pipeline
from cloud_pipeline.storage.catalog import table_frames
from cloud_pipeline.storage.s3_cache import open_store
from cloud_pipeline.storage.state import HELD_BACK_PREFIX, STATE_KEY, PipelineState, RunRecord
from stedi.contract import RUNS_FOLDER, TABLES, TABLES_BY_NAME
from stedi.lake import FolderLake, S3Lake
from tests.pipeline.helpers import DAY, SALT, T0, accel, customer, rows, small_lake, step, write_jsonl

OPTIONS = PipelineOptions(salt=SALT)
APPENDED = ("accelerometer_trusted", "step_trainer_trusted", "machine_learning_curated")


def _copy_landing(source: Path, lake: S3Lake) -> None:
    for path in sorted(source.rglob("*.json")):
        key = str(path.relative_to(source))
        if "/landing/" in key and not lake.exists(key):
            lake.put(key, path.read_bytes())


def test_an_appended_version_copies_its_linked_files_inside_s3(spark, s3_bucket: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                               monkeypatch) -> None:
    monkeypatch.setenv("STEDI_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "folder"
    lake = S3Lake(s3_bucket, "lakes/append", client=boto3.client("s3"))
    url = f"s3://{s3_bucket}/lakes/append"
    small_lake(folder)
    _copy_landing(folder, lake)
    first = run_pipeline(spark, url, OPTIONS)
    write_jsonl(folder, "accelerometer/landing/a2.json", [accel("ann", T0 + 5000, x=3.0)])
    write_jsonl(folder, "step_trainer/landing/s2.json", [step("S-ANN", T0 + 5000, 120, seq=3)])
    _copy_landing(folder, lake)
    second = run_pipeline(spark, url, OPTIONS)
    assert {t: second.record.paths[t] for t in APPENDED} == dict.fromkeys(APPENDED, "append")

    s3 = RunRecord.from_json(lake.get(f"{RUNS_FOLDER}{second.run_id}.json")).s3
    assert s3 is not None
    old_files = {name: [o.key.rsplit("/", 1)[1] for o in lake.list(f"{TABLES_BY_NAME[name].folder}v-{first.run_id}/")
                        if not o.key.endswith("_SUCCESS")] for name in APPENDED}
    # Every data file of the three previous versions was copied inside S3, none uploaded again.
    assert s3["copied"] == sum(len(files) for files in old_files.values()) > 0
    for name in APPENDED:
        base = f"{TABLES_BY_NAME[name].folder}v-{second.run_id}/"
        for file in old_files[name]:
            assert lake.get(base + file) == lake.get(f"{TABLES_BY_NAME[name].folder}v-{first.run_id}/{file}")

    # The held-back index the state names was published before the switch; the one before is gone.
    state = PipelineState.from_json(lake.get(STATE_KEY))
    assert [o.key for o in lake.list(HELD_BACK_PREFIX)] == [state.held_back] == [f"{HELD_BACK_PREFIX}{second.run_id}.json"]

    # A reader with its own cache sees what a full run of the folder lake gives.
    run_pipeline(spark, FolderLake(folder).url, PipelineOptions(salt=SALT, full_refresh=True))
    zone = [t.name for t in TABLES if t.zone != "landing"]
    reader = table_frames(spark, open_store(url, "query", cache_root=tmp_path / "reader"))
    local = table_frames(spark, open_store(str(folder)))
    assert {n: rows(reader[n]) for n in zone} == {n: rows(local[n]) for n in zone}

    # Ann withdraws: the rewritten versions reach the bucket, and a reader sees none of her rows.
    write_jsonl(folder, "customer/landing/c2.json", [customer("ann", "S-ANN", None, updated=T0 + DAY)])
    _copy_landing(folder, lake)
    third = run_pipeline(spark, url, OPTIONS)
    assert all(third.record.paths[t].startswith("rewrite: 1 customer's rows (consent withdrawn)") for t in APPENDED)
    run_pipeline(spark, FolderLake(folder).url, PipelineOptions(salt=SALT, full_refresh=True))
    reader = table_frames(spark, open_store(url, "query", cache_root=tmp_path / "reader-after"))
    local = table_frames(spark, open_store(str(folder)))
    assert {n: rows(reader[n]) for n in zone} == {n: rows(local[n]) for n in zone}
    assert not any(r["user"] == "ann@example.com" for r in reader["accelerometer_trusted"].collect())
