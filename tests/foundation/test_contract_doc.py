"""docs/lake.md and stedi/contract.py describe the same contract."""

import re
from pathlib import Path

from stedi import contract

DOC = Path(__file__).resolve().parents[2] / "docs" / "lake.md"


def _doc_tables() -> dict[str, list[tuple[str, str, bool, str | None]]]:
    """Each documented table's rows: name, type, required, and severity (landing tables only)."""
    tables: dict[str, list[tuple[str, str, bool, str | None]]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^### `(\w+)`", line)
        if heading:
            current = heading.group(1)
            tables[current] = []
            continue
        row = re.match(r"^\| `(\w+)` \| (\w+) \| (yes|no) \|(?: (quarantine|warn) \|)?", line)
        if row and current:
            tables[current].append((row.group(1), row.group(2), row.group(3) == "yes", row.group(4)))
    return tables


def test_every_table_in_code_is_documented_with_the_same_fields() -> None:
    documented = _doc_tables()
    # Severity says what an invalid landing value does, so only landing tables document it.
    in_code = {
        t.name: [(f.name, f.type, f.required, f.severity if t.zone == "landing" else None) for f in t.fields]
        for t in contract.TABLES
    }
    assert documented == in_code


def test_relied_on_fields_quarantine_and_descriptive_fields_warn() -> None:
    # The list: identity, lineage, consent and readings quarantine; descriptive fields warn.
    warn = {f.name for t in contract.LANDING_TABLES for f in t.fields if f.severity == "warn"}
    assert warn == {"customerName", "phone", "birthDay", "registrationDate", "shareWithPublicAsOfDate",
                    "shareWithFriendsAsOfDate"}


def test_documented_layout_lists_every_folder() -> None:
    text = DOC.read_text()
    for table in contract.TABLES:
        assert table.folder in text, table.folder
    for folder in (contract.QUARANTINE_FOLDER, contract.STATE_FOLDER, contract.RUNS_FOLDER):
        assert folder in text, folder


def test_original_field_names_are_kept() -> None:
    assert contract.TABLES_BY_NAME["customer_landing"].field_names == (
        "customerName", "email", "phone", "birthDay", "serialNumber", "registrationDate",
        "lastUpdateDate", "shareWithResearchAsOfDate", "shareWithPublicAsOfDate", "shareWithFriendsAsOfDate",
    )
    assert contract.TABLES_BY_NAME["accelerometer_landing"].field_names == ("user", "timestamp", "x", "y", "z")
    assert contract.TABLES_BY_NAME["step_trainer_landing"].required_fields == (
        "sensorReadingTime", "serialNumber", "distanceFromObject",
    )


def test_machine_learning_table_has_no_personal_columns() -> None:
    ml = contract.TABLES_BY_NAME["machine_learning_curated"]
    assert not set(ml.field_names) & contract.PERSONAL_COLUMNS
