"""The pipeline on the original STEDI data, as users hold it: the acceptance check of real data.

The original data set (956 customers, 81,273 accelerometer and 28,680 step-trainer lines) was
published in two forms: the first with phone numbers as JSON numbers and consent dates as floats
(``1655564376361.0``), today's with strings and integers, and 53 three-digit birth years in both.
Point this script at one or more copies of the data's ``starter`` folder (``customer/landing``,
``accelerometer/landing``, ``step_trainer/landing``; it is not in this repository) and it runs the
five jobs on each, in a folder lake and in an S3 lake (moto on loopback), with and without garbage
lines added (duplicates, truncated JSON, wrong types, non-UTF-8, unknown users), and prints each
table's rows and each landing table's reconciliation, coercions and warnings.

Expected, for both forms and every variant (``--expect`` checks it and exits 1 when a count
differs): customer_trusted 482, accelerometer_trusted 40,981, customer_curated 482,
step_trainer_trusted 14,460, machine_learning_curated 14,460.

Run: .venv/bin/python benchmarks/original_data.py DIR [DIR ...] [--no-s3] [--expect]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

EXPECTED = {
    "customer_trusted": 482,
    "accelerometer_trusted": 40_981,
    "customer_curated": 482,
    "step_trainer_trusted": 14_460,
    "machine_learning_curated": 14_460,
}
ENTITIES = ("customer", "accelerometer", "step_trainer")

#: Lines real landing zones also hold; none may move a trusted or curated count.
GARBAGE = {
    "customer": [
        '{"customerName":"Trunc',
        '{"customerName":"X","email":"x@x","phone":true,"birthDay":"1990-01-01","serialNumber":"S",'
        '"registrationDate":1,"lastUpdateDate":"soon","shareWithResearchAsOfDate":1}',
    ],
    "accelerometer": [
        '{"user":"ghost@nowhere.example","timestamp":1655564376361,"x":0.1,"y":0.2,"z":0.3}',
        '{"user":"x@x","timestamp":"t1655564376361","x":0.1,"y":0.2,"z":0.3}',
        '{"user":"x@x","timestamp":1655564376361,"x":0.1,',
    ],
    "step_trainer": [
        '{"sensorReadingTime":1655564376361,"serialNumber":"0-unknown","distanceFromObject":5}',
        '{"serialNumber":"missing-time","distanceFromObject":5}',
    ],
}


def copy_lake(source: Path, lake: Path, garbage: bool) -> None:
    """The data's landing files as a lake; with ``garbage``, a file of bad lines and a copy of the
    first file of each entity (every line an exact duplicate) beside them."""
    for entity in ENTITIES:
        folder = next((p for p in (source / entity / "landing", source / entity) if p.is_dir()), None)
        if folder is None:
            raise SystemExit(f"no {entity}/landing folder in {source}")
        files = sorted(folder.glob("*.json"))
        target = lake / entity / "landing"
        target.mkdir(parents=True)
        for f in files:
            shutil.copy(f, target / f.name)
        if garbage:
            shutil.copy(files[0], target / f"duplicate-{files[0].name}")
            bad = "\n".join(GARBAGE[entity]).encode() + b"\n" + b'{"user":"Jos\xe9","timestamp":1}\n'
            (target / "garbage.json").write_bytes(bad)


def run_one(spark, url: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    from cloud_pipeline.config import PipelineOptions
    from cloud_pipeline.runner import PipelineRun
    from cloud_pipeline.storage.s3_cache import open_store

    started = time.monotonic()
    result = PipelineRun(spark, open_store(url), PipelineOptions()).run()
    return {"seconds": round(time.monotonic() - started, 1), "tables": result.tables,
            "reconciliation": result.record.reconciliation}


def upload(folder: Path, bucket: str, prefix: str) -> str:
    from stedi.lake import S3Lake

    lake = S3Lake(bucket, prefix)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            lake.put(str(path.relative_to(folder)), path.read_bytes())
    return lake.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="+", type=Path, help="a copy of the data's starter folder")
    parser.add_argument("--no-s3", action="store_true", help="folder lakes only (no moto S3 server)")
    parser.add_argument("--expect", action="store_true", help="exit 1 when a table's rows differ from the expected")
    args = parser.parse_args()

    from cloud_pipeline.session import local_session
    from stedi.local_servers import start_moto

    spark = local_session("stedi-original-data")
    spark.sparkContext.setLogLevel("ERROR")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if not args.no_s3:
            server = start_moto(Path(tmp) / "moto.log")
            os.environ.update({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1",
                               "AWS_ENDPOINT_URL": server.url})
            import boto3

            boto3.client("s3").create_bucket(Bucket="original")
        try:
            for n, source in enumerate(args.data):
                for garbage in (False, True):
                    folder = Path(tmp) / f"lake-{n}-{int(garbage)}"
                    copy_lake(source, folder, garbage)
                    targets = [("folder", str(folder))]
                    if server is not None:
                        targets.append(("s3", upload(folder, "original", f"lake-{n}-{int(garbage)}")))
                    for kind, url in targets:
                        figures = run_one(spark, url)
                        wrong = {t: figures["tables"].get(t) for t, want in EXPECTED.items()  # type: ignore[attr-defined]
                                 if figures["tables"].get(t) != want}  # type: ignore[attr-defined]
                        failures += bool(wrong)
                        label = f"{source} ({kind} lake{', garbage added' if garbage else ''})"
                        print(json.dumps({"data": label, **figures, "differs_from_expected": wrong}, indent=1))
        finally:
            if server is not None:
                server.stop()
            spark.stop()
    print("all counts as expected" if not failures else f"{failures} run(s) differ from the expected counts")
    if args.expect and failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
