"""Quarantine rules: every bad landing line is kept with its rule and a reason naming the fields."""

from __future__ import annotations

from cloud_pipeline.transforms.landing import accepted, parse_landing, quarantined, warned
from stedi.contract import ACCELEROMETER_LANDING, CUSTOMER_LANDING

# Each test parses once (localCheckpoint) and then selects from the result several times, as the
# runner does from the staging it writes: on Spark 3.5 the optimizer would otherwise inline the
# parse into each select's pushed-down filters (a 6 MB plan for `warned`, 16 s instead of 0.5 s).


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
    staged = parse_landing(lines, ACCELEROMETER_LANDING, "run-1").localCheckpoint()
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


def test_a_birthday_that_is_not_a_date_is_kept_with_a_warning(spark) -> None:
    # birthDay is descriptive: no job reads it, so the customer stays (the original data has 983-01-01).
    lines = _lines(spark, [
        b'{"customerName":"A","email":"a@x","phone":"1","birthDay":"02/03/1990","serialNumber":"S",'
        b'"registrationDate":1,"lastUpdateDate":2,"shareWithResearchAsOfDate":null}',
    ])
    staged = parse_landing(lines, CUSTOMER_LANDING, "r").localCheckpoint()
    assert quarantined(staged, CUSTOMER_LANDING).count() == 0
    [row] = accepted(staged, CUSTOMER_LANDING).collect()
    assert (row.email, row.birthDay) == ("a@x", "02/03/1990")
    [warning] = warned(staged, CUSTOMER_LANDING).collect()
    assert (warning.rule, warning.field, warning.value, warning.run_id) == ("not_a_date", "birthDay", "02/03/1990", "r")
    assert warning.reason == "not a YYYY-MM-DD date; kept as text"
    assert warning.source_file == "accelerometer/landing/x.json"


def test_a_non_string_value_in_a_string_field_is_a_wrong_type_unless_an_integer(spark) -> None:
    # from_json would silently turn true or {...} into the strings "true", "{...}"; an integer has one
    # exact text, so it is coerced (counted), as the original data's numeric phones need.
    lines = _lines(spark, [
        b'{"user": 5, "timestamp": 1, "x": 0.1, "y": 0.2, "z": 0.3}',
        b'{"user":true,"timestamp":2,"x":0.1,"y":0.2,"z":0.3}',
        b'{"user":{"email":"a@x"},"timestamp":3,"x":0.1,"y":0.2,"z":0.3}',
        b'{"user" : "5", "timestamp": 4, "x": 0.1, "y": 0.2, "z": 0.3}',
        b'{"user":"[not an array]","timestamp":5,"x":0.1,"y":0.2,"z":0.3}',
    ])
    staged = parse_landing(lines, ACCELEROMETER_LANDING, "r").localCheckpoint()
    good = sorted((r.user, r.timestamp) for r in accepted(staged, ACCELEROMETER_LANDING).collect())
    assert good == [("5", 1), ("5", 4), ("[not an array]", 5)]  # real strings stay, whatever they look like
    coerced = {r.timestamp: r._coerced for r in staged.filter("_rule is null").collect()}
    assert coerced == {1: 1, 4: None, 5: None}
    bad = [(r.rule, r.reason) for r in quarantined(staged, ACCELEROMETER_LANDING).collect()]
    assert bad == [("wrong_type", "wrong JSON type for field(s): user")] * 2


# One line of each kind: which zone it reaches (kept, quarantine) and what it records.
_CUSTOMER = ('{"customerName":"Ann","email":"%s","phone":%s,"birthDay":%s,"serialNumber":"S",'
             '"registrationDate":%s,"lastUpdateDate":%s,"shareWithResearchAsOfDate":%s}')
