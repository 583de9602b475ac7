"""The customerKey salt of a deployed job: read at start from AWS Secrets Manager or an SSM
SecureString parameter, never the public default.

A Glue job cannot be given environment variables (CreateJob has no such field: botocore's
``glue/2017-03-31/service-2.json``, ``CreateJobRequest``), and job arguments are logged, so the
job is given only the NAME of the secret (``--salt_secret_id`` or ``--salt_parameter``) and reads
the value with its role's permission to that one secret (``cloud_pipeline/aws/iam.py``).
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

from cloud_pipeline.aws.aws_errors import aws_errors
from cloud_pipeline.aws.iam import SaltKind
from cloud_pipeline.config import DEFAULT_SALT, SALT_ENV
from stedi.errors import UserError

log = logging.getLogger(__name__)

#: Bytes of randomness in a salt deploy generates (``secrets.token_urlsafe``: 43 characters).
GENERATED_SALT_BYTES = 32


def new_salt() -> str:
    """A random salt for a new secret (``secrets``: a cryptographically strong source)."""
    return secrets.token_urlsafe(GENERATED_SALT_BYTES)


def _region_of(name: str) -> str | None:
    """The region in an ARN (``arn:aws:secretsmanager:REGION:...``), else None (the session's)."""
    parts = name.split(":")
    return parts[3] if name.startswith("arn:") and len(parts) > 5 and parts[3] else None


def checked_salt(value: str | None, where: str) -> str:
    """``value`` if it is a usable salt; a clear error for none, an empty one or the public default."""
    if value is None or not value.strip():
        raise UserError(f"the customerKey salt in {where} is empty",
                        hint="store a long random value there (stedi pipeline deploy creates one)")
    if value == DEFAULT_SALT:
        raise UserError(f"{where} holds the public default salt {DEFAULT_SALT!r}: anyone with a list of emails "
                        "could recompute every customerKey", hint="store a long random value there instead")
    return value


def read_salt(kind: SaltKind, name: str, session: Any = None) -> str:
    """The salt held by the Secrets Manager secret or the SSM SecureString parameter ``name``."""
    import boto3

    session = session or boto3.session.Session()
    region = _region_of(name)
    if kind == "secretsmanager":
        where = f"Secrets Manager secret {name}"
        with aws_errors(f"reading the {where}"):
            answer = session.client("secretsmanager", region_name=region).get_secret_value(SecretId=name)
        if answer.get("SecretString") is None:
            raise UserError(f"the {where} holds binary data, not the salt text",
                            hint="store the salt as the secret's string value")
        return checked_salt(answer["SecretString"], where)
    where = f"SSM parameter {name}"
    with aws_errors(f"reading the {where}"):
        parameter = session.client("ssm", region_name=region).get_parameter(Name=name, WithDecryption=True)["Parameter"]
    if parameter.get("Type") != "SecureString":
        raise UserError(f"the {where} is a {parameter.get('Type')} parameter: a salt must be a SecureString",
                        hint=f"aws ssm put-parameter --name {name} --type SecureString --overwrite --value ...")
    return checked_salt(parameter.get("Value"), where)


def job_salt(secret_id: str | None, parameter: str | None, session: Any = None) -> str:
    """The salt a job runs with: from the secret or the parameter it is given, else from
    ``STEDI_CUSTOMER_KEY_SALT`` (spark-submit on a cluster that sets it); never the default."""
    if secret_id and parameter:
        raise UserError("give the job --salt_secret_id or --salt_parameter, not both")
    if secret_id:
        return read_salt("secretsmanager", secret_id, session)
    if parameter:
        return read_salt("ssm", parameter, session)
    from_env = os.environ.get(SALT_ENV)
    if from_env is None:
        raise UserError("no customerKey salt: this job refuses to use the public default salt",
                        hint="pass --salt_secret_id SECRET or --salt_parameter NAME (stedi pipeline deploy sets "
                             f"one on every job), or set {SALT_ENV} for spark-submit")
    return checked_salt(from_env, SALT_ENV)
