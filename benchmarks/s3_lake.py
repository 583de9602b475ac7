"""S3 lake figures from a laptop, against moto's S3 server on loopback (not real S3: no network
latency, so the figures show the work the cache saves, not AWS timings):

- a first run on a fleet in a bucket: objects and bytes fetched, uploaded, seconds;
- a re-run with nothing new (everything reused by ETag);
- a run after one new delivery per entity;
- a run from an empty cache (another laptop), and ``stedi query``'s sync of a fresh cache.

Run: .venv/bin/python benchmarks/s3_lake.py [--customers 200]
Prints the figures; asserts nothing (tests/aws/test_s3_lake.py checks behaviour).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.parts import AWS_TEST_ENV, start_moto  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200, help="customers in the fleet")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_moto(Path(tmp) / "moto.log")
        os.environ.update(AWS_TEST_ENV)
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{server.port}"
        try:
            measure(Path(tmp), args.customers)
        finally:
            server.stop()


def measure(tmp: Path, customers: int) -> None:
    import boto3

    from cloud_pipeline.config import PipelineOptions
    from cloud_pipeline.runner import PipelineRun
    from cloud_pipeline.session import local_session
    from cloud_pipeline.storage.s3_cache import open_store
    from simulator.fleet import generate_fleet
    from stedi.contract import RUNS_FOLDER
    from stedi.lake import S3Lake

    boto3.client("s3").create_bucket(Bucket="bench")
    lake = S3Lake("bench", "lake")
    url = "s3://bench/lake"
    fleet = generate_fleet(lake, customers=customers, seed=1, dirty=True)
    size = sum(o.size for o in lake.list(""))
    print(f"fleet: {customers} customers, {fleet.files} landing objects, {size:,} bytes in {url} (moto)")
    spark = local_session("stedi-bench-s3", quick_start=True)
    spark.sparkContext.setLogLevel("ERROR")
    options = PipelineOptions(salt="bench")
    try:
        def run(label: str, cache: Path) -> None:
            started = time.monotonic()
            store = open_store(url, "run", cache_root=cache)
            synced = time.monotonic() - started
            result = PipelineRun(spark, store, options).run()
            total = time.monotonic() - started
            s3 = json.loads(lake.get(f"{RUNS_FOLDER}{result.run_id}.json"))["s3"]
            print(f"{label:34} sync {synced:5.2f}s  run+publish {total - synced:5.2f}s | fetched {s3['fetched']:4} "
                  f"({s3['bytes_down']:>10,} B) reused {s3['reused']:4} removed {s3['removed']:3} | uploaded "
                  f"{s3['uploaded']:4} ({s3['bytes_up']:>10,} B) deleted {s3['deleted_remote']:4}")

        cache = tmp / "cache"
        run("first run", cache)
        run("re-run, nothing new", cache)
        generate_fleet(lake, customers=max(1, customers // 10), seed=1, customer_offset=customers)
        run("after one delivery per entity", cache)
        run("another laptop (empty cache)", tmp / "cache-2")
        started = time.monotonic()
        reader = open_store(url, "query", cache_root=tmp / "reader")
        assert reader is not None
        print(f"{'query sync, empty cache':34} sync {time.monotonic() - started:5.2f}s")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
