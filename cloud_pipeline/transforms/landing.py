"""Parsing landing lines into typed rows: quarantine rules, lossless coercions and warnings.

The input is a DataFrame of raw text lines (``value``) with the file each came from (``_source``);
the output keeps every line: contract columns for kept lines, and for rejected ones the rule that
rejected it, a reason naming the fields, and the raw line.  Nothing is dropped silently.

Every line is parsed in the contract's types first; a line that parse cannot read as it is (a
value of another type, a date that is not one, a missing or non-finite value) gets a second look:
each value read as the JSON text it holds and typed here, so that what real lakes hold can be told
apart from what is wrong (``docs/lake.md``, "What a landing line may hold").  Clean lines, nearly
all of them, cost the one typed parse and the checks that flag a line for the second look:

- **Lossless coercions**, counted per row in ``_coerced``: an integer where text is expected
  becomes its text (``"phone": 8015551212``); a number with a zero fraction
  (``1655564376361.0``) or a string of digits (``"1655564376361"``) where an epoch-ms integer is
  expected becomes that integer.  Anything that would lose information (``1.5`` as a time,
  ``"soon"``, ``true``) is not coerced: it is invalid.
- **Severity**: an invalid value of a field the jobs rely on rejects the line (rules below); one
  of a descriptive field (``Field.severity == "warn"``) keeps the line, keeps the value when its
  column can hold it (``"983-01-01"`` in the text column ``birthDay``) or NULL when not, and adds
  a warning with the rule, field, reason and raw value to ``_warnings``.

Quarantine rules, in the order they are checked:

- ``damaged_file``: the rest of a landing file that could not be read whole (a truncated or
  corrupt gzip stream): the line a cut ended, or each line decoded from a corrupt member (not to
  be trusted), with what is wrong as the reason.
- ``non_utf8``: the line is not valid UTF-8.
- ``malformed_json``: the line is not a JSON object (truncated, garbage, an array...).
- ``wrong_type``: a relied-on field holds a value its type cannot hold, even after coercion
  (``"timestamp": "soon"``, ``"user": true``, ``"x": "0.5"``), or a number beyond a double's range.
- ``missing_required``: a required relied-on field is absent or null.

Warning rules (descriptive fields only): ``wrong_type`` (kept as NULL), ``not_a_date`` (kept as
text), ``missing_field`` (a required descriptive field absent or null).
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

from cloud_pipeline.transforms import sql_text as S
from cloud_pipeline.transforms.schemas import (
    CORRUPT_COLUMN,
    WARNING_FIELDS,
    landing_text_schema,
    landing_typed_schema,
)
from cloud_pipeline.transforms.sql_text import Expr
from stedi.contract import Field, Table

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

RULE_DAMAGED_FILE = "damaged_file"
RULE_NON_UTF8 = "non_utf8"
RULE_MALFORMED_JSON = "malformed_json"
RULE_WRONG_TYPE = "wrong_type"
RULE_MISSING_REQUIRED = "missing_required"
RULES = (RULE_DAMAGED_FILE, RULE_NON_UTF8, RULE_MALFORMED_JSON, RULE_WRONG_TYPE, RULE_MISSING_REQUIRED)

WARN_WRONG_TYPE = "wrong_type"
WARN_NOT_A_DATE = "not_a_date"
WARN_MISSING = "missing_field"
WARNING_RULES = (WARN_WRONG_TYPE, WARN_NOT_A_DATE, WARN_MISSING)

_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
#: A JSON object with no object or array inside: nothing can follow its closing brace.
_FLAT_OBJECT = r"^[ \t]*\{[^{}\[\]]*\}[ \t]*$"
#: Text from_json may have made of a non-string JSON value (a number, true/false, an object or an
#: array, or a non-finite double, which it writes quoted): only such text needs a closer look.
_NOT_PLAIN_TEXT = r'^(-?[0-9]|true$|false$|\{|\[|")'
_INTEGER = r"^-?[0-9]+$"
#: Below 2^53 every integer is exactly a double, so a double with a zero fraction is that integer.
_EXACT_DOUBLE_INTEGER = 2**53


def _fields_where(names_and_conditions: list[tuple[str, Expr]]) -> Expr:
    """A comma-separated list of the names whose condition holds (null-safe)."""
    return S.concat_ws(", ", *[S.when(cond, S.lit(name)) for name, cond in names_and_conditions])


def _any(conditions: list[Expr]) -> Expr:
    result = S.lit(False)
    for cond in conditions:
        result = result | S.coalesce(cond, S.lit(False))
    return result


def _is_valid_utf8(line: Expr) -> Expr:
    """Whether the bytes of ``line`` are valid UTF-8 (Spark's text reader keeps them as they are).

    Spark 4's ``is_valid_utf8`` does not exist on Spark 3.5, the Spark of AWS Glue 5.x.  ``encode``
    turns the string into a Java string first, which puts U+FFFD in place of every ill-formed
    sequence, so its bytes equal the line's own exactly when there was none (a U+FFFD the line
    really holds is three valid bytes, encoded back as the same three).
    """
    return S.encode(line, "UTF-8") == line.cast("binary")


def _valid_utf8_text(line: Expr) -> Expr:
    """``line`` with U+FFFD in place of each ill-formed UTF-8 sequence (as Java's decoder marks them).

    For Spark 3.5 as ``_is_valid_utf8``; Spark 4's ``make_valid_utf8`` would count some sequences
    differently (an encoded surrogate is one U+FFFD here, three there), so both Spark versions use
    this one and write the same quarantine.
    """
    return S.encode(line, "UTF-8").cast("string")


def _one_json_value(line: Expr) -> Expr:
    """Whether ``line`` holds nothing after its first JSON value (null when it is not JSON).

    from_json reads the first value of a line and ignores the rest, so a line with a second
    record or trailing text would silently lose it.  A flat object (its first and last
    characters the only braces, no brackets) cannot have anything after it: the quick test
    every contract record passes.  Any other line is checked exactly: as the first element of an
    array whose second element is a secret token, the token must be the second element.  (Only
    ``[line]`` would be fooled by ``{...}] {...}``, whose array closes early.)
    """
    token = secrets.token_hex(8)
    probe = S.concat(S.lit("["), line, S.lit(f',"{token}"]'))
    return line.rlike(_FLAT_OBJECT) | (S.get_json_object(probe, "$[1]") == S.lit(token))


def _is_json_string(name: str, text: Expr) -> Expr:
    """Whether field ``name`` of the line holds a JSON string (``text`` is what from_json read).

    from_json gives the same text for ``"12"`` and ``12``, so the line itself is asked.  The
    usual spellings are found by a plain substring search; only others pay for the pattern.
    """
    value = S.col("value")
    key = '"' + name + '"'
    as_string = value.contains(S.concat(S.lit(key + ':"'), text)) | value.contains(S.concat(S.lit(key + ': "'), text))
    as_other = value.contains(S.concat(S.lit(key + ":"), text)) | value.contains(S.concat(S.lit(key + ": "), text))
    return as_string | (~as_other & value.rlike(re.escape(key) + r'\s*:\s*"'))


class _Typed:
    """One field of a line given the second look: its value typed by the contract from the JSON
    text it holds (struct column ``t``), and what typing it found."""

    def __init__(self, field: Field):
        self.field = field
        text = S.col(f"t.{field.name}")
        self.text = text
        self.present = text.isNotNull()
        self.non_finite = S.lit(False)
        if field.type in ("string", "date_string"):
            looks_other = text.rlike(_NOT_PLAIN_TEXT)
            other = looks_other & ~_is_json_string(field.name, text)
            integer = other & text.rlike(_INTEGER)
            self.value = S.when(~other | integer, text)
            self.coerced = integer
        elif field.type == "long":
            digits = text.rlike(_INTEGER)
            string = _is_json_string(field.name, text)
            whole = S.expr(f"try_cast(t.`{field.name}` as bigint)")
            # Only a number token, never a string such as "1655564376361.0", may carry a fraction.
            number = S.expr(f"try_cast(t.`{field.name}` as decimal(38, 6))")
            zero_fraction = (~digits & ~string & (number == S.floor(number))
                             & (S.abs(number) < S.lit(_EXACT_DOUBLE_INTEGER)))
            self.value = S.when(digits, whole).when(zero_fraction, number.cast("long"))
            self.coerced = (digits & string & whole.isNotNull()) | zero_fraction
        else:  # double: a JSON number only (a reading given as a string is not a reading)
            number = S.expr(f"try_cast(t.`{field.name}` as double)")
            string = text.rlike(_NOT_PLAIN_TEXT) & _is_json_string(field.name, text)
            # from_json writes a double beyond range as "Infinity" (quoted): not a reading.
            self.non_finite = ~string & (text.rlike(r'(?i)^"?[-+]?(infinity|nan)"?$')
                                         | S.isnan(number) | (S.abs(number) == float("inf")))
            self.value = S.when(~string & ~self.non_finite, number)
            self.coerced = S.lit(False)
        # A non-finite double has its own rule and reason: it is not counted as a wrong type.
        self.cannot_hold = self.present & self.value.isNull() & ~S.coalesce(self.non_finite, S.lit(False))
        self.missing = ~self.present if field.required else S.lit(False)
        self.not_a_date = (
            self.value.isNotNull() & ~self.value.rlike(_DATE_PATTERN) if field.type == "date_string" else S.lit(False)
        )


def _warnings(typed: list[_Typed]) -> Expr:
    """The warnings of a line's descriptive fields: an array of (rule, field, reason, value)."""
    items = []
    for t in typed:
        if t.field.severity != "warn":
            continue
        name = t.field.name
        for cond, rule, reason in (
            (t.cannot_hold, WARN_WRONG_TYPE, f"not a {t.field.type} value; kept as NULL"),
            (t.not_a_date, WARN_NOT_A_DATE, "not a YYYY-MM-DD date; kept as text"),
            (t.missing, WARN_MISSING, "absent or null"),
        ):
            item = S.struct(S.lit(rule).alias("rule"), S.lit(name).alias("field"), S.lit(reason).alias("reason"),
                            t.text.alias("value"))
            items.append(S.when(cond, item))
    if not items:
        return S.lit(None).cast(f"array<struct<{WARNING_FIELDS}>>")
    return S.filter(S.array(*items), lambda w: w.isNotNull())


