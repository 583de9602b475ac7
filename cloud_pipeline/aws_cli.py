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
    from cloud_pipeline.ddl import ddl_script, load_state
    from stedi.lake import LakeError

    url = lake or str(default_lake())
    try:
        state = load_state(url)
    except LakeError as exc:
        raise typer.BadParameter(str(exc), param_hint="--lake") from exc
    if state is None:
        typer.echo(f"-- {url}: the pipeline has not run yet; zone tables point at empty folders", err=True)
    typer.echo(ddl_script(url, database, state), nl=False)
