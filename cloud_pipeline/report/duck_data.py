"""The report's aggregates in DuckDB: the same figures as ``data.SparkAggregates``, no Spark started.

Each method is one SQL query over the views of ``cloud_pipeline/storage/duck.py``; only small
results reach Python, as in Spark.  Orderings and tie-breaks are Spark's (strings compare by
their bytes in both engines).
"""

from __future__ import annotations

from typing import Any

from cloud_pipeline.report.data import (
    EXAMPLES,
    ConsentCurve,
    Histogram,
    QuarantineGroup,
    Signal,
    consent_curve,
    histogram_from_counts,
)
from cloud_pipeline.storage.duck import DuckLake


def _name(table: str) -> str:
    return '"' + table.replace('"', '""') + '"'


class DuckAggregates:
    def __init__(self, duck: DuckLake):
        self.con = duck.con

    def _rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params or []).fetchall()

    def count(self, table: str) -> int:
        return int(self._rows(f"SELECT count(*) FROM {_name(table)}")[0][0])

    def _groups(self, source: str, examples: int = EXAMPLES) -> list[QuarantineGroup]:
        counts = {(t, r): int(n) for t, r, n in self._rows(
            f'SELECT "table", rule, count(*) FROM ({source}) GROUP BY ALL')}
        picked = self._rows(f"""
            SELECT "table", rule, reason, source FROM (
                SELECT *, row_number() OVER (PARTITION BY "table", rule ORDER BY source, reason) AS i FROM (
                    SELECT DISTINCT "table", rule, reason, coalesce(source_file, '?') AS source FROM ({source})))
            WHERE i <= {int(examples)} ORDER BY "table", rule, i""")
        found: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for t, rule, reason, src in picked:
            found.setdefault((t, rule), []).append((reason, src))
        return [QuarantineGroup(t, rule, n, tuple(found.get((t, rule), []))) for (t, rule), n in sorted(counts.items())]

    def quarantine(self) -> list[QuarantineGroup]:
        return self._groups("SELECT * FROM quarantine")

    def warnings(self) -> list[QuarantineGroup]:
        # As ``data.warnings_by_field``: the reason names its field; the raw values stay out.
        return self._groups("SELECT \"table\", rule, concat_ws(': ', field, reason) AS reason, source_file FROM warnings")

    def sample_customer(self) -> tuple[str, int] | None:
        top = self._rows("SELECT customerKey, count(*) AS n FROM machine_learning_curated GROUP BY customerKey "
                         "ORDER BY n DESC, customerKey LIMIT 1")
        return (str(top[0][0]), int(top[0][1])) if top else None

    def signal(self, customer_key: str, total_rows: int, max_points: int) -> Signal:
        rows = self._rows("SELECT sensorReadingTime, distanceFromObject, timestamp, sqrt(x * x + y * y + z * z) "
                          "FROM machine_learning_curated WHERE customerKey = ? "
                          "ORDER BY sensorReadingTime, timestamp LIMIT ?", [customer_key, max_points])
        return Signal(customer_key=customer_key, total_rows=total_rows,
                      step_time=[int(r[0]) for r in rows], distance=[int(r[1]) for r in rows],
                      accel_time=[int(r[2]) for r in rows], magnitude=[float(r[3]) for r in rows])

    def histogram(self, table: str, owner: str, per: str) -> Histogram:
        # How many owners have each number of readings: a few hundred values however large the table.
        counts = self._rows(f"SELECT n, count(*) FROM (SELECT count(*) AS n FROM {_name(table)} "
                            f"WHERE {_name(owner)} IS NOT NULL GROUP BY {_name(owner)}) GROUP BY n")
        return histogram_from_counts(table, per, {int(n): int(k) for n, k in counts})

    def consent(self) -> ConsentCurve | None:
        # Each email's latest record's registrationDate, NULL included (Spark's max_by; DuckDB's
        # arg_max would skip a NULL registrationDate and take an older record's).
        self.con.execute("""CREATE OR REPLACE TEMP TABLE _latest AS
            SELECT email, arg_max_null(registrationDate, lastUpdateDate) AS registrationDate FROM customer_landing
            WHERE email IS NOT NULL AND lastUpdateDate IS NOT NULL GROUP BY email""")
        try:
            def span(source: str, column: str) -> tuple[int, int] | None:
                lo, hi = self._rows(f"SELECT min({column}), max({column}) FROM {source}")[0]
                return None if lo is None else (int(lo), int(hi))

            def buckets(source: str, column: str, bucket_ms: int) -> dict[int, int]:
                # floor of a double division, as in Spark: UTC whatever the time zone.
                return {int(b): int(n) for b, n in self._rows(
                    f"SELECT CAST(floor({column} / {int(bucket_ms)}) AS BIGINT) AS b, count(*) FROM {source} "
                    f"WHERE {column} IS NOT NULL GROUP BY b")}

            def per_bucket(bucket_ms: int) -> tuple[dict[int, int], dict[int, int]]:
                return (buckets("_latest", "registrationDate", bucket_ms),
                        buckets("customer_trusted", "shareWithResearchAsOfDate", bucket_ms))

            return consent_curve(span("_latest", "registrationDate"),
                                 span("customer_trusted", "shareWithResearchAsOfDate"), per_bucket)
        finally:
            self.con.execute("DROP TABLE IF EXISTS _latest")
