"""Quarantine rules: every bad landing line is kept with its rule and a reason naming the fields."""

from __future__ import annotations

from cloud_pipeline.transforms.landing import accepted, parse_landing, quarantined
from stedi.contract import ACCELEROMETER_LANDING, CUSTOMER_LANDING


def _lines(spark, values: list[bytes]):  # type: ignore[no-untyped-def]
    from pyspark.sql.types import BinaryType, StructField, StructType

    df = spark.createDataFrame([(v,) for v in values], StructType([StructField("b", BinaryType())]))
    # Cast keeps the raw bytes, like the text reader does with a non-UTF-8 file.
    return df.selectExpr("cast(b as string) as value", "'accelerometer/landing/x.json' as _source")


def test_each_rule_with_reason(spark) -> None:
    lines = _lines(spark, [
        b'{"user":"a@x","timestamp":1,"x":0.1,"y":0,"z":1,"extra":"ignored"}',
        b'{"user":"a@x","timestamp":"soon","x":0.1,"y":0.2,"z":0.3}',
        b'{"user":"a@x","timestamp":2,"x":0.1',
        b'[1, 2, 3]',
        b'{"user":"a@x","timestamp":3,"x":0.1,"y":0.2}',
        b'{"user":null,"timestamp":4,"x":0.1,"y":0.2,"z":0.3}',
        b'{"user":"Jos\xe9","timestamp":5,"x":0.1,"y":0.2,"z":0.3}',
        b"   ",
    ])
    staged = parse_landing(lines, ACCELEROMETER_LANDING, "run-1")
    good = accepted(staged, ACCELEROMETER_LANDING).collect()
    assert [(r.user, r.timestamp, r.y) for r in good] == [("a@x", 1, 0.0)]
    bad = {(r.rule, r.reason) for r in quarantined(staged, ACCELEROMETER_LANDING).collect()}
    assert bad == {
        ("wrong_type", "wrong JSON type for field(s): timestamp"),
        ("malformed_json", "line is not one JSON object (truncated, malformed or with more after it)"),
        ("missing_required", "missing required field(s): z"),
        ("missing_required", "missing required field(s): user"),
        ("non_utf8", "line is not valid UTF-8"),
    }  # two malformed lines (truncated object, array) share one rule and reason
    q = quarantined(staged, ACCELEROMETER_LANDING).collect()
    assert len(q) == 6  # the blank line is not a record; every other bad line is kept
    assert {r.table for r in q} == {"accelerometer_landing"}
    assert {r.run_id for r in q} == {"run-1"}
    assert {r.source_file for r in q} == {"accelerometer/landing/x.json"}
    assert all(r.line for r in q)
    # A rejected line keeps no typed values, only its raw text.
    assert staged.filter("_rule is not null and timestamp is not null").count() == 0


def test_birthday_must_be_a_date(spark) -> None:
    lines = _lines(spark, [
        b'{"customerName":"A","email":"a@x","phone":"1","birthDay":"02/03/1990","serialNumber":"S",'
        b'"registrationDate":1,"lastUpdateDate":2,"shareWithResearchAsOfDate":null}',
    ])
    staged = parse_landing(lines, CUSTOMER_LANDING, "r")
    [row] = quarantined(staged, CUSTOMER_LANDING).collect()
    assert (row.rule, row.reason) == ("wrong_type", "not a YYYY-MM-DD date: birthDay")


def test_a_non_string_value_in_a_string_field_is_a_wrong_type(spark) -> None:
    # from_json would silently turn 5, true or {...} into the strings "5", "true", "{...}".
    lines = _lines(spark, [
        b'{"user": 5, "timestamp": 1, "x": 0.1, "y": 0.2, "z": 0.3}',
        b'{"user":true,"timestamp":2,"x":0.1,"y":0.2,"z":0.3}',
        b'{"user":{"email":"a@x"},"timestamp":3,"x":0.1,"y":0.2,"z":0.3}',
        b'{"user" : "5", "timestamp": 4, "x": 0.1, "y": 0.2, "z": 0.3}',
        b'{"user":"[not an array]","timestamp":5,"x":0.1,"y":0.2,"z":0.3}',
    ])
    staged = parse_landing(lines, ACCELEROMETER_LANDING, "r")
    good = sorted((r.user, r.timestamp) for r in accepted(staged, ACCELEROMETER_LANDING).collect())
    assert good == [("5", 4), ("[not an array]", 5)]  # real strings stay, whatever they look like
    bad = [(r.rule, r.reason) for r in quarantined(staged, ACCELEROMETER_LANDING).collect()]
    assert bad == [("wrong_type", "wrong JSON type for field(s): user")] * 3
