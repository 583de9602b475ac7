"""Consent is a security boundary, end to end: customers registered through the gateway, their
readings uploaded to landing, the real pipeline run.  Bob (never consented) and Cat (consented,
then withdrew) have readings in landing and nothing in any trusted or curated table, and no
file of those zones (nor the run records) holds their name, email, phone or board serial.
The machine-learning table holds no personal column or value, and its customerKey is a salted
hash that hashing an email without the salt does not give."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_pipeline.config import PipelineOptions
from cloud_pipeline.runner import RunResult, run_pipeline
from cloud_pipeline.storage.catalog import table_frames
from cloud_pipeline.storage.s3_cache import open_store
from stedi.contract import MACHINE_LEARNING_CURATED, PERSONAL_COLUMNS, RUNS_FOLDER, TABLES
from stedi.lake import FolderLake
from tests.security.people import ANN, BOB, CAT, READINGS, fill_lake

SALT = "pepper-7d41c2e9"
ZONES = [t for t in TABLES if t.zone != "landing"]
LANDING = [t for t in TABLES if t.zone == "landing"]


@pytest.fixture(scope="module")
def lake(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, RunResult]]:
    root = tmp_path_factory.mktemp("consent") / "lake"
    fill_lake(FolderLake(root))
    # JSON tables: every value is in the files as text, so a byte search over them means something.
    result = run_pipeline(spark, str(root), PipelineOptions(salt=SALT, format="json"))
    yield root, result


def _values(spark: Any, root: Path) -> dict[str, list[dict[str, Any]]]:
    frames = table_frames(spark, open_store(str(root)))
    return {name: [r.asDict() for r in df.collect()] for name, df in frames.items()}


def test_without_consent_in_landing_but_in_no_trusted_or_curated_table(spark: Any, lake: Any) -> None:
    root, result = lake
    assert result.balanced
    tables = _values(spark, root)
    for person in (ANN, BOB, CAT):  # everyone's readings did land
        assert sum(r["serialNumber"] == person.serial for r in tables["step_trainer_landing"]) == READINGS
        assert sum(r["user"] == person.email for r in tables["accelerometer_landing"]) == READINGS
    for table in ZONES:
        rows = tables[table.name]
        for person in (BOB, CAT):
            text = json.dumps(rows, default=str)
            assert person.email not in text and person.serial not in text and person.name not in text, table.name
    # Ann consented: the zones are not empty, so the absence above is not vacuous.
    assert {r["email"] for r in tables["customer_trusted"]} == {ANN.email}
    assert len(tables["step_trainer_trusted"]) == READINGS
    assert len(tables["machine_learning_curated"]) == READINGS
    recon = result.record.reconciliation
    assert recon["customer_landing"]["excluded_no_consent"] == 2
    assert recon["step_trainer_landing"]["excluded_no_consent"] == 2 * READINGS


def test_no_zone_file_or_run_record_names_a_customer_without_consent(lake: Any) -> None:
    root, result = lake
    files = [p for t in ZONES for p in (root / t.folder).rglob("*") if p.is_file()]
    files += list((root / RUNS_FOLDER).glob("*.json"))
    assert any(p.suffix == ".json" and p.stat().st_size for p in files)  # JSON tables were written
    for path in files:
        data = path.read_bytes()
        for person in (BOB, CAT):
            for ident in person.identifiers():
                assert ident.encode() not in data, f"{ident} in {path.relative_to(root)}"
    # The byte search does find what is there: Ann's email is in customer_trusted's files.
    assert any(ANN.email.encode() in p.read_bytes() for p in (root / "customer/trusted").rglob("*.json"))


def test_machine_learning_table_has_no_personal_data(spark: Any, lake: Any) -> None:
    root, _ = lake
    frames = table_frames(spark, open_store(str(root)))
    ml = frames[MACHINE_LEARNING_CURATED.name]
    assert not set(ml.columns) & PERSONAL_COLUMNS
    assert ml.columns == list(MACHINE_LEARNING_CURATED.field_names)
    rows = [r.asDict() for r in ml.collect()]
    assert rows
    personal = [v for p in (ANN, BOB, CAT) for v in (p.name, p.email, p.phone, p.birthday)]
    for row in rows:
        for value in row.values():
            if isinstance(value, str):
                assert not any(v in value for v in personal), value
    keys = {r["customerKey"] for r in rows}
    assert len(keys) == 1
    (key,) = keys
    assert len(key) == 64 and int(key, 16) >= 0
    # Not reversible by hashing the email: only the salted form gives the key.
    for guess in (ANN.email, ANN.email.upper(), ":" + ANN.email, ANN.email + ":"):
        for h in (hashlib.sha256, hashlib.sha1, hashlib.md5):
            assert h(guess.encode()).hexdigest() != key
    assert hashlib.sha256(f"{SALT}:{ANN.email}".encode()).hexdigest() == key
