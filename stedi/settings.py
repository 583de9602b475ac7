"""Defaults in one place.  Every command's options fall back to these; environment
variables (``STEDI_HOME``, ``STEDI_LAKE``) override the built-in values."""

from __future__ import annotations

import logging
import os
from pathlib import Path


def default_home() -> Path:
    """The gateway's home folder: spool, config file, logs."""
    return Path(os.environ.get("STEDI_HOME", "~/.stedi")).expanduser()


def default_lake() -> str:
    """The lake used when no ``--lake`` is given: a local folder, so nothing needs AWS."""
    return os.environ.get("STEDI_LAKE", str(default_home() / "lake"))


#: Sampling rate of a board when its config does not say (Hz).
DEFAULT_SAMPLE_RATE_HZ = 20

#: Gateway upload batching (Data Firehose style: whichever limit is hit first).
DEFAULT_BATCH_BYTES = 5 * 1024 * 1024
DEFAULT_BATCH_AGE_S = 60.0


#: Libraries whose debug lines carry secrets or personal data: botocore logs request headers
#: (the AWS access key id, the session token) and bodies (customer records), py4j every command
#: sent to Spark's JVM with its string arguments (the customer-key salt).  ``-v`` leaves them at
#: INFO; STEDI_LOG can still ask for one by name, knowingly.
QUIET_LIBRARIES = ("botocore", "boto3", "s3transfer", "py4j")


def setup_logging(verbose: bool = False) -> None:
    """One log format for every part: time, level, component, message."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if verbose:
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.INFO)
    # STEDI_LOG="gateway.spool=DEBUG,gateway.uploader=DEBUG": one component's debug lines
    # without every library's (the fault suite reads the gateway's commits and puts this way).
    for item in os.environ.get("STEDI_LOG", "").split(","):
        name, _, level = item.partition("=")
        if name.strip() and level.strip().upper() in logging.getLevelNamesMapping():
            logging.getLogger(name.strip()).setLevel(level.strip().upper())
