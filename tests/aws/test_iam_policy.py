"""The IAM policy documents: valid documents (``parliament``, no findings), least privilege per
prefix in step with the lake contract, the documented files equal to what the code builds, and
every API action granted is one the code calls."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import boto3
import parliament
import pytest

from cloud_pipeline.aws.deploy import SaltChoice, deploy, job_policy_name
from cloud_pipeline.aws.iam import (
    CODE_FOLDER,
    EXAMPLE_LAKE,
    EXAMPLE_SALT,
    documented_policies,
    job_role_policy,
)
from stedi.contract import LANDING_TABLES, TABLES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "iam"
ROLE_NAME = "stedi-iam-lint"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def parliament_findings(document: dict, file_name: str = "") -> list[str]:  # type: ignore[type-arg]
    findings = parliament.analyze_policy_string(json.dumps(document)).findings
    out = []
    for finding in findings:
        # A role's trust policy names a Principal and, by IAM's grammar, no Resource (IAM User
        # Guide, "Role trust policy": the resource is the role itself); parliament lints every
        # document as an identity policy and reports exactly that absence.  Only that finding is
        # dropped, and only for the trust policy.
        if (file_name == "glue-trust-policy.json" and finding.issue == "MALFORMED"
                and finding.detail == "Statement contains neither Resource nor NotResource"):
            continue
        out.append(f"{finding.issue}: {finding.detail}")
    return out


def _resources(policy: dict, action: str) -> set[str]:  # type: ignore[type-arg]
    found: set[str] = set()
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action in actions:
            resources = statement["Resource"]
            found |= set(resources if isinstance(resources, list) else [resources])
    return found


def _actions(policy: dict) -> set[str]:  # type: ignore[type-arg]
    return {a for st in policy["Statement"] for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}


def test_the_documented_files_are_the_documents_the_code_builds() -> None:
    built = documented_policies()
    assert sorted(p.name for p in DOCS.glob("*.json")) == sorted(built)
    for name, document in built.items():
        assert json.loads((DOCS / name).read_text()) == document, f"docs/iam/{name} is stale"
    assert not (ROOT / "docs" / "iam-policy.json").exists()


@pytest.mark.parametrize("name", sorted(documented_policies()))
def test_parliament_finds_nothing_in_the_documented_policies(name: str) -> None:
    document = json.loads((DOCS / name).read_text())
    assert set(document) == {"Version", "Statement"}  # a policy document, not a file of named policies
    assert parliament_findings(document, name) == []


def test_parliament_catches_what_it_should() -> None:
    # The check can fail: a file of two named policies, an unknown action, a statement without Resource.
    assert parliament_findings({"JobRole": documented_policies()["job-role-policy.json"]})
    assert parliament_findings({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "glue:GetTablez", "Resource": "*"}]})
    assert parliament_findings(documented_policies()["glue-trust-policy.json"], "trust.json")


def test_jobs_write_zones_and_pipeline_folders_but_never_landing_or_the_code() -> None:
    role = json.loads((DOCS / "job-role-policy.json").read_text())
    writable = _resources(role, "s3:PutObject")
    assert writable == _resources(role, "s3:DeleteObject")
    zones = {f"arn:aws:s3:::BUCKET/PREFIX/{t.folder}*" for t in TABLES if t.zone != "landing"}
    assert zones <= writable
    assert {r for r in writable if "/_pipeline/" in r} == {
        f"arn:aws:s3:::BUCKET/PREFIX/_pipeline/{f}/*" for f in ("state", "staging", "quarantine", "warnings", "runs", "lock")}
    landing = {f"arn:aws:s3:::BUCKET/PREFIX/{t.folder}*" for t in LANDING_TABLES}
    code = f"arn:aws:s3:::BUCKET/PREFIX/{CODE_FOLDER}*"
    assert landing | {code} <= _resources(role, "s3:GetObject")
    assert not (landing | {code}) & writable
    assert not any(r.endswith("/_pipeline/*") for r in writable)  # the whole folder would include the code
    assert _resources(role, "secretsmanager:GetSecretValue") == {EXAMPLE_SALT.arn}
    assert not any(a.startswith("kms:") for a in _actions(role))


def test_kms_only_for_sse_kms() -> None:
    key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    with_kms = job_role_policy(EXAMPLE_LAKE, EXAMPLE_SALT, key)
    assert _resources(with_kms, "kms:GenerateDataKey") == _resources(with_kms, "kms:Decrypt") == {key}
    assert parliament_findings(with_kms) == []


def test_gateway_only_puts_landing_files() -> None:
    gateway = json.loads((DOCS / "gateway-policy.json").read_text())
    landing = {f"arn:aws:s3:::BUCKET/PREFIX/{t.folder}*" for t in LANDING_TABLES}
    assert _resources(gateway, "s3:PutObject") == landing
    assert _actions(gateway) == {"s3:PutObject", "s3:ListBucket"}


def _code() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "cloud_pipeline").rglob("*.py"))


def test_every_api_action_granted_is_called_by_the_code() -> None:
    # glue:GetTable -> get_table( ... : an action nobody calls (GetTables, GetPartitions) is not granted.
    code = _code()
    for name in ("job-role-policy.json", "deployer-policy.json"):
        for action in _actions(json.loads((DOCS / name).read_text())):
            service, _, verb = action.partition(":")
            if service in ("s3", "logs", "kms") or action == "iam:PassRole":
                continue  # used by S3 / Glue / KMS on the caller's behalf, not by a boto3 call of ours
            method = re.sub(r"(?<!^)(?=[A-Z])", "_", verb).lower()
            assert f"{method}(" in code, f"{name}: {action} is granted but never called"


def test_parliament_finds_nothing_in_the_policy_deploy_puts_on_the_role(s3_bucket: str) -> None:
    iam = boto3.client("iam")
    try:
        iam.get_role(RoleName=ROLE_NAME)
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST))
    role = f"arn:aws:iam::123456789012:role/{ROLE_NAME}"
    kms = boto3.client("kms")
    salt_key = kms.create_key(Description="salt")["KeyMetadata"]
    lake_key = kms.create_key(Description="lake")["KeyMetadata"]["Arn"]
    name = f"/stedi/lint-{uuid.uuid4().hex[:8]}"
    boto3.client("ssm").put_parameter(Name=name, Type="SecureString", KeyId=salt_key["KeyId"], Value="x" * 43)
    for database, salt, key in ((f"lint_{uuid.uuid4().hex[:8]}", None, None),
                                (f"lint_{uuid.uuid4().hex[:8]}", SaltChoice("ssm", name, create=False), lake_key)):
        deploy(f"s3://{s3_bucket}/lake", role, database=database, salt=salt, lake_kms_key_arn=key)
        document = iam.get_role_policy(RoleName=ROLE_NAME, PolicyName=job_policy_name(database))["PolicyDocument"]
        assert parliament_findings(document) == [], database
        assert len(_actions(document)) >= 10  # the real policy, every statement included
