"""Parsing landing lines into typed rows, and the quarantine rules for lines that break the contract.

The input is a DataFrame of raw text lines (``value``) with the file each came from (``_source``);
the output keeps every line: contract columns for good lines, and for bad ones the rule that
rejected it, a reason naming the fields, and the raw line.  Nothing is dropped silently.

Rules, in the order they are checked:

- ``non_utf8``: the line is not valid UTF-8.
- ``malformed_json``: the line is not a JSON object (truncated, garbage, an array...).
- ``wrong_type``: a field has a value of the wrong JSON type (e.g. ``"timestamp": "soon"`` or
  ``"user": 5``), or ``birthDay`` is not ``YYYY-MM-DD``.
- ``missing_required``: a required field is absent or null.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cloud_pipeline.schemas import CORRUPT_COLUMN, landing_parse_schema
from stedi.contract import Table

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

RULE_NON_UTF8 = "non_utf8"
RULE_MALFORMED_JSON = "malformed_json"
RULE_WRONG_TYPE = "wrong_type"
RULE_MISSING_REQUIRED = "missing_required"
RULES = (RULE_NON_UTF8, RULE_MALFORMED_JSON, RULE_WRONG_TYPE, RULE_MISSING_REQUIRED)

_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
#: What from_json makes of a number, boolean, object or array in a string field.
_NON_STRING_TEXT = r"^(-?[0-9]|true$|false$|\{|\[)"


def _fields_where(names_and_conditions: list[tuple[str, Column]]) -> Column:
    """A comma-separated list of the names whose condition holds (null-safe)."""
    from pyspark.sql import functions as F

    return F.concat_ws(", ", *[F.when(cond, F.lit(name)) for name, cond in names_and_conditions])


def parse_landing(lines: DataFrame, table: Table, run_id: str) -> DataFrame:
    """Typed contract columns plus ``_rule``, ``_reason``, ``_source``, ``_raw``, ``_run`` for each line.

    ``lines`` has columns ``value`` (string) and ``_source`` (the landing key).  Blank lines are
    not records (JSON lines readers skip them too) and are left out.
    """
    from pyspark.sql import functions as F

    schema = landing_parse_schema(table)
    # Strict JSON: NaN/Infinity tokens and single-quoted strings are not JSON and go to quarantine.
    options = {
        "mode": "PERMISSIVE",
        "columnNameOfCorruptRecord": CORRUPT_COLUMN,
        "allowNonNumericNumbers": "false",
        "allowSingleQuotes": "false",
    }
    nonblank = lines.filter(F.trim(F.col("value")) != "")
    parsed_rows = nonblank.select(
        F.col("value"),
        F.col("_source"),
        F.from_json(F.col("value"), schema, options).alias("r"),
    )

    # from_json turns any JSON value into a string for a string field ({"user": 5} gives "5"), so a
    # string field is checked against the line itself.  Only values that could be such a
    # conversion (a number, true/false, an object or array) pay for the regular expression.
    mistyped_strings = {
        f.name: F.col(f"r.{f.name}").rlike(_NON_STRING_TEXT)
        & ~F.col("value").rlike('"' + re.escape(f.name) + r'"\s*:\s*"')
        for f in table.fields
        if f.type in ("string", "date_string")
    }
    any_mistyped_string = F.lit(False)
    for cond in mistyped_strings.values():
        any_mistyped_string = any_mistyped_string | cond
    wrong_typed = _fields_where(
        [
            (
                f.name,
                (F.get_json_object(F.col("value"), f"$.{f.name}").isNotNull() & F.col(f"r.{f.name}").isNull())
                | mistyped_strings.get(f.name, F.lit(False)),
            )
            for f in table.fields
        ]
    )
    bad_dates = [f.name for f in table.fields if f.type == "date_string"]
    bad_date = F.lit(False)
    for name in bad_dates:
        bad_date = bad_date | (F.col(f"r.{name}").isNotNull() & ~F.col(f"r.{name}").rlike(_DATE_PATTERN))
    missing = _fields_where([(name, F.col(f"r.{name}").isNull()) for name in table.required_fields])
    any_missing = F.lit(False)
    for name in table.required_fields:
        any_missing = any_missing | F.col(f"r.{name}").isNull()

    valid_utf8 = F.is_valid_utf8(F.col("value"))
    corrupt = F.col("r").isNull() | F.col(f"r.{CORRUPT_COLUMN}").isNotNull()
    # Only lines the parser flagged are looked at twice: good lines cost one from_json.
    # from_json reads the first value of a line and ignores the rest: a line with a second record
    # or trailing text would silently lose it.  As an array element the line must be one value.
    one_value = F.json_array_length(F.concat(F.lit("["), F.col("value"), F.lit("]"))) == 1
    not_object = (corrupt & F.json_object_keys(F.col("value")).isNull()) | ~F.coalesce(one_value, F.lit(False))
    # A number beyond a double's range (1e400) parses as infinity: not a reading.
    non_finite = F.lit(False)
    for f in table.fields:
        if f.type == "double":
            x = F.col(f"r.{f.name}")
            non_finite = non_finite | F.isnan(x) | (F.abs(x) == float("inf"))
    non_finite = F.coalesce(non_finite, F.lit(False))
    rule = (
        F.when(~valid_utf8, F.lit(RULE_NON_UTF8))
        .when(not_object, F.lit(RULE_MALFORMED_JSON))
        .when(corrupt | any_mistyped_string | non_finite | bad_date, F.lit(RULE_WRONG_TYPE))
        .when(any_missing, F.lit(RULE_MISSING_REQUIRED))
    )
    date_names = ", ".join(bad_dates)
    reason = (
        F.when(~valid_utf8, F.lit("line is not valid UTF-8"))
        .when(not_object, F.lit("line is not one JSON object (truncated, malformed or with more after it)"))
        .when(corrupt | any_mistyped_string, F.concat(F.lit("wrong JSON type for field(s): "), wrong_typed))
        .when(non_finite, F.lit("a number field is not finite (NaN or out of range)"))
        .when(bad_date, F.lit(f"not a YYYY-MM-DD date: {date_names}"))
        .when(any_missing, F.concat(F.lit("missing required field(s): "), missing))
    )
    classified = parsed_rows.select(
        *[F.col(f"r.{f.name}").alias(f.name) for f in table.fields],
        rule.alias("_rule"),
        reason.alias("_reason"),
        # Only rejected lines name their file: the quarantine needs it, and the decoding of the
        # file name is then done for a few lines instead of every line.
        F.when(rule.isNotNull(), F.col("_source")).alias("_source"),
        # Only rejected lines keep their raw text: good lines are fully described by their columns.
        F.when(rule.isNotNull(), F.make_valid_utf8(F.col("value"))).alias("_raw"),
        F.lit(run_id).alias("_run"),
    )
    # A rejected line keeps no typed values: only its raw text, so no partial record leaks on.
    return classified.select(
        *[F.when(F.col("_rule").isNull(), F.col(f.name)).alias(f.name) for f in table.fields],
        "_rule",
        "_reason",
        "_source",
        "_raw",
        "_run",
    )


def accepted(staged: DataFrame, table: Table) -> DataFrame:
    """The lines that passed every rule, as contract columns only."""
    from pyspark.sql import functions as F

    return staged.filter(F.col("_rule").isNull()).select(*table.field_names)


def quarantined(staged: DataFrame, table: Table) -> DataFrame:
    """The rejected lines in the quarantine table's shape."""
    from pyspark.sql import functions as F

    return staged.filter(F.col("_rule").isNotNull()).select(
        F.lit(table.name).alias("table"),
        F.col("_rule").alias("rule"),
        F.col("_reason").alias("reason"),
        F.col("_source").alias("source_file"),
        F.col("_raw").alias("line"),
        F.col("_run").alias("run_id"),
    )
