"""Deploy to Glue on moto's server: everything created once, the second run changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from cloud_pipeline.aws.ddl import QUARANTINE_FILES, WARNINGS_FILES
from cloud_pipeline.aws.deploy import (
    GLUE_VERSION,
    SaltChoice,
    code_zip,
    deploy,
    job_policy_name,
    refresh_tables,
)
from cloud_pipeline.config import JOB_ORDER
from cloud_pipeline.storage.state import PipelineState, TableVersion
from cloud_pipeline.storage.store import STATE_KEY
from stedi.contract import TABLES
from stedi.errors import UserError
from stedi.lake import S3Lake

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/stedi-glue"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


@pytest.fixture(autouse=True)
def _role(s3_server: str) -> None:
    """The job role deploy puts its policy on (moto's IAM is global to the server: create it once)."""
    iam = boto3.client("iam")
    try:
        iam.get_role(RoleName="stedi-glue")
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(RoleName="stedi-glue", AssumeRolePolicyDocument=json.dumps(TRUST))


def role_policy(database: str) -> dict:  # type: ignore[type-arg]
    return boto3.client("iam").get_role_policy(RoleName="stedi-glue", PolicyName=job_policy_name(database))[
        "PolicyDocument"]


def granted(policy: dict, prefix: str) -> dict[str, set[str]]:  # type: ignore[type-arg]
    """Action -> resources, for the actions of one service (``prefix``, e.g. "secretsmanager:")."""
    found: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in statement["Action"]:
            if action.startswith(prefix):
                found.setdefault(action, set()).update(resources)
    return found


def test_code_zip_is_deterministic_and_holds_the_packages() -> None:
    import io
    import zipfile

    data = code_zip()
    assert data == code_zip()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "cloud_pipeline/aws/glue/entry.py" in names and "stedi/contract.py" in names


def test_deploy_twice_second_changes_nothing(s3_bucket: str) -> None:
    lake = f"s3://{s3_bucket}/lake"
    planned = deploy(lake, ROLE, dry_run=True)
    glue = boto3.client("glue")
    assert not glue.get_databases()["DatabaseList"] or "stedi" not in [
        d["Name"] for d in glue.get_databases()["DatabaseList"]
    ]  # the dry run made nothing
    secrets = boto3.client("secretsmanager")
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.describe_secret(SecretId="stedi/stedi/customer-key-salt")
    first = deploy(lake, ROLE)
    assert [str(c) for c in first] == [str(c) for c in planned]
    assert {c.name for c in first if c.kind == "table"} == {t.name for t in TABLES} | {QUARANTINE_FILES, WARNINGS_FILES}
    assert [str(c) for c in first[:2]] == ["create secret stedi/stedi/customer-key-salt",
                                            "create role policy stedi-glue/stedi-stedi-job"]
    assert deploy(lake, ROLE) == []

    # The salt: a random secret, and the role may read exactly that one secret.
    secret = secrets.describe_secret(SecretId="stedi/stedi/customer-key-salt")
    value = secrets.get_secret_value(SecretId=secret["ARN"])["SecretString"]
    assert len(value) >= 40 and value != "stedi-default-salt-change-me"
    policy = role_policy("stedi")
    assert granted(policy, "secretsmanager:") == {"secretsmanager:GetSecretValue": {secret["ARN"]}}
    assert granted(policy, "kms:") == {}  # AWS-managed secret key, no --sse aws:kms: no KMS grant
    assert granted(policy, "glue:") == {a: {"arn:aws:glue:us-east-1:123456789012:catalog",
                                            "arn:aws:glue:us-east-1:123456789012:database/stedi",
                                            "arn:aws:glue:us-east-1:123456789012:table/stedi/*"}
                                        for a in ("glue:GetTable", "glue:UpdateTable")}
    code = f"arn:aws:s3:::{s3_bucket}/lake/_pipeline/glue/*"
    s3 = granted(policy, "s3:")
    assert code in s3["s3:GetObject"] and code not in s3["s3:PutObject"] | s3["s3:DeleteObject"]

    for job in JOB_ORDER:
        definition = glue.get_job(JobName=f"stedi-{job}")["Job"]
        assert definition["Role"] == ROLE
        assert definition["Command"]["ScriptLocation"] == f"{lake}/_pipeline/glue/scripts/{job}.py"
        assert definition["DefaultArguments"]["--lake"] == lake
        assert definition["DefaultArguments"]["--extra-py-files"] == f"{lake}/_pipeline/glue/stedi-code.zip"
        assert definition["DefaultArguments"]["--salt_secret_id"] == secret["ARN"]
        assert "--enable-continuous-cloudwatch-log" not in definition["DefaultArguments"]
        assert (definition["GlueVersion"], definition["Timeout"], definition["MaxRetries"]) == (GLUE_VERSION, 120, 1)
    script = boto3.client("s3").get_object(Bucket=s3_bucket, Key="lake/_pipeline/glue/scripts/machine_learning_curated.py")
    assert b'main("machine_learning_curated")' in script["Body"].read()
    # The chain: each job after the previous one succeeded.
    for before, after in zip(JOB_ORDER, JOB_ORDER[1:], strict=False):
        trigger = glue.get_trigger(Name=f"stedi-pipeline-after-{before}")["Trigger"]
        assert trigger["Predicate"]["Conditions"][0]["JobName"] == f"stedi-{before}"
        assert trigger["Actions"] == [{"JobName": f"stedi-{after}"}]
    assert glue.get_trigger(Name="stedi-pipeline-start")["Trigger"]["Actions"] == [{"JobName": f"stedi-{JOB_ORDER[0]}"}]

    # After a pipeline run the zone table moves to the new version; nothing else changes.
    state = PipelineState(tables={"customer_trusted": TableVersion("v-2", "parquet", "2")})
    S3Lake(s3_bucket, "lake").put(STATE_KEY, state.to_json())
    moved = deploy(lake, ROLE)
    assert [str(c) for c in moved] == ["update table customer_trusted"]
    table = glue.get_table(DatabaseName="stedi", Name="customer_trusted")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"{lake}/customer/trusted/v-2/"


def _stedi(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a person runs it, with this worktree's code."""
    script = Path(sys.executable).parent / "stedi"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120, check=False,
                          env={**env, "PYTHONPATH": str(ROOT)})


def test_cli_dry_run_and_user_mistakes(s3_bucket: str, tmp_path: Path) -> None:
    base = ["pipeline", "deploy", "--lake", f"s3://{s3_bucket}/p", "--role", ROLE, "--database", "drydb"]
    result = _stedi([*base, "--dry-run"], dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "would create secret stedi/drydb/customer-key-salt" in result.stdout
    assert "would create job drydb-customer_landing_to_trusted" in result.stdout
    assert boto3.client("s3").list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
    with pytest.raises(boto3.client("secretsmanager").exceptions.ResourceNotFoundException):
        boto3.client("secretsmanager").describe_secret(SecretId="stedi/drydb/customer-key-salt")

    # No region, then no credentials: one message naming the fix, exit 2, no traceback (issue #16).
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    bare.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
                AWS_EC2_METADATA_DISABLED="true")
    cases = [
        (bare, [*base, "--dry-run"], "no AWS region is configured"),
        ({**bare, "AWS_DEFAULT_REGION": "us-east-1"}, [*base, "--dry-run"], "no AWS credentials were found"),
        (dict(os.environ), ["pipeline", "deploy", "--lake", str(tmp_path), "--role", ROLE], "needs an s3://bucket"),
        (dict(os.environ), [*base[:-1], "Bad-Name", "--dry-run"], "lowercase letters, digits and underscores"),
        (dict(os.environ), [*base[:4], "--role", "stedi-glue", "--dry-run"], "is not an IAM role ARN"),
        (dict(os.environ), [*base, "--no-create-salt"], "the salt secret stedi/drydb/customer-key-salt does not exist"),
    ]
    for env, args, message in cases:
        result = _stedi(args, env)
        assert (result.returncode, "Traceback" in result.stderr) == (2, False), (args, result.stderr)
        assert ("\nerror: " in "\n" + result.stderr) and message in result.stderr, result.stderr


def test_an_existing_ssm_parameter_with_its_own_key(s3_bucket: str) -> None:
    key = boto3.client("kms").create_key(Description="stedi salt key")["KeyMetadata"]
    ssm = boto3.client("ssm")
    name = f"/stedi/salt-{uuid.uuid4().hex[:8]}"
    database = f"ssm_{uuid.uuid4().hex[:8]}"
    ssm.put_parameter(Name=name, Type="SecureString", KeyId=key["KeyId"], Value="a-long-random-test-salt-value")
    deploy(f"s3://{s3_bucket}/lake", ROLE, database=database, salt=SaltChoice("ssm", name, create=False))
    policy = role_policy(database)
    assert granted(policy, "ssm:") == {"ssm:GetParameter": {f"arn:aws:ssm:us-east-1:123456789012:parameter{name}"}}
    assert granted(policy, "secretsmanager:") == {}
    # The parameter's customer-managed key, and only through SSM.
    kms = [st for st in policy["Statement"] if any(a.startswith("kms:") for a in st["Action"])]
    assert [(st["Action"], st["Resource"], st["Condition"]) for st in kms] == [
        (["kms:Decrypt"], [key["Arn"]], {"StringEquals": {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}})]
    job = boto3.client("glue").get_job(JobName=f"{database}-machine_learning_curated")["Job"]["DefaultArguments"]
    assert job["--salt_parameter"] == name and "--salt_secret_id" not in job

    plain = f"/stedi/plain-{uuid.uuid4().hex[:8]}"
    ssm.put_parameter(Name=plain, Type="String", Value="a-long-random-test-salt-value")
    with pytest.raises(UserError, match="must be a SecureString"):
        deploy(f"s3://{s3_bucket}/lake", ROLE, database=database, salt=SaltChoice("ssm", plain, create=False))


def test_kms_for_the_lake_only_with_sse_kms(s3_bucket: str) -> None:
    database = f"kms_{uuid.uuid4().hex[:8]}"
    lake_key = boto3.client("kms").create_key(Description="stedi lake key")["KeyMetadata"]["Arn"]
    deploy(f"s3://{s3_bucket}/lake", ROLE, database=database)
    assert granted(role_policy(database), "kms:") == {}
    changes = deploy(f"s3://{s3_bucket}/lake", ROLE, database=database, lake_kms_key_arn=lake_key)
    assert [str(c) for c in changes] == [f"update role policy stedi-glue/stedi-{database}-job"]
    assert granted(role_policy(database), "kms:") == {"kms:Decrypt": {lake_key}, "kms:GenerateDataKey": {lake_key}}


def test_a_job_moves_its_own_table_only(s3_bucket: str) -> None:
    lake = f"s3://{s3_bucket}/lake"
    deploy(lake, ROLE, database="refresh")
    assert boto3.client("glue").get_job(JobName="refresh-machine_learning_curated")["Job"]["DefaultArguments"][
        "--database"] == "refresh"
    state = PipelineState(tables={"customer_trusted": TableVersion("v-9", "parquet", "9"),
                                  "machine_learning_curated": TableVersion("v-9", "json", "9")})
    S3Lake(s3_bucket, "lake").put(STATE_KEY, state.to_json())
    assert refresh_tables(lake, "refresh", ["machine_learning_curated"]) == ["machine_learning_curated"]
    assert refresh_tables(lake, "refresh", ["machine_learning_curated"]) == []
    glue = boto3.client("glue")
    ml = glue.get_table(DatabaseName="refresh", Name="machine_learning_curated")["Table"]["StorageDescriptor"]
    assert ml["Location"] == f"{lake}/step_trainer/curated/v-9/"
    assert ml["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    untouched = glue.get_table(DatabaseName="refresh", Name="customer_trusted")["Table"]["StorageDescriptor"]
    assert untouched["Location"].endswith("_not_built_yet/")


def test_a_scheduled_start(s3_bucket: str) -> None:
    database = f"sched_{uuid.uuid4().hex[:8]}"
    lake = f"s3://{s3_bucket}/lake"
    deploy(lake, ROLE, database=database)
    glue = boto3.client("glue")
    assert glue.get_trigger(Name=f"{database}-pipeline-start")["Trigger"]["Type"] == "ON_DEMAND"
    every_night = "cron(0 3 * * ? *)"
    changes = deploy(lake, ROLE, database=database, schedule=every_night)
    assert [str(c) for c in changes] == [f"replace trigger {database}-pipeline-start"]
    start = glue.get_trigger(Name=f"{database}-pipeline-start")["Trigger"]
    assert (start["Type"], start["Schedule"], start["WorkflowName"]) == ("SCHEDULED", every_night, f"{database}-pipeline")
    assert start["Actions"] == [{"JobName": f"{database}-{JOB_ORDER[0]}"}]
    assert deploy(lake, ROLE, database=database, schedule=every_night) == []
    with pytest.raises(UserError, match="not a Glue cron expression"):
        deploy(lake, ROLE, database=database, schedule="0 3 * * *")
