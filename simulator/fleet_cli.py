"""`stedi sim fleet`."""

from __future__ import annotations

import json
import logging

import typer

from stedi.settings import default_lake

log = logging.getLogger(__name__)


def fleet(
    customers: int = typer.Option(956, "--customers", "-n", min=0, help="Customers to simulate (956 = the original data set, 1x)."),
    lake: str = typer.Option(None, "--lake", help="Lake folder or s3://bucket/prefix [default: STEDI_LAKE or ~/.stedi/lake]."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed writes the same files."),
    consent_rate: float = typer.Option(0.5, "--consent-rate", min=0.0, max=1.0, help="Share of customers who consent to research."),
    dirty: bool = typer.Option(False, "--dirty", help="Add duplicates, truncated lines, wrong types, unknown users and a gzip file cut short."),
    offset: int = typer.Option(0, "--offset", min=0, help="Number of the first customer: a later batch of new customers as new files."),
    drift: float = typer.Option(
        0.0, "--drift", min=0.0, max=1.0,
        help="Share of lines drifted as the original STEDI data drifted: numeric phones, float and digit-string "
             "epoch dates, three-digit and malformed birth years, missing descriptive fields (combines with --dirty).",
    ),
) -> None:
    """Write landing data (customer, accelerometer, step_trainer) for a fleet of simulated customers.

    About 85 accelerometer and 30 step readings per customer, sharing timestamps, as in the original
    STEDI data.  Prints a JSON summary of what was written.
    """
    from rich.progress import Progress

    from simulator.fleet import generate_fleet
    from stedi.lake import open_lake

    target = open_lake(lake or default_lake())
    with Progress(transient=True) as bar:
        task = bar.add_task(f"writing {customers} customers", total=customers)
        summary = generate_fleet(
            target, customers, seed, consent_rate, dirty, drift=drift, customer_offset=offset,
            progress=lambda n: bar.advance(task, n),
        )
    typer.echo(json.dumps({"lake": target.url, **summary.as_dict()}, indent=2))
