"""One way to borrow or start a Spark session (``cloud_pipeline.session.spark_session``)."""

from __future__ import annotations

from cloud_pipeline.session import spark_session


def test_a_running_session_is_borrowed_and_left_running(spark) -> None:  # type: ignore[no-untyped-def]
    with spark_session("borrower", landing_bytes=0) as borrowed:
        assert borrowed.sparkContext is spark.sparkContext
    # Stopping it would end the session of whoever started it (here, the tests').
    assert spark.range(3).count() == 3


def test_an_incremental_run_is_sized_by_what_it_stages(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cloud_pipeline.storage.s3_cache import open_store

    lake = tmp_path / "lake"
    for key, text in (("customer/landing/a.json", "{}\n" * 10), ("accelerometer/landing/b.json", "{}\n" * 100),
                      ("accelerometer/landing/c.json", "{}\n" * 1000), ("step_trainer/landing/d.json", "{}\n" * 7)):
        (lake / key).parent.mkdir(parents=True, exist_ok=True)
        (lake / key).write_text(text)
    store = open_store(str(lake))
    state = store.load_state()
    assert store.bytes_to_stage(state) == store.landing_bytes() == 3 * 1117
    etags = {e: {o.key: o.etag for o in store.landing_files(e)} for e in ("customer", "accelerometer", "step_trainer")}
    # Seen: everything but c.json, which is the only file to stage.
    state.files = {"customer": etags["customer"], "step_trainer": etags["step_trainer"],
                   "accelerometer": {"accelerometer/landing/b.json": etags["accelerometer"]["accelerometer/landing/b.json"]}}
    assert store.bytes_to_stage(state) == 3 * 1000
    # A staged file that changed re-stages its whole entity.
    state.files["customer"] = {"customer/landing/a.json": "another etag"}
    assert store.bytes_to_stage(state) == 3 * 1000 + 3 * 10
    # One that vanished does too.
    state.files["step_trainer"]["step_trainer/landing/gone.json"] = "x"
    assert store.bytes_to_stage(state) == 3 * 1000 + 3 * 10 + 3 * 7


def test_a_quick_start_session_compiles_a_large_lakes_jobs_for_a_while(spark) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from cloud_pipeline.session import QUICK_START_MAX_BYTES, WHOLE_STAGE_CODEGEN, compiled_for_lake

    assert spark.conf.get(WHOLE_STAGE_CODEGEN) == "false"  # the tests' session is a quick-start one
    with compiled_for_lake(spark, QUICK_START_MAX_BYTES - 1):
        assert spark.conf.get(WHOLE_STAGE_CODEGEN) == "false"  # a small lake: left as it is
    with pytest.raises(RuntimeError), compiled_for_lake(spark, QUICK_START_MAX_BYTES):
        assert spark.conf.get(WHOLE_STAGE_CODEGEN) == "true"
        raise RuntimeError("a failed run")
    assert spark.conf.get(WHOLE_STAGE_CODEGEN) == "false"  # restored, after a failure too
    spark.conf.set(WHOLE_STAGE_CODEGEN, "true")
    try:
        with compiled_for_lake(spark, 0):
            assert spark.conf.get(WHOLE_STAGE_CODEGEN) == "true"  # a compiling session stays so
        assert spark.conf.get(WHOLE_STAGE_CODEGEN) == "true"
    finally:
        spark.conf.set(WHOLE_STAGE_CODEGEN, "false")


def test_a_run_knows_its_lakes_landing_size_from_its_own_listing(spark, lake_dir) -> None:  # type: ignore[no-untyped-def]
    from cloud_pipeline.config import PipelineOptions
    from cloud_pipeline.runner import PipelineRun
    from cloud_pipeline.storage.s3_cache import open_store
    from tests.pipeline.helpers import SALT, small_lake

    small_lake(lake_dir)
    store = open_store(str(lake_dir))
    run = PipelineRun(spark, store, PipelineOptions(salt=SALT))
    run.stage()
    assert run.landing_size == store.landing_bytes() > 0
