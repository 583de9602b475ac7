"""Expressions written as SQL text (cloud_pipeline/transforms/sql_text.py) mean what the same
Column expressions mean, and the landing parse's text stays flat enough for a cold SQL parser."""

from __future__ import annotations

from typing import Any

from cloud_pipeline.transforms import landing
from cloud_pipeline.transforms import sql_text as S
from stedi.contract import TABLES


def _both(spark: Any, rows: list[tuple[Any, ...]], columns: str, pairs: dict[str, tuple[Any, Any]]) -> None:
    df = spark.createDataFrame(rows, columns)
    got = df.select(*[S.column(text).alias(name) for name, (text, _) in pairs.items()]).collect()
    want = df.select(*[column.alias(name) for name, (_, column) in pairs.items()]).collect()
    assert got == want


def test_precedence_and_literals_match_column_expressions(spark: Any) -> None:
    from pyspark.sql import functions as F

    rows = [(a, b, s) for a in (True, False, None) for b in (True, False, None)
            for s in ("x", 'he said "hi"', "back\\slash", "it's", None)]
    a, b, s = S.col("a"), S.col("b"), S.col("s")
    ca, cb, cs = F.col("a"), F.col("b"), F.col("s")
    _both(spark, rows, "a boolean, b boolean, s string", {
        "not_and": (~a & b, ~ca & cb),
        "not_of_and": (~(a & b), ~(ca & cb)),
        "or_and": (a | b & ~a, ca | (cb & ~ca)),
        "and_of_or": ((a | b) & a, (ca | cb) & ca),
        "not_is_null": (~a.isNull() | b, ~ca.isNull() | cb),
        "eq_of_and": ((a & b) == a, (ca & cb) == ca),
        "not_eq": (~(a == b), ~(ca == cb)),
        "rlike": (s.rlike(r'^he\s+said "h'), cs.rlike(r'^he\s+said "h')),
        "contains": (s.contains("'"), cs.contains("'")),
        "literal_text": (S.concat(s, S.lit("\\d'\"")), F.concat(cs, F.lit("\\d'\""))),
        "when": (S.when(a, "yes").when(b, S.lit(None)).otherwise("no"),
                 F.when(ca, "yes").when(cb, F.lit(None)).otherwise("no")),
        "sum": (sum((x.cast("int") for x in (a, b)), S.lit(0)) > 0,
                sum((x.cast("int") for x in (ca, cb)), F.lit(0)) > 0),
        "infinite": (S.abs(S.lit(float("-inf"))) == float("inf"), F.abs(F.lit(float("-inf"))) == float("inf")),
        "big": (S.lit(2**53) > S.lit(1), F.lit(2**53) > F.lit(1)),
        "isin": (s.isin(["x", "it's", "back\\slash"]), cs.isin(["x", "it's", "back\\slash"])),
        "not_isin": (~s.isin(["x"]) & a, ~cs.isin(["x"]) & ca),
    })
    # No values: false, for a null too (Column.isin's empty IN is null for one on Spark 3.5).
    df = spark.createDataFrame(rows, "a boolean, b boolean, s string")
    assert {r[0] for r in df.select(S.column(s.isin([]))).collect()} == {False}


def _depth(sql: str) -> int:
    """The deepest nesting of parentheses outside string literals."""
    depth = deepest = 0
    quoted = False
    i = 0
    while i < len(sql):
        c = sql[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == "'":
                quoted = False
        elif c == "'":
            quoted = True
        elif c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth -= 1
        i += 1
    return deepest


def test_landing_parse_text_is_flat(monkeypatch: Any) -> None:
    """Chains of AND/OR are written without a parenthesis per operator: Spark's parser took 22 s on
    its first parse of the nested form of these expressions (under a second for the flat form)."""
    texts: list[str] = []

    def record(expression: S.Expr) -> str:
        texts.append(expression.inner.sql if isinstance(expression, S.Alias) else expression.sql)
        return "x"

    class Lines:  # a stand-in for the DataFrame of lines: only the expressions are looked at
        columns = ["value", "_source", "_file", "_damage"]

        def filter(self, condition: Any) -> Lines:
            return self

        def select(self, *columns: Any) -> Lines:
            return self

    monkeypatch.setattr(S, "column", record)
    for table in TABLES:
        if table.name.endswith("_landing"):
            landing.parse_landing(Lines(), table, "run", None)  # type: ignore[arg-type]
    assert texts
    assert max(_depth(t) for t in texts) <= 12
