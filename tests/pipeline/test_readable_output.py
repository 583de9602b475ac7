"""Output a person reads (issue #16): words for counts, a rank axis only where ranks exist, Spark's
own chatter kept out of the terminal, and a word of progress at least every few seconds."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from cloud_pipeline.progress import StepProgress
from cloud_pipeline.report.console import reconciliation_table
from cloud_pipeline.report.data import ConsentCurve, Histogram
from cloud_pipeline.report.plots import consent_plot, readings_plot
from cloud_pipeline.report.words import plural, run_time
from cloud_pipeline.transforms.reconcile import Reconciliation


def test_one_customer_is_one_customer_and_one_bar_has_no_rank_axis() -> None:
    one = Histogram("accelerometer_trusted", "customer", owners=1, readings=1, ranked=[1])
    three = Histogram("step_trainer_trusted", "step trainer", owners=3, readings=60, ranked=[30, 20, 10])
    plot = readings_plot([one, three])
    assert plot.x_ticks["accelerometer_trusted"] == []  # not 0.6, 0.8, ..., 1.4
    assert plot.x_ticks["step_trainer_trusted"] == [1.0, 2.0, 3.0]
    assert "(1 customer, 1 reading)" in plot.alt and "(3 step trainers, 60 readings)" in plot.alt
    curve = ConsentCurve(starts_ms=[0, 1000, 2000], registered=[0, 1, 1], consented=[0, 1, 1], bucket_ms=1000)
    assert consent_plot(curve).title == "Consent over time: 1 of 1 registered customer shares with research"
    assert plural(0, "file") == "0 files" and plural(1_204, "reading") == "1,204 readings"


def test_the_reconciliation_sums_every_fate_and_fits_80_columns() -> None:
    counts: Reconciliation = {"landing": 10, "trusted": 5, "superseded": 2, "duplicate": 1, "excluded_no_consent": 1,
                              "quarantined": 1, "quarantined_by_rule": {}, "balanced": True}
    console = Console(width=80, record=True)
    console.print(reconciliation_table({"accelerometer_landing": counts, "step_trainer_landing": counts,
                                        "customer_landing": counts}))
    text = console.export_text()
    title = text.split("┏")[0]
    for term in ("trusted", "superseded", "duplicate", "excluded", "quarantined"):
        assert term in title
    assert all(len(line) <= 80 for line in text.splitlines())
    for name in ("excluded_unknown_customer", "excluded_before_consent", "accelerometer", "step_trainer"):
        assert name in text


def test_run_times_are_local_iso_8601() -> None:
    assert run_time("20261201T235018123456Z-ab12").startswith("2026-")
    assert "T" in run_time("20261201T235018123456Z-ab12") and run_time(None) == "never"


def test_a_long_step_says_it_is_still_working(monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    import cloud_pipeline.progress as progress

    monkeypatch.setattr(progress, "POLL_S", 0.05)
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.2)
    caplog.set_level(logging.INFO, logger="cloud_pipeline.progress")
    with StepProgress(tty=False) as steps:
        steps.step("machine_learning_curated")
        time.sleep(0.9)
    said = [r.getMessage() for r in caplog.records if "still working" in r.getMessage()]
    assert 2 <= len(said) <= 6 and all("machine_learning_curated" in s for s in said)


def test_spark_start_up_chatter_goes_to_a_log_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    """The JVM inherits descriptor 2 at launch; launched inside the guard, its output lands in the file."""
    from cloud_pipeline.session import _jvm_output_to_log, jvm_log_path

    monkeypatch.setenv("STEDI_HOME", str(tmp_path))
    with _jvm_output_to_log(quiet=True):
        child = subprocess.Popen([sys.executable, "-c", "import os; os.write(2, b'Setting default log level\\n')"])
    child.wait()
    os.write(2, b"ours\n")
    err = capfd.readouterr().err
    assert "Setting default log level" not in err and "ours" in err
    assert "Setting default log level" in jvm_log_path().read_text()
    with _jvm_output_to_log(quiet=False):  # -v: nothing is hidden
        subprocess.run([sys.executable, "-c", "import os; os.write(2, b'shown\\n')"], check=True)
    assert "shown" in capfd.readouterr().err
