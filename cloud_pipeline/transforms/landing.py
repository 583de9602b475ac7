"""Parsing landing lines into typed rows, and the quarantine rules for lines that break the contract.

The input is a DataFrame of raw text lines (``value``) with the file each came from (``_source``);
the output keeps every line: contract columns for good lines, and for bad ones the rule that
rejected it, a reason naming the fields, and the raw line.  Nothing is dropped silently.

Rules, in the order they are checked:

- ``damaged_file``: the rest of a landing file that could not be read whole (a truncated or
  corrupt gzip stream): the line a cut ended, or each line decoded from a corrupt member (not to
  be trusted), with what is wrong as the reason.
- ``non_utf8``: the line is not valid UTF-8.
- ``malformed_json``: the line is not a JSON object (truncated, garbage, an array...).
- ``wrong_type``: a field has a value of the wrong JSON type (e.g. ``"timestamp": "soon"`` or
  ``"user": 5``), or ``birthDay`` is not ``YYYY-MM-DD``.
- ``missing_required``: a required field is absent or null.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

from cloud_pipeline.transforms.schemas import CORRUPT_COLUMN, landing_parse_schema
from stedi.contract import Table

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

RULE_DAMAGED_FILE = "damaged_file"
RULE_NON_UTF8 = "non_utf8"
RULE_MALFORMED_JSON = "malformed_json"
RULE_WRONG_TYPE = "wrong_type"
RULE_MISSING_REQUIRED = "missing_required"
RULES = (RULE_DAMAGED_FILE, RULE_NON_UTF8, RULE_MALFORMED_JSON, RULE_WRONG_TYPE, RULE_MISSING_REQUIRED)

_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
#: A JSON object with no object or array inside: nothing can follow its closing brace.
_FLAT_OBJECT = r"^[ \t]*\{[^{}\[\]]*\}[ \t]*$"
#: What from_json makes of a number, boolean, object or array in a string field.
_NON_STRING_TEXT = r"^(-?[0-9]|true$|false$|\{|\[)"


def _fields_where(names_and_conditions: list[tuple[str, Column]]) -> Column:
    """A comma-separated list of the names whose condition holds (null-safe)."""
    from pyspark.sql import functions as F

    return F.concat_ws(", ", *[F.when(cond, F.lit(name)) for name, cond in names_and_conditions])


def _one_json_value(line: Column) -> Column:
    """Whether ``line`` holds nothing after its first JSON value (null when it is not JSON).

    from_json reads the first value of a line and ignores the rest, so a line with a second
    record or trailing text would silently lose it.  A flat object (its first and last
    characters the only braces, no brackets) cannot have anything after it: the quick test
    every contract record passes.  Any other line is checked exactly: as the first element of an
    array whose second element is a secret token, the token must be the second element.  (Only
    ``[line]`` would be fooled by ``{...}] {...}``, whose array closes early.)
    """
    from pyspark.sql import functions as F

    token = secrets.token_hex(8)
    probe = F.concat(F.lit("["), line, F.lit(f',"{token}"]'))
    return line.rlike(_FLAT_OBJECT) | (F.get_json_object(probe, "$[1]") == F.lit(token))


def parse_landing(lines: DataFrame, table: Table, run_id: str) -> DataFrame:
    """Typed contract columns plus ``_rule``, ``_reason``, ``_source``, ``_raw``, ``_run`` for each line.

    ``lines`` has columns ``value`` (string) and ``_source`` (the landing key), and may have
    ``_damage``: what is wrong with the file, on the rows that stand for a damaged file's rest.
    Blank lines are not records (JSON lines readers skip them too) and are left out.
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
    damage = F.col("_damage") if "_damage" in lines.columns else F.lit(None).cast("string")
    nonblank = lines.filter((F.trim(F.col("value")) != "") | damage.isNotNull())
    parsed_rows = nonblank.select(
        F.col("value"),
        F.col("_source"),
        damage.alias("_damage"),
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
    one_value = _one_json_value(F.col("value"))
    not_object = (corrupt & F.json_object_keys(F.col("value")).isNull()) | ~F.coalesce(one_value, F.lit(False))
    # A number beyond a double's range (1e400) parses as infinity: not a reading.
    non_finite = F.lit(False)
    for f in table.fields:
        if f.type == "double":
            x = F.col(f"r.{f.name}")
            non_finite = non_finite | F.isnan(x) | (F.abs(x) == float("inf"))
    non_finite = F.coalesce(non_finite, F.lit(False))
    damaged = F.col("_damage").isNotNull()
    rule = (
        F.when(damaged, F.lit(RULE_DAMAGED_FILE))
        .when(~valid_utf8, F.lit(RULE_NON_UTF8))
        .when(not_object, F.lit(RULE_MALFORMED_JSON))
        .when(corrupt | any_mistyped_string | non_finite | bad_date, F.lit(RULE_WRONG_TYPE))
        .when(any_missing, F.lit(RULE_MISSING_REQUIRED))
    )
    # The rule is computed once, in its own step; the reason, file and raw text are then keyed on
    # its value, so the checks run once per line and the details only for rejected lines.  (Spark
    # keeps the two projections apart because the next one refers to _rule more than once.)
    ruled = parsed_rows.select("value", "_source", "_damage", "r", rule.alias("_rule"))
    is_rule = {name: F.col("_rule") == name for name in RULES}
    date_names = ", ".join(bad_dates)
    reason = (
        F.when(is_rule[RULE_DAMAGED_FILE], F.concat(F.lit("the rest of a damaged file: "), F.col("_damage")))
        .when(is_rule[RULE_NON_UTF8], F.lit("line is not valid UTF-8"))
        .when(is_rule[RULE_MALFORMED_JSON],
              F.lit("line is not one JSON object (truncated, malformed or with more after it)"))
        .when(is_rule[RULE_WRONG_TYPE] & (corrupt | any_mistyped_string),
              F.concat(F.lit("wrong JSON type for field(s): "), wrong_typed))
        .when(is_rule[RULE_WRONG_TYPE] & non_finite, F.lit("a number field is not finite (NaN or out of range)"))
        .when(is_rule[RULE_WRONG_TYPE], F.lit(f"not a YYYY-MM-DD date: {date_names}"))
        .when(is_rule[RULE_MISSING_REQUIRED], F.concat(F.lit("missing required field(s): "), missing))
    )
    rejected = F.col("_rule").isNotNull()
    # A rejected line keeps no typed values: only its raw text, so no partial record leaks on.
    return ruled.select(
        *[F.when(~rejected, F.col(f"r.{f.name}")).alias(f.name) for f in table.fields],
        "_rule",
        reason.alias("_reason"),
        # Only rejected lines name their file: the quarantine needs it, and the decoding of the
        # file name is then done for a few lines instead of every line.
        F.when(rejected, F.col("_source")).alias("_source"),
        # Only rejected lines keep their raw text: good lines are fully described by their columns.
        F.when(rejected, F.make_valid_utf8(F.col("value"))).alias("_raw"),
        F.lit(run_id).alias("_run"),
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
