"""Defaults in one place.  Every command's options fall back to these; environment
variables (``STEDI_HOME``, ``STEDI_LAKE``) override the built-in values."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any


def default_home() -> Path:
    """The gateway's home folder: spool, config file, logs."""
    return Path(os.environ.get("STEDI_HOME", "~/.stedi")).expanduser()


def default_cache() -> Path:
    """Per-user caches (``STEDI_CACHE``, else ``~/.stedi/cache``): the Spark class archive that
    `stedi pipeline warm-up` records and the local copies of S3 lakes.  Deliberately not under
    ``STEDI_HOME``: a gateway home is one device's spool, and every home (tests, demos, a second
    gateway) must find the archive set-up wrote once for this user."""
    return Path(os.environ.get("STEDI_CACHE") or Path.home() / ".stedi" / "cache").expanduser()


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


#: The log's format: ``text`` (the default, for people) or ``json`` (JSON lines, for programs).
LOG_FORMATS = ("text", "json")

#: Attributes every log record has; any other attribute came from ``extra=``: a structured field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: time (epoch s), level, logger, message, then the record's
    structured fields (``extra={"event": ...}``), so that a program reads what happened from
    fields rather than from the wording of a message."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                line.setdefault(key, value)  # a field never hides the record's own
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def log_format() -> str:
    """The log format asked for by ``STEDI_LOG_FORMAT`` (default ``text``)."""
    chosen = os.environ.get("STEDI_LOG_FORMAT", "").strip().lower() or "text"
    if chosen not in LOG_FORMATS:
        # Refused rather than ignored: a program waiting for JSON lines would read nothing.
        raise ValueError(f"STEDI_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {chosen!r}")
    return chosen


def setup_logging(verbose: bool = False) -> None:
    """One log format for every part: time, level, component, message; or the same as JSON lines
    with each record's structured fields (``STEDI_LOG_FORMAT=json``)."""
    root_level = logging.DEBUG if verbose else logging.INFO
    if log_format() == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLinesFormatter())
        logging.basicConfig(level=root_level, handlers=[handler])
    else:
        logging.basicConfig(level=root_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                            datefmt="%H:%M:%S")
    if verbose:
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.INFO)
    # STEDI_LOG="gateway.spool=DEBUG,gateway.uploader=DEBUG": one component's debug lines
    # without every library's (the fault suite reads the gateway's commits and puts this way).
    for item in os.environ.get("STEDI_LOG", "").split(","):
        name, _, level = item.partition("=")
        if name.strip() and level.strip().upper() in logging.getLevelNamesMapping():
            logging.getLogger(name.strip()).setLevel(level.strip().upper())
