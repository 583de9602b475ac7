"""Incremental runs: a run whose new data changes no existing row appends it; a run that changes some
owners' inputs (consent, serial number, held-back rows, pairing) rewrites only their rows; any other
run rebuilds and says why.  Every path gives the full refresh's tables and reconciliation."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from cloud_pipeline.config import PipelineOptions
from cloud_pipeline.runner import RunResult, run_pipeline
from cloud_pipeline.storage.catalog import table_frames
from cloud_pipeline.storage.s3_cache import open_store
from cloud_pipeline.storage.state import STATE_KEY
from stedi.contract import TABLES, TABLES_BY_NAME
from tests.parts import run_main
from tests.pipeline.helpers import DAY, SALT, T0, accel, customer, rows, small_lake, step, write_jsonl

OPTIONS = PipelineOptions(salt=SALT)
ZONE_TABLES = [t.name for t in TABLES if t.zone != "landing"]
APPENDED = ("accelerometer_trusted", "step_trainer_trusted", "machine_learning_curated")


def _tables(spark, lake: Path) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    frames = table_frames(spark, open_store(str(lake)))
    return {name: rows(frames[name]) for name in ZONE_TABLES}


def _same_as_full_refresh(spark, lake: Path, tmp_path: Path, result: RunResult,  # type: ignore[no-untyped-def]
                          options: PipelineOptions = OPTIONS) -> None:
    """The lake's tables and the run's reconciliation are those of a full refresh of its landing files."""
    full_lake = tmp_path / "full"
    shutil.rmtree(full_lake, ignore_errors=True)
    shutil.copytree(lake, full_lake, ignore=shutil.ignore_patterns("_pipeline", "trusted", "curated"))
    full = run_pipeline(spark, str(full_lake), PipelineOptions(salt=options.salt, consent=options.consent,
                                                                tolerance_ms=options.tolerance_ms, full_refresh=True))
    assert _tables(spark, lake) == _tables(spark, full_lake)
    # The run reports the tables it reconciled; the state keeps the latest of each.
    assert open_store(str(lake)).load_state().reconciliation == full.record.reconciliation
    assert all(full.record.reconciliation[t] == r for t, r in result.record.reconciliation.items())
    assert result.balanced


def _data_inodes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in folder.iterdir() if not p.name.startswith(("_", "."))}


def test_new_readings_are_appended_and_old_files_linked(  # type: ignore[no-untyped-def]
        spark, lake_dir: Path, tmp_path: Path, caplog, monkeypatch, capsys) -> None:
    small_lake(lake_dir)
    first = run_pipeline(spark, str(lake_dir), OPTIONS)
    # Later readings of ann (one an exact copy of a reading already kept, one twice), and her steps;
    # a new customer, eve, with her first readings (rows of others are held back: no matter).
    write_jsonl(lake_dir, "customer/landing/c2.json", [customer("eve", "S-EVE", T0, updated=T0 + DAY)])
    write_jsonl(lake_dir, "accelerometer/landing/a2.json", [
        accel("ann", T0 + 1000, x=1.0), accel("ann", T0 + 5000, x=3.0), accel("ann", T0 + 5000, x=3.0),
        accel("ann", T0 + 6000, x=4.0), accel("nobody", T0 + 6000), accel("eve", T0 + 5000, x=6.0),
    ])
    write_jsonl(lake_dir, "step_trainer/landing/s2.json", [
        step("S-ANN", T0 + 2000, 110, seq=2), step("S-ANN", T0 + 5000, 120, seq=3), step("S-ANN", T0 + 7000, 130),
        step("S-EVE", T0 + 5000, 60),
    ])
    with caplog.at_level(logging.INFO, logger="cloud_pipeline.runner"):
        second = run_pipeline(spark, str(lake_dir), OPTIONS)
    assert "appending: the new data changes no row already in a table" in caplog.text
    paths = second.record.paths
    assert {t: paths[t] for t in APPENDED} == dict.fromkeys(APPENDED, "append")
    assert paths["customer_trusted"] == paths["customer_curated"] == "recomputed (customer-sized)"
    recon = second.record.reconciliation
    assert recon["accelerometer_landing"]["duplicate"] == 1 + 2  # one in the first file, two here
    assert second.tables["machine_learning_curated"] == first.tables["machine_learning_curated"] + 2
    # The previous version's files are linked into the new one, not rewritten.
    for name in APPENDED:
        folder = lake_dir / TABLES_BY_NAME[name].folder
        old, new = _data_inodes(folder / f"v-{first.run_id}"), _data_inodes(folder / f"v-{second.run_id}")
        assert old and all(new[f] == inode for f, inode in old.items()), name
        assert len(new) == len(old) + 1, name
    # `stedi pipeline status` says how the last run made each table.
    code, out, _ = run_main(monkeypatch, capsys, "pipeline", "status", "--lake", str(lake_dir), "--json")
    assert code == 0 and json.loads(out)["paths"] == paths
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps cells to the terminal's width
    code, out, _ = run_main(monkeypatch, capsys, "pipeline", "status", "--lake", str(lake_dir))
    assert code == 0 and "last run" in out and "recomputed (customer-sized)" in out
    _same_as_full_refresh(spark, lake_dir, tmp_path, second)


AS_OF = PipelineOptions(salt=SALT, consent="as-of")
CHANGE = "customer/landing/c2.json"


@pytest.mark.parametrize("options, deliveries, paths", [
    # (A withdrawal: test_a_killed_rewrite_leaves_the_previous_tables.)
    # A customer who had withdrawn grants consent again, with new readings of ann in the same run.
    (OPTIONS, [{CHANGE: [customer("cat", "S-CAT", T0 - DAY, updated=T0 + 2 * DAY)],
                "accelerometer/landing/a2.json": [accel("ann", T0 + 9000, x=5.0), accel("cat", T0 + 1000, x=8.0)]}],
     dict.fromkeys(APPENDED, "rewrite: 1 customer's rows (consent granted); "
                             "1 serial number(s)' step rows (their owners changed)")),
    # Under --consent as-of, ann's consent moves after her first readings and steps.
    (AS_OF, [{CHANGE: [customer("ann", "S-ANN", T0 + 1500, updated=T0 + DAY)]}],
     dict.fromkeys(APPENDED, "rewrite: 1 customer's rows (consent date moved); "
                             "1 serial number(s)' step rows (their owners changed)")),
    # Ann's step trainer is replaced: her steps of the old serial no longer pair, the held-back
    # steps of the new one (S-NOBODY's) become hers.
    (OPTIONS, [{CHANGE: [customer("ann", "S-NOBODY", T0 - DAY, updated=T0 + DAY)]}],
     dict.fromkeys(APPENDED, "rewrite: 1 customer's rows (serial number changed); "
                             "2 serial number(s)' step rows (their owners changed)")),
    # A new customer whose reading was held back as of an unknown user: it is trusted now.
    (OPTIONS,
     [{"accelerometer/landing/a2.json": [accel("dan", T0 + 9000)]},
      {CHANGE: [customer("dan", "S-DAN", T0, updated=T0 + DAY)]}],
     {"accelerometer_trusted": "rewrite: 1 customer's rows (new customer with held-back readings)",
      "step_trainer_trusted": "append",
      "machine_learning_curated": "rewrite: 1 customer's rows (new customer with held-back readings)"}),
    # A new reading of ann at the time of her latest step reading: that step's ML row is paired again.
    (OPTIONS, [{"accelerometer/landing/a2.json": [accel("ann", T0 + 2000, x=7.0)]}],
     {"accelerometer_trusted": "append", "step_trainer_trusted": "append",
      "machine_learning_curated": "rewrite: the ML rows new readings may pair with"}),
])
def test_a_change_rewrites_only_its_owners_rows(  # type: ignore[no-untyped-def]
        spark, lake_dir: Path, tmp_path: Path, caplog, options, deliveries, paths) -> None:
    small_lake(lake_dir)
    run_pipeline(spark, str(lake_dir), options)
    for delivery in deliveries:
        caplog.clear()
        for key, records in delivery.items():
            write_jsonl(lake_dir, key, records)
        with caplog.at_level(logging.INFO, logger="cloud_pipeline.runner"):
            result = run_pipeline(spark, str(lake_dir), options)
    assert "rebuilding every table" not in caplog.text
    assert {t: result.record.paths[t] for t in APPENDED} == paths
    assert result.record.paths["customer_curated"] == "recomputed (customer-sized)"
    _same_as_full_refresh(spark, lake_dir, tmp_path, result, options)


def test_many_changed_customers_rebuild(spark, lake_dir: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from cloud_pipeline import runner

    small_lake(lake_dir)
    run_pipeline(spark, str(lake_dir), OPTIONS)
    monkeypatch.setattr(runner, "REWRITE_MIN_OWNERS", 1)
    write_jsonl(lake_dir, CHANGE, [customer("ann", "S-ANN", None, updated=T0 + DAY),
                                   customer("cat", "S-CAT", T0, updated=T0 + DAY)])
    result = run_pipeline(spark, str(lake_dir), OPTIONS)
    why = "rebuild: 2 customers' consent or serial number changed (more than 1): rebuilding"
    assert all(result.record.paths[t] == why for t in APPENDED)
    _same_as_full_refresh(spark, lake_dir, tmp_path, result)


def test_options_and_full_refresh_rebuild(spark, lake_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    small_lake(lake_dir)
    run_pipeline(spark, str(lake_dir), OPTIONS)
    write_jsonl(lake_dir, "accelerometer/landing/a2.json", [accel("ann", T0 + 9000)])
    tolerant = PipelineOptions(salt=SALT, tolerance_ms=50)
    result = run_pipeline(spark, str(lake_dir), tolerant)
    assert result.record.paths["accelerometer_trusted"] == \
        "rebuild: customer_trusted was built with other options or another salt"
    _same_as_full_refresh(spark, lake_dir, tmp_path, result, tolerant)
    write_jsonl(lake_dir, "accelerometer/landing/a3.json", [accel("ann", T0 + 19000)])
    refreshed = run_pipeline(spark, str(lake_dir), PipelineOptions(salt=SALT, tolerance_ms=50, full_refresh=True))
    assert refreshed.record.paths["accelerometer_trusted"] == "rebuild: --full-refresh"


def _power_cut_after_step_job(job: str) -> None:
    """The ``after_job`` hook of the kill tests: the run dies once two reading tables are written."""
    if job == "step_trainer_landing_to_trusted":
        raise RuntimeError("power cut")


def test_a_killed_append_leaves_the_previous_tables(spark, lake_dir: Path) -> None:  # type: ignore[no-untyped-def]
    small_lake(lake_dir)
    run_pipeline(spark, str(lake_dir), OPTIONS)
    before, state = _tables(spark, lake_dir), (lake_dir / STATE_KEY).read_text()
    write_jsonl(lake_dir, "accelerometer/landing/a2.json", [accel("ann", T0 + 9000)])
    write_jsonl(lake_dir, "step_trainer/landing/s2.json", [step("S-ANN", T0 + 9000, 120)])

    with pytest.raises(RuntimeError, match="power cut"):
        run_pipeline(spark, str(lake_dir), OPTIONS, after_job=_power_cut_after_step_job)
    assert (lake_dir / STATE_KEY).read_text() == state
    assert _tables(spark, lake_dir) == before
    after = run_pipeline(spark, str(lake_dir), OPTIONS)
    assert after.record.paths["machine_learning_curated"] == "append"
    assert after.tables["machine_learning_curated"] == len(before["machine_learning_curated"]) + 1


def test_a_killed_rewrite_leaves_the_previous_tables(spark, lake_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    small_lake(lake_dir)
    run_pipeline(spark, str(lake_dir), OPTIONS)
    before, state = _tables(spark, lake_dir), (lake_dir / STATE_KEY).read_text()
    write_jsonl(lake_dir, CHANGE, [customer("ann", "S-ANN", None, updated=T0 + DAY)])

    with pytest.raises(RuntimeError, match="power cut"):
        run_pipeline(spark, str(lake_dir), OPTIONS, after_job=_power_cut_after_step_job)
    assert (lake_dir / STATE_KEY).read_text() == state
    assert _tables(spark, lake_dir) == before
    # Run again: ann's readings, her serial's steps and their ML rows go; nothing else is rebuilt.
    after = run_pipeline(spark, str(lake_dir), OPTIONS)
    assert {t: after.record.paths[t] for t in APPENDED} == dict.fromkeys(
        APPENDED, "rewrite: 1 customer's rows (consent withdrawn); 1 serial number(s)' step rows (their owners changed)")
    withdrawn = _tables(spark, lake_dir)
    assert before["accelerometer_trusted"] and not any("ann@example.com" in r for r in withdrawn["accelerometer_trusted"])
    assert len(withdrawn["machine_learning_curated"]) < len(before["machine_learning_curated"])
    _same_as_full_refresh(spark, lake_dir, tmp_path, after)


def test_a_withdrawal_rewrites_only_the_files_holding_the_customers_rows(  # type: ignore[no-untyped-def]
        spark, lake_dir: Path, tmp_path: Path) -> None:
    from pyspark.sql import functions as F

    names = [f"user{i}" for i in range(8)]
    write_jsonl(lake_dir, "customer/landing/c1.json", [customer(n, f"S-{n}", T0 - DAY) for n in names])
    write_jsonl(lake_dir, "accelerometer/landing/a1.json",
                [accel(n, T0 + 1000 * k, x=float(k)) for n in names for k in range(1, 4)])
    write_jsonl(lake_dir, "step_trainer/landing/s1.json",
                [step(f"S-{n}", T0 + 1000 * k, 100 + k) for n in names for k in range(1, 4)])
    first = run_pipeline(spark, str(lake_dir), OPTIONS)
    write_jsonl(lake_dir, CHANGE, [customer("user3", "S-user3", None, updated=T0 + DAY)])
    second = run_pipeline(spark, str(lake_dir), OPTIONS)
    assert second.record.paths["accelerometer_trusted"].startswith("rewrite: 1 customer's rows (consent withdrawn)")
    for name, owner, withdrawn in (("accelerometer_trusted", "user", "user3@example.com"),
                                   ("step_trainer_trusted", "serialNumber", "S-user3"),
                                   ("machine_learning_curated", "serialNumber", "S-user3")):
        folder = lake_dir / TABLES_BY_NAME[name].folder
        old, new = _data_inodes(folder / f"v-{first.run_id}"), _data_inodes(folder / f"v-{second.run_id}")
        holding = {f for f in old if spark.read.parquet(str(folder / f"v-{first.run_id}" / f))
                   .filter(F.col(owner) == withdrawn).count()}
        # Each owner's rows are in one file (jobs._by_owner), so some files hold none of theirs.
        assert len(holding) == 1 and len(old) > 1, (name, old, holding)
        assert {f: i for f, i in new.items() if f in old} == {f: i for f, i in old.items() if f not in holding}, name
        assert len(new) == len(old), name  # the rewritten file's rows, less the withdrawn ones, in one new file
    # The row counts the state keeps (previous rows, less the rewritten files', plus the new file's).
    tables = _tables(spark, lake_dir)
    assert {t: second.tables[t] for t in APPENDED} == {t: len(tables[t]) for t in APPENDED}
    _same_as_full_refresh(spark, lake_dir, tmp_path, second)


def test_erase_after_an_append_leaves_no_linked_copy(spark, lake_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from stedi_app.cli import app

    monkeypatch.setenv("STEDI_CUSTOMER_KEY_SALT", SALT)
    small_lake(lake_dir)
    run_pipeline(spark, str(lake_dir), OPTIONS)
    write_jsonl(lake_dir, "accelerometer/landing/a2.json", [accel("ann", T0 + 9000)])
    assert run_pipeline(spark, str(lake_dir), OPTIONS).record.paths["accelerometer_trusted"] == "append"
    folder = lake_dir / TABLES_BY_NAME["accelerometer_trusted"].folder
    assert any(p.stat().st_nlink > 1 for p in folder.rglob("*.parquet"))  # ann's rows, in two versions
    erased = CliRunner().invoke(app, ["pipeline", "erase", "--lake", str(lake_dir), "--email", "ann@example.com"])
    assert erased.exit_code == 0, erased.output
    # Every version that held ann is gone, and with it every link to a file of hers.
    state = open_store(str(lake_dir)).load_state()
    for name in ZONE_TABLES:
        table = lake_dir / TABLES_BY_NAME[name].folder
        assert {p.name for p in table.iterdir() if p.name.startswith("v-")} == {state.tables[name].version}
        assert all(p.stat().st_nlink == 1 for p in table.rglob("*.parquet")), name
    assert "ann@example.com" not in str(table_frames(spark, open_store(str(lake_dir)))["accelerometer_trusted"].collect())
    assert state.held_back is not None and b"ann@example.com" not in (lake_dir / state.held_back).read_bytes()
    assert len(list((lake_dir / "_pipeline/state").glob("held-back-*.json"))) == 1


def test_a_table_with_too_many_appended_files_is_compacted(spark, lake_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from cloud_pipeline import runner

    small_lake(lake_dir)
    first = run_pipeline(spark, str(lake_dir), OPTIONS)
    folder = lake_dir / TABLES_BY_NAME["accelerometer_trusted"].folder
    written = len(_data_inodes(folder / f"v-{first.run_id}"))
    limit = 1 + max(len(_data_inodes(lake_dir / TABLES_BY_NAME[t].folder / f"v-{first.run_id}")) for t in APPENDED)
    monkeypatch.setattr(runner, "MAX_APPENDED_FILES", limit)
    # Each run appends one file of new readings to accelerometer_trusted, until it holds the limit.
    for n in range(limit - written):
        write_jsonl(lake_dir, f"accelerometer/landing/a{n + 2}.json", [accel("ann", T0 + 9000 + n)])
        assert run_pipeline(spark, str(lake_dir), OPTIONS).record.paths["accelerometer_trusted"] == "append"
    write_jsonl(lake_dir, "accelerometer/landing/last.json", [accel("ann", T0 + 19000)])
    last = run_pipeline(spark, str(lake_dir), OPTIONS)
    assert last.record.paths["accelerometer_trusted"] == \
        f"rebuild: accelerometer_trusted has {limit} files (at most {limit}): compacting"
    rebuilt = folder / f"v-{last.run_id}"
    assert all((rebuilt / f).stat().st_nlink == 1 for f in _data_inodes(rebuilt))
