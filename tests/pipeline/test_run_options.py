"""`stedi pipeline run` keeps the options a lake was built with, says what it skips, and the
commands around it speak plainly: `status` as tables that fit 80 columns, `query` mistakes as one
message (issue #16).  The runs borrow the shared Spark session."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from cloud_pipeline.storage.s3_cache import open_store
from cloud_pipeline.storage.state import BuildOptions
from stedi.errors import EXIT_USAGE
from tests.parts import run_main
from tests.pipeline.helpers import SALT, small_lake, write_jsonl

#: The table names a status or run prints; none may be cut or folded at 80 columns.
NAMES = ("accelerometer_trusted", "machine_learning_curated", "step_trainer_trusted", "excluded_before_consent",
         "excluded_unknown_customer", "accelerometer", "step_trainer")


def test_options_are_the_lakes_own_and_skipped_files_are_said(
        spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("STEDI_CUSTOMER_KEY_SALT", SALT)
    monkeypatch.setenv("COLUMNS", "80")
    lake = tmp_path / "lake"
    monkeypatch.setenv("STEDI_LAKE", str(tmp_path / "default"))
    small_lake(lake)
    write_jsonl(lake, "accelerometer/landing/notes.txt", ["not a reading"])
    write_jsonl(lake, "step_trainer/landing/export.csv", ["a,b"])
    caplog.set_level(logging.INFO)

    code, out, err = run_main(monkeypatch, capsys, "pipeline", "run", "--lake", str(lake), "--consent", "as-of")
    assert code == 0, err
    assert open_store(str(lake)).load_state().options == BuildOptions("as-of", 0, "parquet")
    skipped = [r for r in caplog.records if "not landing files" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].levelno == logging.WARNING
    assert "accelerometer/landing/notes.txt" in skipped[0].getMessage() and "export.csv" in skipped[0].getMessage()
    assert "skipped 2 files in landing folders" in out
    # The summary at 80 columns: every name whole, the reconciliation's sum names every fate.
    assert all(len(line) <= 80 for line in out.splitlines())
    for name in ("machine_learning_curated", "excluded_before_consent", "excluded_unknown_customer"):
        assert name in out
    assert "superseded" in out.split("reconciliation:")[1].split("┏")[0]

    # No options: the lake's are kept (the demo's as-of stays as-of), not the built-in `all`.
    caplog.clear()
    code, out, err = run_main(monkeypatch, capsys, "pipeline", "run", "--lake", str(lake))
    assert code == 0, err
    assert "options of the lake reused: --consent as-of" in caplog.text
    assert open_store(str(lake)).load_state().options == BuildOptions("as-of", 0, "parquet")

    # A different option is refused, and nothing changes.
    state_before = (lake / "_pipeline/state/pipeline.json").read_bytes()
    code, _, err = run_main(monkeypatch, capsys, "pipeline", "run", "--lake", str(lake), "--consent", "all",
                            "--tolerance-ms", "5")
    assert code == EXIT_USAGE
    assert "this lake was built with --consent as-of, --tolerance-ms 0; this run asks for --consent all, " \
           "--tolerance-ms 5" in err and "--full-refresh" in err
    assert (lake / "_pipeline/state/pipeline.json").read_bytes() == state_before

    # ... unless it is a full refresh, which says what changed.
    code, out, err = run_main(monkeypatch, capsys, "pipeline", "run", "--lake", str(lake), "--consent", "all",
                              "--full-refresh")
    assert code == 0, err
    assert "changed by this full refresh: --consent as-of -> all" in out
    assert open_store(str(lake)).load_state().options == BuildOptions("all", 0, "parquet")

    # status: tables for people (local ISO-8601 times, names whole at 80 columns), JSON for scripts.
    code, out, err = run_main(monkeypatch, capsys, "pipeline", "status", "--lake", str(lake))
    assert code == 0, err
    assert all(len(line) <= 80 for line in out.splitlines())
    for name in NAMES:
        assert re.search(rf"\b{name}\b", out), name
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", out)
    assert "built with" in out and "--consent all" in out and not out.lstrip().startswith("{")
    code, out, err = run_main(monkeypatch, capsys, "pipeline", "status", "--lake", str(lake), "--json")
    status = json.loads(out)
    assert status["tables"]["machine_learning_curated"]["rows"] == 2
    assert status["reconciliation"]["customer_landing"]["balanced"] is True


def test_the_default_lake_is_created_another_only_with_create(
        spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STEDI_CUSTOMER_KEY_SALT", SALT)
    default = tmp_path / "home" / "lake"
    monkeypatch.setenv("STEDI_LAKE", str(default))
    code, _, err = run_main(monkeypatch, capsys, "pipeline", "run")
    assert code == 0, err
    assert (default / "_pipeline/state/pipeline.json").is_file()
    # Another missing lake is created only when asked (the refusal itself: test_lake_guards.py).
    from cloud_pipeline.cli import _lake, _require_lake

    other = tmp_path / "other"
    _require_lake(_lake(str(other)), str(other), may_create=True)
    code, _, err = run_main(monkeypatch, capsys, "pipeline", "status", "--lake", str(default))
    assert code == 0, err


def test_query_mistakes_are_one_message_with_the_tables_or_columns(
        spark, lake_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    small_lake(lake_dir)
    # Spark's messages (DuckDB's, the default engine's, and both side by side: test_query_engines.py).
    code, _, err = run_main(monkeypatch, capfd, "query", "--engine", "spark", "--lake", str(lake_dir),
                            "SELECT * FROM customers")
    assert code == EXIT_USAGE
    assert "error: query failed: there is no table customers" in err
    assert "the tables are: customer_landing, accelerometer_landing" in err and "quarantine, warnings" in err
    code, _, err = run_main(monkeypatch, capfd, "query", "--engine", "spark", "--lake", str(lake_dir),
                            "SELECT mail FROM customer_landing")
    assert code == EXIT_USAGE
    assert "error: query failed: there is no column mail" in err
    assert "customer_landing: customerName, email, phone" in err
    code, _, err = run_main(monkeypatch, capfd, "query", "--engine", "spark", "--lake", str(lake_dir), "SELEC 1")
    assert code == EXIT_USAGE and "error: query failed: [PARSE_SYNTAX_ERROR]" in err
    # No Spark log line and no Java stack around the message.
    for noise in ("SQLQueryContextLogger", "org.apache.spark", "Py4JJavaError", '{"ts"'):
        assert noise not in err
    assert len(err.strip().splitlines()) <= 2
