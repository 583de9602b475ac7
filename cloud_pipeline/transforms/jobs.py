"""The five jobs of the original design, each a pure function of DataFrames.

No job reads or writes storage: the runner (``cloud_pipeline.runner``) does I/O at the edges,
and ``cloud_pipeline.config.JOBS`` says which of these functions each job calls on what.  A
landing-to-trusted job is a ``classify_*`` function that keeps every landing row and says what
happened to it (its *fate*); the job's table is ``trusted_rows`` of that classification.  The
runner uses the classification to reconcile: every landing row has exactly one fate, so
landing = trusted + excluded + duplicates + quarantined holds by construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from stedi.contract import (
    ACCELEROMETER_FIELDS,
    CUSTOMER_FIELDS,
    MACHINE_LEARNING_CURATED,
    STEP_TRAINER_LANDING,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ConsentMode = Literal["all", "as-of"]

FATE = "_fate"
COUNT = "_n"
# Fates of landing rows.
TRUSTED = "trusted"
SUPERSEDED = "superseded"  # an older record of a customer: the latest record per email wins
EXCLUDED_CONSENT = "excluded_no_consent"  # the customer's latest record has no research consent
BEFORE_CONSENT = "excluded_before_consent"  # --consent as-of: reading taken before consent was given
UNKNOWN_CUSTOMER = "excluded_unknown_customer"  # no customer record has this user / serial number
NOT_CURATED = "excluded_not_curated"  # serial of a consenting customer without accelerometer readings
DUPLICATE = "duplicate"  # an exact copy of a row already kept

CUSTOMER_COLUMNS = tuple(f.name for f in CUSTOMER_FIELDS)
ACCELEROMETER_COLUMNS = tuple(f.name for f in ACCELEROMETER_FIELDS)
STEP_TRAINER_COLUMNS = STEP_TRAINER_LANDING.field_names
MACHINE_LEARNING_COLUMNS = MACHINE_LEARNING_CURATED.field_names


# --- customer -------------------------------------------------------------------------------


def classify_customers(customer_landing: DataFrame) -> DataFrame:
    """Every customer record with its fate: trusted, superseded or excluded_no_consent."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # Latest record per email; the other columns only break ties so the choice is deterministic.
    order = [F.col("lastUpdateDate").desc()] + [F.col(c).desc_nulls_last() for c in CUSTOMER_COLUMNS]
    newest_first = Window.partitionBy("email").orderBy(*order)
    ranked = customer_landing.select(*CUSTOMER_COLUMNS, F.row_number().over(newest_first).alias("_rank"))
    fate = (
        F.when(F.col("_rank") > 1, F.lit(SUPERSEDED))
        # Null consent means "not given": the original filter silently kept such rows.
        .when(F.col("shareWithResearchAsOfDate").isNull(), F.lit(EXCLUDED_CONSENT))
        .otherwise(F.lit(TRUSTED))
    )
    return ranked.select(*CUSTOMER_COLUMNS, fate.alias(FATE))


def latest_customers(classified_customers: DataFrame) -> DataFrame:
    """One row per email from ``classify_customers``: the latest record, consenting or not."""
    from pyspark.sql import functions as F

    return classified_customers.filter(F.col(FATE) != SUPERSEDED).select(*CUSTOMER_COLUMNS)


# --- accelerometer --------------------------------------------------------------------------


def classify_accelerometer(
    accelerometer_landing: DataFrame, customer_latest: DataFrame, consent: ConsentMode = "all"
) -> DataFrame:
    """Accelerometer rows with their fate and ``_n``, how many landing rows each stands for.

    Trusted rows are distinct: one aggregation both removes exact duplicates and counts them
    (``_n - 1`` per kept row).  See ``_distinct_trusted``.
    """
    from pyspark.sql import functions as F

    owners = F.broadcast(
        customer_latest.select(
            F.col("email").alias("_email"), F.col("shareWithResearchAsOfDate").alias("_consent")
        )
    )
    joined = accelerometer_landing.join(owners, accelerometer_landing["user"] == owners["_email"], "left")
    fate = (
        F.when(F.col("_email").isNull(), F.lit(UNKNOWN_CUSTOMER))
        .when(F.col("_consent").isNull(), F.lit(EXCLUDED_CONSENT))
        .when(F.lit(consent == "as-of") & (F.col("timestamp") < F.col("_consent")), F.lit(BEFORE_CONSENT))
        .otherwise(F.lit(TRUSTED))
    )
    return _distinct_trusted(joined.select(*ACCELEROMETER_COLUMNS, fate.alias(FATE)), ACCELEROMETER_COLUMNS, "user")


