"""Deploy to Glue on moto's server: everything created once, the second run changes nothing."""

from __future__ import annotations

import boto3
from typer.testing import CliRunner

from cloud_pipeline.aws.ddl import QUARANTINE_FILES, WARNINGS_FILES
from cloud_pipeline.aws.deploy import code_zip, deploy, refresh_tables
from cloud_pipeline.config import JOB_ORDER
from cloud_pipeline.storage.state import PipelineState, TableVersion
from cloud_pipeline.storage.store import STATE_KEY
from stedi.contract import TABLES
from stedi.lake import S3Lake
from stedi_app.cli import app

ROLE = "arn:aws:iam::123456789012:role/stedi-glue"


def test_code_zip_is_deterministic_and_holds_the_packages() -> None:
    import io
    import zipfile

    data = code_zip()
    assert data == code_zip()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "cloud_pipeline/aws/glue/entry.py" in names and "stedi/contract.py" in names


def test_deploy_twice_second_changes_nothing(s3_bucket: str) -> None:
    lake = f"s3://{s3_bucket}/lake"
    planned = deploy(lake, ROLE, dry_run=True)
    glue = boto3.client("glue")
    assert not glue.get_databases()["DatabaseList"] or "stedi" not in [
        d["Name"] for d in glue.get_databases()["DatabaseList"]
    ]  # the dry run made nothing
    first = deploy(lake, ROLE)
    assert [str(c) for c in first] == [str(c) for c in planned]
    assert {c.name for c in first if c.kind == "table"} == {t.name for t in TABLES} | {QUARANTINE_FILES, WARNINGS_FILES}
    assert deploy(lake, ROLE) == []

    for job in JOB_ORDER:
        definition = glue.get_job(JobName=f"stedi-{job}")["Job"]
        assert definition["Role"] == ROLE
        assert definition["Command"]["ScriptLocation"] == f"{lake}/_pipeline/glue/scripts/{job}.py"
        assert definition["DefaultArguments"]["--lake"] == lake
        assert definition["DefaultArguments"]["--extra-py-files"] == f"{lake}/_pipeline/glue/stedi-code.zip"
    script = boto3.client("s3").get_object(Bucket=s3_bucket, Key="lake/_pipeline/glue/scripts/machine_learning_curated.py")
    assert b'main("machine_learning_curated")' in script["Body"].read()
    # The chain: each job after the previous one succeeded.
    for before, after in zip(JOB_ORDER, JOB_ORDER[1:], strict=False):
        trigger = glue.get_trigger(Name=f"stedi-pipeline-after-{before}")["Trigger"]
        assert trigger["Predicate"]["Conditions"][0]["JobName"] == f"stedi-{before}"
        assert trigger["Actions"] == [{"JobName": f"stedi-{after}"}]
    assert glue.get_trigger(Name="stedi-pipeline-start")["Trigger"]["Actions"] == [{"JobName": f"stedi-{JOB_ORDER[0]}"}]

    # After a pipeline run the zone table moves to the new version; nothing else changes.
    state = PipelineState(tables={"customer_trusted": TableVersion("v-2", "parquet", "2")})
    S3Lake(s3_bucket, "lake").put(STATE_KEY, state.to_json())
    moved = deploy(lake, ROLE)
    assert [str(c) for c in moved] == ["update table customer_trusted"]
    table = glue.get_table(DatabaseName="stedi", Name="customer_trusted")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"{lake}/customer/trusted/v-2/"


def test_cli_dry_run_and_folder_lake(s3_bucket: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    result = runner.invoke(app, ["pipeline", "deploy", "--lake", f"s3://{s3_bucket}/p", "--role", ROLE,
                                 "--database", "drydb", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would create job drydb-customer_landing_to_trusted" in result.output
    assert boto3.client("s3").list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
    bad = runner.invoke(app, ["pipeline", "deploy", "--lake", str(tmp_path), "--role", ROLE])
    assert bad.exit_code != 0 and "s3://" in bad.output


def test_a_job_moves_its_own_table_only(s3_bucket: str) -> None:
    lake = f"s3://{s3_bucket}/lake"
    deploy(lake, ROLE, database="refresh")
    assert boto3.client("glue").get_job(JobName="refresh-machine_learning_curated")["Job"]["DefaultArguments"][
        "--database"] == "refresh"
    state = PipelineState(tables={"customer_trusted": TableVersion("v-9", "parquet", "9"),
                                  "machine_learning_curated": TableVersion("v-9", "json", "9")})
    S3Lake(s3_bucket, "lake").put(STATE_KEY, state.to_json())
    assert refresh_tables(lake, "refresh", ["machine_learning_curated"]) == ["machine_learning_curated"]
    assert refresh_tables(lake, "refresh", ["machine_learning_curated"]) == []
    glue = boto3.client("glue")
    ml = glue.get_table(DatabaseName="refresh", Name="machine_learning_curated")["Table"]["StorageDescriptor"]
    assert ml["Location"] == f"{lake}/step_trainer/curated/v-9/"
    assert ml["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    untouched = glue.get_table(DatabaseName="refresh", Name="customer_trusted")["Table"]["StorageDescriptor"]
    assert untouched["Location"].endswith("_not_built_yet/")
