"""Pipeline options and their defaults."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from cloud_pipeline.storage.state import TableFormat
from cloud_pipeline.transforms.jobs import ConsentMode

log = logging.getLogger(__name__)

__all__ = ["JOB_ORDER", "JOB_OUTPUT", "PipelineOptions", "TableFormat"]

#: Environment variable holding the salt of the machine-learning table's ``customerKey``.
SALT_ENV = "STEDI_CUSTOMER_KEY_SALT"
#: Used when the variable is unset.  It is public (it is in this file), so keys made with it can
#: be recomputed by anyone who knows an email: set your own salt for any real lake.
DEFAULT_SALT = "stedi-default-salt-change-me"

#: The five jobs in the order they run; each needs the tables of the ones before it.
JOB_ORDER = (
    "customer_landing_to_trusted",
    "accelerometer_landing_to_trusted",
    "customer_trusted_to_curated",
    "step_trainer_landing_to_trusted",
    "machine_learning_curated",
)
#: The table each job writes.
JOB_OUTPUT = {
    "customer_landing_to_trusted": "customer_trusted",
    "accelerometer_landing_to_trusted": "accelerometer_trusted",
    "customer_trusted_to_curated": "customer_curated",
    "step_trainer_landing_to_trusted": "step_trainer_trusted",
    "machine_learning_curated": "machine_learning_curated",
}


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
