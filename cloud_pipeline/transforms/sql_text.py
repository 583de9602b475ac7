"""Column expressions written as Spark SQL text, handed to Spark once per output column.

Every ``pyspark.sql.functions`` call and every ``Column`` operator is a round trip to the JVM
over py4j.  The landing parse is one large expression per line (rules, coercions, warnings):
built with ``Column`` objects it took 6,000-11,000 round trips per entity, 0.7-3 s a staging
step of a few hundred lines spends before Spark reads a byte (measured at 10x, 2 cores).
Written here as SQL text, the same expression costs a couple of round trips per output column and
one run of Spark's SQL parser, which builds the same expression tree (``functions.expr`` and
``selectExpr`` parse with the session's parser, as ``Column`` calls would construct).

The names and operators mirror the subset of ``pyspark.sql.functions`` and ``Column`` that
``landing.py`` uses, so the rules read the same; ``column()`` turns an expression into a
``Column`` where a DataFrame needs one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from pyspark.sql import Column
    from pyspark.sql.types import StructType

Value = Union["Expr", str, int, float, bool, None]


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        # Spark types an integer literal beyond INT's range as BIGINT, as F.lit does.
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return f"CAST('{'-' if value < 0 else ''}Infinity' AS DOUBLE)"
        if math.isnan(value):
            return "CAST('NaN' AS DOUBLE)"
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, str):
        # Spark SQL string literals unescape backslashes (spark.sql.parser.escapedStringLiterals
        # is false by default, on Spark 3.5 and 4): a regular expression's \d must be written \\d.
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"no SQL literal for {value!r}")


def _quoted(name: str) -> str:
    """A (possibly dotted) column name as quoted identifiers: ``r.user`` -> ```r`.`user```."""
    return ".".join("`" + part.replace("`", "``") + "`" for part in name.split("."))


#: How strongly an expression's text binds at its top level, in Spark SQL's grammar
#: (``SqlBaseParser.g4``: ``booleanExpression`` holds NOT, AND, OR and the predicates IS NULL and
#: RLIKE over a ``valueExpression``; comparisons and arithmetic are ``valueExpression``s):
#: OR < AND < NOT < predicate < comparison < + < an atom (a literal, a name, a call).
_OR, _AND, _NOT, _PREDICATE, _COMPARE, _SUM, _ATOM = range(7)


class Expr:
    """A column expression as Spark SQL text.

    Operands are put in parentheses only where the grammar needs them, so that a chain such as
    ``a OR b OR c`` is written flat: Spark's ANTLR parser is far slower on its first parse of
    deeply nested parentheses than on the same expression written flat (measured: 22 s against
    under a second for the landing parse, in a fresh JVM on 2 loaded cores).
    """

    __hash__ = None  # type: ignore[assignment]  # == builds an expression, as on Column

    def __init__(self, sql: str, binding: int = _ATOM):
        self.sql = sql
        self.binding = binding

    def __repr__(self) -> str:
        return f"Expr({self.sql})"

    def _operand(self, at_least: int) -> str:
        return self.sql if self.binding >= at_least else f"({self.sql})"

    def _op(self, op: str, other: Value, binding: int) -> Expr:
        # Left-associative: the left operand may be a chain of the same operator, the right may not.
        right = _expr(other)
        return Expr(f"{self._operand(binding)} {op} {right._operand(binding + 1)}", binding)

    def __and__(self, other: Value) -> Expr:
        return self._op("AND", other, _AND)

    def __or__(self, other: Value) -> Expr:
        return self._op("OR", other, _OR)

    def __invert__(self) -> Expr:
        return Expr(f"NOT {self._operand(_NOT)}", _NOT)

    def __eq__(self, other: Value) -> Expr:  # type: ignore[override]
        return self._op("=", other, _COMPARE)

    def __ne__(self, other: Value) -> Expr:  # type: ignore[override]
        return self._op("!=", other, _COMPARE)

    def __lt__(self, other: Value) -> Expr:
        return self._op("<", other, _COMPARE)

    def __gt__(self, other: Value) -> Expr:
        return self._op(">", other, _COMPARE)

    def __add__(self, other: Value) -> Expr:
        return self._op("+", other, _SUM)

    def __radd__(self, other: Value) -> Expr:
        return _expr(other)._op("+", self, _SUM)

    def isNull(self) -> Expr:  # noqa: N802 - Column's name
        return Expr(f"{self._operand(_ATOM)} IS NULL", _PREDICATE)

    def isNotNull(self) -> Expr:  # noqa: N802 - Column's name
        return Expr(f"{self._operand(_ATOM)} IS NOT NULL", _PREDICATE)

    def rlike(self, pattern: str) -> Expr:
        return Expr(f"{self._operand(_ATOM)} RLIKE {_literal(pattern)}", _PREDICATE)

    def isin(self, values: Iterable[Value]) -> Expr:
        """``IN`` a list of literals (none: false).  Thousands of owners are one parse here, where
        ``Column.isin`` makes a round trip per value: 0.35 s for 956 serial numbers."""
        items = [_arg(v) for v in values]
        if not items:
            return Expr("false")
        return Expr(f"{self._operand(_ATOM)} IN ({', '.join(items)})", _PREDICATE)

    def contains(self, other: Value) -> Expr:
        return Expr(f"contains({self.sql}, {_arg(other)})")

    def cast(self, type_name: str) -> Expr:
        return Expr(f"CAST({self.sql} AS {type_name})")

    def alias(self, name: str) -> Alias:
        return Alias(self, name)


class Alias(Expr):
    """An expression with a name: a select's output column, or a field of ``struct``."""

    def __init__(self, inner: Expr, name: str):
        super().__init__(f"{inner.sql} AS {_quoted(name)}")
        self.inner = inner
        self.name = name


