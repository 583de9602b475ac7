"""Fuzz the pipeline with generated landing lakes: a few large corpora of good and malformed
lines through the real pipeline on the session's Spark.  No crash; the reconciliation is
balanced and equal to the model's (every good line trusted, superseded, excluded or a
duplicate; every bad line quarantined under its rule); the quarantine keeps every bad line
with a reason and its file; nothing of a customer without consent reaches a trusted table."""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from cloud_pipeline.config import PipelineOptions
from cloud_pipeline.runner import run_pipeline
from cloud_pipeline.storage.catalog import table_frames
from cloud_pipeline.storage.s3_cache import open_store
from tests.fuzz.landing import NON_UTF8, Corpus, build_corpus, expected_outcome, normalized
from tests.fuzz.tally import tally

OPTIONS = PipelineOptions(salt="fuzz-salt")


def check_lake(spark: Any, corpus: Corpus, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        corpus.write(lake, random.Random(seed))
        result = run_pipeline(spark, str(lake), OPTIONS)
        want = expected_outcome(corpus)
        got = result.record.reconciliation
        assert result.balanced, got
        for name, expected in want["reconciliation"].items():
            assert normalized(got[name]) == normalized(expected), name
        assert result.tables == want["tables"]

        frames = table_frames(spark, open_store(str(lake)))
        quarantine = frames["quarantine"].collect()
        bad = [line for line in corpus.lines if line.rule]
        assert len(quarantine) == len(bad)
        assert all(r.reason and r.rule and r.source_file in corpus.files and r.run_id for r in quarantine)
        readable = Counter((f"{line.entity}_landing", line.rule, line.raw.decode().lstrip("\ufeff")) for line in bad
                           if line.rule != NON_UTF8)
        assert Counter((r.table, r.rule, r.line) for r in quarantine if r.rule != NON_UTF8) == readable
        assert all("\ufffd" in r.line for r in quarantine if r.rule == NON_UTF8)
        # Damage to a descriptive field keeps the line: one warning each, naming its file.
        warnings = frames["warnings"].collect()
        assert len(warnings) == sum(line.warned for line in corpus.lines)
        assert all(w.source_file in corpus.files and w.run_id and w.field for w in warnings)

        consenting = want["consenting"]
        serials = {p["serial"] for p in corpus.people if p["email"] in consenting}
        assert {r.email for r in frames["customer_trusted"].collect()} == consenting
        assert {r.user for r in frames["accelerometer_trusted"].collect()} <= consenting
        assert {r.serialNumber for r in frames["step_trainer_trusted"].collect()} <= serials
        assert {r.serialNumber for r in frames["machine_learning_curated"].collect()} <= serials

        t = tally("pipeline landing lines")
        t.tried += len(corpus.lines)
        t.bad += len(bad)
        t.counted += sum(r["quarantined"] for r in got.values())


@pytest.mark.slow
# No shrinking: each example is a Spark run; a failure prints its seed and shape instead.
@settings(max_examples=3, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate),
          print_blob=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    people=st.integers(2, 8),
    readings=st.integers(100, 600),
    bad_share=st.sampled_from((0.0, 0.05, 0.3)),
    unknown_share=st.sampled_from((0.0, 0.15)),
)
# One fixed lake with many bad lines and strangers, whatever the random examples draw.
@example(seed=20261128, people=6, readings=500, bad_share=0.3, unknown_share=0.15)
def test_generated_landing_lakes_are_fully_accounted(spark: Any, seed: int, people: int, readings: int,
                                                     bad_share: float, unknown_share: float) -> None:
    check_lake(spark, build_corpus(seed, people, readings, bad_share, unknown_share), seed)
