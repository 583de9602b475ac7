"""Pipeline bugs the landing fuzzer found, one minimal test each, kept as regression tests now
that they are fixed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from cloud_pipeline.config import PipelineOptions
from cloud_pipeline.runner import run_pipeline
from cloud_pipeline.transforms.landing import accepted, parse_landing, quarantined
from stedi.contract import ACCELEROMETER_LANDING

GOOD = {"user": "ann@example.com", "timestamp": 1_700_000_000_000, "x": 0.5, "y": 0.25, "z": -1.0}


def _staged(spark: Any, lines: list[bytes]) -> Any:
    from pyspark.sql.types import BinaryType, StructField, StructType

    df = spark.createDataFrame([(v,) for v in lines], StructType([StructField("b", BinaryType())]))
    raw = df.selectExpr("cast(b as string) as value", "'accelerometer/landing/f.jsonl' as _source")
    return parse_landing(raw, ACCELEROMETER_LANDING, "run")


def test_non_finite_numbers_are_quarantined(spark: Any) -> None:
    lines = [b'{"user":"ann@example.com","timestamp":1,"x":NaN,"y":0,"z":1}',
             b'{"user":"ann@example.com","timestamp":2,"x":"NaN","y":0,"z":1}',
             b'{"user":"ann@example.com","timestamp":3,"x":Infinity,"y":0,"z":1}',
             b'{"user":"ann@example.com","timestamp":4,"x":"-Infinity","y":0,"z":1}',
             b'{"user":"ann@example.com","timestamp":5,"x":1e400,"y":0,"z":1}']
    staged = _staged(spark, lines)
    assert accepted(staged, ACCELEROMETER_LANDING).count() == 0
    rules = {r.line.decode() if isinstance(r.line, bytes) else r.line: r.rule
             for r in quarantined(staged, ACCELEROMETER_LANDING).collect()}
    # Bare NaN / Infinity tokens are not JSON at all; the strings and the overflow are wrong types.
    assert rules == {line.decode(): ("malformed_json" if b":NaN" in line or b":Infinity" in line else "wrong_type")
                     for line in lines}


def test_a_line_with_more_than_one_json_value_is_quarantined(spark: Any) -> None:
    one = json.dumps(GOOD).encode()
    bad = [one + one.replace(b"0.5", b"0.75"), one + b" trailing", one + b"\f",
           # As an array element, "[line]" closes early here: the check must not be fooled.
           one + b"] " + one, one[:-1] + b', "extra": [{"q": 1}]}] ' + one]
    nested = one[:-1] + b', "extra": {"q": [1, {"r": "}]"}]}}'  # valid: one object, nested values
    staged = _staged(spark, bad + [nested])
    assert [r.x for r in accepted(staged, ACCELEROMETER_LANDING).collect()] == [0.5]
    rows = quarantined(staged, ACCELEROMETER_LANDING).collect()
    assert sorted(r.line for r in rows) == sorted(b.decode() for b in bad)
    assert {r.rule for r in rows} == {"malformed_json"}


def test_single_quoted_pseudo_json_is_quarantined(spark: Any) -> None:
    staged = _staged(spark, [b"{'user':'ann@example.com','timestamp':1,'x':0.5,'y':0.25,'z':-1.0}"])
    assert accepted(staged, ACCELEROMETER_LANDING).count() == 0


@pytest.mark.slow
def test_truncated_gzip_file_is_quarantined_not_fatal(spark: Any, lake_dir: Path) -> None:
    folder = lake_dir / "accelerometer" / "landing"
    folder.mkdir(parents=True)
    (folder / "good.jsonl").write_text(json.dumps(GOOD) + "\n")
    records = [json.dumps(dict(GOOD, timestamp=1_700_000_000_000 + 37 * i, x=i / 7)) for i in range(3000)]
    packed = gzip.compress(("\n".join(records) + "\n").encode())
    (folder / "cut.json.gz").write_bytes(packed[: len(packed) // 2])
    (folder / "not-gzip.json.gz").write_bytes(b"plain text under a .gz name\n")

    result = run_pipeline(spark, str(lake_dir), PipelineOptions(salt="s"))

    recon = result.record.reconciliation["accelerometer_landing"]
    assert recon["balanced"]
    # Each damaged file is one quarantine record; the complete lines before the cut still count.
    assert recon["quarantined_by_rule"]["damaged_file"] == 2
    recovered = recon["landing"] - 1 - 2
    assert 0 < recovered < len(records)
    spark.catalog.clearCache()
    from cloud_pipeline.storage.s3_cache import open_store

    store = open_store(str(lake_dir))
    rows = store.read_quarantine(spark, store.load_state()).collect()
    assert {(r.rule, r.source_file) for r in rows} == {
        ("damaged_file", "accelerometer/landing/cut.json.gz"),
        ("damaged_file", "accelerometer/landing/not-gzip.json.gz"),
    }
    reasons = {r.source_file: r.reason for r in rows}
    assert "truncated" in reasons["accelerometer/landing/cut.json.gz"]
    assert "corrupt" in reasons["accelerometer/landing/not-gzip.json.gz"]
    # The cut record keeps the text of the line the truncation split, a prefix of a real record.
    cut_line = next(r.line for r in rows if r.source_file.endswith("cut.json.gz"))
    assert records[recovered].startswith(cut_line)
    # `stedi query` over the landing table shows what can be read instead of failing.
    assert store.read_landing_table(spark, "accelerometer").count() >= 1
