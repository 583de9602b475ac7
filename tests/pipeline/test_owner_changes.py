"""The customer-sized comparison the incremental plan makes in Spark (``transforms/incremental.py``):
only the customers whose owner record moved are collected, with a serial number's owners whole."""

from __future__ import annotations

from cloud_pipeline.transforms.incremental import (
    Owner,
    changed_owners,
    curated_after,
    owners_among,
    serials_owners,
)

SCHEMA = "email string, serialNumber string, shareWithResearchAsOfDate long"


def test_only_moved_customers_are_collected_null_email_included(spark) -> None:  # type: ignore[no-untyped-def]
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
    was, now = changed_owners(before, after)
    assert was == {"withdrew@x.com": Owner("s1", 10), "moved@x.com": Owner("s2", None),
                   "gone@x.com": Owner("s3", 5), None: Owner("s9", None)}
    assert now == {"withdrew@x.com": Owner("s1", None), "moved@x.com": Owner("s4", None),
                   "new@x.com": Owner("s1", 20), None: Owner("s9", 3)}
    assert changed_owners(after, after) == ({}, {})


def test_a_serials_owners_are_collected_whole_before_and_after(spark) -> None:  # type: ignore[no-untyped-def]
    before = spark.createDataFrame([
        ("a@x.com", "s1", 10), ("b@x.com", "s1", None), ("c@x.com", "s2", 3), ("d@x.com", None, 4),
    ], SCHEMA)
    after = spark.createDataFrame([
        ("a@x.com", "s1", None), ("b@x.com", "s2", None), ("c@x.com", "s2", 3), ("d@x.com", "s1", 4),
    ], SCHEMA)
    assert serials_owners(before, after, ["s1"]) == (
        {"a@x.com": Owner("s1", 10), "b@x.com": Owner("s1", None)},
        {"a@x.com": Owner("s1", None), "d@x.com": Owner("s1", 4)})
    # No new customer records: the same frame, one query.
    assert serials_owners(before, before, ["s2", "s9"]) == ({"c@x.com": Owner("s2", 3)}, {"c@x.com": Owner("s2", 3)})
    assert owners_among(after, ["s2"]) == {"b@x.com": Owner("s2", None), "c@x.com": Owner("s2", 3)}
    assert serials_owners(before, after, []) == ({}, {})
    assert owners_among(after, []) == {}


def test_curated_after_keeps_the_unchanged_and_adds_readers_with_consent() -> None:
    owners = {"kept@x.com": Owner("s1", 1), "changed@x.com": Owner("s1", 1), "reader@x.com": Owner("s2", 2),
              "no-consent@x.com": Owner("s3", None), "idle@x.com": Owner("s4", 4), None: Owner("s5", 5)}
    curated = curated_after(owners, curated_before={"kept@x.com", "changed@x.com", "no-consent@x.com"},
                            changed={"changed@x.com", None}, readers={"reader@x.com", "no-consent@x.com"})
    assert curated == {"kept@x.com", "reader@x.com"}
