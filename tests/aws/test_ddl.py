"""Athena DDL: every table, columns and types from the contract, locations from the pipeline state."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud_pipeline.aws.ddl import HIVE_TYPES, QUARANTINE_FILES, WARNINGS_FILES, ddl_script, table_definitions
from cloud_pipeline.storage.state import PipelineState, TableVersion
from cloud_pipeline.storage.store import STATE_KEY
from cloud_pipeline.transforms.schemas import quarantine_schema, spark_type, warnings_schema
from stedi.contract import TABLES, TABLES_BY_NAME
from stedi.lake import S3Lake
from stedi_app.cli import app

RUN = "20260101T000000Z-ab12"
STATE = PipelineState(tables={"customer_trusted": TableVersion(f"v-{RUN}", "parquet", RUN),
                              "accelerometer_trusted": TableVersion(f"v-{RUN}", "json", RUN)})


def _statements(script: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(r"CREATE EXTERNAL TABLE IF NOT EXISTS `stedi`\.`(\w+)`.*?LOCATION '[^']*';",
                                                        script, re.S)}


def test_hive_types_are_the_types_spark_writes() -> None:
    for field_type, hive in HIVE_TYPES.items():
        assert spark_type(field_type).simpleString() == hive


def test_every_table_with_contract_columns() -> None:
    script = ddl_script("s3://bucket/lake", "stedi", STATE)
    statements = _statements(script)
    assert set(statements) == {t.name for t in TABLES} | {QUARANTINE_FILES, WARNINGS_FILES}
    for table in TABLES:
        columns = re.findall(r"^  `(\w+)` (\w+) COMMENT", statements[table.name], re.M)
        # Landing columns are text: a drifted value must read, not fail the query (HIVE_BAD_DATA).
        want = [(f.name, "string" if table.zone == "landing" else HIVE_TYPES[f.type]) for f in table.fields]
        assert columns == want, table.name
    for files, schema in ((QUARANTINE_FILES, quarantine_schema()), (WARNINGS_FILES, warnings_schema())):
        columns = re.findall(r"^  `(\w+)` (\w+) COMMENT", statements[files], re.M)
        assert [n for n, _ in columns] == [f.name for f in schema.fields if f.name != "table"]
    assert "CREATE OR REPLACE VIEW `stedi`.`quarantine`" in script
    assert "CREATE OR REPLACE VIEW `stedi`.`warnings`" in script
    assert script.startswith("CREATE DATABASE IF NOT EXISTS `stedi`;")


def test_locations_and_formats_follow_the_pipeline_layout() -> None:
    defs = {d.name: d for d in table_definitions("s3://bucket/lake/", STATE)}
    landing = defs["step_trainer_landing"]
    assert (landing.location, landing.format) == ("s3://bucket/lake/step_trainer/landing/", "json")
    assert "org.openx.data.jsonserde.JsonSerDe" in landing.create_sql("stedi")
    trusted = defs["customer_trusted"]
    assert trusted.location == "s3://bucket/lake/customer/trusted/v-20260101T000000Z-ab12/"
    assert "STORED AS PARQUET" in trusted.create_sql("stedi")
    assert defs["accelerometer_trusted"].format == "json"  # a --format json run
    # Never built: an empty folder, not the zone folder that would mix versions.
    assert defs["machine_learning_curated"].location == "s3://bucket/lake/step_trainer/curated/_not_built_yet/"
    assert defs[QUARANTINE_FILES].location == "s3://bucket/lake/_pipeline/quarantine/"
    glue = trusted.table_input()
    assert [c["Name"] for c in glue["StorageDescriptor"]["Columns"]] == list(TABLES_BY_NAME["customer_trusted"].field_names)


def test_cli_reads_state_of_an_s3_lake(s3_bucket: str) -> None:
    S3Lake(s3_bucket, "lake").put(STATE_KEY, STATE.to_json())
    result = CliRunner().invoke(app, ["pipeline", "ddl", "--lake", f"s3://{s3_bucket}/lake", "--database", "stedi"])
    assert result.exit_code == 0, result.output
    assert f"LOCATION 's3://{s3_bucket}/lake/customer/trusted/v-20260101T000000Z-ab12/'" in result.output


def test_cli_before_first_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["pipeline", "ddl", "--lake", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "_not_built_yet/" in result.output


def test_landing_tables_read_drifted_lines_without_failing(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Spark's JSON reader stands in for the OpenX SerDe: FAILFAST fails on a value its column's type
    # cannot hold, as the SerDe does (HIVE_BAD_DATA).  Through the DDL's columns every line reads.
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    landing = {d.name: d for d in table_definitions("s3://b/lake")}["customer_landing"]
    schema = StructType([StructField(n, StringType(), True) for n, _t, _c in landing.columns])
    assert {t for _n, t, _c in landing.columns} == {"string"}
    path = tmp_path / "customer.json"
    path.write_text(
        '{"customerName":"A","email":"a@x","phone":8015551212,"birthDay":"983-01-01","serialNumber":"S",'
        '"registrationDate":1655564376361,"lastUpdateDate":"1655564376361","shareWithResearchAsOfDate":1655564376361.0}\n'
        '{"customerName":"B","email":"b@x","phone":"1","birthDay":"1990-01-01","serialNumber":"S",'
        '"registrationDate":"soon","lastUpdateDate":2,"shareWithResearchAsOfDate":null}\n'
    )
    rows = spark.read.schema(schema).option("mode", "FAILFAST").json(str(path)).collect()
    assert [(r.email, r.phone, r.lastUpdateDate, r.registrationDate) for r in rows] == [
        ("a@x", "8015551212", "1655564376361", "1655564376361"), ("b@x", "1", "2", "soon")]
    # The typed reading the SerDe would do fails on the same file: the test would catch typed columns.
    typed = StructType([StructField("registrationDate", LongType())])
    with pytest.raises(Exception, match="(?i)malformed|parse|FAILFAST"):
        spark.read.schema(typed).option("mode", "FAILFAST").json(str(path)).collect()
