"""A deployed job's customerKey salt, on moto's server: read from Secrets Manager or an SSM
SecureString named by a job argument; a job refuses to run without a salt or with the public one."""

from __future__ import annotations

import uuid

import boto3
import pytest

from cloud_pipeline.aws.glue.entry import job_options, main, parse_args
from cloud_pipeline.config import DEFAULT_SALT, SALT_ENV
from stedi.errors import UserError

SALT = "a-salt-nobody-else-knows-0123456789"


def _args(*extra: str):  # type: ignore[no-untyped-def]
    return parse_args(["--JOB_NAME", "stedi-x", "--lake", "s3://b/p", "--JOB_RUN_ID", "jr_1", *extra])


def _name(kind: str) -> str:
    return f"stedi/test/{kind}-{uuid.uuid4().hex[:8]}"


def test_salt_from_secrets_manager_by_name_and_by_arn(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)
    name = _name("secret")
    arn = boto3.client("secretsmanager").create_secret(Name=name, SecretString=SALT)["ARN"]
    assert job_options("customer_landing_to_trusted", _args("--salt_secret_id", name)).salt == SALT
    options = job_options("machine_learning_curated", _args("--salt_secret_id", arn))
    assert (options.salt, options.jobs) == (SALT, ("machine_learning_curated",))
    assert SALT not in repr(options)  # the options are logged; the salt is not


def test_salt_from_an_ssm_securestring_only(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)
    ssm = boto3.client("ssm")
    secure, plain = "/" + _name("secure"), "/" + _name("plain")
    ssm.put_parameter(Name=secure, Type="SecureString", Value=SALT)
    ssm.put_parameter(Name=plain, Type="String", Value=SALT)
    assert job_options("customer_landing_to_trusted", _args("--salt_parameter", secure)).salt == SALT
    with pytest.raises(UserError, match="is a String parameter: a salt must be a SecureString"):
        job_options("customer_landing_to_trusted", _args("--salt_parameter", plain))


@pytest.mark.parametrize("case", ["no salt", "public default in the secret", "missing secret", "both", "empty env"])
def test_a_job_refuses_to_run_without_a_real_salt(case: str, s3_server: str, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)
    secrets = boto3.client("secretsmanager")
    if case == "no salt":
        extra, message, code = [], "no customerKey salt: this job refuses to use the public default salt", 2
    elif case == "public default in the secret":
        name = _name("default")
        secrets.create_secret(Name=name, SecretString=DEFAULT_SALT)
        extra, message, code = ["--salt_secret_id", name], "holds the public default salt", 2
    elif case == "missing secret":
        extra, message, code = ["--salt_secret_id", _name("absent")], "not found (ResourceNotFoundException", 3
    elif case == "both":
        extra, message, code = ["--salt_secret_id", "a", "--salt_parameter", "b"], "not both", 2
    else:
        monkeypatch.setenv(SALT_ENV, " ")
        extra, message, code = [], f"the customerKey salt in {SALT_ENV} is empty", 2
    # main() stops before Spark: it returns the exit code and says why in one line.
    status = main("customer_landing_to_trusted",
                  ["--JOB_NAME", "stedi-x", "--lake", "/no/such/lake", *extra])
    err = capsys.readouterr().err
    assert status == code, err
    assert err.startswith("error: ") and message in err and "Traceback" not in err, err
