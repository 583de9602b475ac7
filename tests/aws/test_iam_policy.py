"""docs/iam-policy.json: least privilege per prefix, in step with the lake contract's folders."""

from __future__ import annotations

import json
from pathlib import Path

from stedi.contract import LANDING_TABLES, STATE_FOLDER, TABLES

POLICY = json.loads((Path(__file__).resolve().parents[2] / "docs" / "iam-policy.json").read_text())


def _resources(policy: dict, action: str) -> set[str]:
    found: set[str] = set()
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action in actions:
            resources = statement["Resource"]
            found |= set(resources if isinstance(resources, list) else [resources])
    return found


def test_jobs_write_zones_and_state_but_never_landing() -> None:
    role = POLICY["GlueJobRole"]
    writable = _resources(role, "s3:PutObject")
    zones = {f"arn:aws:s3:::BUCKET/PREFIX/{t.folder}*" for t in TABLES if t.zone != "landing"}
    assert zones | {f"arn:aws:s3:::BUCKET/PREFIX/{STATE_FOLDER.split('/')[0]}/*"} == writable
    landing = {f"arn:aws:s3:::BUCKET/PREFIX/{t.folder}*" for t in LANDING_TABLES}
    assert landing <= _resources(role, "s3:GetObject")
    assert not landing & writable and not landing & _resources(role, "s3:DeleteObject")


def test_gateway_only_puts_landing_files() -> None:
    gateway = POLICY["Gateway"]
    landing = {f"arn:aws:s3:::BUCKET/PREFIX/{t.folder}*" for t in LANDING_TABLES}
    assert _resources(gateway, "s3:PutObject") == landing
    assert not _resources(gateway, "s3:GetObject") and not _resources(gateway, "s3:DeleteObject")
