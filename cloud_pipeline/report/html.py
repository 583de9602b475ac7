"""The report page: one self-contained HTML file (inline CSS, PNGs as data URIs, no scripts).

Nothing in it makes a request: it can be mailed, archived or opened offline.  Cells carry
``data-*`` attributes (table, category, plot) so tests and scripts can read the figures back.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cloud_pipeline.report.data import (
    MAX_POINTS,
    QuarantineGroup,
    ReportData,
    check_reportable,
    gather,
    gather_with,
)
from cloud_pipeline.report.plots import Plot, consent_plot, readings_plot, signal_plot
from cloud_pipeline.transforms.reconcile import rows_in
from stedi.contract import LANDING_TABLES
from stedi.tools import write_atomically

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cloud_pipeline.storage.store import PipelineStore
    from cloud_pipeline.transforms.reconcile import Reconciliation

log = logging.getLogger(__name__)

#: Reconciliation categories in the order a reader follows a landing row's fate.
CATEGORIES = ("trusted", "superseded", "duplicate", "excluded_no_consent", "excluded_before_consent",
              "excluded_unknown_customer", "excluded_not_curated")

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232b;
       margin: 0; background: #f4f6f8; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px;
  border-bottom: 2px solid #dfe4ea; padding-bottom: 4px; }
.sub { color: #5b6572; margin: 0 0 16px; }
table { border-collapse: collapse; margin: 8px 0 4px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e7ec; text-align: left; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 600; border-top: 2px solid #c9d0d8; }
.meta td:first-child { color: #5b6572; }
.ok { color: #17803d; font-weight: 600; } .bad { color: #b42318; font-weight: 600; }
.zone-landing { background: #fff8e6; } .zone-trusted { background: #eaf5ff; }
.zone-curated { background: #eaf8ef; } .zone-quarantine { background: #fdeeee; }
.note { background: #fff4d6; border-left: 4px solid #e3a008; padding: 8px 12px; margin: 12px 0; }
.nodata { color: #5b6572; font-style: italic; padding: 12px; background: #f4f6f8; }
figure { margin: 12px 0; } figure img { max-width: 100%; border: 1px solid #e3e7ec; }
figcaption { color: #5b6572; font-size: 13px; }
code { background: #eef1f5; padding: 1px 4px; border-radius: 3px; }
.eq { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; color: #333c47; }
"""


