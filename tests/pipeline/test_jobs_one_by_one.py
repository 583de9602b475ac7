"""Jobs run one at a time (the Glue trigger chain, ``stedi pipeline run --jobs X``) build exactly
the tables of one run of all jobs, pass after pass; a table is kept only when nothing it reads changed."""

from __future__ import annotations

import json
from pathlib import Path

from cloud_pipeline.aws.glue.entry import run_job
from cloud_pipeline.config import JOB_ORDER, JOB_OUTPUT, PipelineOptions
from cloud_pipeline.runner import RunResult, run_pipeline
from cloud_pipeline.storage.catalog import table_frames
from cloud_pipeline.storage.s3_cache import open_store
from cloud_pipeline.storage.state import TableInputs, TableVersion
from tests.pipeline.helpers import DAY, SALT, T0, accel, customer, rows, small_lake, step, write_jsonl

OPTIONS = PipelineOptions(salt=SALT)


def _one_job(spark, lake: Path, job: str) -> RunResult:  # type: ignore[no-untyped-def]
    # Alternately the Glue scripts' entry and the runner's (what `--jobs` runs): one sequence, both ways.
    options = PipelineOptions(salt=SALT, jobs=(job,))
    if JOB_ORDER.index(job) % 2 == 0:
        return run_job(spark, str(lake), options)
    return run_pipeline(spark, str(lake), options)


def _tables(spark, lake: Path) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    frames = table_frames(spark, open_store(str(lake)))
    tables = {name: (frames[name].columns, rows(frames[name])) for name in JOB_OUTPUT.values()}
    quarantine = rows(frames["quarantine"], "table", "rule", "reason", "source_file", "line")
    return tables | {"quarantine": quarantine}


def _deliver(lakes: tuple[Path, ...], name: str, files: dict[str, list]) -> None:  # type: ignore[type-arg]
    for lake in lakes:
        for entity, records in files.items():
            write_jsonl(lake, f"{entity}/landing/{name}.json", records)


def test_jobs_one_by_one_equal_one_run_of_all_jobs(spark, tmp_path: Path) -> None:
    chain, whole = tmp_path / "chain", tmp_path / "whole"
    for lake in (chain, whole):
        small_lake(lake)
    deliveries = [
        {},
        # New customers (dan consents, eve does not) with readings, and consent changes: bob gives his
        # consent, ann's latest record takes hers back.
        {"customer": [customer("dan", "S-DAN", T0), customer("eve", "S-EVE", None),
                      customer("bob", "S-BOB", T0, updated=T0 + DAY), customer("ann", "S-ANN", None, updated=T0 + 2 * DAY)],
         "accelerometer": [accel("dan", T0 + 3000, x=3.0), accel("dan", T0 + 4000, x=5.0), accel("bob", T0 + 3000, x=4.0),
                           accel("eve", T0 + 3000), "{"],
         "step_trainer": [step("S-DAN", T0 + 3000, 33), step("S-DAN", T0 + 4000, 66), step("S-BOB", T0 + 3000, 44),
                          step("S-EVE", T0 + 3000, 55)]},
    ]
    for number, files in enumerate(deliveries):
        _deliver((chain, whole), f"pass{number}", files)
        for job in JOB_ORDER:
            assert _one_job(spark, chain, job).balanced
        assert run_pipeline(spark, str(whole), OPTIONS).balanced
        got, want = _tables(spark, chain), _tables(spark, whole)
        assert got == want, f"pass {number}"
    final = _tables(spark, whole)
    # Not a comparison of empty tables: the second pass has dan's and bob's pairs, and no ann.
    ml = final["machine_learning_curated"][1]
    assert len(ml) == 4 and final["customer_curated"][1] and final["quarantine"]
    emails = {r[1] for r in final["customer_trusted"][1]}
    assert emails == {"bob@example.com", "dan@example.com"}


