"""Pipeline options and their defaults, and the five jobs: what each reads, builds and writes."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cloud_pipeline.storage.state import TableFormat
from cloud_pipeline.transforms import jobs
from cloud_pipeline.transforms.jobs import ConsentMode

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

__all__ = ["JOBS", "JOBS_BY_NAME", "JOB_ORDER", "JOB_OUTPUT", "Job", "PipelineOptions", "TableFormat"]

#: Environment variable holding the salt of the machine-learning table's ``customerKey``.
SALT_ENV = "STEDI_CUSTOMER_KEY_SALT"
#: Used when the variable is unset.  It is public (it is in this file), so keys made with it can
#: be recomputed by anyone who knows an email: set your own salt for any real lake.
DEFAULT_SALT = "stedi-default-salt-change-me"

#: An input naming every customer record with its fate (``jobs.classify_customers``) rather than
#: a table: every landing job needs each customer's latest record, so a run classifies customers
#: once, first, whichever jobs it runs.
CLASSIFIED_CUSTOMERS = "customer_landing classified"

#: Builds a job's frame from its inputs (in the order ``Job.inputs`` names them) and the options.
Build = Callable[[Sequence["DataFrame"], "PipelineOptions"], "DataFrame"]


@dataclass(frozen=True)
class Job:
    """One job: the tables it reads, the table it writes and the function that builds it.

    An input is a landing table (its accepted staged rows), ``CLASSIFIED_CUSTOMERS``, or the
    table of an earlier job (as that job wrote it in this run, else its current version).  A
    landing job (``reconciles`` set) builds the classification of its landing table, a fate per
    row; the runner writes its trusted rows (``columns``) and reconciles every row.
    """

    name: str
    inputs: tuple[str, ...]
    output: str
    build: Build
    reconciles: str | None = None  # the landing table it classifies
    columns: tuple[str, ...] = ()
    weighted: bool = False  # a trusted row stands for its exact copies (``jobs.COUNT``)


def _customers(inputs: Sequence[DataFrame], options: PipelineOptions) -> DataFrame:
    (customers,) = inputs
    return customers


def _accelerometer(inputs: Sequence[DataFrame], options: PipelineOptions) -> DataFrame:
    readings, customers = inputs
    return jobs.classify_accelerometer(readings, jobs.latest_customers(customers), options.consent)


def _customer_curated(inputs: Sequence[DataFrame], options: PipelineOptions) -> DataFrame:
    customer_trusted, accelerometer_trusted = inputs
    return jobs.customer_trusted_to_curated(customer_trusted, accelerometer_trusted)


def _step_trainer(inputs: Sequence[DataFrame], options: PipelineOptions) -> DataFrame:
    steps, customers, customer_curated = inputs
    return jobs.classify_step_trainer(steps, jobs.latest_customers(customers), customer_curated, options.consent)


def _machine_learning(inputs: Sequence[DataFrame], options: PipelineOptions) -> DataFrame:
    steps, readings, customer_curated = inputs
    return jobs.machine_learning_curated(steps, readings, customer_curated, salt=options.salt,
                                         tolerance_ms=options.tolerance_ms)


#: The five jobs in the order they run; each needs the tables of the ones before it.
JOBS = (
    Job("customer_landing_to_trusted", (CLASSIFIED_CUSTOMERS,), "customer_trusted", _customers,
        reconciles="customer_landing", columns=jobs.CUSTOMER_COLUMNS),
    Job("accelerometer_landing_to_trusted", ("accelerometer_landing", CLASSIFIED_CUSTOMERS), "accelerometer_trusted",
        _accelerometer, reconciles="accelerometer_landing", columns=jobs.ACCELEROMETER_COLUMNS, weighted=True),
    Job("customer_trusted_to_curated", ("customer_trusted", "accelerometer_trusted"), "customer_curated",
        _customer_curated),
    Job("step_trainer_landing_to_trusted", ("step_trainer_landing", CLASSIFIED_CUSTOMERS, "customer_curated"),
        "step_trainer_trusted", _step_trainer, reconciles="step_trainer_landing", columns=jobs.STEP_TRAINER_COLUMNS,
        weighted=True),
    Job("machine_learning_curated", ("step_trainer_trusted", "accelerometer_trusted", "customer_curated"),
        "machine_learning_curated", _machine_learning),
)
JOBS_BY_NAME = {job.name: job for job in JOBS}
JOB_ORDER = tuple(job.name for job in JOBS)
#: The table each job writes.
JOB_OUTPUT = {job.name: job.output for job in JOBS}


def salt_from_env() -> str:
    salt = os.environ.get(SALT_ENV)
    if not salt:
        log.warning("%s is not set: customerKey uses the public default salt", SALT_ENV)
        return DEFAULT_SALT
    return salt


@dataclass(frozen=True)
class PipelineOptions:
    consent: ConsentMode = "all"
    tolerance_ms: int = 0
    format: TableFormat = "parquet"
    # Out of the repr: the runner logs the options of every run, and the salt is a secret.
    salt: str = field(default=DEFAULT_SALT, repr=False)
    full_refresh: bool = False
    jobs: tuple[str, ...] = JOB_ORDER

    def __post_init__(self) -> None:
        if self.consent not in ("all", "as-of"):
            raise ValueError(f"consent must be 'all' or 'as-of', not {self.consent!r}")
        if self.tolerance_ms < 0:
            raise ValueError("tolerance_ms must be >= 0")
        if self.format not in ("parquet", "json"):
            raise ValueError(f"format must be 'parquet' or 'json', not {self.format!r}")
        unknown = [j for j in self.jobs if j not in JOB_ORDER]
        if unknown:
            raise ValueError(f"unknown job(s) {', '.join(unknown)}; jobs are: {', '.join(JOB_ORDER)}")