@dataclass(frozen=True)
class Report:
    data: ReportData
    plots: dict[str, Plot | None]  # key -> plot, None where there was no data
    html: str


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _n(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def make_plots(data: ReportData) -> dict[str, Plot | None]:
    return {
        "signal": signal_plot(data.signal) if data.signal and data.signal.step_time else None,
        "readings": readings_plot(data.histograms) if any(h.owners for h in data.histograms) else None,
        "consent": consent_plot(data.consent) if data.consent else None,
    }


def _option(value: object) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _meta(data: ReportData) -> str:
    run = data.run
    # In the order the run record stores them (sorted).
    options = sorted(run.options_dict().items()) if run else []
    rows = [
        ("lake", f"<code>{_e(data.lake)}</code>"),
        ("run", f"<code>{_e(data.last_run)}</code>" if data.last_run else '<span class="bad">no run committed</span>'),
        ("options", ", ".join(f"{_e(k)}={_e(_option(v))}" for k, v in options) if options else "—"),
        ("run took", f"{run.seconds:.1f} s" if run else "—"),
        ("new landing files", ", ".join(f"{_e(k)}: {v}" for k, v in (run.new_landing_files if run else {}).items())
         or "—"),
        ("generated", _e(data.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC"))),
    ]
    body = "".join(f'<tr data-meta="{_e(k)}"><td>{_e(k)}</td><td>{v}</td></tr>' for k, v in rows)
    return f'<table class="meta">{body}</table>'


def _tables(data: ReportData) -> str:
    head = '<tr><th>table</th><th>entity</th><th>zone</th><th class="num">rows</th><th>version</th></tr>'
    body = []
    for t in data.tables:
        rows = f"{t.rows:,}" if t.built else '<span class="bad">not built</span>'
        body.append(f'<tr class="zone-{_e(t.zone)}" data-table="{_e(t.name)}"><td>{_e(t.name)}</td>'
                    f'<td>{_e(t.entity)}</td><td>{_e(t.zone)}</td><td class="num">{rows}</td>'
                    f'<td>{_e(t.version or "—")}</td></tr>')
    return f"<table>{head}{''.join(body)}</table>"


def _equation(name: str, r: Reconciliation) -> str:
    parts = [f"{c} {n:,}" for c in CATEGORIES if (n := r.get(c))]
    parts += [f"quarantined/{rule} {n:,}" for rule, n in r["quarantined_by_rule"].items() if n]
    return f'<div class="eq" data-equation="{_e(name)}">{_e(name)}: landing {r["landing"]:,} = {_e(" + ".join(parts) or "0")}</div>'


def _reconciliation(data: ReportData) -> str:
    if not data.run:
        return '<p class="nodata">No run record: the reconciliation appears after `stedi pipeline run`.</p>'
    recon = data.run.reconciliation
    # Landing tables in the contract's order (customer first), whatever the record's order.
    names = [t.name for t in LANDING_TABLES if t.name in recon] + sorted(set(recon) - {t.name for t in LANDING_TABLES})
    rules = sorted({rule for r in recon.values() for rule in r["quarantined_by_rule"]})
    head = "<tr><th>landing row ended as</th>" + "".join(f'<th class="num">{_e(n)}</th>' for n in names) + "</tr>"

    def row(label: str, key: str, values: list[int | None], cls: str = "") -> str:
        cells = "".join(f'<td class="num" data-table="{_e(n)}" data-category="{_e(key)}">{_n(v)}</td>'
                        for n, v in zip(names, values, strict=True))
        return f'<tr class="{cls}"><td>{_e(label)}</td>{cells}</tr>'

    body = [row(c, c, [rows_in(recon[n], c) for n in names]) for c in CATEGORIES]
    body += [row(f"quarantined: {rule}", f"quarantined/{rule}",
                 [recon[n]["quarantined_by_rule"].get(rule, 0) for n in names]) for rule in rules]
    body.append(row("quarantined (all rules)", "quarantined", [recon[n]["quarantined"] for n in names]))
    body.append(row("landing rows", "landing", [recon[n]["landing"] for n in names], "total"))
    # Subsets of the kept rows, not categories: shown below the total (absent in older run records).
    body.append(row("of the kept: a value coerced losslessly", "coerced", [recon[n].get("coerced") for n in names]))
    body.append(row("of the kept: with warnings", "with_warnings", [recon[n].get("with_warnings") for n in names]))
    balanced = "".join(
        f'<td class="num {"ok" if recon[n]["balanced"] else "bad"}" data-table="{_e(n)}" data-category="balanced">'
        f'{"yes" if recon[n]["balanced"] else "NO"}</td>' for n in names)
    body.append(f'<tr class="total"><td>balanced</td>{balanced}</tr>')
    equations = "".join(_equation(n, recon[n]) for n in names)
    return f"<table>{head}{''.join(body)}</table>{equations}"


def _rule_groups(groups: list[QuarantineGroup], attribute: str, what: str) -> str:
    """Rows per table and rule with example reasons and files (``attribute`` marks each row)."""
    head = '<tr><th>table</th><th>rule</th><th class="num">rows</th><th>examples (reason — landing file)</th></tr>'
    body = []
    for g in groups:
        examples = "<br>".join(f"{_e(reason)} — <code>{_e(source)}</code>" for reason, source in g.examples)
        body.append(f'<tr data-table="{_e(g.table)}" {attribute}="{_e(g.rule)}"><td>{_e(g.table)}</td>'
                    f'<td>{_e(g.rule)}</td><td class="num">{g.rows:,}</td><td>{examples}</td></tr>')
    total = sum(g.rows for g in groups)
    body.append(f'<tr class="total"><td>all</td><td></td><td class="num">{total:,}</td><td></td></tr>')
    return (f"<table>{head}{''.join(body)}</table>"
            f"<p class=\"sub\">The {what} themselves are in the <code>{attribute.removeprefix('data-')}</code> "
            "table (<code>stedi query</code>); they are left out here because they may hold personal data.</p>")


def _quarantine(data: ReportData) -> str:
    if not data.quarantine:
        return '<p class="nodata">No rejected landing lines: the quarantine table is empty.</p>'
    return _rule_groups(data.quarantine, "data-rule", "rejected lines")


def _warnings(data: ReportData) -> str:
    if not data.warnings:
        return '<p class="nodata">No warnings: every descriptive field of the kept lines is as the contract says.</p>'
    return _rule_groups(data.warnings, "data-warning", "raw values")


def _figure(plot: Plot | None, caption: str, nodata: str) -> str:
    if plot is None:
        return f'<p class="nodata">No data: {_e(nodata)}</p>'
    uri = "data:image/png;base64," + base64.b64encode(plot.png).decode("ascii")
    return (f'<figure><img data-plot="{_e(plot.key)}" alt="{_e(plot.alt)}" src="{uri}">'
            f"<figcaption>{caption}</figcaption></figure>")


def render(data: ReportData, plots: dict[str, Plot | None]) -> str:
    notes = "".join(f'<div class="note">{_e(n)}</div>' for n in data.notes)
    signal = data.signal
    signal_caption = (
        "One customer from <code>machine_learning_curated</code>, picked by its pseudonymous "
        f"<code>customerKey</code> <code>{_e(signal.customer_key[:12])}…</code> (the customer with the most rows): "
        "the step trainer's <code>distanceFromObject</code> over <code>sensorReadingTime</code> and, on the "
        "right axis, the paired accelerometer reading's magnitude √(x²+y²+z²) over its <code>timestamp</code>."
        if signal else "")
    readings_caption = (
        "How many trusted readings each customer has: accelerometer readings per customer (<code>user</code>) and "
        "step-trainer readings per <code>serialNumber</code>, counted and binned in Spark; no customer is named.")
    consent_caption = (
        f"Cumulative customers by UTC {_e(data.consent.bucket_name if data.consent else 'day')}: registered (<code>registrationDate</code> of each email's latest "
        "<code>customer_landing</code> record) and consenting to research (<code>shareWithResearchAsOfDate</code> "
        "of <code>customer_trusted</code>, so withdrawn consent is not counted).")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>STEDI pipeline report — {_e(data.last_run or "no run")}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>STEDI pipeline report</h1>
<p class="sub">Written by <code>stedi pipeline report</code>: rows per zone, how every landing row ended,
what was quarantined, and three plots of the data.</p>
{_meta(data)}
{notes}
<h2 id="tables">Rows per table and zone</h2>
{_tables(data)}
<h2 id="reconciliation">Reconciliation of the last run</h2>
<p class="sub">Every landing row ends in exactly one category; <em>balanced</em> checks that they add up.</p>
{_reconciliation(data)}
<h2 id="quarantine">Quarantine: rejected landing lines by rule</h2>
{_quarantine(data)}
<h2 id="warnings">Warnings: kept lines with a descriptive field not as the contract says</h2>
<p class="sub">Kept in trusted and curated, because no job relies on the field (docs/lake.md); the value
stays when its column can hold it (a three-digit birth year), else it reads as NULL.</p>
{_warnings(data)}
<h2 id="signal">A customer's distance signal and acceleration</h2>
{_figure(plots.get("signal"), signal_caption, "machine_learning_curated is empty")}
<h2 id="readings">Readings per customer</h2>
{_figure(plots.get("readings"), readings_caption, "the trusted accelerometer and step tables are empty")}
<h2 id="consent">Consent over time</h2>
{_figure(plots.get("consent"), consent_caption, "no customer records")}
</main>
</body>
</html>
"""


def write_report(
    spark: SparkSession,
    store: PipelineStore,
    out: Path,
    max_points: int = MAX_POINTS,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Gather in Spark, plot and write the report to ``out`` (written whole, then renamed into place)."""
    step = progress or (lambda s: None)
    step("counting tables and aggregating in Spark")
    return save_report(gather(spark, store, max_points), out, step)


def write_report_duckdb(
    store: PipelineStore,
    out: Path,
    max_points: int = MAX_POINTS,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """The same report with its aggregates computed by DuckDB over the same files: no Spark."""
    from cloud_pipeline.report.duck_data import DuckAggregates
    from cloud_pipeline.storage.duck import open_duck

    step = progress or (lambda s: None)
    check_reportable(store)
    step("counting tables and aggregating in DuckDB")
    import duckdb

    from stedi.lake import LakeError

    duck = open_duck(store)
    try:
        data = gather_with(DuckAggregates(duck), store, max_points)
    except duckdb.Error as exc:  # a file of the lake DuckDB cannot read (Spark would fail on it too)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LakeError(f"cannot aggregate the lake's tables: {first}") from exc
    finally:
        duck.close()
    return save_report(data, out, step)


def save_report(data: ReportData, out: Path, step: Callable[[str], None]) -> Report:
    step("drawing plots")
    plots = make_plots(data)
    page = render(data, plots)
    out = out.expanduser()
    write_atomically(out, page.encode("utf-8"))
    log.info("report for run %s written to %s (%d bytes)", data.last_run, out, len(page))
    return Report(data, plots, page)
