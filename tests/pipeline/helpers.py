"""Small hand-built landing data for the pipeline tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloud_pipeline.transforms.schemas import table_schema
from stedi.contract import TABLES_BY_NAME

SALT = "test-salt"
DAY = 86_400_000
T0 = 1_700_000_000_000


def customer(
    name: str,
    serial: str,
    consent: int | None,
    updated: int = T0,
    phone: str = "555-0100",
) -> dict[str, Any]:
    return {
        "customerName": name.title(),
        "email": f"{name}@example.com",
        "phone": phone,
        "birthDay": "1990-01-02",
        "serialNumber": serial,
        "registrationDate": T0 - 10 * DAY,
        "lastUpdateDate": updated,
        "shareWithResearchAsOfDate": consent,
        "shareWithPublicAsOfDate": None,
        "shareWithFriendsAsOfDate": None,
    }


def accel(name: str, ts: int, x: float = 0.5, y: float = 0.25, z: float = -1.0) -> dict[str, Any]:
    return {"user": f"{name}@example.com", "timestamp": ts, "x": x, "y": y, "z": z}


def step(serial: str, ts: int, distance: int = 200, seq: int | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {"sensorReadingTime": ts, "serialNumber": serial, "distanceFromObject": distance}
    if seq is not None:
        rec.update(bootId=7, seq=seq)
    return rec


def frame(spark, table: str, records: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    schema = table_schema(TABLES_BY_NAME[table])
    return spark.createDataFrame([tuple(r.get(f) for f in schema.fieldNames()) for r in records], schema)


def write_jsonl(lake: Path, key: str, records: list[dict[str, Any] | str]) -> None:
    path = lake / key
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("".join(line + "\n" for line in lines))


def rows(df, *columns: str) -> list[tuple[Any, ...]]:  # type: ignore[no-untyped-def]
    """A DataFrame's rows as sorted tuples (of the given columns, default all)."""
    cols = list(columns) or df.columns
    return sorted((tuple(r) for r in df.select(*cols).collect()), key=repr)


def small_lake(lake: Path) -> None:
    """Three customers: ann consents, bob never did, cat withdrew; plus one bad line per table."""
    write_jsonl(lake, "customer/landing/c1.json", [
        customer("ann", "S-ANN", T0 - DAY, updated=T0 - 2 * DAY, phone="old"),
        customer("ann", "S-ANN", T0 - DAY, updated=T0),
        customer("bob", "S-BOB", None),
        customer("cat", "S-CAT", T0 - DAY, updated=T0 - DAY),
        customer("cat", "S-CAT", None, updated=T0 + DAY),
        '{"customerName": "Trunc',
    ])
    write_jsonl(lake, "accelerometer/landing/a1.json", [
        accel("ann", T0 + 1000, x=1.0), accel("ann", T0 + 2000, x=2.0), accel("ann", T0 + 2000, x=2.0),
        accel("bob", T0 + 1000, x=9.0), accel("cat", T0 + 1000, x=8.0),
        '{"user": "ann@example.com", "timestamp": "later", "x": 1, "y": 1, "z": 1}',
    ])
    write_jsonl(lake, "step_trainer/landing/s1.json", [
        step("S-ANN", T0 + 1000, 100, seq=1), step("S-ANN", T0 + 2000, 110, seq=2),
        step("S-BOB", T0 + 1000, 300), step("S-CAT", T0 + 1000, 400), step("S-NOBODY", T0 + 1000, 1),
        '{"serialNumber": "S-ANN", "distanceFromObject": 5}',
    ])
