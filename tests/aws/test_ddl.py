"""Athena DDL: every table, columns and types from the contract, locations from the pipeline state."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp
from typer.testing import CliRunner

from cloud_pipeline.aws.ddl import (
    HIVE_TYPES,
    QUARANTINE_FILES,
    WARNINGS_FILES,
    ddl_script,
    ddl_statements,
    quarantine_view_sql,
    table_definitions,
    warnings_view_sql,
)
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
    assert 'CREATE OR REPLACE VIEW "stedi"."quarantine"' in script
    assert 'CREATE OR REPLACE VIEW "stedi"."warnings"' in script
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


# --- Checked by a real parser: sqlglot's Athena dialect routes a statement as Athena does (Hive
# DDL for CREATE DATABASE / CREATE EXTERNAL TABLE, Trino for views and SELECTs).  sqlglot 30.31
# parses every construct the DDL uses (ROW FORMAT SERDE ... WITH SERDEPROPERTIES, STORED AS
# INPUTFORMAT/OUTPUTFORMAT, LOCATION, COMMENT), so no statement is exempt from the check.

#: Hive column types of the DDL, as sqlglot names them, and the Spark type each reads as.
SQLGLOT_TO_SPARK = {exp.DType.TEXT: "string", exp.DType.BIGINT: "bigint", exp.DType.DOUBLE: "double"}


def _parsed(statement: str, dialect: str = "athena") -> exp.Expr:
    parsed = sqlglot.parse(statement, read=dialect)
    assert len(parsed) == 1 and parsed[0] is not None, statement
    # An unparsed statement comes back as a Command: sqlglot did not understand it.
    assert isinstance(parsed[0], exp.Create) and not isinstance(parsed[0], exp.Command), statement
    return parsed[0]


def ddl_columns(statement: str) -> list[tuple[str, str]]:
    """(name, spark type) of every column a CREATE EXTERNAL TABLE statement declares."""
    create = _parsed(statement)
    schema = create.this
    assert isinstance(schema, exp.Schema)
    return [(c.name, SQLGLOT_TO_SPARK[c.args["kind"].this]) for c in schema.expressions]


def test_every_statement_parses_as_athena_ddl() -> None:
    statements = ddl_statements("s3://bucket/lake", "stedi", STATE)
    definitions = table_definitions("s3://bucket/lake", STATE)
    # The whole script splits into exactly the statements emitted: no ";" inside a comment breaks it.
    assert len(sqlglot.parse(ddl_script("s3://bucket/lake", "stedi", STATE), read="athena")) == len(statements)
    kinds = [_parsed(s).args["kind"] for s in statements]
    assert kinds == ["DATABASE", *["TABLE"] * len(definitions), "VIEW", "VIEW"]
    for statement, definition in zip(statements[1:], definitions, strict=False):
        create = _parsed(statement)
        assert create.this.this.name == definition.name and create.this.this.args["db"].name == "stedi"
        properties = {type(p).__name__: p for p in create.args["properties"].expressions}
        assert "ExternalProperty" in properties
        assert properties["LocationProperty"].this.name == definition.location
        if definition.format == "json":
            assert properties["RowFormatSerdeProperty"].this.name == "org.openx.data.jsonserde.JsonSerDe"
            serde = properties["RowFormatSerdeProperty"].args["serde_properties"].expressions
            assert [(p.this.name, p.args["value"].name) for p in serde] == [("ignore.malformed.json", "true")]
        else:
            assert properties["FileFormatProperty"].this.name.upper() == "PARQUET"
        assert ddl_columns(statement) == [(n, t) for n, t, _c in definition.columns]


@pytest.mark.parametrize("view", [quarantine_view_sql("stedi"), warnings_view_sql("stedi")])
def test_views_are_trino_with_double_quoted_identifiers(view: str) -> None:
    assert "`" not in view  # Athena's Trino engine: "backquoted identifiers are not supported"
    for dialect in ("athena", "trino"):
        create = _parsed(view, dialect)
        select = create.args["expression"]
        assert isinstance(select, exp.Select)
        # "$path" is Athena's hidden path COLUMN, not the string '$path'.
        path = select.find(exp.RegexpExtract).this
        assert isinstance(path, exp.Column) and path.name == "$path", dialect
        source = select.args["from_"].this
        assert (source.args["db"].name, source.name) == ("stedi", create.this.name + "_files")


def test_the_check_rejects_the_old_backquoted_view() -> None:
    # The view as it was: backquoted names (the "table" alias and "$path" were double-quoted).
    old = re.sub(r'"(\w+)"', lambda m: m.group(0) if m.group(1) == "table" else f"`{m.group(1)}`",
                 warnings_view_sql("stedi"))
    assert old.startswith("CREATE OR REPLACE VIEW `stedi`.`warnings` AS") and '"$path"' in old
    with pytest.raises((AssertionError, sqlglot.errors.ParseError)):
        test_views_are_trino_with_double_quoted_identifiers(old)


def test_landing_tables_read_drifted_lines_through_the_ddl_schema(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Spark's JSON reader stands in for the OpenX SerDe: FAILFAST fails on a value its column's type
    # cannot hold, as the SerDe does (HIVE_BAD_DATA).  The schema is parsed out of the DDL statement
    # itself, so a typed landing column in the DDL would fail here.
    from pyspark.sql.types import StructField, StructType, _parse_datatype_string

    statements = {d.name: s for d, s in zip(table_definitions("s3://b/lake"), ddl_statements("s3://b/lake")[1:],
                                            strict=False)}
    drifted = {
        "customer_landing": [
            '{"customerName":"A","email":"a@x","phone":8015551212,"birthDay":"983-01-01","serialNumber":"S",'
            '"registrationDate":1655564376361,"lastUpdateDate":"1655564376361","shareWithResearchAsOfDate":1655564376361.0}',
            '{"customerName":"B","email":"b@x","phone":"1","birthDay":"1990-01-01","serialNumber":"S",'
            '"registrationDate":"soon","lastUpdateDate":2,"shareWithResearchAsOfDate":null}'],
        "accelerometer_landing": [
            '{"user":"a@x","timestamp":1655564376361.0,"x":"0.5","y":1,"z":true}',
            '{"user":42,"timestamp":"yesterday","x":-1.0,"y":null,"z":"n/a"}'],
        "step_trainer_landing": [
            '{"sensorReadingTime":"1655564376361","serialNumber":"S","distanceFromObject":12.0,"bootId":"b1","seq":"7"}',
            '{"sensorReadingTime":1655564376361,"serialNumber":9,"distanceFromObject":"far","bootId":3,"seq":-1}'],
    }
    for table, lines in drifted.items():
        columns = ddl_columns(statements[table])
        assert {t for _n, t in columns} == {"string"}, table
        schema = StructType([StructField(n, _parse_datatype_string(t), True) for n, t in columns])
        path = tmp_path / f"{table}.json"
        path.write_text("\n".join(lines) + "\n")
        rows = spark.read.schema(schema).option("mode", "FAILFAST").json(str(path)).collect()
        assert len(rows) == len(lines), table
        if table == "customer_landing":
            assert [(r.email, r.phone, r.lastUpdateDate, r.registrationDate) for r in rows] == [
                ("a@x", "8015551212", "1655564376361", "1655564376361"), ("b@x", "1", "2", "soon")]
        if table == "accelerometer_landing":
            # (Spark 3.5 and 4 may spell the float timestamp differently: only that it read is asserted.)
            assert [(r.user, r.z, r.timestamp is not None) for r in rows] == [("a@x", "true", True),
                                                                               ("42", "n/a", True)]
    # The typed reading the SerDe would do fails on the same kind of line: the check can fail.
    typed = StructType([StructField("registrationDate", _parse_datatype_string("bigint"))])
    with pytest.raises(Exception, match="(?i)malformed|parse|FAILFAST"):
        spark.read.schema(typed).option("mode", "FAILFAST").json(str(tmp_path / "customer_landing.json")).collect()
