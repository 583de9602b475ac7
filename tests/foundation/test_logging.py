"""The log's two formats: text for people (the default, as it always was) and JSON lines with each
record's structured fields (STEDI_LOG_FORMAT=json), for programs such as the fault harness."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

from gateway.spool import Spool
from stedi.settings import JsonLinesFormatter
from tests.parts import REPO


def _stedi(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("STEDI_LOG", "STEDI_LOG_FORMAT")}
    return subprocess.run([sys.executable, "-m", "stedi_app.cli", *args], env={**environ, "PYTHONPATH": str(REPO), **env},
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def test_text_is_the_default_and_json_lines_are_asked_for(tmp_path: Path) -> None:
    Spool(tmp_path).close()
    text = _stedi("gateway", "status", "--home", str(tmp_path))
    assert text.returncode == 0, text.stderr
    assert re.search(r"^\d\d:\d\d:\d\d INFO    gateway\.spool: spool \S+: 0 readings pending, cap \d+$",
                     text.stderr, re.MULTILINE), text.stderr

    as_json = _stedi("gateway", "status", "--home", str(tmp_path), STEDI_LOG_FORMAT="json")
    assert as_json.returncode == 0, as_json.stderr
    records = [json.loads(line) for line in as_json.stderr.splitlines()]
    spool = [r for r in records if r["logger"] == "gateway.spool"]
    assert spool and spool[0]["level"] == "INFO" and spool[0]["message"].endswith("0 readings pending, cap 1000000")
    assert as_json.stdout == text.stdout  # only the log changes


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    result = _stedi("gateway", "status", "--home", str(tmp_path), STEDI_LOG_FORMAT="xml")
    assert result.returncode == 2 and "STEDI_LOG_FORMAT must be one of text, json, not 'xml'" in result.stderr


def test_json_lines_carry_the_structured_fields_and_the_exception() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLinesFormatter())
    logger = logging.getLogger("stedi.test_logging")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("put failed: %s", "k1", extra={"event": "put", "state": "failed", "key": "k1", "level": "x"})
        try:
            raise OSError("disk full")
        except OSError:
            logger.exception("spool write failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert list(first)[:4] == ["time", "level", "logger", "message"]
    assert first["message"] == "put failed: k1" and first["logger"] == "stedi.test_logging"
    assert (first["event"], first["state"], first["key"]) == ("put", "failed", "k1")
    assert first["level"] == "WARNING"  # a field never hides the record's own
    assert second["level"] == "ERROR" and "OSError: disk full" in second["exception"]