def _distinct_trusted(classified: DataFrame, columns: tuple[str, ...], owner: str) -> DataFrame:
    """Trusted rows made distinct, each with ``_n``, the landing rows it stands for; other rows
    as they are, ``_n`` = 1.

    A row's fate depends only on its own columns, so exact copies share it.  Only trusted rows are
    kept, so only they go through the shuffle that removes copies; the excluded ones (about half
    of a lake) are just counted.  That shuffle is by ``owner`` alone (a hash of one of the grouped
    columns satisfies the grouping, so Spark adds no other): each written file then holds every
    row of its owners and none of the others', and a run that replaces a few owners' rows rewrites
    only their files (``PipelineRun._replace_owners_rows``).
    """
    from pyspark.sql import functions as F

    trusted = (
        _by_owner(classified.filter(F.col(FATE) == TRUSTED), owner)
        .groupBy(*columns)
        .agg(F.count(F.lit(1)).alias(COUNT))
        .select(*columns, F.lit(TRUSTED).alias(FATE), COUNT)
    )
    excluded = classified.filter(F.col(FATE) != TRUSTED).select(*columns, FATE, F.lit(1).cast("long").alias(COUNT))
    return trusted.unionByName(excluded)


def _by_owner(rows: DataFrame, owner: str) -> DataFrame:
    """``rows`` shuffled by a hash of ``owner`` alone, into the session's number of shuffle
    partitions: each output file then holds all rows of its owners and none of the others'.

    A number is given so that adaptive execution keeps every partition (it merges the partitions
    of a shuffle by column, which at 100x left 3 files of 8: a rewrite of one owner's rows then
    rewrote a third of the table).  A later grouping whose keys include ``owner`` needs no other
    shuffle: a hash of some of its keys satisfies it.  So does a join's, in the pipeline's
    sessions (``session.PIPELINE_SQL_CONF``: Spark's default shuffles both sides again on all the
    join keys): the other side is shuffled by its owner column to match.
    """
    partitions = rows.sparkSession.conf.get("spark.sql.shuffle.partitions") or "8"
    return rows.repartition(int(partitions), owner)


def trusted_rows(classified: DataFrame, columns: tuple[str, ...]) -> DataFrame:
    """A landing job's table: the rows a ``classify_*`` function found trusted, ``columns`` only."""
    from pyspark.sql import functions as F

    return classified.filter(F.col(FATE) == TRUSTED).select(*columns)


# --- customer curated -----------------------------------------------------------------------


def customer_trusted_to_curated(customer_trusted: DataFrame, accelerometer_trusted: DataFrame) -> DataFrame:
    """Trusted customers who have accelerometer readings."""
    return customers_among(customer_trusted, accelerometer_trusted.select("user").distinct())


def customers_among(customer_trusted: DataFrame, users: DataFrame) -> DataFrame:
    """The trusted customers whose email is one of ``users``' distinct ``user`` values."""
    return customer_trusted.join(users, customer_trusted["email"] == users["user"], "left_semi").select(
        *CUSTOMER_COLUMNS
    )


# --- step trainer ---------------------------------------------------------------------------


def classify_step_trainer(
    step_trainer_landing: DataFrame,
    customer_latest: DataFrame,
    customer_curated: DataFrame,
    consent: ConsentMode = "all",
) -> DataFrame:
    """Step-trainer rows with their fate and ``_n`` (see ``classify_accelerometer``)."""
    from pyspark.sql import functions as F

    curated = customer_curated.select(F.col("email").alias("_curated_email"))
    # One row per serial number, so the join never multiplies readings; several customers
    # may share a serial: it is trusted if any of them is curated.
    serials = (
        customer_latest.join(curated, customer_latest["email"] == curated["_curated_email"], "left")
        .groupBy(F.col("serialNumber").alias("_serial"))
        .agg(
            F.max(F.col("shareWithResearchAsOfDate").isNotNull()).alias("_any_consent"),
            F.max(F.col("_curated_email").isNotNull()).alias("_any_curated"),
            F.min(F.when(F.col("_curated_email").isNotNull(), F.col("shareWithResearchAsOfDate"))).alias(
                "_consent"
            ),
        )
    )
    joined = step_trainer_landing.join(
        F.broadcast(serials), step_trainer_landing["serialNumber"] == serials["_serial"], "left"
    )
    fate = (
        F.when(F.col("_serial").isNull(), F.lit(UNKNOWN_CUSTOMER))
        .when(~F.col("_any_consent"), F.lit(EXCLUDED_CONSENT))
        .when(~F.col("_any_curated"), F.lit(NOT_CURATED))
        .when(
            F.lit(consent == "as-of") & (F.col("sensorReadingTime") < F.col("_consent")), F.lit(BEFORE_CONSENT)
        )
        .otherwise(F.lit(TRUSTED))
    )
    return _distinct_trusted(joined.select(*STEP_TRAINER_COLUMNS, fate.alias(FATE)), STEP_TRAINER_COLUMNS,
                             "serialNumber")