def parse_landing(lines: DataFrame, table: Table, run_id: str, source: Column | None = None) -> DataFrame:
    """Typed contract columns plus ``_rule``, ``_reason``, ``_source``, ``_raw``, ``_run``,
    ``_coerced`` (fields coerced losslessly) and ``_warnings`` for each line.

    ``lines`` has columns ``value`` (string) and ``_source`` (the landing key), and may have
    ``_damage``: what is wrong with the file, on the rows that stand for a damaged file's rest.
    Blank lines are not records (JSON lines readers skip them too) and are left out.
    ``source``, an expression over the columns of ``lines``, gives a line's landing key when the
    key is not ``_source`` as it is (``PipelineStore.landing_key``); it is computed only for the
    lines that keep their key (rejected or warned), so it may be costly.
    """
    from pyspark.sql import functions as F

    # Strict JSON: NaN/Infinity tokens and single-quoted strings are not JSON and go to quarantine.
    options = {
        "mode": "PERMISSIVE",
        "columnNameOfCorruptRecord": CORRUPT_COLUMN,
        "allowNonNumericNumbers": "false",
        "allowSingleQuotes": "false",
    }
    damage = S.col("_damage") if "_damage" in lines.columns else S.lit(None).cast("string")
    nonblank = lines.filter(S.column((S.trim(S.col("value")) != "") | damage.isNotNull()))
    origin = [c for c in lines.columns if c not in ("value", "_damage")]
    parsed_rows = nonblank.select(*S.columns(
        S.col("value"),
        *origin,
        damage.alias("_damage"),
        S.from_json(S.col("value"), landing_typed_schema(table), options).alias("r"),
    ))

    # What sends a line to the second look.  from_json turns any JSON value into a string for a
    # string field ({"user": 5} gives "5"), so a string field is checked against the line itself;
    # only values that could be such a conversion pay for the regular expression.
    corrupt = S.col("r").isNull() | S.col(f"r.{CORRUPT_COLUMN}").isNotNull()
    looks = [corrupt]
    for f in table.fields:
        value = S.col(f"r.{f.name}")
        if f.type in ("string", "date_string"):
            looks.append(value.rlike(_NOT_PLAIN_TEXT) & ~S.col("value").rlike('"' + re.escape(f.name) + r'"\s*:\s*"'))
        if f.type == "date_string":
            looks.append(~value.rlike(_DATE_PATTERN))
        if f.type == "double":
            looks.append(S.isnan(value) | (S.abs(value) == float("inf")))
        if f.required:
            looks.append(value.isNull())
    second_look = _any(looks)
    # The text parse runs only for the lines that need it (a CASE branch is evaluated only when taken).
    looked = parsed_rows.select(*S.columns(
        "value", *origin, "_damage", "r",
        S.when(second_look, S.from_json(S.col("value"), landing_text_schema(table), options)).alias("t"),
    ))

    # For a line given the second look, the typed values and the faults it found; any other line
    # keeps what the typed parse read.
    typed = [_Typed(f) for f in table.fields]
    was_looked_at = S.col("t").isNotNull()
    values = {t.field.name: S.when(was_looked_at, t.value).otherwise(S.col(f"r.{t.field.name}")) for t in typed}
    relied_on = [t for t in typed if t.field.severity == "quarantine"]
    invalid = [(t.field.name, t.cannot_hold | t.not_a_date) for t in relied_on]
    wrong_typed = _fields_where(invalid)
    any_wrong_type = was_looked_at & _any([cond for _, cond in invalid])
    non_finite = was_looked_at & _any([t.non_finite for t in relied_on])
    missing = _fields_where([(t.field.name, t.missing) for t in relied_on])
    any_missing = was_looked_at & _any([t.missing for t in relied_on])
    text_corrupt = was_looked_at & S.col(f"t.{CORRUPT_COLUMN}").isNotNull()

    valid_utf8 = _is_valid_utf8(S.col("value"))
    # Only lines the parser flagged are looked at twice: good lines cost one from_json.
    one_value = _one_json_value(S.col("value"))
    not_object = (corrupt & S.json_object_keys(S.col("value")).isNull()) | ~S.coalesce(one_value, S.lit(False))
    damaged = S.col("_damage").isNotNull()
    rule = (
        S.when(damaged, S.lit(RULE_DAMAGED_FILE))
        .when(~valid_utf8, S.lit(RULE_NON_UTF8))
        .when(not_object, S.lit(RULE_MALFORMED_JSON))
        .when(text_corrupt | any_wrong_type | non_finite, S.lit(RULE_WRONG_TYPE))
        .when(any_missing, S.lit(RULE_MISSING_REQUIRED))
    )
    # The rule is computed once, in its own step; the reason, values, warnings, file and raw text
    # are then keyed on its value, so the checks run once per line and the details only for the
    # lines that need them.  (Spark keeps the two projections apart because the next one refers
    # to _rule more than once.)
    ruled = looked.select(*S.columns("value", *origin, "_damage", "r", "t", rule.alias("_rule")))
    is_rule = {name: S.col("_rule") == name for name in RULES}
    reason = (
        S.when(is_rule[RULE_DAMAGED_FILE], S.concat(S.lit("the rest of a damaged file: "), S.col("_damage")))
        .when(is_rule[RULE_NON_UTF8], S.lit("line is not valid UTF-8"))
        .when(is_rule[RULE_MALFORMED_JSON],
              S.lit("line is not one JSON object (truncated, malformed or with more after it)"))
        .when(is_rule[RULE_WRONG_TYPE] & any_wrong_type, S.concat(S.lit("wrong JSON type for field(s): "), wrong_typed))
        .when(is_rule[RULE_WRONG_TYPE] & non_finite, S.lit("a number field is not finite (NaN or out of range)"))
        .when(is_rule[RULE_WRONG_TYPE], S.lit("a field could not be read"))
        .when(is_rule[RULE_MISSING_REQUIRED], S.concat(S.lit("missing required field(s): "), missing))
    )
    rejected = S.col("_rule").isNotNull()
    coerced = S.when(was_looked_at, sum((S.coalesce(t.coerced, S.lit(False)).cast("int") for t in typed), S.lit(0)))
    kept = ruled.select(*S.columns(
        "_rule",
        reason.alias("_reason"),
        # A rejected line keeps no typed values: only its raw text, so no partial record leaks on.
        *[S.when(~rejected, values[t.field.name]).alias(t.field.name) for t in typed],
        *origin,
        # Only rejected lines keep their raw text: good lines are fully described by their columns.
        S.when(rejected, _valid_utf8_text(S.col("value"))).alias("_raw"),
        S.when(~rejected, coerced).alias("_coerced"),
        S.when(~rejected & was_looked_at, _warnings(typed)).alias("_warnings"),
    ))
    has_warnings = S.coalesce(S.size("_warnings") > 0, S.lit(False))
    # The key is carried as it came and worked out last, for the few lines that keep it.
    if source is None:
        named_source: Expr | Column = S.when(rejected | has_warnings, S.col("_source")).alias("_source")
    else:  # the store's expression, a Column
        named_source = F.when(S.column(rejected | has_warnings), source).alias("_source")
    return kept.select(*S.columns(
        *table.field_names,
        "_rule",
        "_reason",
        # Only rejected or warned lines name their file: the quarantine and the warnings need it,
        # and the decoding of the file name is then done for a few lines instead of every line.
        named_source,
        "_raw",
        S.lit(run_id).alias("_run"),
        S.when(S.col("_coerced") > 0, S.col("_coerced")).alias("_coerced"),
        S.when(has_warnings, S.col("_warnings")).alias("_warnings"),
    ))


