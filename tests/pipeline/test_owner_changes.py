"""The customer-sized comparison the incremental plan makes (``transforms/incremental.py``): only a
customer batch's customers are compared, and a serial number's owners are known whole, before and after."""

from __future__ import annotations

from cloud_pipeline.transforms import jobs
from cloud_pipeline.transforms.incremental import (
    Owner,
    batch_owners,
    curated_after,
    latest_before_batch,
    moved,
    owners_among,
    owners_before,
    strings,
)
from cloud_pipeline.transforms.schemas import table_schema
from stedi.contract import TABLES_BY_NAME
from tests.pipeline.helpers import T0, customer, rows

SCHEMA = "email string, serialNumber string, shareWithResearchAsOfDate long"


def test_moved_customers_null_email_included(spark) -> None:  # type: ignore[no-untyped-def]
    before = spark.createDataFrame([
        ("same@x.com", "s1", 10),
        ("withdrew@x.com", "s1", 10),
        ("moved@x.com", "s2", None),
        ("gone@x.com", "s3", 5),
        (None, "s9", None),
        ("null-serial@x.com", None, 7),
    ], SCHEMA)
    after = spark.createDataFrame([
        ("same@x.com", "s1", 10),
        ("withdrew@x.com", "s1", None),
        ("moved@x.com", "s4", None),
        ("new@x.com", "s1", 20),
        (None, "s9", 3),
        ("null-serial@x.com", None, 7),
    ], SCHEMA)
    batch_before, batch_after = batch_owners(before, after)
    assert batch_before["same@x.com"] == batch_after["same@x.com"] == Owner("s1", 10)
    assert len(batch_before) == len(batch_after) == 6
    was, now = moved(batch_before, batch_after)
    assert was == {"withdrew@x.com": Owner("s1", 10), "moved@x.com": Owner("s2", None),
                   "gone@x.com": Owner("s3", 5), None: Owner("s9", None)}
    assert now == {"withdrew@x.com": Owner("s1", None), "moved@x.com": Owner("s4", None),
                   "new@x.com": Owner("s1", 20), None: Owner("s9", 3)}
    assert moved(batch_after, batch_after) == ({}, {})


def test_the_latest_records_before_a_batch_are_those_of_the_earlier_records(spark) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql.types import StructType

    # Nullable: latest_customers keeps the records without an email as one customer.
    schema = StructType([f.__class__(f.name, f.dataType, True) for f in table_schema(TABLES_BY_NAME["customer_landing"])])

    def frame(records):  # type: ignore[no-untyped-def]
        return spark.createDataFrame([tuple(r[f] for f in schema.fieldNames()) for r in records], schema)

    no_email = customer("nobody", "s7", 3) | {"email": None}
    earlier = frame([
        customer("kept", "s1", 10), customer("withdraws", "s2", 10), customer("stale", "s3", 10, updated=T0 + 5),
        no_email, customer("untouched", "s4", None)])
    batch = frame([
        customer("withdraws", "s2", None, updated=T0 + 1),
        customer("stale", "s3", None, updated=T0 + 1),  # older than its earlier record: changes nothing
        customer("new", "s5", 20),
        no_email | {"shareWithResearchAsOfDate": None, "lastUpdateDate": T0 + 9}])
    latest = jobs.latest_customers(jobs.classify_customers(earlier.unionByName(batch)))
    every_before, theirs_before, theirs_after = latest_before_batch(latest, earlier, batch)
    expected = jobs.latest_customers(jobs.classify_customers(earlier))
    assert rows(every_before, *jobs.CUSTOMER_COLUMNS) == rows(expected, *jobs.CUSTOMER_COLUMNS)
    # Only the batch's customers are compared, the record without an email among them.
    assert {r["email"] for r in theirs_before.collect()} == {"withdraws@example.com", "stale@example.com", None}
    assert {r["email"] for r in theirs_after.collect()} == {
        "withdraws@example.com", "stale@example.com", "new@example.com", None}
    was, now = moved(*batch_owners(theirs_before, theirs_after))
    assert was == {"withdraws@example.com": Owner("s2", 10), None: Owner("s7", 3)}
    assert now == {"withdraws@example.com": Owner("s2", None), "new@example.com": Owner("s5", 20),
                   None: Owner("s7", None)}


def test_a_serials_owners_before_a_batch_are_its_owners_after_it_with_the_batchs_as_they_were(  # type: ignore[no-untyped-def]
        spark) -> None:
    after = spark.createDataFrame([
        ("a@x.com", "s1", None), ("b@x.com", "s2", None), ("c@x.com", "s2", 3), ("d@x.com", "s1", 4),
        ("e@x.com", "s1", 1),
    ], SCHEMA)
    members_after = owners_among(after, ["s1"])
    assert members_after == {"a@x.com": Owner("s1", None), "d@x.com": Owner("s1", 4), "e@x.com": Owner("s1", 1)}
    # The batch: a withdrew, b left s1 for s2, d came from no serial; e is not in it.
    batch_before = {"a@x.com": Owner("s1", 10), "b@x.com": Owner("s1", None), "d@x.com": Owner(None, 4)}
    batch = {"a@x.com", "b@x.com", "d@x.com"}
    assert owners_before(members_after, batch_before, batch, {"s1"}) == {
        "a@x.com": Owner("s1", 10), "b@x.com": Owner("s1", None), "e@x.com": Owner("s1", 1)}
    # No customer batch: the same owners before as after.
    assert owners_before(members_after, {}, set(), {"s1"}) == members_after
    assert owners_among(after, ["s2", "s9"]) == {"b@x.com": Owner("s2", None), "c@x.com": Owner("s2", 3)}
    assert owners_among(after, []) == {}


def test_curated_after_keeps_the_unchanged_and_adds_readers_with_consent() -> None:
    owners = {"kept@x.com": Owner("s1", 1), "changed@x.com": Owner("s1", 1), "reader@x.com": Owner("s2", 2),
              "no-consent@x.com": Owner("s3", None), "idle@x.com": Owner("s4", 4), None: Owner("s5", 5)}
    curated = curated_after(owners, curated_before={"kept@x.com", "changed@x.com", "no-consent@x.com"},
                            changed={"changed@x.com", None}, readers={"reader@x.com", "no-consent@x.com"})
    assert curated == {"kept@x.com", "reader@x.com"}


def test_strings_lists_each_value_once_as_a_string_column_without_a_python_worker(spark) -> None:  # type: ignore[no-untyped-def]
    values = ["b@x.com", "it's", "back\\slash", "b@x.com", "ünï"]
    frame = strings(spark, "user", values)
    assert frame.schema.simpleString() == "struct<user:string>"
    assert sorted(r["user"] for r in frame.collect()) == sorted(set(values))
    assert strings(spark, "user", []).count() == 0
    # Built from SQL text: no Python rows for a Python worker to feed (createDataFrame's PythonRDD).
    assert "PythonRDD" not in frame.rdd.toDebugString().decode()
