"""Deploy the pipeline to AWS Glue, idempotently: the customerKey salt's secret, database and
tables, job scripts and the project's code on S3, the job role's policy, the five Glue jobs, and a
workflow whose triggers run them in job order.

Every resource is read first and only created or updated when it differs from what this lake
needs, so a second deploy changes nothing.  ``dry_run`` reports the changes without making them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_pipeline.aws.aws_errors import aws_errors
from cloud_pipeline.aws.catalog import norm, refresh_tables, table_differs
from cloud_pipeline.aws.ddl import check_database_name, load_state, table_definitions
from cloud_pipeline.aws.iam import CODE_FOLDER, LakeAccount, SaltGrant, SaltKind, job_role_policy
from cloud_pipeline.aws.salt import new_salt
from cloud_pipeline.config import JOB_ORDER
from stedi.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["CODE_FOLDER", "Change", "Deployment", "SaltChoice", "check_database_name", "code_zip", "deploy",
           "refresh_tables"]

PACKAGES = ("cloud_pipeline", "stedi")
#: The newest Glue the pipeline is tested on: Glue 5.1 runs Spark 3.5.6 and Python 3.11, the
#: versions of the second test environment (AWS Glue developer guide, "AWS Glue versions",
#: docs.aws.amazon.com/glue/latest/dg/release-notes.html).  Glue 4.0 (Spark 3.3, Python 3.10)
#: is not supported: the code needs Python 3.11 and is tested on Spark 3.5 only.
GLUE_VERSION = "5.1"
WORKER_TYPE = "G.1X"
#: Minutes before Glue stops a run (botocore's CreateJob ``Timeout``; the default is 480 from
#: Glue 5.0 on).  A run of the sample fleets takes minutes; a hung run must not bill for 8 hours.
JOB_TIMEOUT_MINUTES = 120
#: A failed run leaves the lake's previous commit untouched (the commit is one state-file
#: replace), so retrying is safe; once is enough for a transient S3 or Spark failure, and a
#: deterministic failure (no salt, a bug) is not repeated over and over.
JOB_MAX_RETRIES = 1
_ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})")
ROOT = Path(__file__).resolve().parents[2]
#: Zip entries get a fixed time so the same code gives the same bytes (and no re-upload).
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Change:
    kind: str  # s3 | database | table | job | workflow | trigger
    name: str
    action: str  # create | update

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.name}"


def code_zip() -> bytes:
    """The project's Python packages the job scripts import, as a deterministic zip (--extra-py-files)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in PACKAGES:
            for path in sorted((ROOT / package).rglob("*.py")):
                info = zipfile.ZipInfo(str(path.relative_to(ROOT)), _ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def _split(lake_url: str) -> tuple[str, str]:
    if not lake_url.startswith("s3://") or not lake_url[5:].partition("/")[0]:
        raise UserError(f"deploy needs an s3://bucket/prefix lake, not {lake_url!r}",
                        hint="Glue jobs read the lake from S3: --lake s3://my-bucket/stedi")
    bucket, _, prefix = lake_url[5:].partition("/")
    prefix = prefix.strip("/")
    return bucket, prefix + "/" if prefix else ""


def job_name(database: str, job: str) -> str:
    return f"{database}-{job}"


def role_name(role_arn: str) -> str:
    """The role's name in its ARN ``arn:aws:iam::ACCOUNT:role/[path/]NAME``."""
    match = _ROLE_ARN.fullmatch(role_arn)
    if match is None:
        raise UserError(f"--role {role_arn!r} is not an IAM role ARN",
                        hint="arn:aws:iam::123456789012:role/stedi-glue-job (docs/aws.md, 'IAM')")
    return match.group(3)


def check_schedule(schedule: str) -> str:
    """A Glue cron expression: ``cron(Minutes Hours Day-of-month Month Day-of-week Year)``, in UTC
    (AWS Glue developer guide, "Time-based schedules for jobs and crawlers")."""
    fields = schedule[5:-1].split() if schedule.startswith("cron(") and schedule.endswith(")") else []
    if len(fields) != 6:
        raise UserError(f"--schedule {schedule!r} is not a Glue cron expression",
                        hint='six fields in UTC, e.g. --schedule "cron(0 3 * * ? *)" (every day at 03:00)')
    return schedule


def default_salt_secret(database: str) -> str:
    return f"stedi/{database}/customer-key-salt"


@dataclass(frozen=True)
class SaltChoice:
    """Where the deployed jobs' salt lives: a Secrets Manager secret (created with a random value
    when ``create`` and absent) or an existing SSM SecureString parameter."""

    kind: SaltKind = "secretsmanager"
    name: str | None = None  # None: the secret default_salt_secret(database)
    create: bool = True


def job_policy_name(database: str) -> str:
    return f"stedi-{database}-job"


class Deployment:
    def __init__(self, lake_url: str, role: str, database: str = "stedi", dry_run: bool = False,
                 session: Any = None, salt: SaltChoice | None = None, lake_kms_key_arn: str | None = None,
                 schedule: str | None = None):
        import boto3

        self.lake = lake_url.rstrip("/")
        self.bucket, self.prefix = _split(lake_url)
        self.role = role
        self.role_name = role_name(role)
        self.database = check_database_name(database)
        self.dry_run = dry_run
        self.salt = salt or SaltChoice()
        self.lake_kms_key_arn = lake_kms_key_arn
        self.schedule = check_schedule(schedule) if schedule else None
        with aws_errors("connecting to AWS"):
            session = session or boto3.session.Session()
            self.session = session
            self.s3 = session.client("s3")
            self.glue = session.client("glue")
            self.iam = session.client("iam")
        self.changes: list[Change] = []

    def _change(self, kind: str, name: str, action: str) -> bool:
        """Record a change; True when it should be made (not a dry run)."""
        change = Change(kind, name, action)
        self.changes.append(change)
        log.info("%s%s", "would " if self.dry_run else "", change)
        return not self.dry_run

    def _s3_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def account(self) -> LakeAccount:
        """The lake's bucket, account, region and database, for the ARNs of the job role's policy."""
        region = self.session.region_name
        if not region:
            raise UserError("deploy: no AWS region is configured", hint="set AWS_DEFAULT_REGION, or a region in ~/.aws/config")
        partition = _ROLE_ARN.fullmatch(self.role)
        assert partition is not None  # checked by role_name()
        return LakeAccount(self.bucket, self.prefix, partition.group(2), region, self.database, partition.group(1))

    # --- the salt --------------------------------------------------------------------------

    def _kms_key_arn(self, key_id: str | None, aws_managed: str) -> str | None:
        """The ARN of a customer-managed key, None for the service's own AWS-managed key (its key
        policy already lets the service decrypt for anyone allowed to read the secret)."""
        if not key_id or key_id in (aws_managed, f"alias/{aws_managed}"):
            return None
        metadata = self.session.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]
        return None if metadata.get("KeyManager") == "AWS" else str(metadata["Arn"])

    def ensure_salt(self) -> SaltGrant:
        """Find (or create) the salt's secret; the job role will read that one secret only."""
        account = self.account()
        if self.salt.kind == "ssm":
            return self._salt_parameter(account)
        name = self.salt.name or default_salt_secret(self.database)
        client = self.session.client("secretsmanager")
        with aws_errors(f"finding the salt secret {name}"):
            try:
                found = client.describe_secret(SecretId=name)
            except client.exceptions.ResourceNotFoundException:
                found = None
            if found is None:
                if not self.salt.create:
                    raise UserError(f"the salt secret {name} does not exist",
                                    hint="create it (aws secretsmanager create-secret --name ... --secret-string ...) "
                                         "or let deploy create it (drop --no-create-salt)")
                if not self._change("secret", name, "create"):
                    arn = account.arn("secretsmanager", f"secret:{name}-??????")
                    return SaltGrant("secretsmanager", arn, arn)
                created = client.create_secret(
                    Name=name, SecretString=new_salt(),
                    Description=f"customerKey salt of the STEDI lake {self.lake} (stedi pipeline deploy)")
                return SaltGrant("secretsmanager", created["ARN"], created["ARN"])
            key = self._kms_key_arn(found.get("KmsKeyId"), "aws/secretsmanager")
        return SaltGrant("secretsmanager", found["ARN"], found["ARN"], key)

    def _salt_parameter(self, account: LakeAccount) -> SaltGrant:
        name = self.salt.name
        if not name:
            raise UserError("--salt-parameter needs the parameter's name")
        ssm = self.session.client("ssm")
        with aws_errors(f"finding the salt parameter {name}"):
            found = ssm.describe_parameters(
                ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}])["Parameters"]
            if not found:
                raise UserError(f"the SSM parameter {name} does not exist",
                                hint=f"aws ssm put-parameter --name {name} --type SecureString --value ...")
            if found[0].get("Type") != "SecureString":
                raise UserError(f"the SSM parameter {name} is a {found[0].get('Type')}: a salt must be a SecureString")
            key = self._kms_key_arn(found[0].get("KeyId"), "aws/ssm")
        arn = account.arn("ssm", "parameter/" + name.lstrip("/"))
        return SaltGrant("ssm", name, arn, key)

    def ensure_role_policy(self, salt: SaltGrant) -> dict[str, Any]:
        """Put the job role's least-privilege policy (cloud_pipeline/aws/iam.py) on the role."""
        wanted = job_role_policy(self.account(), salt, self.lake_kms_key_arn)
        policy = job_policy_name(self.database)
        with aws_errors(f"reading the policy {policy} of the role {self.role_name}"):
            try:
                current = self.iam.get_role_policy(RoleName=self.role_name, PolicyName=policy)["PolicyDocument"]
            except self.iam.exceptions.NoSuchEntityException:
                current = None
        if isinstance(current, str):  # botocore decodes it; a raw URL-encoded string is decoded here
            from urllib.parse import unquote

            current = json.loads(unquote(current))
        if current != wanted and self._change("role policy", f"{self.role_name}/{policy}",
                                              "update" if current else "create"):
            with aws_errors(f"putting the policy {policy} on the role {self.role_name}"):
                self.iam.put_role_policy(RoleName=self.role_name, PolicyName=policy,
                                         PolicyDocument=json.dumps(wanted))
        return wanted

    # --- code ------------------------------------------------------------------------------

    def upload(self, key: str, data: bytes) -> str:
        """Put ``data`` unless the object already holds exactly these bytes (MD5 in metadata)."""
        digest = hashlib.md5(data).hexdigest()  # noqa: S324 - change detection, not security
        full = self.prefix + key
        try:
            current = self.s3.head_object(Bucket=self.bucket, Key=full)["Metadata"].get("md5")
        except self.s3.exceptions.ClientError:
            current = None
        if current != digest and self._change("s3", self._s3_url(key), "update" if current else "create"):
            self.s3.put_object(Bucket=self.bucket, Key=full, Body=data, Metadata={"md5": digest})
        return self._s3_url(key)

    def upload_code(self) -> tuple[dict[str, str], str]:
        scripts = {
            job: self.upload(f"{CODE_FOLDER}scripts/{job}.py",
                             (ROOT / "cloud_pipeline" / "aws" / "glue" / f"{job}.py").read_bytes())
            for job in JOB_ORDER
        }
        return scripts, self.upload(f"{CODE_FOLDER}stedi-code.zip", code_zip())

    # --- catalog ---------------------------------------------------------------------------

    def ensure_database(self) -> None:
        try:
            self.glue.get_database(Name=self.database)
        except self.glue.exceptions.EntityNotFoundException:
            if self._change("database", self.database, "create"):
                self.glue.create_database(DatabaseInput={"Name": self.database,
                                                         "Description": "STEDI step-trainer lake"})

    def ensure_tables(self) -> None:
        for definition in table_definitions(self.lake, load_state(self.lake)):
            wanted = definition.table_input()
            try:
                current = self.glue.get_table(DatabaseName=self.database, Name=definition.name)["Table"]
            except self.glue.exceptions.EntityNotFoundException:
                if self._change("table", definition.name, "create"):
                    self.glue.create_table(DatabaseName=self.database, TableInput=wanted)
                continue
            if table_differs(current, wanted) and self._change("table", definition.name, "update"):
                self.glue.update_table(DatabaseName=self.database, TableInput=wanted)

    # --- jobs and workflow -----------------------------------------------------------------

    def job_definition(self, script: str, code: str, salt: SaltGrant) -> dict[str, Any]:
        # Glue 5.x always logs to CloudWatch (/aws-glue/jobs/output and /error): the Glue-4-only
        # --enable-continuous-cloudwatch-log is not passed (AWS Glue developer guide, "Enabling
        # continuous logging for AWS Glue 4.0 and earlier jobs").
        return {
            "Role": self.role,
            "Command": {"Name": "glueetl", "ScriptLocation": script, "PythonVersion": "3"},
            "DefaultArguments": {
                "--lake": self.lake,
                # The job moves its table's catalog location to the version it committed.
                "--database": self.database,
                # Only the secret's name: the job reads the value itself (cloud_pipeline/aws/salt.py).
                "--salt_secret_id" if salt.kind == "secretsmanager" else "--salt_parameter": salt.name,
                "--extra-py-files": code,
                "--job-language": "python",
            },
            "GlueVersion": GLUE_VERSION,
            "WorkerType": WORKER_TYPE,
            "NumberOfWorkers": 2,
            "Timeout": JOB_TIMEOUT_MINUTES,
            "MaxRetries": JOB_MAX_RETRIES,
            # The runner commits the lake's state file: two runs of one lake must not overlap.
            "ExecutionProperty": {"MaxConcurrentRuns": 1},
        }

    def ensure_jobs(self, scripts: dict[str, str], code: str, salt: SaltGrant) -> None:
        for job in JOB_ORDER:
            name = job_name(self.database, job)
            wanted = self.job_definition(scripts[job], code, salt)
            try:
                current = self.glue.get_job(JobName=name)["Job"]
            except self.glue.exceptions.EntityNotFoundException:
                if self._change("job", name, "create"):
                    self.glue.create_job(Name=name, Description=f"STEDI pipeline: {job}", **wanted)
                continue
            if any(current.get(k) != v for k, v in wanted.items()) and self._change("job", name, "update"):
                self.glue.update_job(JobName=name, JobUpdate=wanted)

    def workflow_name(self) -> str:
        return f"{self.database}-pipeline"

    def triggers(self) -> list[dict[str, Any]]:
        """The workflow's one start trigger (on demand, or on ``schedule``), then one conditional
        trigger per job on the previous job's success."""
        workflow = self.workflow_name()
        first: dict[str, Any] = {
            "Name": f"{workflow}-start", "WorkflowName": workflow, "Type": "ON_DEMAND",
            "Actions": [{"JobName": job_name(self.database, JOB_ORDER[0])}],
        }
        if self.schedule:
            first.update(Type="SCHEDULED", Schedule=self.schedule, StartOnCreation=True)
        chain = [
            {
                "Name": f"{workflow}-after-{before}", "WorkflowName": workflow, "Type": "CONDITIONAL",
                "Predicate": {"Logical": "AND", "Conditions": [{
                    "LogicalOperator": "EQUALS", "JobName": job_name(self.database, before), "State": "SUCCEEDED",
                }]},
                "Actions": [{"JobName": job_name(self.database, after)}],
                "StartOnCreation": True,
            }
            for before, after in zip(JOB_ORDER, JOB_ORDER[1:], strict=False)
        ]
        return [first, *chain]

    def ensure_workflow(self) -> None:
        name = self.workflow_name()
        try:
            self.glue.get_workflow(Name=name)
        except self.glue.exceptions.EntityNotFoundException:
            if self._change("workflow", name, "create"):
                self.glue.create_workflow(Name=name, Description="STEDI pipeline jobs in order",
                                          MaxConcurrentRuns=1)
        for trigger in self.triggers():
            try:
                current = self.glue.get_trigger(Name=trigger["Name"])["Trigger"]
            except self.glue.exceptions.EntityNotFoundException:
                if self._change("trigger", trigger["Name"], "create"):
                    self.glue.create_trigger(**trigger)
                continue
            if current.get("Type") != trigger["Type"] or current.get("WorkflowName") != trigger["WorkflowName"]:
                # TriggerUpdate has no Type (botocore's glue service model): a start trigger that
                # changes between on-demand and scheduled is deleted and created again.
                if self._change("trigger", trigger["Name"], "replace"):
                    self.glue.delete_trigger(Name=trigger["Name"])
                    self.glue.create_trigger(**trigger)
                continue
            compared = ("Actions", "Predicate", "Schedule")
            if any(norm(current.get(k)) != norm(trigger.get(k)) for k in compared) and self._change(
                "trigger", trigger["Name"], "update"
            ):
                update = {k: trigger[k] for k in compared if k in trigger}
                self.glue.update_trigger(Name=trigger["Name"], TriggerUpdate=update)

    def run(self) -> list[Change]:
        with aws_errors("deploying"):
            salt = self.ensure_salt()
            self.ensure_role_policy(salt)
            scripts, code = self.upload_code()
            self.ensure_database()
            self.ensure_tables()
            self.ensure_jobs(scripts, code, salt)
            self.ensure_workflow()
        return self.changes


def deploy(lake_url: str, role: str, database: str = "stedi", dry_run: bool = False,
           salt: SaltChoice | None = None, lake_kms_key_arn: str | None = None,
           schedule: str | None = None) -> list[Change]:
    """Create or update everything the pipeline needs on Glue; returns the changes (made or not)."""
    return Deployment(lake_url, role, database, dry_run, salt=salt, lake_kms_key_arn=lake_kms_key_arn,
                      schedule=schedule).run()
