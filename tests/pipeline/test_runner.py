"""Whole runs on a folder lake: reconciliation, idempotence, atomicity, incremental = full, erase."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from cloud_pipeline.config import PipelineOptions
from cloud_pipeline.runner import run_pipeline
from cloud_pipeline.storage.catalog import table_frames
from cloud_pipeline.storage.s3_cache import open_store
from cloud_pipeline.storage.store import STATE_KEY
from stedi.contract import TABLES, TABLES_BY_NAME
from tests.pipeline.helpers import DAY, SALT, T0, accel, customer, rows, small_lake, step, write_jsonl

OPTIONS = PipelineOptions(salt=SALT)
ZONE_TABLES = [t.name for t in TABLES if t.zone != "landing"]


def _snapshot(spark, lake: Path) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    frames = table_frames(spark, open_store(str(lake)))
    return {name: rows(frames[name]) for name in [*ZONE_TABLES, "quarantine"] if name != "quarantine"} | {
        "quarantine": rows(frames["quarantine"], "table", "rule", "reason", "source_file", "line")
    }


def test_run_reconciles_and_is_idempotent(spark, lake_dir: Path) -> None:
    small_lake(lake_dir)
    first = run_pipeline(spark, str(lake_dir), OPTIONS)
    recon = first.record.reconciliation
    assert recon["customer_landing"] == {
        "landing": 6, "trusted": 1, "superseded": 2, "excluded_no_consent": 2, "quarantined": 1,
        "quarantined_by_rule": {"damaged_file": 0, "non_utf8": 0, "malformed_json": 1, "wrong_type": 0, "missing_required": 0},
        "coerced": 0, "with_warnings": 0, "balanced": True,
    }
    assert {k: v for k, v in recon["accelerometer_landing"].items() if k != "quarantined_by_rule"} == {
        "landing": 6, "trusted": 2, "duplicate": 1, "excluded_no_consent": 2, "quarantined": 1,
        "coerced": 0, "with_warnings": 0, "balanced": True,
    }
    assert recon["step_trainer_landing"]["excluded_unknown_customer"] == 1
    assert recon["step_trainer_landing"]["quarantined_by_rule"]["missing_required"] == 1
    assert first.balanced
    assert first.tables == {
        "customer_trusted": 1, "accelerometer_trusted": 2, "customer_curated": 1,
        "step_trainer_trusted": 2, "machine_learning_curated": 2,
    }
    stored = json.loads((lake_dir / "_pipeline/runs" / f"{first.run_id}.json").read_text())
    assert stored["reconciliation"] == recon

    before = _snapshot(spark, lake_dir)
    second = run_pipeline(spark, str(lake_dir), OPTIONS)
    assert second.record.new_landing_files == {"customer": 0, "accelerometer": 0, "step_trainer": 0}
    assert _snapshot(spark, lake_dir) == before
    # Old versions are gone: exactly one version folder per table, named by the pointer.
    for name in ZONE_TABLES:
        folder = lake_dir / TABLES_BY_NAME[name].folder
        versions = [p.name for p in folder.iterdir() if p.name.startswith("v-")]
        assert versions == [(folder / "_CURRENT").read_text().strip()]
    emails = {r[1] for r in before["customer_trusted"]}
    assert emails == {"ann@example.com"}


def test_a_run_with_nothing_new_leaves_the_tables_and_says_so(spark, lake_dir: Path) -> None:
    small_lake(lake_dir)
    first = run_pipeline(spark, str(lake_dir), OPTIONS)
    before, state = _snapshot(spark, lake_dir), (lake_dir / STATE_KEY).read_text()
    assert SALT not in state  # only its fingerprint is kept

    again = run_pipeline(spark, str(lake_dir), OPTIONS)
    assert again.record.unchanged_since == first.run_id
    assert again.record.reconciliation == first.record.reconciliation and again.tables == first.tables
    assert (lake_dir / STATE_KEY).read_text() == state  # nothing written, nothing committed
    assert (lake_dir / "_pipeline/runs" / f"{again.run_id}.json").exists()

    def rebuilds(options: PipelineOptions) -> bool:
        return run_pipeline(spark, str(lake_dir), options).record.unchanged_since is None

    # Whatever would change a table makes the next run rebuild them.
    assert rebuilds(PipelineOptions(salt="another salt"))
    assert rebuilds(OPTIONS)
    assert not rebuilds(OPTIONS)
    assert rebuilds(PipelineOptions(salt=SALT, consent="as-of"))
    assert rebuilds(PipelineOptions(salt=SALT, format="json"))
    # A run of some jobs rebuilds only their tables: the others keep what they were built with.
    assert rebuilds(PipelineOptions(salt="another salt", format="json", jobs=("customer_landing_to_trusted",)))
    assert rebuilds(PipelineOptions(salt="another salt", format="json"))  # the ML table has the old salt
    assert rebuilds(PipelineOptions(salt=SALT, full_refresh=True))
    assert _snapshot(spark, lake_dir) == before  # rebuilt from scratch: the same rows
    write_jsonl(lake_dir, "customer/landing/c2.json", [customer("bob", "S-BOB", T0)])
    assert rebuilds(OPTIONS)
    assert not rebuilds(OPTIONS)


def test_killed_run_leaves_previous_zone_intact(spark, lake_dir: Path) -> None:
    small_lake(lake_dir)
    run_pipeline(spark, str(lake_dir), OPTIONS)
    before = _snapshot(spark, lake_dir)
    state_before = (lake_dir / STATE_KEY).read_text()
    # New data arrives, then the run dies after writing two of five tables.
    write_jsonl(lake_dir, "customer/landing/c2.json", [customer("bob", "S-BOB", T0)])

    def die(job: str) -> None:
        if job == "accelerometer_landing_to_trusted":
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        run_pipeline(spark, str(lake_dir), OPTIONS, after_job=die)
    assert (lake_dir / STATE_KEY).read_text() == state_before
    assert _snapshot(spark, lake_dir) == before
    # The next run cleans the orphans and picks the new file up.
    after = run_pipeline(spark, str(lake_dir), OPTIONS)
    assert after.record.new_landing_files["customer"] == 1
    assert after.tables["customer_trusted"] == 2
    staging = [p.name for p in (lake_dir / "_pipeline/staging").iterdir()]
    assert sorted(staging) == sorted(set(sum(open_store(str(lake_dir)).load_state().staging.values(), [])))


def test_incremental_equals_full_and_withdrawal_removes_customer(spark, tmp_path: Path) -> None:
    lake = tmp_path / "inc"
    small_lake(lake)
    run_pipeline(spark, str(lake), OPTIONS)
    # A delivery of new files: bob consents, ann withdraws, new readings, a bad line.
    write_jsonl(lake, "customer/landing/c2.json", [
        customer("bob", "S-BOB", T0, updated=T0 + DAY), customer("ann", "S-ANN", None, updated=T0 + 2 * DAY),
    ])
    write_jsonl(lake, "accelerometer/landing/a2.json", [accel("bob", T0 + 5000, x=5.0), accel("ann", T0 + 5000), "{"])
    write_jsonl(lake, "step_trainer/landing/s2.json", [step("S-BOB", T0 + 5000, 55), step("S-ANN", T0 + 5000, 66)])
    incremental = run_pipeline(spark, str(lake), OPTIONS)
    assert incremental.record.new_landing_files == {"customer": 1, "accelerometer": 1, "step_trainer": 1}
    assert incremental.balanced

    full_lake = tmp_path / "full"
    shutil.copytree(lake, full_lake, ignore=shutil.ignore_patterns("_pipeline", "trusted", "curated"))
    run_pipeline(spark, str(full_lake), PipelineOptions(salt=SALT, full_refresh=True))
    inc, full = _snapshot(spark, lake), _snapshot(spark, full_lake)
    assert {k: v for k, v in inc.items() if k != "quarantine"} == {k: v for k, v in full.items() if k != "quarantine"}
    assert inc["quarantine"] == full["quarantine"]
    trusted_emails = {r[1] for r in inc["customer_trusted"]}
    assert trusted_emails == {"bob@example.com"}  # ann withdrew on the later record
    assert {r[0] for r in inc["accelerometer_trusted"]} == {"bob@example.com"}
    assert {r[1] for r in inc["step_trainer_trusted"]} == {"S-BOB"}


def _versions(lake: Path) -> dict[str, set[str]]:
    return {name: {p.name for p in (lake / TABLES_BY_NAME[name].folder).iterdir() if p.name.startswith("v-")}
            for name in ZONE_TABLES}


def test_erase_removes_customer_from_every_zone(spark, lake_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from stedi_app.cli import app

    monkeypatch.setenv("STEDI_CUSTOMER_KEY_SALT", SALT)
    small_lake(lake_dir)
    run_pipeline(spark, str(lake_dir), OPTIONS)
    write_jsonl(lake_dir, "accelerometer/landing/a3.json", ['{"user": "ann@example.com", "timestamp": ', accel("bob", 1)])
    run_pipeline(spark, str(lake_dir), OPTIONS)
    # Two versions of each table rebuilt: the previous one (with ann) is kept until the next commit.
    assert len(_versions(lake_dir)["accelerometer_trusted"]) == 2
    erased = CliRunner().invoke(app, ["pipeline", "erase", "--lake", str(lake_dir), "--email", "ann@example.com"])
    assert erased.exit_code == 0, erased.output
    report = json.loads(erased.stdout.strip().splitlines()[-1])
    # ann's 2 records, 3 readings + 1 bad line + 1 truncated line naming her; 2 steps + 1 bad line of her serial
    assert report["lines_removed"] == {"customer": 2, "accelerometer": 5, "step_trainer": 3}
    # The erasure's rebuild keeps no earlier version: every one of them held ann.
    state = open_store(str(lake_dir)).load_state()
    assert _versions(lake_dir) == {name: {t.version} for name, t in state.tables.items()}
    assert all(t.previous is None for t in state.tables.values())
    for path in lake_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl"):
            assert b"ann@example.com" not in path.read_bytes(), path
    frames = table_frames(spark, open_store(str(lake_dir)))
    for name, df in frames.items():
        text = " ".join(str(r) for r in df.collect())
        assert "ann@example.com" not in text and "S-ANN" not in text, name
    assert frames["accelerometer_landing"].count() == 3  # bob's two lines and cat's stay


def test_a_commit_keeps_the_version_it_replaced_until_the_next_one(spark, lake_dir: Path) -> None:
    # An Athena query planned before a commit, or a catalog not yet moved, reads the version before.
    small_lake(lake_dir)
    runs = [run_pipeline(spark, str(lake_dir), OPTIONS)]
    for n in (2, 3):
        write_jsonl(lake_dir, f"customer/landing/c{n}.json", [customer(f"new{n}", f"S-{n}", T0)])
        runs.append(run_pipeline(spark, str(lake_dir), OPTIONS))
        state = open_store(str(lake_dir)).load_state()
        for name in ZONE_TABLES:
            assert state.tables[name].previous == f"v-{runs[-2].run_id}"
            # The one replaced stays whole and readable; the one before it (N-2) is gone.
            assert _versions(lake_dir)[name] == {f"v-{runs[-1].run_id}", f"v-{runs[-2].run_id}"}, name
        kept = spark.read.parquet(str(lake_dir / TABLES_BY_NAME["customer_trusted"].folder / f"v-{runs[-2].run_id}"))
        assert kept.count() == runs[-2].tables["customer_trusted"]
    locations = state.table_locations()
    assert locations["customer_trusted"].key == f"{TABLES_BY_NAME['customer_trusted'].folder}v-{runs[-1].run_id}/"
    assert set(locations) == set(ZONE_TABLES)


def test_json_format_and_query_cli(spark, lake_dir: Path) -> None:
    from typer.testing import CliRunner

    from stedi_app.cli import app

    small_lake(lake_dir)
    result = CliRunner().invoke(app, ["pipeline", "run", "--lake", str(lake_dir), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "machine_learning_curated" in result.output and "balanced" in result.output
    ml_files = list((lake_dir / "step_trainer/curated").rglob("part-*.json"))
    assert ml_files and all(json.loads(line)["customerKey"] for f in ml_files for line in f.read_text().splitlines())
    sql = "SELECT serialNumber, count(*) AS n FROM machine_learning_curated GROUP BY serialNumber"
    out = CliRunner().invoke(app, ["query", "--lake", str(lake_dir), sql, "--json"])
    assert out.exit_code == 0, out.output
    assert [json.loads(line) for line in out.stdout.splitlines()] == [{"serialNumber": "S-ANN", "n": 2}]
    out = CliRunner().invoke(app, ["query", "--lake", str(lake_dir), "--json",
                                   "SELECT rule, count(*) AS n FROM quarantine GROUP BY rule ORDER BY rule"])
    assert [json.loads(line) for line in out.stdout.splitlines()] == [
        {"rule": "malformed_json", "n": 1}, {"rule": "missing_required", "n": 1}, {"rule": "wrong_type", "n": 1},
    ]
    bad = CliRunner().invoke(app, ["query", "--lake", str(lake_dir), "SELECT * FROM no_such_table"])
    assert bad.exit_code != 0 and "there is no table no_such_table" in str(bad.exception)
    status = CliRunner().invoke(app, ["pipeline", "status", "--lake", str(lake_dir), "--json"])
    state = json.loads(status.stdout)
    assert state["tables"]["machine_learning_curated"]["format"] == "json"
    assert state["reconciliation"]["customer_landing"]["balanced"] is True


def test_selected_jobs_reuse_the_current_tables(spark, lake_dir: Path) -> None:
    small_lake(lake_dir)
    first = run_pipeline(spark, str(lake_dir), OPTIONS)
    state = open_store(str(lake_dir)).load_state()
    only_ml = PipelineOptions(salt=SALT, tolerance_ms=10, jobs=("machine_learning_curated",))
    second = run_pipeline(spark, str(lake_dir), only_ml)
    after = open_store(str(lake_dir)).load_state()
    assert after.tables["machine_learning_curated"].version == f"v-{second.run_id}"
    for name in ("customer_trusted", "accelerometer_trusted", "customer_curated", "step_trainer_trusted"):
        assert after.tables[name] == state.tables[name] == replace(after.tables[name], run_id=first.run_id)
    assert second.record.reconciliation == {}
    assert second.tables["machine_learning_curated"] == 2
    with pytest.raises(ValueError, match="unknown job"):
        PipelineOptions(jobs=("no_such_job",))
