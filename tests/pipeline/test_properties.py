"""Property tests over random populations: consent never leaks, the ML table has no personal data."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_pipeline.transforms import jobs
from stedi.contract import MACHINE_LEARNING_CURATED, PERSONAL_COLUMNS
from tests.pipeline.helpers import SALT, T0, accel, customer, frame, step

# One customer: the consent value of each of its records, oldest first (None = no consent), and
# the reading slots (shared by all customers, so clocks collide across customers).
_customer = st.tuples(
    st.lists(st.one_of(st.none(), st.integers(0, 4).map(lambda k: T0 + k * 1000)), min_size=1, max_size=3),
    st.sets(st.integers(0, 5), max_size=4),
    st.sets(st.integers(0, 5), max_size=4),
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(population=st.lists(_customer, min_size=1, max_size=5), as_of=st.booleans())
def test_no_row_of_a_customer_without_consent_reaches_trusted_or_curated(spark, population, as_of) -> None:
    customers, readings, steps = [], [], []
    consenting: set[str] = set()
    for i, (consents, accel_slots, step_slots) in enumerate(population):
        name, serial = f"c{i}", f"S{i}"
        for k, consent in enumerate(consents):
            customers.append(customer(name, serial, consent, updated=T0 + k))
        if consents[-1] is not None:  # the latest record decides
            consenting.add(f"{name}@example.com")
        readings += [accel(name, T0 + s * 1000, x=float(i)) for s in accel_slots]
        steps += [step(serial, T0 + s * 1000, distance=i) for s in step_slots]
    consent = "as-of" if as_of else "all"
    classified = jobs.classify_customers(frame(spark, "customer_landing", customers))
    latest = jobs.latest_customers(classified)
    ct = jobs.trusted_rows(classified, jobs.CUSTOMER_COLUMNS)
    readings_landing = frame(spark, "accelerometer_landing", readings)
    at = jobs.trusted_rows(jobs.classify_accelerometer(readings_landing, latest, consent), jobs.ACCELEROMETER_COLUMNS)
    cc = jobs.customer_trusted_to_curated(ct, at)
    steps_landing = frame(spark, "step_trainer_landing", steps)
    stt = jobs.trusted_rows(jobs.classify_step_trainer(steps_landing, latest, cc, consent), jobs.STEP_TRAINER_COLUMNS)
    ml = jobs.machine_learning_curated(stt, at, cc, salt=SALT)

    assert {r.email for r in ct.collect()} == consenting
    assert {r.user for r in at.collect()} <= consenting
    assert {r.email for r in cc.collect()} <= consenting
    allowed_serials = {f"S{e[1:].split('@')[0]}" for e in consenting}
    assert {r.serialNumber for r in stt.collect()} <= allowed_serials
    assert ml.columns == list(MACHINE_LEARNING_CURATED.field_names)
    assert not set(ml.columns) & PERSONAL_COLUMNS
    for r in ml.collect():
        # x and distance both carry the customer's index: a row pairs one customer's readings.
        assert r.serialNumber in allowed_serials
        assert r.x == float(r.distanceFromObject)
        assert r.timestamp == r.sensorReadingTime
