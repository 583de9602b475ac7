"""Real data's drift changes nothing it should not: a drifted fleet gives the clean fleet's zones.

The original STEDI data drifted between its published forms (numeric phones, float and
digit-string epoch dates, three-digit birth years).  For any rate of such drift, and of damage to
descriptive fields, over a small fleet, every trusted and curated table equals the clean fleet's
row for row on every column a job relies on, and the drift shows only as coercion and warning
counts in the reconciliation and rows in the warnings table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cloud_pipeline.config import PipelineOptions
from cloud_pipeline.runner import run_pipeline
from cloud_pipeline.storage.catalog import table_frames
from cloud_pipeline.storage.s3_cache import open_store
from simulator.drift import WARNING_KINDS
from simulator.fleet import generate_fleet
from stedi.contract import TABLES, Table
from stedi.lake import FolderLake

OPTIONS = PipelineOptions(salt="drift-salt")
ZONE_TABLES = [t for t in TABLES if t.zone != "landing"]


def _relied_on(table: Table) -> list[str]:
    # Descriptive fields (severity "warn") may be damaged by drift; every other column must match.
    return [f.name for f in table.fields if f.severity == "quarantine"]


def _zones(spark: Any, lake: Path) -> dict[str, list[tuple[Any, ...]]]:
    frames = table_frames(spark, open_store(str(lake)))
    return {t.name: sorted(tuple(r) for r in frames[t.name].select(*_relied_on(t)).collect()) for t in ZONE_TABLES}


@pytest.mark.slow
@settings(max_examples=3, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate), print_blob=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), customers=st.integers(3, 12), rate=st.sampled_from((0.05, 0.3, 1.0)),
       dirty=st.booleans())
def test_a_drifted_fleet_gives_the_clean_fleets_zones(spark: Any, seed: int, customers: int, rate: float,
                                                      dirty: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clean, drifted = Path(tmp) / "clean", Path(tmp) / "drifted"
        generate_fleet(FolderLake(clean), customers, seed=seed, dirty=dirty, customers_per_file=5)
        summary = generate_fleet(FolderLake(drifted), customers, seed=seed, dirty=dirty, drift=rate,
                                 customers_per_file=5)
        want = run_pipeline(spark, str(clean), OPTIONS)
        got = run_pipeline(spark, str(drifted), OPTIONS)

        assert got.tables == want.tables
        assert _zones(spark, drifted) == _zones(spark, clean)
        for name, recon in got.record.reconciliation.items():
            entity = name.removesuffix("_landing")
            base = {k: v for k, v in want.record.reconciliation[name].items() if k not in ("coerced", "with_warnings")}
            assert {k: v for k, v in recon.items() if k not in ("coerced", "with_warnings")} == base, name
            assert recon["coerced"] == summary.drifted_lines.get(f"{entity}.coerced", 0), name
            assert recon["with_warnings"] == summary.drifted_lines.get(f"{entity}.with_warnings", 0), name
            assert want.record.reconciliation[name]["coerced"] == want.record.reconciliation[name]["with_warnings"] == 0

        # One warning per damaged value, in the queryable warnings table; a second run adds none.
        damaged = sum(n for kind, n in summary.drift.items() if kind.split(".")[1] in WARNING_KINDS)
        warnings = table_frames(spark, open_store(str(drifted)))["warnings"]
        assert warnings.count() == damaged
        assert {r.table for r in warnings.select("table").distinct().collect()} <= {"customer_landing"}
        run_pipeline(spark, str(drifted), PipelineOptions(salt="drift-salt", full_refresh=True))
        assert table_frames(spark, open_store(str(drifted)))["warnings"].count() == damaged
