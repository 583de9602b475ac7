"""The pipeline's output for people: rich tables that never cut a name, and local ISO-8601 times.

Scripts read ``--json`` (epoch milliseconds and run ids as they are); people read these.  Every
column folds a value too long for the terminal onto more lines instead of cutting it with an
ellipsis, and the reconciliation is headed by entity (``accelerometer``, not
``accelerometer_landing``) so that it fits 80 columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from cloud_pipeline.report.words import plural, run_time
from cloud_pipeline.storage.state import PipelineState, RunRecord
from cloud_pipeline.transforms.reconcile import Reconciliation, rows_in

if TYPE_CHECKING:
    from cloud_pipeline.storage.lock import LockHolder

#: Every fate a landing row can have; together they sum to the landing rows.
FATES = ("trusted", "superseded", "duplicate", "excluded_no_consent", "excluded_before_consent",
         "excluded_unknown_customer", "excluded_not_curated", "quarantined")
#: Every fate is in the sum (the four ``excluded_*`` rows as one term, so the title fits 80 columns).
RECONCILIATION_TITLE = "reconciliation: landing = trusted + superseded + duplicate + excluded_* + quarantined"


def _table(title: str | None = None) -> Table:
    return Table(title=title, title_justify="left")


def _column(table: Table, name: str, *, right: bool = False, name_column: bool = False) -> None:
    # A name is never wrapped or cut (the other columns give way); any other value folds.
    table.add_column(name, justify="right" if right else "left", overflow="fold", no_wrap=name_column)


def reconciliation_table(reconciliation: dict[str, Reconciliation]) -> Table:
    recon = _table(RECONCILIATION_TITLE)
    _column(recon, "rows", name_column=True)
    for name in reconciliation:
        _column(recon, name.removesuffix("_landing"), right=True)
    for c in ("landing", *FATES):
        recon.add_row(c, *[f"{rows_in(r, c):,}" for r in reconciliation.values()])
    # Subsets of the kept rows, not categories (docs/lake.md, "What a landing line may hold").
    for c, label in (("coerced", "kept, coerced"), ("with_warnings", "kept, with warnings")):
        recon.add_row(label, *[f"{rows_in(r, c):,}" for r in reconciliation.values()])
    recon.add_row("balanced", *["yes" if r["balanced"] else "NO" for r in reconciliation.values()])
    return recon


def rows_table(run_id: str, tables: dict[str, int | None]) -> Table:
    rows = _table(f"run {run_id}: rows per table")
    _column(rows, "table", name_column=True)
    _column(rows, "rows", right=True)
    for name, n in tables.items():
        rows.add_row(name, f"{n:,}" if n is not None else "?")
    return rows


def print_status(console: Console, url: str, state: PipelineState, last: RunRecord | None,
                 writer: LockHolder | None) -> None:
    """``stedi pipeline status`` for people."""
    lake = _table(f"lake {url}")
    _column(lake, "")
    _column(lake, "")
    lake.show_header = False
    lake.add_row("last run", f"{state.last_run or 'none yet'}" +
                 (f" (started {run_time(state.last_run)})" if state.last_run else ""))
    if last is not None:
        lake.add_row("took", f"{last.seconds:.1f} s")
        new = sum(last.new_landing_files.values())
        lake.add_row("new landing files", f"{plural(new, 'file')} in that run")
    if state.options is not None:
        o = state.options
        lake.add_row("built with", f"--consent {o.consent} --tolerance-ms {o.tolerance_ms} --format {o.format}")
    lake.add_row("writer", writer.describe() if writer is not None else "none (no run holds the lake)")
    console.print(lake)
    if state.tables:
        tables = _table("tables (current versions)")
        _column(tables, "table", name_column=True)
        _column(tables, "rows", right=True)
        _column(tables, "format")
        _column(tables, "built by the run of")
        # How the last run made each table (append, rebuild and why); older records do not say.
        paths = last.paths if last is not None else {}
        if paths:
            _column(tables, "last run")
        for name, t in state.tables.items():
            row = [name, f"{t.rows:,}" if t.rows is not None else "?", t.format, run_time(t.run_id)]
            tables.add_row(*row, *([paths.get(name, "")] if paths else []))
        console.print(tables)
    if last is not None and last.reconciliation:
        console.print(reconciliation_table(last.reconciliation))


__all__ = ["plural", "print_status", "reconciliation_table", "rows_table", "run_time"]
