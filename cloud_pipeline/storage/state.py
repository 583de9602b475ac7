"""The pipeline's state and run records, typed: the one place that reads and writes their JSON.

The state (``_pipeline/state/pipeline.json``) names the current version of every table, the landing
files staged so far and the staging and quarantine batches made of them; replacing it commits a
run (``cloud_pipeline/storage/store.py``).  A run record (``_pipeline/runs/<run id>.json``) says
what one run did.  The JSON layout is the one lakes already hold: ``from_json`` reads whatever the
pipeline has written (a key a lake may lack is optional here and stays absent when written back),
``to_json`` writes it again key for key, sorted and indented as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from cloud_pipeline.transforms.jobs import ConsentMode
from cloud_pipeline.transforms.reconcile import Reconciliation
from stedi.contract import (
    LANDING_TABLES,
    QUARANTINE_FOLDER,
    STAGING_FOLDER,
    STATE_FOLDER,
    TABLES_BY_NAME,
    WARNINGS_FOLDER,
)
from stedi.lake import LakeError

STATE_KEY = STATE_FOLDER + "pipeline.json"
#: The held-back index of a run (``HeldBackIndex``) is ``<HELD_BACK_PREFIX><run id>.json``.
HELD_BACK_PREFIX = STATE_FOLDER + "held-back-"
STATE_VERSION = 1
ENTITIES = tuple(t.entity for t in LANDING_TABLES)

TableFormat = Literal["parquet", "json"]


def dump_json(data: dict[str, Any]) -> bytes:
    """The lake's JSON files as the pipeline has always written them: indented, keys sorted."""
    return json.dumps(data, indent=2, sort_keys=True).encode()


@dataclass(frozen=True)
class BuildOptions:
    """What a table was built with: a run with nothing new keeps a table only if these are the same."""

    consent: ConsentMode
    tolerance_ms: int
    format: TableFormat

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildOptions:
        # The defaults are PipelineOptions' own, for a record that lacks a key.
        return cls(data.get("consent", "all"), int(data.get("tolerance_ms", 0)), data.get("format", "parquet"))

    def to_dict(self) -> dict[str, Any]:
        return {"consent": self.consent, "tolerance_ms": self.tolerance_ms, "format": self.format}


@dataclass(frozen=True)
class TableInputs:
    """What one version of a table was built from, besides the options and the salt.

    A job's table is kept by a later run (``PipelineRun.up_to_date``) only while these are still
    what the job would read: a run of other jobs may have staged new landing files or rebuilt a
    table this one reads, and this table then has to be rebuilt too, whichever run gets to it.
    """

    #: Per entity the job reads (its landing table, or the customers every landing job classifies):
    #: the staging batches it read.
    staging: dict[str, tuple[str, ...]]
    #: Per trusted or curated table the job reads: the version it read.
    tables: dict[str, str]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableInputs:
        return cls({e: tuple(b) for e, b in data["staging"].items()}, dict(data["tables"]))

    def to_dict(self) -> dict[str, Any]:
        return {"staging": {e: list(b) for e, b in self.staging.items()}, "tables": self.tables}


@dataclass(frozen=True)
class TableVersion:
    """The current version of one trusted or curated table, and how it was built."""

    version: str  # its folder under the table's folder: v-<run id>
    format: TableFormat
    run_id: str
    rows: int | None = None
    options: BuildOptions | None = None
    salt_fingerprint: str | None = None  # of the customerKey salt (runner.salt_fingerprint)
    #: None in states written before inputs were recorded: such a table is rebuilt once.
    inputs: TableInputs | None = None
    #: The version this one replaced, kept until the next commit replaces this one, so that a reader
    #: who looked the table up before the commit (an Athena query, a catalog not yet moved) still
    #: finds its files (docs/pipeline.md, "Versions kept").  None: nothing is kept.
    previous: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableVersion:
        options, inputs = data.get("options"), data.get("inputs")
        return cls(data["version"], data["format"], data["run_id"], data.get("rows"),
                   BuildOptions.from_dict(options) if options is not None else None, data.get("salt_fingerprint"),
                   TableInputs.from_dict(inputs) if inputs is not None else None, data.get("previous"))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": self.version, "format": self.format, "run_id": self.run_id}
        if self.rows is not None:
            data["rows"] = self.rows
        if self.options is not None:
            data["options"] = self.options.to_dict()
        if self.salt_fingerprint is not None:
            data["salt_fingerprint"] = self.salt_fingerprint
        if self.inputs is not None:
            data["inputs"] = self.inputs.to_dict()
        if self.previous is not None:
            data["previous"] = self.previous
        return data

    def kept_versions(self) -> set[str]:
        """The version folders of this table a commit keeps: the current one and the one it replaced."""
        return {self.version} | ({self.previous} if self.previous is not None else set())


