"""A laptop run on an S3 lake with ``--database`` moves the Glue catalog's tables to the versions it
committed, as the deployed jobs do (moto's server, the shared Spark session)."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest

from cloud_pipeline.storage.state import PipelineState
from cloud_pipeline.storage.store import STATE_KEY
from simulator.fleet import generate_fleet
from stedi.contract import TABLES, TABLES_BY_NAME
from stedi.lake import S3Lake
from tests.parts import run_main

ZONE_TABLES = [t.name for t in TABLES if t.zone != "landing"]


def _locations(database: str) -> dict[str, str]:
    glue = boto3.client("glue")
    return {t: glue.get_table(DatabaseName=database, Name=t)["Table"]["StorageDescriptor"]["Location"]
            for t in ZONE_TABLES}


@pytest.mark.slow
def test_a_laptop_run_moves_the_catalog_after_each_commit(spark, s3_bucket: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                          monkeypatch, capsys) -> None:
    monkeypatch.setenv("STEDI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("STEDI_CUSTOMER_KEY_SALT", "catalog-test-salt-0123456789")
    lake = S3Lake(s3_bucket, "lake")
    url = f"s3://{s3_bucket}/lake"
    database = f"laptop_{uuid.uuid4().hex[:8]}"
    generate_fleet(lake, customers=4, seed=3, customers_per_file=2)

    code, out, err = run_main(monkeypatch, capsys, "pipeline", "run", "--lake", url, "--database", database)
    assert code == 0, err
    first = PipelineState.from_json(lake.get(STATE_KEY))
    # The database and every table did not exist: the run created them at the committed versions.
    assert f"catalog {database}: 0 table(s) moved to the new version, {len(TABLES) + 2} created" in out
    assert _locations(database) == {t: f"{url}/{TABLES_BY_NAME[t].folder}{first.tables[t].version}/"
                                    for t in ZONE_TABLES}

    # A second run, of one job (the catalog update is the same for any run; one job keeps the test short).
    generate_fleet(lake, customers=2, seed=3, customer_offset=4, customers_per_file=2)
    code, out, err = run_main(monkeypatch, capsys, "pipeline", "run", "--lake", url, "--database", database,
                              "--jobs", "customer_landing_to_trusted")
    assert code == 0, err
    second = PipelineState.from_json(lake.get(STATE_KEY))
    assert second.tables["customer_trusted"].version != first.tables["customer_trusted"].version
    want = {t: f"{url}/{TABLES_BY_NAME[t].folder}{second.tables[t].version}/" for t in ZONE_TABLES}
    assert _locations(database) == want
    assert want["customer_trusted"] != f"{url}/customer/trusted/{first.tables['customer_trusted'].version}/"
    moved = sum(second.tables[t].version != first.tables[t].version for t in ZONE_TABLES)
    assert f"catalog {database}: {moved} table(s) moved to the new version, 0 created" in out


def test_database_needs_an_s3_lake_and_a_valid_name(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _out, err = run_main(monkeypatch, capsys, "pipeline", "run", "--lake", str(tmp_path), "--database", "stedi")
    assert (code, "Traceback" in err) == (2, False) and "--database needs an s3:// lake" in err, err
    code, _out, err = run_main(monkeypatch, capsys, "pipeline", "run", "--lake", "s3://b/p", "--database", "My-DB")
    assert (code, "Traceback" in err) == (2, False) and "lowercase letters, digits and underscores" in err, err
