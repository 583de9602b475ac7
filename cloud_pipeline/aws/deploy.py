"""Deploy the pipeline to AWS Glue, idempotently: database and tables, job scripts and the
project's code on S3, the five Glue jobs, and a workflow whose triggers run them in job order.

Every resource is read first and only created or updated when it differs from what this lake
needs, so a second deploy changes nothing.  ``dry_run`` reports the changes without making them.
"""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_pipeline.aws.ddl import load_state, table_definitions
from cloud_pipeline.config import JOB_ORDER

log = logging.getLogger(__name__)

#: Where deploy puts the code, under the lake's prefix (beside the pipeline's own folders).
CODE_FOLDER = "_pipeline/glue/"
PACKAGES = ("cloud_pipeline", "stedi")
GLUE_VERSION = "5.0"  # Spark 3.5, Python 3.11
WORKER_TYPE = "G.1X"
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
    if not lake_url.startswith("s3://"):
        raise ValueError(f"deploy needs an s3://bucket/prefix lake, not {lake_url!r}")
    bucket, _, prefix = lake_url[5:].partition("/")
    prefix = prefix.strip("/")
    return bucket, prefix + "/" if prefix else ""


def job_name(database: str, job: str) -> str:
    return f"{database}-{job}"


class Deployment:
    def __init__(self, lake_url: str, role: str, database: str = "stedi", dry_run: bool = False,
                 session: Any = None):
        import boto3

        self.lake = lake_url.rstrip("/")
        self.bucket, self.prefix = _split(lake_url)
        self.role = role
        self.database = database
        self.dry_run = dry_run
        session = session or boto3.session.Session()
        self.s3 = session.client("s3")
        self.glue = session.client("glue")
        self.changes: list[Change] = []

    def _change(self, kind: str, name: str, action: str) -> bool:
        """Record a change; True when it should be made (not a dry run)."""
        change = Change(kind, name, action)
        self.changes.append(change)
        log.info("%s%s", "would " if self.dry_run else "", change)
        return not self.dry_run

    def _s3_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

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
            if _table_differs(current, wanted) and self._change("table", definition.name, "update"):
                self.glue.update_table(DatabaseName=self.database, TableInput=wanted)

    # --- jobs and workflow -----------------------------------------------------------------

    def job_definition(self, script: str, code: str) -> dict[str, Any]:
        return {
            "Role": self.role,
            "Command": {"Name": "glueetl", "ScriptLocation": script, "PythonVersion": "3"},
            "DefaultArguments": {
                "--lake": self.lake,
                # The job moves its table's catalog location to the version it committed.
                "--database": self.database,
                "--extra-py-files": code,
                "--job-language": "python",
                "--enable-continuous-cloudwatch-log": "true",
            },
            "GlueVersion": GLUE_VERSION,
            "WorkerType": WORKER_TYPE,
            "NumberOfWorkers": 2,
            # The runner commits the lake's state file: two runs of one lake must not overlap.
            "ExecutionProperty": {"MaxConcurrentRuns": 1},
        }

    def ensure_jobs(self, scripts: dict[str, str], code: str) -> None:
        for job in JOB_ORDER:
            name = job_name(self.database, job)
            wanted = self.job_definition(scripts[job], code)
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
        """An on-demand start, then one conditional trigger per job on the previous job's success."""
        workflow = self.workflow_name()
        first = {
            "Name": f"{workflow}-start", "WorkflowName": workflow, "Type": "ON_DEMAND",
            "Actions": [{"JobName": job_name(self.database, JOB_ORDER[0])}],
        }
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
            compared = ("Type", "Actions", "Predicate", "WorkflowName")
            if any(_norm(current.get(k)) != _norm(trigger.get(k)) for k in compared) and self._change(
                "trigger", trigger["Name"], "update"
            ):
                update = {k: trigger[k] for k in ("Actions", "Predicate") if k in trigger}
                self.glue.update_trigger(Name=trigger["Name"], TriggerUpdate=update)

    def run(self) -> list[Change]:
        scripts, code = self.upload_code()
        self.ensure_database()
        self.ensure_tables()
        self.ensure_jobs(scripts, code)
        self.ensure_workflow()
        return self.changes


def _norm(value: Any) -> Any:
    """Drop empty values AWS adds on read (e.g. Arguments: {}) so they compare equal to ours."""
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def _table_differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    have, want = current.get("StorageDescriptor", {}), wanted["StorageDescriptor"]
    keys = ("Columns", "Location", "InputFormat", "OutputFormat", "SerdeInfo")
    return any(_norm(have.get(k)) != _norm(want.get(k)) for k in keys) or (
        current.get("Parameters", {}) != wanted["Parameters"]
    )


def refresh_tables(lake_url: str, database: str, names: list[str], client: Any = None) -> list[str]:
    """Point the catalog tables ``names`` at their current version; returns those that moved."""
    import boto3

    glue = client or boto3.client("glue")
    moved = []
    for definition in table_definitions(lake_url, load_state(lake_url)):
        if definition.name not in names:
            continue
        wanted = definition.table_input()
        current = glue.get_table(DatabaseName=database, Name=definition.name)["Table"]
        if _table_differs(current, wanted):
            glue.update_table(DatabaseName=database, TableInput=wanted)
            log.info("catalog table %s.%s now at %s", database, definition.name, definition.location)
            moved.append(definition.name)
    return moved


def deploy(lake_url: str, role: str, database: str = "stedi", dry_run: bool = False) -> list[Change]:
    """Create or update everything the pipeline needs on Glue; returns the changes (made or not)."""
    return Deployment(lake_url, role, database, dry_run).run()
