"""Numbers and times in words a person reads: "1 customer", local ISO-8601 times."""

from __future__ import annotations

from datetime import UTC, datetime


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 customer``, ``2 customers``, ``1,204 step trainers`` (``nouns`` for an irregular plural)."""
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"


def run_time(run_id: str | None) -> str:
    """When a run started, from its id (``20261201T235018123456Z-ab12``), as local ISO-8601."""
    if not run_id:
        return "never"
    try:
        started = datetime.strptime(run_id[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return run_id
    return started.astimezone().isoformat(timespec="seconds")