SEVERITY_CASES = [
    # (line, kept?, quarantine rule, coerced fields, warnings as (rule, field, value))
    (_CUSTOMER % ("clean@x", '"8015551212"', '"1990-01-01"', "1", "2", "3"), True, None, None, []),
    (_CUSTOMER % ("phone@x", "8015551212", '"1990-01-01"', "1", "2", "3"), True, None, 1, []),
    (_CUSTOMER % ("floats@x", '"1"', '"1990-01-01"', "1.0", "1655564376361.0", "1655564376361.0"), True, None, 3, []),
    (_CUSTOMER % ("digits@x", '"1"', '"1990-01-01"', '"1"', '"2"', '"3"'), True, None, 3, []),
    (_CUSTOMER % ("year@x", '"1"', '"983-01-01"', "1", "2", "3"), True, None, None,
     [("not_a_date", "birthDay", "983-01-01")]),
    (_CUSTOMER % ("bday@x", '"1"', "19900101", "1", "2", "3"), True, None, 1,
     [("not_a_date", "birthDay", "19900101")]),
    (_CUSTOMER % ("phonefloat@x", "8015551212.5", '"1990-01-01"', "1", "2", "3"), True, None, None,
     [("wrong_type", "phone", "8.0155512125E9")]),
    (_CUSTOMER % ("reg@x", '"1"', '"1990-01-01"', '"soon"', "2", "3"), True, None, None,
     [("wrong_type", "registrationDate", "soon")]),
    ('{"email":"bare@x","serialNumber":"S","lastUpdateDate":2}', True, None, None,
     [("missing_field", "customerName", None), ("missing_field", "phone", None),
      ("missing_field", "birthDay", None), ("missing_field", "registrationDate", None)]),
    (_CUSTOMER % ("late@x", '"1"', '"1990-01-01"', "1", "2.5", "3"), False, "wrong_type", None, []),
    (_CUSTOMER % ("consent@x", '"1"', '"1990-01-01"', "1", "2", '"yesterday"'), False, "wrong_type", None, []),
    (_CUSTOMER % ("consentstr@x", '"1"', '"1990-01-01"', "1", "2", '"3.0"'), False, "wrong_type", None, []),
    ('{"customerName":"N","email":"nolast@x","phone":"1","birthDay":"1990-01-01","serialNumber":"S",'
     '"registrationDate":1}', False, "missing_required", None, []),
]


def test_each_kind_of_value_lands_where_its_severity_says(spark) -> None:
    lines = _lines(spark, [case[0].encode() for case in SEVERITY_CASES])
    staged = parse_landing(lines, CUSTOMER_LANDING, "r").cache()
    rows = {r.email: r for r in staged.filter("_rule is null").collect()}
    rejected = {r.line: r.rule for r in quarantined(staged, CUSTOMER_LANDING).collect()}
    for line, kept, rule, coerced, expected_warnings in SEVERITY_CASES:
        email = line.split('"email":"')[1].split('"')[0]
        assert (email in rows) == kept, line
        if kept:
            assert rows[email]._coerced == coerced, line
            got = sorted((w.rule, w.field, w.value) for w in rows[email]._warnings or [])
            assert got == sorted(expected_warnings, key=str), line
        else:
            assert rejected[line] == rule, line
    assert len(rejected) == sum(not case[1] for case in SEVERITY_CASES)
    # The warnings table holds each warning once, with the line's file and run.
    table = warned(staged, CUSTOMER_LANDING).collect()
    assert len(table) == sum(len(case[4]) for case in SEVERITY_CASES)
    assert {(w.table, w.source_file, w.run_id) for w in table} == {("customer_landing", "accelerometer/landing/x.json", "r")}
    assert rows["floats@x"].lastUpdateDate == 1655564376361 and rows["digits@x"].registrationDate == 1
    assert rows["phone@x"].phone == "8015551212" and rows["phonefloat@x"].phone is None
    assert rows["year@x"].birthDay == "983-01-01" and rows["reg@x"].registrationDate is None


def test_utf8_check_and_raw_text_on_every_spark(spark) -> None:
    # Built from functions Spark 3.5 (AWS Glue 5.x) has: every ill-formed sequence is caught, and
    # the quarantine keeps valid text with U+FFFD in its place.
    record = b'{"user":"%s","timestamp":1,"x":0.1,"y":0.2,"z":0.3}'
    ill_formed = [b"\xff", b"\xe9", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"ab\xe2\x82"]
    well_formed = [b"caf\xc3\xa9", "\ufffd".encode(), "\U0001f600".encode()]
    lines = _lines(spark, [record % v for v in ill_formed + well_formed])
    staged = parse_landing(lines, ACCELEROMETER_LANDING, "r").localCheckpoint()
    assert sorted(r.user for r in accepted(staged, ACCELEROMETER_LANDING).collect()) == sorted(
        v.decode() for v in well_formed
    )
    q = quarantined(staged, ACCELEROMETER_LANDING).collect()
    assert [r.rule for r in q] == ["non_utf8"] * len(ill_formed)
    for r in q:
        assert "\ufffd" in r.line and r.line.startswith('{"user":"') and r.line.endswith('"z":0.3}')
        r.line.encode("utf-8")  # what the quarantine holds is valid text
