"""A command group whose commands have not been built yet says so plainly."""

from __future__ import annotations

import typer


def unbuilt_group(what: str, issue: int) -> typer.Typer:
    """A Typer group that, until its commands exist, explains that and exits with status 2."""
    group = typer.Typer(no_args_is_help=False, invoke_without_command=True)

    @group.callback(invoke_without_command=True)
    def _not_built(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:
            typer.echo(f"{what} is not built yet (tracked in issue #{issue}).", err=True)
            raise typer.Exit(2)

    return group


def unbuilt_command(what: str, issue: int):  # type: ignore[no-untyped-def]
    def _not_built() -> None:
        typer.echo(f"{what} is not built yet (tracked in issue #{issue}).", err=True)
        raise typer.Exit(2)

    _not_built.__doc__ = f"{what} (not built yet: issue #{issue})."
    return _not_built
