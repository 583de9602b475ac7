"""Generated landing lakes for fuzzing the pipeline, with the outcome every line must have.

A corpus is drawn from a seed and a few shape parameters (hypothesis draws those; a corpus of
hundreds of lines per example keeps the number of slow Spark runs small).  Each line is either a
good record, whose fate the model below computes (trusted, superseded, excluded by consent or
unknown owner, duplicate), or a malformed one with the quarantine rule it must get: truncated
JSON, garbage, a JSON value of the wrong type in a field the jobs rely on (floats or booleans in
string fields, strings, fractions and booleans in number fields, integers beyond int64), missing
or null required fields, non-UTF-8 bytes, nesting deeper than the parser allows.  Good records
are sometimes written the way real data drifts (epoch-ms integers as ``1700000000000.0`` or
``"1700000000000"``: coerced back, counted), and the same damage in a descriptive field
(``docs/lake.md``) keeps the record with a warning instead.  Files are plain or
gzip, LF or CRLF, with empty lines and sometimes a UTF-8 byte-order mark at the start.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stedi.contract import TABLES_BY_NAME

T0 = 1_700_000_000_000
ENTITIES = ("customer", "accelerometer", "step_trainer")
LONG_NAMES = {f.name for e in ENTITIES for f in TABLES_BY_NAME[f"{e}_landing"].fields if f.type == "long"}
STRING_FIELDS = {e: [f.name for f in TABLES_BY_NAME[f"{e}_landing"].fields if f.type in ("string", "date_string")]
                 for e in ENTITIES}
LONG_FIELDS = {e: [f.name for f in TABLES_BY_NAME[f"{e}_landing"].fields if f.type == "long"] for e in ENTITIES}
DOUBLE_FIELDS = {e: [f.name for f in TABLES_BY_NAME[f"{e}_landing"].fields if f.type == "double"] for e in ENTITIES}
REQUIRED = {e: list(TABLES_BY_NAME[f"{e}_landing"].required_fields) for e in ENTITIES}
#: Fields whose damage keeps the line, with a warning (``Field.severity == "warn"``).
DESCRIPTIVE = {f.name for e in ENTITIES for f in TABLES_BY_NAME[f"{e}_landing"].fields if f.severity == "warn"}

MALFORMED = "malformed_json"
WRONG_TYPE = "wrong_type"
MISSING = "missing_required"
NON_UTF8 = "non_utf8"
DAMAGED = "damaged_file"  # the corpus writes only sound gzip files (damaged ones: test_landing_findings.py)


@dataclass
class Line:
    entity: str
    raw: bytes
    rule: str | None  # the quarantine rule it must get; None for a good record
    record: dict[str, Any] | None = None  # a good line's values, as the pipeline types them
    coerced: bool = False  # a good line written with a drifted value the pipeline coerces back
    warned: bool = False  # a good line with one damaged descriptive field: one warning


@dataclass
class Corpus:
    lines: list[Line] = field(default_factory=list)
    files: dict[str, list[Line]] = field(default_factory=dict)  # landing key -> its lines in order
    people: list[dict[str, Any]] = field(default_factory=list)  # name, email, serial, consent history

    def write(self, lake: Path, rng: random.Random) -> None:
        """Write every file: plain or gzip, LF or CRLF, blank lines, a BOM at the start of some."""
        for key, lines in self.files.items():
            eol = b"\r\n" if rng.random() < 0.3 else b"\n"
            body = b""
            for n, line in enumerate(lines):
                # A blank line before a record is not a record; none goes before a byte-order mark,
                # which is one only at the very start of a file (elsewhere the line is not JSON).
                starts_with_bom = n == 0 and line.raw.startswith(b"\xef\xbb\xbf")
                if rng.random() < 0.05 and not starts_with_bom:
                    body += rng.choice((b"", b"   ")) + eol
                body += line.raw + eol
            path = lake / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(gzip.compress(body, mtime=0) if key.endswith(".gz") else body)


# --- good records -------------------------------------------------------------------------------


def _customer_records(rng: random.Random, i: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    name = rng.choice(("Ann", "Bob", "Çelik", "Dana O'Neil", "李", "Eve \"E\" Smith")) + f" {i}"
    email = f"person{i}@example.com"
    serial = f"5e1f{i:04d}-0000-4000-8000-{rng.getrandbits(48):012x}"
    # Consent history, oldest first: the latest record decides (None: no consent / withdrawn).
    kind = rng.choice(("consents", "never", "withdrew", "late"))
    history = {"consents": [T0], "never": [None], "withdrew": [T0, None], "late": [None, T0 + 5]}[kind]
    records = []
    for k, consent in enumerate(history):
        records.append({
            "customerName": name, "email": email, "phone": f"555-{i:04d}", "birthDay": "1990-01-02",
            "serialNumber": serial, "registrationDate": T0 - 10_000, "lastUpdateDate": T0 + 1000 * k,
            "shareWithResearchAsOfDate": consent, "shareWithPublicAsOfDate": None,
            "shareWithFriendsAsOfDate": rng.choice((None, T0)),
        })
    return {"name": name, "email": email, "serial": serial, "kind": kind}, records


def _render(record: dict[str, Any], rng: random.Random) -> tuple[bytes, bool]:
    """JSON text of a record, in a random but valid style: key order, spacing, escapes, extras;
    sometimes an epoch-ms integer drifted as real data has it (float or digit string).  Returns the
    text and whether a value was drifted."""
    items = list(record.items())
    drifted = False
    if rng.random() < 0.15:
        longs = [i for i, (k, v) in enumerate(items) if k in LONG_NAMES and isinstance(v, int) and abs(v) < 2**53]
        if longs:
            i = rng.choice(longs)
            k, v = items[i]
            items[i] = (k, float(v) if rng.random() < 0.5 else str(v))
            drifted = True
    if rng.random() < 0.3:
        rng.shuffle(items)
    if rng.random() < 0.2:
        depth = rng.randint(1, 40)
        items.append(("extra", json.loads("[" * depth + "]" * depth)))  # unknown fields are ignored
    obj = dict(items)
    sep = rng.choice(((",", ":"), (", ", ": "), (" , ", " : ")))
    text = json.dumps(obj, separators=sep, ensure_ascii=rng.random() < 0.5)
    return text.encode(), drifted


# --- malformed records --------------------------------------------------------------------------


def _wrong_value_for(kind: str, rng: random.Random) -> Any:
    # Only values no lossless coercion turns into the field's type: an integer is text's coercion,
    # a digit string or a float with a zero fraction a long's (those are drift, see _render).
    if kind == "string":  # any JSON value that is neither a string nor an integer
        return rng.choice((-1.5, 0.5, True, False, {"a": 1}, [1, 2]))
    if kind == "long":
        return rng.choice(("abc", "", "12.0", 1.5, 2**63, 2**70, -(2**63) - 1, True, [1], {"v": 1}))
    return rng.choice(("1.5", "abc", "", True, [0.5], {"v": 1}))  # double


Damage = tuple[bytes, str | None, dict[str, Any] | None]


def _malform(entity: str, record: dict[str, Any], rng: random.Random) -> Damage:
    """A damaged copy of ``record``: its text, the quarantine rule it gets, and, when the damage is
    in a descriptive field (the line is kept with one warning), the values the pipeline keeps."""
    how = rng.choice(("truncate", "garbage", "wrong_type", "wrong_type", "missing", "null", "non_utf8", "deep",
                      "bad_date"))
    rec = dict(record)
    if how == "truncate":
        text = json.dumps(rec).encode()
        return text[: rng.randint(1, len(text) - 1)].rstrip() or b"{", MALFORMED, None
    if how == "garbage":
        return rng.choice((b"[1, 2, 3]", b"null", b"42", b'"just a string"', b"not json at all", b"}{",
                           b'{"a":1,,}', b"{'single': 'quotes'", b"<xml/>")), MALFORMED, None
    if how == "wrong_type":
        kind = rng.choice(("string", "long", "double") if DOUBLE_FIELDS[entity] else ("string", "long"))
        name = rng.choice({"string": STRING_FIELDS, "long": LONG_FIELDS, "double": DOUBLE_FIELDS}[kind][entity])
        rec[name] = _wrong_value_for(kind, rng)
        return json.dumps(rec).encode(), *_kept_if_descriptive(name, rec, WRONG_TYPE)
    if how in ("missing", "null"):
        name = rng.choice(REQUIRED[entity])
        if how == "missing":
            del rec[name]
        else:
            rec[name] = None
        return json.dumps(rec).encode(), *_kept_if_descriptive(name, rec, MISSING)
    if how == "non_utf8":
        name = rng.choice(STRING_FIELDS[entity])
        text = json.dumps(rec, ensure_ascii=False).encode()
        marker = json.dumps(rec[name], ensure_ascii=False).encode()
        bad = rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe9", b"\xf8\x88\x80\x80\x80"))
        return text.replace(marker, marker[:-1] + bad + b'"', 1), NON_UTF8, None
    if how == "deep":
        depth = rng.randint(1500, 3000)  # beyond the JSON parser's nesting limit (1000)
        text = json.dumps(rec)
        return (text[:-1] + ',"deep":' + "[" * depth + "]" * depth + "}").encode(), MALFORMED, None
    # "bad_date" on customers (a descriptive field: kept as text, with a warning); elsewhere a
    # boolean in the first string field
    if entity == "customer":
        rec["birthDay"] = rng.choice(("02/01/1990", "1990-1-2", "yesterday", "1990-01-02T00:00:00", "983-01-01"))
        return json.dumps(rec).encode(), None, rec
    rec[STRING_FIELDS[entity][0]] = True
    return json.dumps(rec).encode(), WRONG_TYPE, None


def _kept_if_descriptive(name: str, damaged: dict[str, Any], rule: str) -> tuple[str | None, dict[str, Any] | None]:
    # The model reads only relied-on fields of a kept record, so the damaged value may stay in it.
    return (None, damaged) if name in DESCRIPTIVE else (rule, None)


# --- the corpus ---------------------------------------------------------------------------------


def build_corpus(seed: int, people: int, readings: int, bad_share: float, unknown_share: float) -> Corpus:
    rng = random.Random(seed)
    corpus = Corpus()
    per_entity: dict[str, list[Line]] = {e: [] for e in ENTITIES}

    def add(entity: str, record: dict[str, Any]) -> None:
        if rng.random() < bad_share:
            raw, rule, kept = _malform(entity, record, rng)
            per_entity[entity].append(Line(entity, raw, rule, kept, warned=kept is not None))
        else:
            raw, drifted = _render(record, rng)
            per_entity[entity].append(Line(entity, raw, None, record, coerced=drifted))

    owners = []
    for i in range(people):
        person, records = _customer_records(rng, i)
        corpus.people.append(person)
        owners.append(person)
        for r in records:
            add("customer", r)
    for _ in range(readings):
        unknown = rng.random() < unknown_share
        if unknown:
            k = rng.randint(0, 3)
            email, serial = f"stranger{k}@example.com", f"dead{k:04d}-0000-4000-8000-000000000000"
        else:
            person = rng.choice(owners)
            email, serial = person["email"], person["serial"]
        t = T0 + 50 * rng.randint(0, 40)  # few slots: pairs, collisions and exact duplicates happen
        accel = {"user": email, "timestamp": t, "x": rng.randint(-8, 8) / 4, "y": 0.25, "z": -1.0}
        if rng.random() < 0.1:
            accel["x"] = rng.choice((1e300, -0.0, 5e-324))  # unusual, valid doubles
        if rng.random() < 0.15:
            if abs(accel["x"]) < 100 and float(accel["x"]).is_integer():
                accel["x"] = int(accel["x"])  # 2 for 2.0: the same double
        step: dict[str, Any] = {"sensorReadingTime": t, "serialNumber": serial, "distanceFromObject": rng.randint(0, 300)}
        if rng.random() < 0.7:
            step.update(bootId=rng.randint(1, 3), seq=rng.randint(0, 2**32 - 1))
        for entity, rec in (("accelerometer", accel), ("step_trainer", step)):
            add(entity, rec)
            if rng.random() < 0.08:
                add(entity, rec)  # the same record again (an upload repeated)
    for entity, lines in per_entity.items():
        rng.shuffle(lines)
        n_files = rng.randint(1, 4)
        for f in range(n_files):
            part = lines[f::n_files]
            if not part:
                continue
            key = f"{entity}/landing/fuzz-{f}" + rng.choice((".jsonl", ".json", ".json.gz"))
            if rng.random() < 0.1:
                # A byte-order mark at the start of a file is skipped by the line reader.
                first = part[0]
                part[0] = dataclasses.replace(first, raw=b"\xef\xbb\xbf" + first.raw)
            corpus.files[key] = part
            corpus.lines.extend(part)
    return corpus


# --- the expected outcome -----------------------------------------------------------------------


def _typed(entity: str, record: dict[str, Any]) -> tuple[Any, ...]:
    """A good record as the pipeline's columns hold it (doubles as floats, absent optionals None)."""
    table = TABLES_BY_NAME[f"{entity}_landing"]
    return tuple(float(record[f.name]) if f.type == "double" else record.get(f.name) for f in table.fields)


