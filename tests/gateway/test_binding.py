"""A gateway home is bound to one lake; `register` checks what it is given and says what it
changed; `stedi gateway customers` lists and removes customers.  Through the real command."""

from __future__ import annotations

import json
from pathlib import Path

from stedi.lake import FolderLake
from tests.gateway.simboard import gateway_env, stedi
from tests.gateway.util import landing_lines

SERIAL = "00000008-0000-4000-8000-000000000000"


def _register(env: dict[str, str], *extra: str, email: str = "ann@x.org", name: str = "Ann",
              birthday: str = "1990-04-01", serial: str = SERIAL) -> tuple[int, str, str]:
    run = stedi("gateway", "register", "--email", email, "--name", name, "--phone", "1", "--birthday", birthday,
                "--serial", serial, *extra, env=env)
    return run.returncode, run.stdout, run.stderr


def test_customer_records_go_where_the_home_is_bound(tmp_path: Path) -> None:
    lake_a, lake_b = tmp_path / "lake-a", tmp_path / "lake-b"
    env = gateway_env(STEDI_HOME=str(tmp_path / "home"), STEDI_LAKE=str(tmp_path / "default-lake"))
    code, _, err = _register(env, "--lake", str(lake_a))
    assert code == 0, err
    # consent without --lake goes to the bound lake, not to the default one
    grant = stedi("gateway", "consent", "grant", "research", "--email", "ann@x.org", env=env)
    assert grant.returncode == 0, grant.stderr
    assert "research since 20" in grant.stdout and "research=1" not in grant.stdout  # a local time, not ms
    assert len(landing_lines(FolderLake(lake_a), "customer")) == 2
    assert not (tmp_path / "default-lake").exists()
    # another lake is refused, naming both and the way to re-bind; nothing is sent anywhere
    for command in (["gateway", "consent", "grant", "public", "--email", "ann@x.org", "--lake", str(lake_b)],
                    ["gateway", "run", "--lake", str(lake_b), "--ble", "sim://127.0.0.1:9", "--duration", "1",
                     "--no-live"]):
        refused = stedi(*command, env=env)
        assert refused.returncode == 2, refused.stderr
        assert str(lake_a) in refused.stderr and str(lake_b) in refused.stderr and "--rebind" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert not lake_b.exists()
    # an explicit re-bind moves the home: the customer's current record is sent to the new lake
    moved = stedi("gateway", "init", "--lake", str(lake_b), "--rebind", env=env)
    assert moved.returncode == 0, moved.stderr
    [record] = landing_lines(FolderLake(lake_b), "customer")
    assert record["email"] == "ann@x.org" and record["shareWithResearchAsOfDate"] is not None
    status = json.loads(stedi("gateway", "status", "--json", env=env).stdout)
    assert status["lake"] == str(lake_b.resolve())
    again = stedi("gateway", "init", "--lake", str(lake_b), env=env)
    assert again.returncode == 0 and "already bound" in again.stdout


def test_register_validates_and_says_what_it_updates(tmp_path: Path) -> None:
    env = gateway_env(STEDI_HOME=str(tmp_path / "home"))
    for extra, message in ((dict(serial="xyz"), "a UUID"), (dict(birthday="2090-01-01"), "not in the past"),
                           (dict(birthday="1990-02-30"), "not a date")):
        code, _, err = _register(env, "--no-upload", **extra)
        assert code == 2 and message in err and "Traceback" not in err, err
    code, out, err = _register(env, "--no-upload", serial=SERIAL.upper())
    assert code == 0 and f"registered ann@x.org with board {SERIAL}" in out, err
    code, out, err = _register(env, "--no-upload", name="Ann Lee", birthday="1990-04-02")
    assert code == 0, err
    assert "updated ann@x.org" in out and "name: Ann -> Ann Lee" in out and "birthday: 1990-04-01 -> 1990-04-02" in out


def test_customers_lists_and_removes_with_erase_guidance(tmp_path: Path) -> None:
    env = gateway_env(STEDI_HOME=str(tmp_path / "home"))
    lake = tmp_path / "lake"
    assert _register(env, "--lake", str(lake))[0] == 0
    assert _register(env, email="bo@x.org", name="Bo", serial="00000009-0000-4000-8000-000000000000")[0] == 0
    listed = stedi("gateway", "customers", env=env)
    assert listed.returncode == 0 and "ann@x.org" in listed.stdout and "bo@x.org" in listed.stdout
    assert SERIAL in listed.stdout  # never cut
    as_json = json.loads(stedi("gateway", "customers", "--json", env=env).stdout)
    assert [c["email"] for c in as_json] == ["ann@x.org", "bo@x.org"]
    removed = stedi("gateway", "customers", "--remove", "Bo@x.org", env=env)
    assert removed.returncode == 0, removed.stderr
    assert f"stedi pipeline erase --email bo@x.org --lake {lake.resolve()}" in removed.stdout
    assert [c["email"] for c in json.loads(stedi("gateway", "customers", "--json", env=env).stdout)] == ["ann@x.org"]
    unknown = stedi("gateway", "customers", "--remove", "nobody@x.org", env=env)
    assert unknown.returncode == 2 and "no customer 'nobody@x.org'" in unknown.stderr
