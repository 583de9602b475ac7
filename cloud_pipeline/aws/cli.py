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
    """Print Athena CREATE EXTERNAL TABLE statements for every lake table and the quarantine.

    Landing tables read the JSON lines with the OpenX JSON SerDe.  Trusted and curated tables
    point at the CURRENT version folder the pipeline committed (read from the lake's state), so
    re-apply the DDL (or run `stedi pipeline deploy`) after each pipeline run.
    """
    from cloud_pipeline.aws.ddl import ddl_script, load_state
    from stedi.lake import LakeError

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
    role: str = typer.Option(..., "--role", help="IAM role ARN the Glue jobs run as (see docs/iam-policy.json)."),
    database: str = typer.Option("stedi", "--database", help="Glue / Athena database name."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would change; change nothing."),
) -> None:
    """Create or update the pipeline on AWS Glue, idempotently.

    Uploads the five job scripts and a zip of the project code under <lake>/_pipeline/glue/,
    creates the Glue database and every table (zone tables at their current version), the five
    Glue jobs, and a workflow whose triggers run them in order.  Unchanged resources are left
    alone, so running it again after a pipeline run only moves the zone tables' locations.
    """
    from cloud_pipeline.aws.deploy import deploy as run_deploy

    try:
        changes = run_deploy(lake, role, database, dry_run)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--lake") from exc
    verb = "would" if dry_run else "did"
    for change in changes:
        typer.echo(f"{verb} {change}")
    if not changes:
        typer.echo("nothing to change: the deployment is up to date")
