"""The Glue job scripts, run as spark-submit runs them, build the same tables as the local runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_pipeline.aws.glue.entry import parse_args
from cloud_pipeline.config import JOB_ORDER, JOB_OUTPUT, PipelineOptions
from cloud_pipeline.runner import run_pipeline
from cloud_pipeline.storage.catalog import table_frames
from cloud_pipeline.storage.s3_cache import open_store
from simulator.fleet import generate_fleet
from stedi.lake import FolderLake

ROOT = Path(__file__).resolve().parents[2]
SALT = "tests-aws-salt"


def test_glue_arguments_tolerate_glue_extras() -> None:
    args = parse_args(
        ["--JOB_NAME", "stedi-x", "--lake", "s3://b/p", "--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1",
         "--job-bookmark-option", "job-bookmark-disable", "--TempDir", "s3://b/tmp", "--consent", "as-of"]
    )
    assert (args.JOB_NAME, args.lake, args.consent, args.format) == ("stedi-x", "s3://b/p", "as-of", "parquet")
    with pytest.raises(SystemExit):
        parse_args(["--JOB_NAME", "x"])  # --lake is required


def test_every_job_has_a_script() -> None:
    scripts = {p.stem for p in (ROOT / "cloud_pipeline" / "aws" / "glue").glob("*.py")} - {"__init__", "entry"}
    assert scripts == set(JOB_ORDER)
    for job in JOB_ORDER:
        assert f'main("{job}")' in (ROOT / "cloud_pipeline" / "aws" / "glue" / f"{job}.py").read_text()


def _rows(df) -> list[tuple]:  # type: ignore[no-untyped-def]
    return sorted((tuple(r) for r in df.collect()), key=repr)


@pytest.mark.slow
def test_spark_submit_scripts_match_local_runner(spark, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    spark_submit = Path(sys.executable).parent / "spark-submit"
    if not spark_submit.exists():
        pytest.fail(f"spark-submit not found next to {sys.executable}")
    monkeypatch.setenv("STEDI_CUSTOMER_KEY_SALT", SALT)
    local, glue = tmp_path / "local", tmp_path / "glue"
    generate_fleet(FolderLake(local), customers=20, seed=1)
    shutil.copytree(local, glue)

    expected = run_pipeline(spark, str(local), PipelineOptions(salt=SALT))
    assert expected.balanced

    # The test's own Spark puts its JVM gateway in os.environ: the scripts must start their own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    for job in JOB_ORDER:
        done = subprocess.run(
            [str(spark_submit), "--master", "local[1]",
             "--conf", "spark.sql.shuffle.partitions=2", "--conf", "spark.ui.enabled=false",
             "--driver-java-options", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
             str(ROOT / "cloud_pipeline" / "aws" / "glue" / f"{job}.py"),
             "--JOB_NAME", f"stedi-{job}", "--lake", str(glue), "--JOB_RUN_ID", "jr_test"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )
        assert done.returncode == 0, f"{job} failed:\n{done.stderr[-4000:]}"
        # spark-submit relays the Python driver's output on its stdout.
        assert f"job {job} committed run" in done.stdout + done.stderr, done.stdout[-3000:]

    want = table_frames(spark, open_store(str(local)))
    got = table_frames(spark, open_store(str(glue)))
    for job in JOB_ORDER:
        table = JOB_OUTPUT[job]
        assert got[table].columns == want[table].columns, table
        expected_rows = _rows(want[table])
        assert expected_rows, f"{table} is empty: the comparison would prove nothing"
        assert _rows(got[table]) == expected_rows, table
    # Five runs staged the landing files once: the quarantine matches too.
    assert _rows(got["quarantine"].drop("run_id", "_run_id")) == _rows(want["quarantine"].drop("run_id", "_run_id"))