@dataclass(frozen=True)
class TableLocation:
    """Where the current committed version of a table lies: a folder key of the lake ("/"-ended)."""

    table: str
    key: str
    format: TableFormat


def batch_names(listed: dict[str, list[str]]) -> set[str]:
    """Every batch that ``listed`` (a state's ``staging`` or ``quarantine``) names, of any entity."""
    return {b for batches in listed.values() for b in batches}


@dataclass(frozen=True)
class HeldBackIndex:
    """Who owns the rows that earlier batches hold back and a new customer record could let in:
    the users of accelerometer rows of unknown customers, and the serial numbers of step rows
    excluded for their owners.  The append path rebuilds when a new customer or a changed serial is
    among them (``cloud_pipeline/transforms/incremental.py``).  An owner listed who no longer has
    such rows only costs a rebuild, never a wrong table."""

    users: frozenset[str]
    serials: frozenset[str]

    @classmethod
    def from_json(cls, raw: bytes | str) -> HeldBackIndex:
        data = json.loads(raw)
        return cls(frozenset(data["users"]), frozenset(data["serials"]))

    def to_json(self) -> bytes:
        return dump_json({"users": sorted(self.users), "serials": sorted(self.serials)})


@dataclass
class PipelineState:
    """The committed state of a lake's pipeline; the runner changes a copy and commits it whole."""

    last_run: str | None = None
    #: Per entity: every staged landing file, key -> ETag when it was staged.
    files: dict[str, dict[str, str]] = field(default_factory=lambda: {e: {} for e in ENTITIES})
    #: Per entity: its staging batches (the ids of the runs that staged them).
    staging: dict[str, list[str]] = field(default_factory=lambda: {e: [] for e in ENTITIES})
    #: Per entity: its quarantine batches, one per staging batch that had rejected lines.
    quarantine: dict[str, list[str]] = field(default_factory=lambda: {e: [] for e in ENTITIES})
    #: Per entity: its warnings batches, one per staging batch that kept lines with warnings.
    warnings: dict[str, list[str]] = field(default_factory=lambda: {e: [] for e in ENTITIES})
    #: Per entity, per staging batch: its rows per quarantine rule and "accepted", counted when staged.
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=lambda: {e: {} for e in ENTITIES})
    tables: dict[str, TableVersion] = field(default_factory=dict)
    #: Both set by every run that commits; a state no run has committed has neither.
    options: BuildOptions | None = None
    #: The latest reconciliation of each landing table: a run with nothing new reports it again.
    reconciliation: dict[str, Reconciliation] | None = None
    #: The key of the held-back index (``HeldBackIndex``) of the current tables; None: none is
    #: known (a state from before it was kept), and the next run rebuilds.
    held_back: str | None = None

    def table_locations(self) -> dict[str, TableLocation]:
        """Per built table, the folder of its current committed version: what a catalog should name
        (prefix it with the lake's URL; the folder of the version before stays until the next commit)."""
        return {name: TableLocation(name, f"{TABLES_BY_NAME[name].folder}{t.version}/", t.format)
                for name, t in self.tables.items()}

    def batches(self) -> tuple[tuple[str, dict[str, list[str]]], ...]:
        """Each kind of batch the state names, with the folder its batches live in."""
        return ((STAGING_FOLDER, self.staging), (QUARANTINE_FOLDER, self.quarantine), (WARNINGS_FOLDER, self.warnings))

    @classmethod
    def from_json(cls, raw: bytes | str) -> PipelineState:
        """The state in a state file; a file of another state version is refused."""
        data = json.loads(raw)
        if data.get("version") != STATE_VERSION:
            raise LakeError(f"{STATE_KEY} has state version {data.get('version')}, expected {STATE_VERSION}")
        options, reconciliation = data.get("options"), data.get("reconciliation")
        return cls(
            last_run=data["last_run"],
            files=data["files"],
            staging=data["staging"],
            quarantine=data["quarantine"],
            # Lakes staged before warnings were kept have none.
            warnings=data.get("warnings", {e: [] for e in ENTITIES}),
            # Lakes staged before per-batch counts were kept have none: the runner counts them once.
            counts=data.get("counts", {e: {} for e in ENTITIES}),
            tables={name: TableVersion.from_dict(info) for name, info in data["tables"].items()},
            options=BuildOptions.from_dict(options) if options is not None else None,
            reconciliation=reconciliation,
            held_back=data.get("held_back"),
        )

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "version": STATE_VERSION,
            "last_run": self.last_run,
            "files": self.files,
            "staging": self.staging,
            "quarantine": self.quarantine,
            "warnings": self.warnings,
            "counts": self.counts,
            "tables": {name: t.to_dict() for name, t in self.tables.items()},
        }
        if self.options is not None:
            data["options"] = self.options.to_dict()
        if self.reconciliation is not None:
            data["reconciliation"] = self.reconciliation
        if self.held_back is not None:
            data["held_back"] = self.held_back
        return dump_json(data)


