"""Customers and consent through the `stedi gateway` commands: customer landing records with
all ten contract fields and the consent dates; readings of non-consenting customers held back."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.accel import ReplaySource
from gateway.ingest import Ingest
from gateway.spool import Spool
from gateway.uploader import Uploader
from stedi.contract import CUSTOMER_LANDING
from stedi.lake import FolderLake
from stedi_app.cli import app
from tests.gateway.util import BASE_MS, landing_lines

runner = CliRunner()

# Board serial numbers are UUIDs, as the firmware holds them (`gateway register` checks it).
ANN, BEE, YES, NO = (f"0000000{i}-0000-4000-8000-000000000000" for i in range(1, 5))


def _cli(*args: str) -> str:
    result = runner.invoke(app, ["gateway", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_register_and_consent_write_customer_records(tmp_path: Path) -> None:
    home, lake = tmp_path / "home", tmp_path / "lake"
    common = ["--home", str(home), "--lake", str(lake)]
    _cli("register", "--email", "Ann@Example.com", "--name", "Ann Example", "--phone", "+1 555 0100",
         "--birthday", "1990-04-01", "--serial", ANN, *common)
    _cli("consent", "grant", "research", "--email", "ann@example.com", *common)
    _cli("consent", "grant", "friends", "--email", "ann@example.com", *common)
    _cli("consent", "withdraw", "friends", "--email", "ann@example.com", *common)

    records = sorted(landing_lines(FolderLake(lake), "customer"), key=lambda r: r["lastUpdateDate"])
    assert len(records) == 4
    for r in records:
        assert tuple(r) == CUSTOMER_LANDING.field_names
        assert r["email"] == "ann@example.com" and r["serialNumber"] == ANN
        assert r["birthDay"] == "1990-04-01" and r["registrationDate"] == records[0]["registrationDate"]
    first, research, friends, withdrawn = records
    assert first["shareWithResearchAsOfDate"] is None and first["shareWithFriendsAsOfDate"] is None
    assert research["shareWithResearchAsOfDate"] == research["lastUpdateDate"]
    assert friends["shareWithFriendsAsOfDate"] == friends["lastUpdateDate"]
    assert withdrawn["shareWithFriendsAsOfDate"] is None
    assert withdrawn["shareWithResearchAsOfDate"] == research["shareWithResearchAsOfDate"]
    assert withdrawn["shareWithPublicAsOfDate"] is None
    assert len({r["lastUpdateDate"] for r in records}) == 4  # the latest record per email wins, unambiguously


def test_bad_registration_is_refused_with_a_reason(tmp_path: Path) -> None:
    result = runner.invoke(app, ["gateway", "register", "--email", "not-an-email", "--name", "A", "--phone", "1",
                                 "--birthday", "1990-01-01", "--serial", ANN, "--home", str(tmp_path)])
    assert result.exit_code == 2 and "not an email address" in result.output
    result = runner.invoke(app, ["gateway", "consent", "grant", "research", "--email", "who@x.org",
                                 "--home", str(tmp_path), "--no-upload"])
    assert result.exit_code == 2 and "register them first" in result.output


def test_customer_record_waits_in_the_spool_when_the_lake_is_away(tmp_path: Path) -> None:
    home = tmp_path / "home"
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the lake folder should be")
    out = _cli("register", "--email", "b@x.org", "--name", "B", "--phone", "1", "--birthday", "1980-02-03",
               "--serial", BEE, "--home", str(home), "--lake", str(blocked))
    assert "kept in the spool" in out
    spool = Spool(home)
    assert spool.stats().customer_events == 1
    lake = FolderLake(tmp_path / "lake")
    assert Uploader(spool, lake).upload_customers() == 1
    assert [r["email"] for r in landing_lines(lake, "customer")] == ["b@x.org"]


def test_readings_of_customers_without_research_consent_can_stay_on_the_device(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for email, serial in (("yes@x.org", YES), ("no@x.org", NO)):
        _cli("register", "--email", email, "--name", "N", "--phone", "1", "--birthday", "1980-02-03",
             "--serial", serial, "--home", str(home), "--no-upload")
    _cli("consent", "grant", "research", "--email", "yes@x.org", "--home", str(home), "--no-upload")
    replay = tmp_path / "accel.jsonl"
    replay.write_text('{"t": 0, "x": 0.0, "y": 0.0, "z": 1.0}\n{"t": 1000, "x": 1.0, "y": 0.5, "z": 0.0}\n')
    spool = Spool(home)
    ingest = Ingest(spool, ReplaySource(replay), hold_unconsented=True)
    readings = [(s, BASE_MS + 50 * s, 250) for s in range(10)]
    assert ingest.add(YES, 1, readings).accepted == 10
    assert ingest.add(NO, 1, readings).accepted == 10  # acknowledged: kept durably here
    assert ingest.add("board-unknown", 1, readings).refused  # no registered customer: not kept
    lake = FolderLake(tmp_path / "lake")
    Uploader(spool, lake).drain_sync()
    landed = landing_lines(lake, "step_trainer")
    assert {r["serialNumber"] for r in landed} == {YES} and len(landed) == 10
    assert {r["user"] for r in landing_lines(lake, "accelerometer")} == {"yes@x.org"}
    assert spool.stats().held == 10