# --- machine learning -----------------------------------------------------------------------


def customer_key(email_column: str, salt: str):  # type: ignore[no-untyped-def]
    """Salted SHA-256 of the email: stable across runs, not reversible without the salt."""
    from pyspark.sql import functions as F

    return F.sha2(F.concat(F.lit(salt), F.lit(":"), F.col(email_column)), 256)


def machine_learning_curated(
    step_trainer_trusted: DataFrame,
    accelerometer_trusted: DataFrame,
    customer_curated: DataFrame,
    *,
    salt: str,
    tolerance_ms: int = 0,
) -> DataFrame:
    """Each trusted step reading with the SAME customer's accelerometer reading at that time.

    The step reading's serial number names the customer (``customer_curated``), whose email is
    the accelerometer ``user``; readings pair only within one customer, never on timestamp alone.
    With ``tolerance_ms`` > 0 the nearest accelerometer reading within that many ms is taken
    (ties: the earlier one).  The email is replaced by a salted ``customerKey``: no personal data.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if tolerance_ms < 0:
        raise ValueError("tolerance_ms must be >= 0")
    owners = customer_curated.select(
        F.col("serialNumber").alias("_owner_serial"), F.col("email").alias("_owner")
    ).distinct()
    steps = step_trainer_trusted.join(
        F.broadcast(owners), step_trainer_trusted["serialNumber"] == owners["_owner_serial"], "inner"
    ).drop("_owner_serial")
    accel = accelerometer_trusted.select(
        F.col("user").alias("_user"), F.col("timestamp"), F.col("x"), F.col("y"), F.col("z")
    )
    # The step readings shuffled by their customer (the accelerometer side is then shuffled by
    # user to match): the join and the window below need no other shuffle, and each file of the
    # table holds whole customers, so a rewrite of a few serials' rows rewrites a few files.
    if tolerance_ms == 0:
        steps = _by_owner(steps, "_owner")
        pairs = steps.join(
            accel, (steps["_owner"] == accel["_user"]) & (steps["sensorReadingTime"] == accel["timestamp"]), "inner"
        )
    else:
        # Equi-join on (customer, time bucket) keeps the join hashable; a step reading looks in
        # the buckets its tolerance window touches, then the exact distance is checked.
        width = tolerance_ms
        bucketed_steps = steps.withColumn(
            "_bucket",
            F.explode(
                F.sequence(
                    F.floor((F.col("sensorReadingTime") - tolerance_ms) / width),
                    F.floor((F.col("sensorReadingTime") + tolerance_ms) / width),
                )
            ),
        )
        bucketed_steps = _by_owner(bucketed_steps, "_owner")
        bucketed_accel = accel.withColumn("_abucket", F.floor(F.col("timestamp") / width))
        pairs = bucketed_steps.join(
            bucketed_accel,
            (bucketed_steps["_owner"] == bucketed_accel["_user"])
            & (bucketed_steps["_bucket"] == bucketed_accel["_abucket"])
            & (F.abs(bucketed_steps["sensorReadingTime"] - bucketed_accel["timestamp"]) <= tolerance_ms),
            "inner",
        )
    # One row per (step reading, customer): the nearest reading wins; the rest only make ties
    # deterministic (two accelerometer readings at the same instant with different values).
    reading = [F.col(c) for c in STEP_TRAINER_COLUMNS] + [F.col("_owner")]
    nearest_first = Window.partitionBy(*reading).orderBy(
        F.abs(F.col("sensorReadingTime") - F.col("timestamp")), "timestamp", "x", "y", "z"
    )
    ranked = pairs.withColumn("_rank", F.row_number().over(nearest_first))
    best = ranked.filter(F.col("_rank") == 1)
    return best.select(
        "sensorReadingTime",
        "serialNumber",
        "distanceFromObject",
        "bootId",
        "seq",
        customer_key("_owner", salt).alias("customerKey"),
        "timestamp",
        "x",
        "y",
        "z",
    ).select(*MACHINE_LEARNING_COLUMNS)