def test_a_job_keeps_its_table_only_while_nothing_it_reads_changed(spark, lake_dir: Path) -> None:
    small_lake(lake_dir)
    run_pipeline(spark, str(lake_dir), OPTIONS)
    store = open_store(str(lake_dir))
    built = store.load_state().tables

    # New readings only: the customer job stages them (every entity is staged by the first job that
    # runs) but keeps its own table; the jobs that read readings, directly or not, rebuild.
    write_jsonl(lake_dir, "accelerometer/landing/a2.json", [accel("ann", T0 + 9000, x=7.0)])
    first = run_pipeline(spark, str(lake_dir), PipelineOptions(salt=SALT, jobs=("customer_landing_to_trusted",)))
    assert first.record.new_landing_files["accelerometer"] == 1 and first.record.unchanged_since is None
    assert first.record.kept == ("customer_landing_to_trusted",)
    after_first = store.load_state()
    assert after_first.tables == built  # no table written
    assert after_first.staging["accelerometer"][-1] == first.run_id and after_first.last_run == first.run_id

    rest = run_pipeline(spark, str(lake_dir), PipelineOptions(salt=SALT, jobs=JOB_ORDER[1:]))
    after = store.load_state().tables
    rebuilt = {name for name in after if after[name].version != built[name].version}
    # customer_curated reads accelerometer_trusted, the step job customer_curated, the ML job both.
    assert rebuilt == {"accelerometer_trusted", "customer_curated", "step_trainer_trusted",
                       "machine_learning_curated"}
    assert rest.record.kept == ()
    assert rest.tables["accelerometer_trusted"] == built["accelerometer_trusted"].rows + 1

    # Nothing new for the ML job: it keeps its table, commits nothing, and says which run built it.
    state_file = (lake_dir / "_pipeline/state/pipeline.json").read_bytes()
    again = run_pipeline(spark, str(lake_dir), PipelineOptions(salt=SALT, jobs=("machine_learning_curated",)))
    assert again.record.unchanged_since == rest.run_id
    assert (lake_dir / "_pipeline/state/pipeline.json").read_bytes() == state_file
    # Another salt changes what the ML job builds: it rebuilds, though no file is new.
    other = run_pipeline(spark, str(lake_dir), PipelineOptions(salt="other", jobs=("machine_learning_curated",)))
    assert other.record.unchanged_since is None and other.record.kept == ()
    assert store.load_state().tables["machine_learning_curated"].version == f"v-{other.run_id}"


def test_a_state_from_before_inputs_were_recorded_reads_and_writes_back_unchanged() -> None:
    # Lakes built before this state had inputs and previous versions: their tables read with
    # neither (so the next run rebuilds them once: ``up_to_date`` needs inputs) and write back as they were.
    old = {"version": "v-r1", "format": "parquet", "run_id": "r1", "rows": 3,
           "options": {"consent": "all", "tolerance_ms": 0, "format": "parquet"}, "salt_fingerprint": "ab"}
    table = TableVersion.from_dict(old)
    assert (table.inputs, table.previous) == (None, None) and table.to_dict() == old
    new = TableVersion("v-r2", "parquet", "r2", 3, inputs=TableInputs({"customer": ("r1", "r2")}, {"x": "v-r1"}),
                       previous="v-r1")
    assert TableVersion.from_dict(json.loads(json.dumps(new.to_dict()))) == new
    assert new.kept_versions() == {"v-r1", "v-r2"}


def test_a_glue_job_refuses_a_lake_another_writer_holds(spark, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from cloud_pipeline.aws.glue.entry import main
    from cloud_pipeline.storage.lock import writer_lock
    from cloud_pipeline.storage.state import STATE_KEY
    from stedi.lake import open_lake

    lake = tmp_path / "lake"
    _deliver((lake,), "day1", {"customer": [customer("Ann", "s-a", T0)]})
    monkeypatch.setenv("STEDI_CUSTOMER_KEY_SALT", SALT)  # spark-submit's salt (no secret off Glue)
    args = ["--JOB_NAME", "stedi-customer", "--lake", str(lake)]
    with writer_lock(open_lake(str(lake)), "laptop-run", "run"):
        status = main("customer_landing_to_trusted", args)
        err = capsys.readouterr().err
        assert status == 4 and "holds this lake" in err and "laptop-run" in err, err
        assert not (lake / STATE_KEY).exists(), "the job committed over the lock's holder"
    # the lake free again, the same job runs and commits, and leaves the lock free behind it
    assert main("customer_landing_to_trusted", args) == 0
    with writer_lock(open_lake(str(lake)), "next", "run"):
        pass
