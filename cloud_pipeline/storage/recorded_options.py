"""The options that shape a lake's tables are the lake's own: recorded at its first run, reused after.

A run that does not give ``--consent``, ``--tolerance-ms`` or ``--format`` takes the value the
lake was last built with (``PipelineState.options``, written by every commit), not the built-in
default: re-running the demo's lake, built ``--consent as-of``, must not let pre-consent
readings in.  A run that asks for a different value is refused, unless it is a full refresh,
which rebuilds every table with the new value and says what changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud_pipeline.storage.state import BuildOptions, TableFormat
from cloud_pipeline.transforms.jobs import ConsentMode
from stedi.errors import UserError

#: The values of a lake's first run when it gives none (PipelineOptions' defaults).
FIRST_RUN_DEFAULTS = BuildOptions(consent="all", tolerance_ms=0, format="parquet")


@dataclass(frozen=True)
class AskedOptions:
    """What the command line gave; None: not given."""

    consent: ConsentMode | None = None
    tolerance_ms: int | None = None
    format: TableFormat | None = None


@dataclass(frozen=True)
class ChosenOptions:
    options: BuildOptions
    #: "--consent all -> as-of" for each option a full refresh changes.
    changed: tuple[str, ...] = ()
    #: "--consent as-of" for each recorded option reused because the command did not give it.
    reused: tuple[str, ...] = ()


def _flags(o: BuildOptions) -> dict[str, str]:
    return {"--consent": o.consent, "--tolerance-ms": str(o.tolerance_ms), "--format": o.format}


def choose_options(recorded: BuildOptions | None, asked: AskedOptions, full_refresh: bool) -> ChosenOptions:
    """The options of this run; raises :class:`UserError` when they differ from the recorded ones
    and the run is not a full refresh."""
    base = recorded or FIRST_RUN_DEFAULTS
    chosen = BuildOptions(
        consent=asked.consent if asked.consent is not None else base.consent,
        tolerance_ms=asked.tolerance_ms if asked.tolerance_ms is not None else base.tolerance_ms,
        format=asked.format if asked.format is not None else base.format,
    )
    if recorded is None:
        return ChosenOptions(chosen)
    old, new = _flags(recorded), _flags(chosen)
    given = {"--consent": asked.consent, "--tolerance-ms": asked.tolerance_ms, "--format": asked.format}
    changed = tuple(f"{flag} {old[flag]} -> {new[flag]}" for flag in old if old[flag] != new[flag])
    reused = tuple(f"{flag} {old[flag]}" for flag in old if given[flag] is None)
    if changed and not full_refresh:
        raise UserError(
            f"this lake was built with {', '.join(f'{f} {old[f]}' for f in old if old[f] != new[f])}; "
            f"this run asks for {', '.join(f'{f} {new[f]}' for f in old if old[f] != new[f])}",
            hint="leave the option out to keep the lake's, or add --full-refresh to rebuild every table "
                 "with the new value",
        )
    return ChosenOptions(chosen, changed, reused)
