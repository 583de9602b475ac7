"""The lake contract: what crosses the boundary between gateway, lake and pipeline.

This module is the single source of truth; ``docs/lake.md`` describes the same
contract for people and a test keeps the two in step.

Landing records keep the exact field names and types of the original STEDI data
lake (epoch-millisecond times), so the pipeline also runs on data users already
have.  Extra provenance fields are allowed where documented; every reader must
accept files without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FieldType = Literal["string", "long", "double", "date_string"]
#: What an invalid value of a landing field does to its line.  ``quarantine``: the line is rejected
#: (fields the jobs rely on: identity, lineage, consent, readings).  ``warn``: the line is kept, the
#: value stays when its column's type can hold it (else NULL), and a warning records it
#: (descriptive fields no job reads; real lakes hold three-digit birth years, for one).
Severity = Literal["quarantine", "warn"]

#: File endings a landing folder may hold; anything else is ignored by readers.
LANDING_FILE_SUFFIXES = (".json", ".jsonl", ".json.gz")


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    required: bool
    doc: str
    severity: Severity = "quarantine"


@dataclass(frozen=True)
class Table:
    """A table of the lake: its catalog name, the folder it lives in, and its fields."""

    name: str
    entity: str  # customer | accelerometer | step_trainer
    zone: str  # landing | trusted | curated
    fields: tuple[Field, ...]
    doc: str

    @property
    def folder(self) -> str:
        return f"{self.entity}/{self.zone}/"

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def required_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)


CUSTOMER_FIELDS = (
    Field("customerName", "string", True, "Full name.", "warn"),
    Field("email", "string", True, "Customer key across the lake; the accelerometer `user`."),
    Field("phone", "string", True, "Phone number.", "warn"),
    Field("birthDay", "date_string", True, '"YYYY-MM-DD".', "warn"),
    Field("serialNumber", "string", True, "UUID of the customer's step trainer."),
    Field("registrationDate", "long", True, "Epoch ms when the customer registered.", "warn"),
    Field("lastUpdateDate", "long", True, "Epoch ms of this record; the latest record per email wins."),
    Field("shareWithResearchAsOfDate", "long", False, "Epoch ms research consent was given, or null."),
    Field("shareWithPublicAsOfDate", "long", False, "Epoch ms public sharing was allowed, or null.", "warn"),
    Field("shareWithFriendsAsOfDate", "long", False, "Epoch ms sharing with friends was allowed, or null.", "warn"),
)

ACCELEROMETER_FIELDS = (
    Field("user", "string", True, "The customer's email."),
    Field("timestamp", "long", True, "Epoch ms; equals the paired step reading's sensorReadingTime."),
    Field("x", "double", True, "Acceleration along x in g."),
    Field("y", "double", True, "Acceleration along y in g."),
    Field("z", "double", True, "Acceleration along z in g."),
)

STEP_TRAINER_FIELDS = (
    Field("sensorReadingTime", "long", True, "Epoch ms the board took the reading."),
    Field("serialNumber", "string", True, "UUID of the step trainer (its BLE Serial Number String)."),
    Field("distanceFromObject", "long", True, "Distance the sensor measured (integer, sensor units)."),
)

#: Optional provenance fields the gateway adds to step_trainer landing records.
#: They let every reading be traced back to the board's sequence number.
STEP_TRAINER_PROVENANCE = (
    Field("bootId", "long", False, "Board boot id (new on every power-up or reset)."),
    Field("seq", "long", False, "Reading's 32-bit sequence number within its boot."),
)

CUSTOMER_LANDING = Table("customer_landing", "customer", "landing", CUSTOMER_FIELDS,
                         "Every customer record the apps wrote, one per change.")
ACCELEROMETER_LANDING = Table("accelerometer_landing", "accelerometer", "landing", ACCELEROMETER_FIELDS,
                              "Phone accelerometer readings of every customer.")
STEP_TRAINER_LANDING = Table("step_trainer_landing", "step_trainer", "landing",
                             STEP_TRAINER_FIELDS + STEP_TRAINER_PROVENANCE,
                             "Step-trainer distance readings of every board.")

CUSTOMER_TRUSTED = Table("customer_trusted", "customer", "trusted", CUSTOMER_FIELDS,
                         "Latest record per customer who consented to research.")
ACCELEROMETER_TRUSTED = Table("accelerometer_trusted", "accelerometer", "trusted", ACCELEROMETER_FIELDS,
                              "Accelerometer readings of trusted customers.")
STEP_TRAINER_TRUSTED = Table("step_trainer_trusted", "step_trainer", "trusted",
                             STEP_TRAINER_FIELDS + STEP_TRAINER_PROVENANCE,
                             "Step-trainer readings of curated customers' boards.")
CUSTOMER_CURATED = Table("customer_curated", "customer", "curated", CUSTOMER_FIELDS,
                         "Trusted customers who have accelerometer readings.")
MACHINE_LEARNING_CURATED = Table(
    "machine_learning_curated", "step_trainer", "curated",
    (
        Field("sensorReadingTime", "long", True, "Epoch ms of the step reading."),
        Field("serialNumber", "string", True, "Step trainer UUID (a device id, not personal data)."),
        Field("distanceFromObject", "long", True, "Distance reading."),
        # Provenance carried through so every curated reading traces back to the board's sequence number.
        Field("bootId", "long", False, "Board boot id of the step reading, when the gateway recorded it."),
        Field("seq", "long", False, "Sequence number of the step reading within its boot, when recorded."),
        Field("customerKey", "string", True, "Salted pseudonymous customer key (no email)."),
        Field("timestamp", "long", True, "Epoch ms of the matched accelerometer reading."),
        Field("x", "double", True, "Acceleration x in g."),
        Field("y", "double", True, "Acceleration y in g."),
        Field("z", "double", True, "Acceleration z in g."),
    ),
    "Each trusted step reading with the same customer's accelerometer reading at that time. No personal data.",
)

LANDING_TABLES = (CUSTOMER_LANDING, ACCELEROMETER_LANDING, STEP_TRAINER_LANDING)
TABLES: tuple[Table, ...] = LANDING_TABLES + (
    CUSTOMER_TRUSTED, ACCELEROMETER_TRUSTED, STEP_TRAINER_TRUSTED, CUSTOMER_CURATED, MACHINE_LEARNING_CURATED,
)
TABLES_BY_NAME = {t.name: t for t in TABLES}

#: Columns that identify a person; none may appear in machine_learning_curated.
PERSONAL_COLUMNS = frozenset({"customerName", "email", "phone", "birthDay", "user"})

#: Folders the pipeline keeps for itself, beside the zones.
STAGING_FOLDER = "_pipeline/staging/"
QUARANTINE_FOLDER = "_pipeline/quarantine/"
WARNINGS_FOLDER = "_pipeline/warnings/"
STATE_FOLDER = "_pipeline/state/"
RUNS_FOLDER = "_pipeline/runs/"
QUARANTINE_TABLE = "quarantine"
#: Warnings about descriptive fields of kept landing lines (``Field.severity == "warn"``).
WARNINGS_TABLE = "warnings"


def is_landing_file(key: str) -> bool:
    return key.endswith(LANDING_FILE_SUFFIXES)
