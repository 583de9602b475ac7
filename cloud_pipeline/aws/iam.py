"""The IAM policy documents of the deployment, built from the lake contract's folders.

Three principals touch a lake on AWS, each with one policy document (``Version`` + ``Statement``,
nothing else, so IAM and ``parliament`` accept it as it is):

* the **Glue job role**: ``stedi pipeline deploy`` puts this document on the role as the inline
  policy ``stedi-<database>-job`` (``iam:PutRolePolicy``), with the real bucket, account, region,
  salt secret and, only with ``--sse aws:kms --kms-key-id``, the lake's KMS key;
* whoever runs **deploy**;
* the **gateway**, which only puts landing files.

``docs/iam/*.json`` are these documents for the placeholder lake ``s3://BUCKET/PREFIX`` (account
``111122223333``, ``us-east-1``): ``tests/aws/test_iam_policy.py`` checks the files equal what this
module builds and runs ``parliament`` on them and on what deploy puts on a role.

Actions are the ones the code calls (grep ``glue.``/``s3.``/``secretsmanager``/``ssm`` in
``cloud_pipeline/``): the job role reads landing and the deployed code (``_pipeline/glue/``) but
never writes or deletes either; it writes the zones and the pipeline's own folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cloud_pipeline.storage.lock import LOCK_FOLDER
from stedi.contract import (
    LANDING_TABLES,
    QUARANTINE_FOLDER,
    RUNS_FOLDER,
    STAGING_FOLDER,
    STATE_FOLDER,
    TABLES,
    WARNINGS_FOLDER,
)

Policy = dict[str, Any]
#: Where deploy puts the job scripts and the code zip, under the lake's prefix.
CODE_FOLDER = "_pipeline/glue/"
#: The pipeline's own folders a run writes (and cleans up); the code folder is not one of them.
PIPELINE_FOLDERS = (STATE_FOLDER, STAGING_FOLDER, QUARANTINE_FOLDER, WARNINGS_FOLDER, RUNS_FOLDER, LOCK_FOLDER)
SaltKind = Literal["secretsmanager", "ssm"]


@dataclass(frozen=True)
class LakeAccount:
    """Where a deployed lake lives: its bucket and prefix, the account, region and Glue database."""

    bucket: str
    prefix: str  # "" or "some/prefix/" (with the trailing slash)
    account: str
    region: str
    database: str
    partition: str = "aws"

    def object_arn(self, key: str) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}/{self.prefix}{key}"

    def bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}"

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"

    def role_arn(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{name}"


@dataclass(frozen=True)
class SaltGrant:
    """The one secret holding the customerKey salt, and the customer-managed KMS key that
    encrypts it (None for the service's AWS-managed key, which needs no grant)."""

    kind: SaltKind
    name: str  # what the job is given: the secret's ARN, or the parameter's name
    arn: str
    kms_key_arn: str | None = None


def _statement(sid: str, actions: list[str], resources: list[str] | str,
               condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _document(*statements: dict[str, Any]) -> Policy:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _list_prefixes(lake: LakeAccount, folders: list[str]) -> dict[str, Any]:
    return {"StringLike": {"s3:prefix": [f"{lake.prefix}{f}*" for f in folders]}}


def zone_folders() -> list[str]:
    return [t.folder for t in TABLES if t.zone != "landing"]


def landing_folders() -> list[str]:
    return [t.folder for t in LANDING_TABLES]


def job_role_policy(lake: LakeAccount, salt: SaltGrant, lake_kms_key_arn: str | None = None) -> Policy:
    """What one Glue job of the pipeline needs, and no more."""
    writable = [*zone_folders(), *PIPELINE_FOLDERS]
    catalog = [lake.arn("glue", "catalog"), lake.arn("glue", f"database/{lake.database}"),
               lake.arn("glue", f"table/{lake.database}/*")]
    statements = [
        _statement("ListTheLake", ["s3:ListBucket"], lake.bucket_arn(), _list_prefixes(lake, [""])),
        # Landing is the gateways' and the deployed code is deploy's: the jobs only read them.
        _statement("ReadLandingAndTheDeployedCode", ["s3:GetObject"],
                   [lake.object_arn(f + "*") for f in [*landing_folders(), CODE_FOLDER]]),
        _statement("ReadWriteZonesAndPipelineFolders",
                   ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                   [lake.object_arn(f + "*") for f in writable]),
        # After its commit a job moves its own table to the new version (deploy.refresh_tables).
        _statement("MoveTheLakeTables", ["glue:GetTable", "glue:UpdateTable"], catalog),
        _statement("GlueJobLogs", ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                   [lake.arn("logs", "log-group:/aws-glue/*")]),
    ]
    if salt.kind == "secretsmanager":
        statements.append(_statement("ReadTheSaltSecret", ["secretsmanager:GetSecretValue"], [salt.arn]))
        via = f"secretsmanager.{lake.region}.amazonaws.com"
    else:
        statements.append(_statement("ReadTheSaltParameter", ["ssm:GetParameter"], [salt.arn]))
        via = f"ssm.{lake.region}.amazonaws.com"
    if salt.kms_key_arn is not None:
        statements.append(_statement("DecryptTheSaltOnly", ["kms:Decrypt"], [salt.kms_key_arn],
                                     {"StringEquals": {"kms:ViaService": via}}))
    if lake_kms_key_arn is not None:
        # SSE-KMS objects: reading needs Decrypt, writing GenerateDataKey, both through S3 only.
        statements.append(_statement("LakeObjectsEncryptedWithKms", ["kms:Decrypt", "kms:GenerateDataKey"],
                                     [lake_kms_key_arn],
                                     {"StringEquals": {"kms:ViaService": f"s3.{lake.region}.amazonaws.com"}}))
    return _document(*statements)


def deployer_policy(lake: LakeAccount, job_role_name: str, salt_prefix: str = "stedi/") -> Policy:
    """What ``stedi pipeline deploy`` calls, for this lake's database and job role."""
    database = lake.database
    glue = [
        lake.arn("glue", "catalog"), lake.arn("glue", f"database/{database}"), lake.arn("glue", f"table/{database}/*"),
        lake.arn("glue", f"job/{database}-*"), lake.arn("glue", f"trigger/{database}-pipeline-*"),
        lake.arn("glue", f"workflow/{database}-pipeline"),
    ]
    role = lake.role_arn(job_role_name)
    return _document(
        _statement("SeeTheLakeState", ["s3:ListBucket"], lake.bucket_arn(), _list_prefixes(lake, [STATE_FOLDER])),
        _statement("ReadTheLakeState", ["s3:GetObject"], [lake.object_arn(STATE_FOLDER + "*")]),
        _statement("UploadTheCode", ["s3:GetObject", "s3:PutObject"], [lake.object_arn(CODE_FOLDER + "*")]),
        _statement("CatalogJobsAndWorkflow", [
            "glue:GetDatabase", "glue:CreateDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable",
            "glue:GetJob", "glue:CreateJob", "glue:UpdateJob", "glue:GetWorkflow", "glue:CreateWorkflow",
            "glue:GetTrigger", "glue:CreateTrigger", "glue:UpdateTrigger", "glue:DeleteTrigger",
        ], glue),
        _statement("HandTheRoleToGlueOnly", ["iam:PassRole"], [role],
                   {"StringEquals": {"iam:PassedToService": "glue.amazonaws.com"}}),
        _statement("GrantTheJobRoleItsPolicy", ["iam:GetRolePolicy", "iam:PutRolePolicy"], [role]),
        _statement("CreateOrFindTheSaltSecret", ["secretsmanager:DescribeSecret", "secretsmanager:CreateSecret"],
                   [lake.arn("secretsmanager", f"secret:{salt_prefix}*")]),
        # DescribeParameters and kms:DescribeKey name the salt's key; DescribeParameters has no
        # resource-level permission (IAM's service authorization reference), so its Resource is "*".
        _statement("FindTheSaltParameter", ["ssm:DescribeParameters"], "*"),
        _statement("NameTheSaltKey", ["kms:DescribeKey"], [lake.arn("kms", "key/*")]),
    )


def gateway_policy(lake: LakeAccount) -> Policy:
    """A gateway puts landing files and lists what it put: it can neither read data back nor
    touch trusted or curated zones.  Add ``kms:GenerateDataKey`` on the key when it uploads
    with ``--sse aws:kms`` and a customer-managed key."""
    return _document(
        _statement("WriteLandingOnly", ["s3:PutObject"], [lake.object_arn(f + "*") for f in landing_folders()]),
        _statement("SeeWhatWasUploaded", ["s3:ListBucket"], lake.bucket_arn(), _list_prefixes(lake, landing_folders())),
    )


def glue_trust_policy() -> Policy:
    """The job role's trust policy: only the Glue service may assume it."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "glue.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


#: The documented example lake of ``docs/iam/`` (111122223333 is AWS's documentation account id).
EXAMPLE_LAKE = LakeAccount("BUCKET", "PREFIX/", "111122223333", "us-east-1", "stedi")
EXAMPLE_ROLE = "stedi-glue-job"
EXAMPLE_SALT = SaltGrant("secretsmanager", "stedi/stedi/customer-key-salt",
                         EXAMPLE_LAKE.arn("secretsmanager", "secret:stedi/stedi/customer-key-salt-AbCdEf"))


def documented_policies() -> dict[str, Policy]:
    """``docs/iam/<file name>`` -> the document it holds."""
    return {
        "job-role-policy.json": job_role_policy(EXAMPLE_LAKE, EXAMPLE_SALT),
        "deployer-policy.json": deployer_policy(EXAMPLE_LAKE, EXAMPLE_ROLE),
        "gateway-policy.json": gateway_policy(EXAMPLE_LAKE),
        "glue-trust-policy.json": glue_trust_policy(),
    }
