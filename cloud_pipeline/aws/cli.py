"""`stedi pipeline ddl` and `stedi pipeline deploy`: the lake on Athena / Glue.

boto3 is imported inside the commands so that `stedi --help` stays fast.
"""

from __future__ import annotations

import typer

from stedi.settings import default_lake

_LAKE_HELP = "Lake folder or s3://bucket/prefix [default: STEDI_LAKE or ~/.stedi/lake]."


def ddl(
    lake: str = typer.Option(None, "--lake", help=_LAKE_HELP),
    database: str = typer.Option("stedi", "--database", help="Glue / Athena database name."),
) -> None:
    """Print the Athena DDL of every lake table, the quarantine and the warnings: run it once to
    create the database.

    Landing tables read the JSON lines with the OpenX JSON SerDe, every column as text.  Trusted
    and curated tables point at the version folder the pipeline last committed (read from the
    lake's state).  Re-applying this DDL does NOT move an existing table (CREATE EXTERNAL TABLE IF
    NOT EXISTS changes nothing): deployed Glue jobs move their tables themselves, and `stedi
    pipeline run --lake s3://... --database NAME` moves them after a laptop run (docs/aws.md).
    """
    from cloud_pipeline.aws.ddl import check_database_name, ddl_script, load_state
    from stedi.lake import LakeError

    check_database_name(database)
    url = lake or str(default_lake())
    try:
        state = load_state(url)
    except LakeError as exc:
        raise typer.BadParameter(str(exc), param_hint="--lake") from exc
    if state is None:
        typer.echo(f"-- {url}: the pipeline has not run yet; zone tables point at empty folders", err=True)
    typer.echo(ddl_script(url, database, state), nl=False)


def deploy(
    lake: str = typer.Option(..., "--lake", help="The lake on S3: s3://bucket/prefix."),
    role: str = typer.Option(..., "--role", help="IAM role ARN the Glue jobs run as (trust: docs/iam/glue-trust-policy.json)."),
    database: str = typer.Option("stedi", "--database", help="Glue / Athena database name."),
    salt_secret: str = typer.Option(None, "--salt-secret", help="Secrets Manager secret (name or ARN) of the customerKey salt [default: stedi/<database>/customer-key-salt, created with a random value if absent]."),
    salt_parameter: str = typer.Option(None, "--salt-parameter", help="Use this existing SSM SecureString parameter for the salt instead of a secret."),
    no_create_salt: bool = typer.Option(False, "--no-create-salt", help="Require the salt secret to exist (keep an existing salt)."),
    sse: str = typer.Option(None, "--sse", help="The lake bucket's encryption: aws:kms grants the jobs its key (with --kms-key-id)."),
    kms_key_id: str = typer.Option(None, "--kms-key-id", help="ARN of the lake's customer-managed KMS key, for --sse aws:kms."),
    schedule: str = typer.Option(None, "--schedule", help='Start the workflow on a Glue cron schedule in UTC, e.g. "cron(0 3 * * ? *)" [default: on demand only].'),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would change; change nothing."),
) -> None:
    """Create or update the pipeline on AWS Glue, idempotently.

    Finds or creates the customerKey salt's secret and puts the job role's least-privilege policy
    (read access to that one secret included) on --role; uploads the five job scripts and a zip
    of the project code under <lake>/_pipeline/glue/; creates the Glue database and every table
    (zone tables at their current version), the five Glue jobs, and a workflow whose triggers run
    them in order.  Unchanged resources are left alone.  Needs AWS credentials and a region, even
    with --dry-run (it reads what exists).
    """
    from cloud_pipeline.aws.deploy import SaltChoice
    from cloud_pipeline.aws.deploy import deploy as run_deploy
    from stedi.errors import UserError

    if salt_secret and salt_parameter:
        raise UserError("give --salt-secret or --salt-parameter, not both")
    if sse not in (None, "aws:kms", "AES256"):
        raise UserError(f"--sse {sse!r}: use AES256 or aws:kms")
    if kms_key_id and sse != "aws:kms":
        raise UserError("--kms-key-id goes with --sse aws:kms")
    if sse == "aws:kms" and kms_key_id and not kms_key_id.startswith("arn:"):
        raise UserError(f"--kms-key-id {kms_key_id!r}: give the key's ARN (the job role's policy names it)",
                        hint="aws kms describe-key --key-id ... --query KeyMetadata.Arn")
    salt = (SaltChoice("ssm", salt_parameter, create=False) if salt_parameter
            else SaltChoice("secretsmanager", salt_secret, create=not no_create_salt))
    changes = run_deploy(lake, role, database, dry_run, salt=salt, lake_kms_key_arn=kms_key_id, schedule=schedule)
    verb = "would" if dry_run else "did"
    for change in changes:
        typer.echo(f"{verb} {change}")
    if not changes:
        typer.echo("nothing to change: the deployment is up to date")
