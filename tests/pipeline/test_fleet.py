"""The fleet generator writes landing data in the lake contract, shaped like the original."""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from pathlib import Path

from simulator.fleet import generate_fleet
from stedi.contract import TABLES_BY_NAME
from stedi.lake import FolderLake


def _records(lake: Path, entity: str) -> tuple[list[dict], list[bytes]]:
    good, bad = [], []
    for path in sorted((lake / entity / "landing").glob("*.json")):
        for line in path.read_bytes().splitlines():
            try:
                good.append(json.loads(line))
            except ValueError:
                bad.append(line)
    return good, bad


def _contract_ok(table: str, rec: dict) -> bool:
    fields = {f.name: f for f in TABLES_BY_NAME[table].fields}
    types = {"string": str, "date_string": str, "long": int, "double": (int, float)}
    return set(rec) <= set(fields) and all(
        (rec.get(f.name) is None and not f.required) or isinstance(rec.get(f.name), types[f.type])
        for f in fields.values()
    )


def test_clean_fleet_shape(tmp_path: Path) -> None:
    summary = generate_fleet(FolderLake(tmp_path), customers=200, seed=3, customers_per_file=50)
    assert summary.files == 12
    customers, _ = _records(tmp_path, "customer")
    readings, _ = _records(tmp_path, "accelerometer")
    steps, _ = _records(tmp_path, "step_trainer")
    assert all(_contract_ok("customer_landing", r) for r in customers)
    assert all(_contract_ok("accelerometer_landing", r) for r in readings)
    assert all(_contract_ok("step_trainer_landing", r) for r in steps)
    latest = {}
    for r in sorted(customers, key=lambda r: r["lastUpdateDate"]):
        latest[r["email"]] = r
    assert len(latest) == 200 and len(customers) > 200  # some customers have an older record
    consenting = [r for r in latest.values() if r["shareWithResearchAsOfDate"] is not None]
    assert 70 <= len(consenting) <= 130  # about half
    assert 70 <= len(readings) / 200 <= 100 and 20 <= len(steps) / 200 <= 40
    times = defaultdict(set)
    for r in readings:
        times[r["user"]].add(r["timestamp"])
    serial_owner = {r["serialNumber"]: r["email"] for r in latest.values()}
    assert all(s["sensorReadingTime"] in times[serial_owner[s["serialNumber"]]] for s in steps)
    assert set(times) == set(latest)  # every customer has readings
    first_reading = {u: min(ts) for u, ts in times.items()}
    late = [r for r in consenting if r["shareWithResearchAsOfDate"] > first_reading[r["email"]]]
    assert late  # some consent after their first readings
    # Different customers' clocks collide: the timestamp-only join trap is present.
    owners_per_time = defaultdict(set)
    for r in readings:
        owners_per_time[r["timestamp"]].add(r["user"])
    assert max(len(o) for o in owners_per_time.values()) > 1
    again = tmp_path / "again"
    generate_fleet(FolderLake(again), customers=200, seed=3, customers_per_file=50)
    assert (again / "step_trainer/landing").joinpath("fleet-s3-00000050.json").read_bytes() == (
        tmp_path / "step_trainer/landing/fleet-s3-00000050.json"
    ).read_bytes()


def test_dirty_fleet_has_each_kind_of_bad_data(tmp_path: Path) -> None:
    summary = generate_fleet(FolderLake(tmp_path), customers=20, seed=1, dirty=True)
    readings, bad_readings = _records(tmp_path, "accelerometer")
    steps, _ = _records(tmp_path, "step_trainer")
    _, bad_customers = _records(tmp_path, "customer")
    assert bad_customers and bad_readings
    assert any(isinstance(r.get("timestamp"), str) for r in readings)  # wrong type
    assert any(r["user"].startswith("ghost.") for r in readings)  # unknown user
    assert any(b"\xe9" in line for line in bad_readings)  # not UTF-8
    keys = [json.dumps(r, sort_keys=True) for r in readings]
    assert len(keys) > len(set(keys))  # duplicates
    assert any("sensorReadingTime" not in r for r in steps)  # missing required
    assert summary.dirty["accelerometer.duplicate"] == 3
    # One gzip file cut short: its complete lines are readable, then the stream just stops.
    (cut,) = (tmp_path / "step_trainer" / "landing").glob("*.json.gz")
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    *complete, partial = stream.decompress(cut.read_bytes()).split(b"\n")
    assert not stream.eof and len(complete) == 2 and partial
    assert all(json.loads(line)["serialNumber"].startswith("0-cut-") for line in complete)


def test_dirty_fleet_reconciles_through_the_pipeline(spark, tmp_path: Path) -> None:
    from cloud_pipeline.config import PipelineOptions
    from cloud_pipeline.runner import run_pipeline

    summary = generate_fleet(FolderLake(tmp_path), customers=30, seed=5, dirty=True)
    result = run_pipeline(spark, str(tmp_path), PipelineOptions(salt="s"))
    recon = result.record.reconciliation
    assert result.balanced
    assert recon["customer_landing"]["landing"] == summary.customer_records + summary.dirty["customer.truncated"]
    assert recon["customer_landing"]["quarantined_by_rule"]["malformed_json"] == summary.dirty["customer.truncated"]
    accel = recon["accelerometer_landing"]
    assert accel["quarantined_by_rule"] == {
        "damaged_file": 0,
        "non_utf8": summary.dirty["accelerometer.non_utf8"],
        "malformed_json": summary.dirty["accelerometer.truncated"],
        "wrong_type": summary.dirty["accelerometer.wrong_type"],
        "missing_required": 0,
    }
    assert accel["excluded_unknown_customer"] == summary.dirty["accelerometer.unknown_user"]
    steps = recon["step_trainer_landing"]
    assert steps["quarantined_by_rule"]["missing_required"] == summary.dirty["step_trainer.missing_required"]
    assert steps["quarantined_by_rule"]["damaged_file"] == summary.dirty["step_trainer.damaged_file"] == 1
    assert steps["excluded_unknown_customer"] == summary.dirty["step_trainer.unknown_serial"]
    # Every clean step reading of a curated customer finds its own accelerometer reading.
    assert result.tables["machine_learning_curated"] == result.tables["step_trainer_trusted"]
