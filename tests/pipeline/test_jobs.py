"""Each job's semantics pinned by hand-built fixtures (pure functions, no storage)."""

from __future__ import annotations

from cloud_pipeline.transforms import jobs
from stedi.contract import MACHINE_LEARNING_CURATED, PERSONAL_COLUMNS
from tests.pipeline.helpers import DAY, SALT, T0, accel, customer, frame, rows, step


def test_customer_trusted_keeps_latest_record_with_consent(spark) -> None:
    landing = frame(spark, "customer_landing", [
        customer("ann", "S1", T0 - DAY, updated=T0 - 5, phone="old"),
        customer("ann", "S1", T0 - DAY, updated=T0, phone="new"),  # duplicate customer: latest wins
        customer("bob", "S2", None),  # null consent is no consent
        customer("cat", "S3", T0 - DAY, updated=T0),
        customer("cat", "S3", None, updated=T0 + 1),  # withdrew consent later
        customer("dan", "S4", None, updated=T0),
        customer("dan", "S4", T0, updated=T0 + 1),  # consented later
    ])
    trusted = jobs.trusted_rows(jobs.classify_customers(landing), jobs.CUSTOMER_COLUMNS)
    assert rows(trusted, "email", "phone") == [("ann@example.com", "new"), ("dan@example.com", "555-0100")]
    assert trusted.columns == list(jobs.CUSTOMER_COLUMNS)


def test_accelerometer_trusted_only_consenting_users_deduplicated_and_as_of(spark) -> None:
    customers = frame(spark, "customer_landing", [
        customer("ann", "S1", T0 + 1500), customer("bob", "S2", None),
    ])
    landing = frame(spark, "accelerometer_landing", [
        accel("ann", T0 + 1000), accel("ann", T0 + 2000), accel("ann", T0 + 2000),  # exact duplicate
        accel("ann", T0 + 2000, x=0.9),  # same time, other values: not a duplicate
        accel("bob", T0 + 1000), accel("zed", T0 + 1000),
    ])
    latest = jobs.latest_customers(jobs.classify_customers(customers))
    trusted = jobs.trusted_rows(jobs.classify_accelerometer(landing, latest), jobs.ACCELEROMETER_COLUMNS)
    assert rows(trusted, "user", "timestamp", "x") == [
        ("ann@example.com", T0 + 1000, 0.5), ("ann@example.com", T0 + 2000, 0.5), ("ann@example.com", T0 + 2000, 0.9),
    ]
    assert trusted.columns == ["user", "timestamp", "x", "y", "z"]
    as_of = jobs.trusted_rows(jobs.classify_accelerometer(landing, latest, consent="as-of"), jobs.ACCELEROMETER_COLUMNS)
    assert rows(as_of, "timestamp") == [(T0 + 2000,), (T0 + 2000,)]


def test_customer_curated_needs_accelerometer_readings(spark) -> None:
    trusted = frame(spark, "customer_trusted", [customer("ann", "S1", T0), customer("eve", "S5", T0)])
    readings = frame(spark, "accelerometer_trusted", [accel("ann", T0), accel("ann", T0 + 1)])
    curated = jobs.customer_trusted_to_curated(trusted, readings)
    assert rows(curated, "email") == [("ann@example.com",)]  # one row, not one per reading


def test_step_trainer_trusted_only_serials_of_curated_customers(spark) -> None:
    customers = frame(spark, "customer_landing", [
        customer("ann", "S1", T0 + 1500), customer("bob", "S2", None), customer("eve", "S5", T0),
    ])
    curated = frame(spark, "customer_curated", [customer("ann", "S1", T0 + 1500)])
    landing = frame(spark, "step_trainer_landing", [
        step("S1", T0 + 1000), step("S1", T0 + 2000), step("S1", T0 + 2000),
        step("S2", T0 + 1000), step("S5", T0 + 1000), step("S9", T0 + 1000),
    ])
    latest = jobs.latest_customers(jobs.classify_customers(customers))
    classified = jobs.classify_step_trainer(landing, latest, curated)
    assert rows(jobs.trusted_rows(classified, jobs.STEP_TRAINER_COLUMNS), "serialNumber", "sensorReadingTime") == [
        ("S1", T0 + 1000), ("S1", T0 + 2000),
    ]
    as_of = jobs.trusted_rows(jobs.classify_step_trainer(landing, latest, curated, consent="as-of"),
                              jobs.STEP_TRAINER_COLUMNS)
    assert rows(as_of, "sensorReadingTime") == [(T0 + 2000,)]
    fates = dict((f, n) for f, n in rows(classified.groupBy(jobs.FATE).sum(jobs.COUNT)))
    assert fates == {"trusted": 3, "excluded_no_consent": 1, "excluded_not_curated": 1, "excluded_unknown_customer": 1}