class When(Expr):
    """``CASE WHEN ... END``, built as ``when(...).when(...).otherwise(...)``."""

    def __init__(self, branches: tuple[tuple[Expr, Expr], ...], default: Expr | None = None):
        cases = " ".join(f"WHEN {c.sql} THEN {v.sql}" for c, v in branches)
        tail = f" ELSE {default.sql}" if default is not None else ""
        super().__init__(f"CASE {cases}{tail} END")
        self.branches = branches

    def when(self, condition: Expr, value: Value) -> When:
        return When(self.branches + ((condition, _expr(value)),))

    def otherwise(self, value: Value) -> When:
        return When(self.branches, _expr(value))


def _expr(value: Value) -> Expr:
    return value if isinstance(value, Expr) else Expr(_literal(value))


def _arg(value: Value) -> str:
    return _expr(value).sql


def col(name: str) -> Expr:
    return Expr(_quoted(name))


def lit(value: object) -> Expr:
    return Expr(_literal(value))


def expr(sql: str) -> Expr:
    return Expr(sql, _OR)  # its own text, of any binding: parenthesised wherever it is an operand


def when(condition: Expr, value: Value) -> When:
    return When(((condition, _expr(value)),))


def _call(name: str, *args: Value) -> Expr:
    return Expr(f"{name}({', '.join(_arg(a) for a in args)})")


def coalesce(*args: Value) -> Expr:
    return _call("coalesce", *args)


def concat(*args: Value) -> Expr:
    return _call("concat", *args)


def concat_ws(separator: str, *args: Value) -> Expr:
    return _call("concat_ws", lit(separator), *args)


def trim(value: Expr) -> Expr:
    return _call("trim", value)


def encode(value: Expr, charset: str) -> Expr:
    return _call("encode", value, lit(charset))


def isnan(value: Expr) -> Expr:
    return _call("isnan", value)


def abs(value: Expr) -> Expr:  # noqa: A001 - functions.abs
    return _call("abs", value)


def floor(value: Expr) -> Expr:
    return _call("floor", value)


def size(value: Expr | str) -> Expr:
    return _call("size", col(value) if isinstance(value, str) else value)


def get_json_object(value: Expr, path: str) -> Expr:
    return _call("get_json_object", value, lit(path))


def json_object_keys(value: Expr) -> Expr:
    return _call("json_object_keys", value)


def array(*items: Expr) -> Expr:
    return _call("array", *items)


def struct(*fields: Alias) -> Expr:
    """A struct of named fields (``named_struct``, so each field keeps its alias as its name)."""
    return Expr("named_struct(" + ", ".join(f"{_literal(f.name)}, {f.inner.sql}" for f in fields) + ")")


def filter(values: Expr, keep: Callable[[Expr], Expr]) -> Expr:  # noqa: A001 - functions.filter
    # A lambda variable no column of the landing frames is named.
    return Expr(f"filter({values.sql}, lambda_item -> {keep(Expr('lambda_item')).sql})")


def from_json(value: Expr, schema: StructType, options: dict[str, str]) -> Expr:
    # The schema as DDL (``struct<name:type,...>``): from_json's SQL form takes a DDL string, and
    # PySpark's simpleString() writes every field, untruncated.
    pairs = ", ".join(f"{_literal(k)}, {_literal(v)}" for k, v in options.items())
    return Expr(f"from_json({value.sql}, {_literal(schema.simpleString())}, map({pairs}))")


def column(expression: Expr) -> Column:
    """The expression as a ``Column`` (one parse by the session's SQL parser)."""
    from pyspark.sql import functions as F

    if isinstance(expression, Alias):
        return F.expr(expression.inner.sql).alias(expression.name)
    return F.expr(expression.sql)


def columns(*items: Expr | str | Column) -> list[str | Column]:
    """A select's arguments: expressions turned into columns, names and columns as they are."""
    return [column(item) if isinstance(item, Expr) else item for item in items]
