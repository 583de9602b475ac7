"""Spark schemas built from the lake contract (``stedi.contract``): explicit, never inferred."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stedi.contract import Table

if TYPE_CHECKING:
    from pyspark.sql.types import DataType, StructType

#: Column that receives a landing line Spark could not convert to the schema.
CORRUPT_COLUMN = "_corrupt"

#: Columns the staging area adds beside the contract fields (text; see ``staging_schema``).
STAGING_COLUMNS = ("_rule", "_reason", "_source", "_raw", "_run")
#: One warning about a descriptive field of a kept landing line (``landing.py``), as Spark DDL.
WARNING_FIELDS = "rule: string, field: string, reason: string, value: string"


def spark_type(field_type: str) -> DataType:
    from pyspark.sql.types import DoubleType, LongType, StringType

    # date_string stays a string: the contract keeps the original "YYYY-MM-DD" text.
    return {"string": StringType(), "long": LongType(), "double": DoubleType(), "date_string": StringType()}[
        field_type
    ]


def table_schema(table: Table) -> StructType:
    """The contract's fields as a StructType, in contract order."""
    from pyspark.sql.types import StructField, StructType

    return StructType([StructField(f.name, spark_type(f.type), not f.required) for f in table.fields])


def landing_typed_schema(table: Table) -> StructType:
    """The landing schema in the contract's types, plus the corrupt-record column ``from_json``
    fills in PERMISSIVE mode: the parse every line gets (``landing.py``)."""
    from pyspark.sql.types import StringType, StructField, StructType

    # All fields nullable while parsing: a missing required field is a quarantine rule, not a crash.
    return StructType(
        [StructField(f.name, spark_type(f.type), True) for f in table.fields]
        + [StructField(CORRUPT_COLUMN, StringType(), True)]
    )


def landing_text_schema(table: Table) -> StructType:
    """Every landing field as the JSON text it holds, plus the corrupt-record column.

    The second look ``landing.py`` takes at a line the typed parse could not read as it is: it
    types each value itself, so that a lossless coercion (``1655564376361.0`` for an epoch-ms
    integer) is told from a wrong type, and a wrong type in one descriptive field does not cost
    the line its other fields.
    """
    from pyspark.sql.types import StringType, StructField, StructType

    # All fields nullable while parsing: a missing required field is a quarantine rule, not a crash.
    return StructType(
        [StructField(f.name, StringType(), True) for f in table.fields]
        + [StructField(CORRUPT_COLUMN, StringType(), True)]
    )


def quarantine_schema() -> StructType:
    from pyspark.sql.types import StringType, StructField, StructType

    return StructType(
        [
            StructField("table", StringType(), False),
            StructField("rule", StringType(), False),
            StructField("reason", StringType(), False),
            StructField("source_file", StringType(), True),
            StructField("line", StringType(), True),
            StructField("run_id", StringType(), False),
        ]
    )


def staging_schema(table: Table) -> StructType:
    """A staging batch: contract columns (nullable: rejected lines keep none), provenance, and per
    kept line the number of values coerced losslessly and its warnings.  (Batches staged before
    the last two existed read them as null: none.)"""
    from pyspark.sql.types import ArrayType, IntegerType, StringType, StructField, StructType

    return StructType(
        [StructField(f.name, spark_type(f.type), True) for f in table.fields]
        + [StructField(name, StringType(), True) for name in STAGING_COLUMNS]
        + [StructField("_coerced", IntegerType(), True),
           StructField("_warnings", ArrayType(warning_schema_fields()), True)]
    )


def warning_schema_fields() -> StructType:
    """The struct of one warning inside a staging batch (``WARNING_FIELDS``)."""
    from pyspark.sql.types import StringType, StructField, StructType

    return StructType([StructField(name.split(":")[0].strip(), StringType(), True) for name in WARNING_FIELDS.split(",")])


def warnings_schema() -> StructType:
    """The warnings table: one row per warning about a descriptive field of a kept landing line."""
    from pyspark.sql.types import StringType, StructField, StructType

    return StructType(
        [
            StructField("table", StringType(), False),
            StructField("rule", StringType(), False),
            StructField("field", StringType(), False),
            StructField("reason", StringType(), False),
            StructField("value", StringType(), True),
            StructField("source_file", StringType(), True),
            StructField("run_id", StringType(), False),
        ]
    )