@dataclass
class RunRecord:
    """What one run did (``_pipeline/runs/<run id>.json``)."""

    run_id: str
    lake: str
    options: BuildOptions
    full_refresh: bool
    jobs: tuple[str, ...]
    new_landing_files: dict[str, int]
    #: Of the landing tables this run reconciled; a run that found nothing new repeats the ones
    #: of the run whose tables it kept.
    reconciliation: dict[str, Reconciliation]
    tables: dict[str, int | None]  # rows per table it reports
    seconds: float
    step_seconds: dict[str, float] = field(default_factory=dict)
    #: The run whose tables a run that found nothing new kept; None when it built them.
    unchanged_since: str | None = None
    #: Tables of the selected jobs that a run which built others kept, their inputs being unchanged.
    kept: tuple[str, ...] = ()
    #: Per table, how this run made it: "append", "rewrite: <whose rows it classified again>",
    #: "recomputed (customer-sized)", "kept", or "rebuild: <why it did not append or rewrite>"
    #: (absent in older records).
    paths: dict[str, str] = field(default_factory=dict)
    #: A run of an S3 lake: the local cache it ran on and what it moved (added when saved).
    cache: str | None = None
    s3: dict[str, int] | None = None

    def options_dict(self) -> dict[str, Any]:
        return {**self.options.to_dict(), "full_refresh": self.full_refresh, "jobs": list(self.jobs)}

    @classmethod
    def from_json(cls, raw: bytes | str) -> RunRecord:
        return cls.from_dict(json.loads(raw))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        return cls(
            run_id=data["run_id"],
            lake=data["lake"],
            options=BuildOptions.from_dict(data["options"]),
            full_refresh=data["options"]["full_refresh"],
            jobs=tuple(data["options"]["jobs"]),
            new_landing_files=data["new_landing_files"],
            reconciliation=data["reconciliation"],
            tables=data["tables"],
            seconds=data["seconds"],
            step_seconds=data.get("step_seconds", {}),
            unchanged_since=data.get("unchanged_since"),
            kept=tuple(data.get("kept", ())),
            paths=dict(data.get("paths", {})),
            cache=data.get("cache"),
            s3=data.get("s3"),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "lake": self.lake,
            "options": self.options_dict(),
            "new_landing_files": self.new_landing_files,
            "reconciliation": self.reconciliation,
            "tables": self.tables,
            "seconds": self.seconds,
            "step_seconds": self.step_seconds,
        }
        optional = {"unchanged_since": self.unchanged_since, "kept": list(self.kept) or None,
                    "paths": self.paths or None, "cache": self.cache,
                    "s3": self.s3}
        return data | {k: v for k, v in optional.items() if v is not None}


def run_records(raws: Iterable[bytes]) -> list[RunRecord]:
    """The run records among the files of ``_pipeline/runs/`` (erase records are kept there too)."""
    records = [json.loads(raw) for raw in raws]
    return [RunRecord.from_dict(r) for r in records if "run_id" in r]
