"""Fast guards for the leak fixes that tests/security/test_secrets.py found end to end."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from cloud_pipeline.config import PipelineOptions
from stedi.settings import QUIET_LIBRARIES, setup_logging


@pytest.fixture
def levels() -> Iterator[None]:
    names = ["", *QUIET_LIBRARIES, "gateway"]
    saved = {n: logging.getLogger(n).level for n in names}
    yield
    for n, level in saved.items():
        logging.getLogger(n).setLevel(level)


def test_verbose_leaves_libraries_that_log_secrets_at_info(levels: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEDI_LOG", raising=False)
    logging.getLogger().setLevel(logging.DEBUG)
    setup_logging(verbose=True)
    assert {"botocore", "py4j"} <= set(QUIET_LIBRARIES)
    for name in QUIET_LIBRARIES:
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
        assert not logging.getLogger(f"{name}.endpoint").isEnabledFor(logging.DEBUG), name
    assert logging.getLogger("gateway.uploader").isEnabledFor(logging.DEBUG)


def test_stedi_log_can_still_ask_for_them_by_name(levels: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEDI_LOG", "botocore=DEBUG")
    setup_logging(verbose=True)
    assert logging.getLogger("botocore.endpoint").isEnabledFor(logging.DEBUG)


def test_pipeline_options_repr_has_no_salt() -> None:
    options = PipelineOptions(salt="very-secret-salt-1234")
    assert "very-secret-salt-1234" not in repr(options) and "very-secret-salt-1234" not in str(options)
    assert options.salt == "very-secret-salt-1234"
