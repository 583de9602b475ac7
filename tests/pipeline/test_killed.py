"""A real `stedi pipeline run` process killed midway leaves the previous zones and state intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud_pipeline.config import PipelineOptions
from cloud_pipeline.runner import run_pipeline
from cloud_pipeline.storage.store import STATE_KEY
from tests.pipeline.helpers import SALT, T0, customer, small_lake, write_jsonl
from tests.pipeline.test_runner import _snapshot


@pytest.mark.slow
def test_sigkill_midway_keeps_previous_state(spark, lake_dir: Path) -> None:
    small_lake(lake_dir)
    run_pipeline(spark, str(lake_dir), PipelineOptions(salt=SALT))
    before = _snapshot(spark, lake_dir)
    state_before = (lake_dir / STATE_KEY).read_text()
    write_jsonl(lake_dir, "customer/landing/c2.json", [customer("bob", "S-BOB", T0)])
    trusted = lake_dir / "accelerometer/trusted"
    old_versions = {p.name for p in trusted.iterdir()}
    env = dict(os.environ, STEDI_CUSTOMER_KEY_SALT=SALT)
    stedi = str(Path(sys.executable).parent / "stedi")
    proc = subprocess.Popen([stedi, "pipeline", "run", "--lake", str(lake_dir)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        # Kill the process group (python and its JVM) once a new table version is being written.
        while proc.poll() is None and time.monotonic() < deadline:
            if {p.name for p in trusted.iterdir()} - old_versions:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert (lake_dir / STATE_KEY).read_text() == state_before
    assert _snapshot(spark, lake_dir) == before
    after = run_pipeline(spark, str(lake_dir), PipelineOptions(salt=SALT))
    assert after.tables["customer_trusted"] == 2
    # The killed run's orphan is gone; the version this run replaced stays until the next commit.
    assert {p.name for p in trusted.iterdir()} == old_versions | {f"v-{after.run_id}"}
