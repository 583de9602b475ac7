"""The pipeline keeps each customer's record with the greatest lastUpdateDate, so every change
the gateway records must carry a later date than the one before, even when the phone's clock
steps back: otherwise a withdrawal could lose to an older record that still consents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway import customers as customers_module
from gateway.customers import Customers
from gateway.spool import Spool


def test_a_withdrawal_after_the_clock_stepped_back_is_still_the_latest_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path)
    clock = iter([1_790_000_000_000, 1_790_000_000_500, 1_790_000_000_100, 1_790_000_000_101])
    monkeypatch.setattr(customers_module, "now_ms", lambda: next(clock))
    people = Customers(spool)
    people.register(email="cat@example.com", name="Cat", phone="1", birthday="1983-03-03", serial="S-CAT")
    people.consent("cat@example.com", "grant", "research")
    # The phone's clock steps back 400 ms (NTP); Cat changes her phone number, then withdraws.
    people.register(email="cat@example.com", name="Cat", phone="2", birthday="1983-03-03", serial="S-CAT")
    people.consent("cat@example.com", "withdraw", "research")
    records = [json.loads(line) for _id, line in spool.customer_events()]
    spool.close()
    dates = [r["lastUpdateDate"] for r in records]
    assert dates == sorted(dates) and len(set(dates)) == len(dates), dates
    latest = max(records, key=lambda r: r["lastUpdateDate"])
    assert latest["shareWithResearchAsOfDate"] is None and latest["phone"] == "2"
