"""One way to borrow or start a Spark session (``cloud_pipeline.session.spark_session``)."""

from __future__ import annotations

from cloud_pipeline.session import spark_session


def test_a_running_session_is_borrowed_and_left_running(spark) -> None:  # type: ignore[no-untyped-def]
    with spark_session("borrower", landing_bytes=0) as borrowed:
        assert borrowed.sparkContext is spark.sparkContext
    # Stopping it would end the session of whoever started it (here, the tests').
    assert spark.range(3).count() == 3