def test_machine_learning_pairs_the_same_customer_not_just_the_same_timestamp(spark) -> None:
    # ann and bob's clocks agree: a timestamp-only join would pair ann's step with bob's reading.
    curated = frame(spark, "customer_curated", [customer("ann", "S-A", T0), customer("bob", "S-B", T0)])
    accelerometer = frame(spark, "accelerometer_trusted", [
        accel("ann", T0 + 1000, x=1.0), accel("bob", T0 + 1000, x=2.0), accel("bob", T0 + 3000, x=3.0),
    ])
    steps = frame(spark, "step_trainer_trusted", [
        step("S-A", T0 + 1000, 10, seq=5), step("S-B", T0 + 1000, 20), step("S-A", T0 + 3000, 30),
    ])
    ml = jobs.machine_learning_curated(steps, accelerometer, curated, salt=SALT)
    assert rows(ml, "serialNumber", "distanceFromObject", "x", "seq") == [("S-A", 10, 1.0, 5), ("S-B", 20, 2.0, None)]
    assert ml.columns == list(MACHINE_LEARNING_CURATED.field_names)
    assert not set(ml.columns) & PERSONAL_COLUMNS
    keys = dict(rows(ml, "serialNumber", "customerKey"))
    import hashlib

    assert keys["S-A"] == hashlib.sha256(f"{SALT}:ann@example.com".encode()).hexdigest()
    assert keys["S-A"] != keys["S-B"]


def test_machine_learning_tolerance_takes_the_nearest_reading(spark) -> None:
    curated = frame(spark, "customer_curated", [customer("ann", "S-A", T0)])
    accelerometer = frame(spark, "accelerometer_trusted", [
        accel("ann", T0 + 996, x=1.0), accel("ann", T0 + 1003, x=2.0), accel("ann", T0 + 1020, x=3.0),
    ])
    steps = frame(spark, "step_trainer_trusted", [step("S-A", T0 + 1000), step("S-A", T0 + 1100)])
    exact = jobs.machine_learning_curated(steps, accelerometer, curated, salt=SALT)
    assert exact.count() == 0
    near = jobs.machine_learning_curated(steps, accelerometer, curated, salt=SALT, tolerance_ms=5)
    assert rows(near, "sensorReadingTime", "timestamp", "x") == [(T0 + 1000, T0 + 1003, 2.0)]
    wide = jobs.machine_learning_curated(steps, accelerometer, curated, salt=SALT, tolerance_ms=100)
    assert rows(wide, "sensorReadingTime", "timestamp") == [(T0 + 1000, T0 + 1003), (T0 + 1100, T0 + 1020)]


def test_machine_learning_join_is_shuffled_by_the_customer_alone(spark) -> None:  # type: ignore[no-untyped-def]
    """Its files hold whole customers (a rewrite of a few serials rewrites few files) at no extra
    shuffle: in the pipeline's sessions (``session.PIPELINE_SQL_CONF``) the join keeps the steps'
    partitioning by customer and the window needs none of its own.  Run under Spark 3.5 too."""
    import re

    from cloud_pipeline.session import PIPELINE_SQL_CONF

    assert spark.conf.get("spark.sql.requireAllClusterKeysForCoPartition") == \
        PIPELINE_SQL_CONF["spark.sql.requireAllClusterKeysForCoPartition"]
    curated = frame(spark, "customer_curated", [customer("ann", "S-A", T0)])
    accelerometer = frame(spark, "accelerometer_trusted", [accel("ann", T0)])
    steps = frame(spark, "step_trainer_trusted", [step("S-A", T0)])
    threshold = spark.conf.get("spark.sql.autoBroadcastJoinThreshold")
    spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")  # the sort-merge join of a large lake
    try:
        for tolerance in (0, 50):
            ml = jobs.machine_learning_curated(steps, accelerometer, curated, salt=SALT, tolerance_ms=tolerance)
            plan = ml._jdf.queryExecution().executedPlan().toString()
            # Hash shuffles but the one that makes the customers' serials distinct (its own keys).
            keys = [k for k in re.findall(r"Exchange hashpartitioning\(([^)]*?), \d+\)", plan) if "_owner_serial" not in k]
            assert sorted(re.sub(r"#\d+", "", k) for k in keys) == ["_owner", "_user"], (tolerance, plan)
            assert rows(ml, "serialNumber") == [("S-A",)]
    finally:
        spark.conf.set("spark.sql.autoBroadcastJoinThreshold", threshold)