def landing_as_read(text: DataFrame, table: Table) -> DataFrame:
    """A landing table for reading by hand (``stedi query``, the report): ``text`` holds each field
    as JSON text (``landing_parse_schema``); the result has the contract's types, with the lossless
    coercions applied and every value its type cannot hold read as NULL.

    Lenient where the pipeline is strict, as a reader of raw data expects: it decides nothing
    about a line, so it needs no look at the line itself (a digit string in a number field reads
    as its number, any JSON text in a text field as that text).
    """
    from pyspark.sql import functions as F

    columns = []
    for f in table.fields:
        name = f"`{f.name}`"
        if f.type == "long":
            number = F.expr(f"try_cast({name} as decimal(38, 6))")
            integral = (number == F.floor(number)) & (F.abs(number) < F.lit(_EXACT_DOUBLE_INTEGER))
            value = F.coalesce(F.expr(f"try_cast({name} as bigint)"), F.when(integral, number.cast("long")))
        elif f.type == "double":
            value = F.expr(f"try_cast({name} as double)")
            value = F.when(~F.isnan(value) & (F.abs(value) != float("inf")), value)
        else:
            value = F.col(name)
        columns.append(value.alias(f.name))
    return text.select(*columns)


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


def warned(staged: DataFrame, table: Table) -> DataFrame:
    """The warnings of kept lines, one row each, in the warnings table's shape."""
    from pyspark.sql import functions as F

    return staged.filter(F.col("_warnings").isNotNull()).select(
        F.lit(table.name).alias("table"),
        F.explode("_warnings").alias("w"),
        F.col("_source").alias("source_file"),
        F.col("_run").alias("run_id"),
    ).select("table", "w.rule", "w.field", "w.reason", F.col("w.value").alias("value"), "source_file", "run_id")