def expected_outcome(corpus: Corpus) -> dict[str, Any]:
    """Reconciliation per landing table and rows per zone table, computed from the good lines."""
    good = {e: [line.record for line in corpus.lines if line.entity == e and line.rule is None] for e in ENTITIES}
    bad = {e: Counter(line.rule for line in corpus.lines if line.entity == e and line.rule) for e in ENTITIES}

    latest: dict[str, dict[str, Any]] = {}
    for rec in good["customer"]:
        assert rec is not None
        if rec["email"] not in latest or rec["lastUpdateDate"] > latest[rec["email"]]["lastUpdateDate"]:
            latest[rec["email"]] = rec
    consenting = {e for e, r in latest.items() if r["shareWithResearchAsOfDate"] is not None}
    fates: dict[str, Counter[str]] = {e: Counter() for e in ENTITIES}
    fates["customer"]["superseded"] = len(good["customer"]) - len(latest)
    fates["customer"]["trusted"] = len(consenting)
    fates["customer"]["excluded_no_consent"] = len(latest) - len(consenting)

    accel_rows = Counter(_typed("accelerometer", r) for r in good["accelerometer"] if r is not None)
    trusted_accel = {row for row in accel_rows if row[0] in consenting}
    for row, n in accel_rows.items():
        if row[0] not in latest:
            fates["accelerometer"]["excluded_unknown_customer"] += n
        elif row[0] not in consenting:
            fates["accelerometer"]["excluded_no_consent"] += n
        else:
            fates["accelerometer"]["trusted"] += 1
            fates["accelerometer"]["duplicate"] += n - 1
    curated = {e for e in consenting if any(row[0] == e for row in trusted_accel)}
    owner_of = {r["serialNumber"]: e for e, r in latest.items()}

    step_rows = Counter(_typed("step_trainer", r) for r in good["step_trainer"] if r is not None)
    trusted_steps = set()
    for row, n in step_rows.items():
        owner = owner_of.get(row[1])
        if owner is None:
            fates["step_trainer"]["excluded_unknown_customer"] += n
        elif owner not in consenting:
            fates["step_trainer"]["excluded_no_consent"] += n
        elif owner not in curated:
            fates["step_trainer"]["excluded_not_curated"] += n
        else:
            trusted_steps.add(row)
            fates["step_trainer"]["trusted"] += 1
            fates["step_trainer"]["duplicate"] += n - 1
    accel_times = {(row[0], row[1]) for row in trusted_accel}
    ml = sum(1 for row in trusted_steps if (owner_of[row[1]], row[0]) in accel_times)

    recon = {}
    for e in ENTITIES:
        landing = len(good[e]) + sum(bad[e].values())
        recon[f"{e}_landing"] = {
            "landing": landing,
            "quarantined": sum(bad[e].values()),
            "quarantined_by_rule": {r: bad[e].get(r, 0) for r in (DAMAGED, NON_UTF8, MALFORMED, WRONG_TYPE, MISSING)},
            "coerced": sum(1 for line in corpus.lines if line.entity == e and line.rule is None and line.coerced),
            "with_warnings": sum(1 for line in corpus.lines if line.entity == e and line.rule is None and line.warned),
            **{k: v for k, v in fates[e].items() if v},
            "balanced": True,
        }
    tables = {
        "customer_trusted": len(consenting),
        "accelerometer_trusted": len(trusted_accel),
        "customer_curated": len(curated),
        "step_trainer_trusted": len(trusted_steps),
        "machine_learning_curated": ml,
    }
    return {"reconciliation": recon, "tables": tables, "consenting": consenting,
            "not_consenting": set(latest) - consenting}


def normalized(recon: dict[str, Any]) -> dict[str, Any]:
    """A reconciliation without zero fates (the runner leaves some out, always shows others)."""
    return {k: v for k, v in recon.items() if not (isinstance(v, int) and not isinstance(v, bool) and v == 0)
            or k in ("landing", "quarantined")}
