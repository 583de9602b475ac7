"""Cluster mode for S3 lakes (Spark reads S3 itself; small files through boto3), tested without
Spark-on-S3 (no S3A jars here): the path mapping, the key recovered from Spark's file URIs, the
folder checks, the commit and cleanup on moto, and the choice between cluster mode and cache."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from cloud_pipeline.aws.glue.entry import run_job
from cloud_pipeline.config import PipelineOptions
from cloud_pipeline.storage.s3_cache import CachedStore
from cloud_pipeline.storage.s3_cluster import (
    ClusterStore,
    open_for_spark,
    spark_filesystem,
    spark_s3_scheme,
    split_s3_url,
)
from cloud_pipeline.storage.state import BuildOptions, PipelineState, RunRecord, TableVersion
from cloud_pipeline.storage.store import STATE_KEY, PipelineStore
from simulator.fleet import generate_fleet
from stedi.contract import TABLES_BY_NAME
from stedi.lake import FolderLake, S3Lake

TRUSTED = TABLES_BY_NAME["customer_trusted"].folder


def _lake(bucket: str, prefix: str = "lakes/x") -> S3Lake:
    return S3Lake(bucket, prefix, client=boto3.client("s3"))


def test_paths_and_source_keys(spark) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    assert split_s3_url("s3a://b/lakes/x/") == ("s3a", "b", "lakes/x")
    assert split_s3_url("/tmp/lake") is None
    store = ClusterStore(S3Lake("my.bucket", "lakes/x", client=object()), "s3a")
    assert store.path("customer/landing/a.json") == "s3a://my.bucket/lakes/x/customer/landing/a.json"
    assert store.staging_path("customer", "r1") == "s3a://my.bucket/lakes/x/_pipeline/staging/r1/entity=customer"
    root = ClusterStore(S3Lake("b", "", client=object()), "s3")
    assert root.path("k.json") == "s3://b/k.json"
    with pytest.raises(ValueError):
        ClusterStore(S3Lake("b", "", client=object()), "gs")

    # Spark reports the file it read as a URI, possibly under another S3 scheme than given.
    uris = ["s3a://my.bucket/lakes/x/customer/landing/a b+c.json", "s3://my.bucket/lakes/x/step_trainer/landing/s.json",
            "s3a://myXbucket/lakes/x/customer/landing/not-ours.json"]
    got = [r[0] for r in spark.createDataFrame([(u,) for u in uris], "u string")
           .select(F.regexp_replace("u", store.source_pattern(), "")).collect()]
    assert got[:2] == ["customer/landing/a b+c.json", "step_trainer/landing/s.json"]
    assert got[2] == uris[2], "the bucket name is matched literally ('.' is not a wildcard)"


def test_this_spark_has_no_s3_filesystem_so_s3_lakes_use_the_cache(spark, s3_bucket: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                   monkeypatch) -> None:
    monkeypatch.setenv("STEDI_CACHE", str(tmp_path / "cache"))
    assert spark_filesystem(spark, "file") is not None, "the probe finds a file system Spark has"
    assert spark_s3_scheme(spark) is None
    assert isinstance(open_for_spark(spark, f"s3a://{s3_bucket}/lakes/x"), CachedStore)
    assert type(open_for_spark(spark, str(tmp_path / "folder"))) is PipelineStore

    # So a Glue script given an s3a:// lake on a laptop runs through the cache and publishes.
    lake = _lake(s3_bucket)
    generate_fleet(lake, customers=4, seed=5, customers_per_file=4)
    result = run_job(spark, f"s3a://{s3_bucket}/lakes/x", PipelineOptions(salt="s", jobs=("customer_landing_to_trusted",)))
    state = PipelineState.from_json(lake.get(STATE_KEY))
    assert state.last_run == result.run_id and list(state.tables) == ["customer_trusted"]
    assert lake.list(f"{TRUSTED}{state.tables['customer_trusted'].version}/")


def test_cluster_commit_switches_then_cleans_up_on_s3(s3_bucket: str) -> None:
    lake = _lake(s3_bucket)
    store = ClusterStore(lake, "s3a")
    for key in [f"{TRUSTED}v-r1/part-0.parquet", f"{TRUSTED}v-r2/part-0.parquet", f"{TRUSTED}v-r3/part-0.parquet",
                "_pipeline/staging/r1/entity=customer/part-0.parquet",
                "_pipeline/staging/r2/entity=customer/part-0.parquet",
                "_pipeline/staging/r2/entity=accelerometer/part-0.parquet",
                "_pipeline/quarantine/r1/table=customer_landing/part-0.parquet"]:
        lake.put(key, b"PAR1")
    assert store.folder_exists(store.staging_path("customer", "r2"))
    assert not store.folder_exists(store.staging_path("step_trainer", "r2"))
    assert not store.folder_exists(store.path("_pipeline/staging/r"))  # a prefix of a name is no folder

    state = PipelineState()
    state.tables["customer_trusted"] = TableVersion("v-r2", "parquet", "r2", 1)
    state.staging["customer"] = ["r1", "r2"]  # the accelerometer re-staged since r2: its part goes
    state.last_run = "r2"
    store.commit(state)

    assert json.loads(lake.get(STATE_KEY))["last_run"] == "r2"
    assert lake.get(f"{TRUSTED}_CURRENT") == b"v-r2\n"
    assert store.load_state() == state
    left = {o.key for o in lake.list("")}
    assert left == {STATE_KEY, f"{TRUSTED}_CURRENT", f"{TRUSTED}v-r2/part-0.parquet",
                    "_pipeline/staging/r1/entity=customer/part-0.parquet",
                    "_pipeline/staging/r2/entity=customer/part-0.parquet"}
    record = RunRecord("r2", store.base, BuildOptions("all", 0, "parquet"), False, ("customer_landing_to_trusted",),
                       {"customer": 1}, {}, {"customer_trusted": 1}, 0.5)
    store.save_run(record)
    assert store.runs() == [record]


def test_folder_store_keeps_its_hooks(tmp_path: Path) -> None:
    store = PipelineStore(FolderLake(tmp_path))
    (tmp_path / "_pipeline/staging/r1/entity=customer").mkdir(parents=True)
    assert store.folder_exists(store.staging_path("customer", "r1"))
    assert not store.folder_exists(store.staging_path("customer", "r2"))
    assert store.source_pattern().startswith("^file:")
