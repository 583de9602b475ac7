"""The demo's steps, in order: lake, firmware, boards, customers, streaming, stop, catch-up,
pipeline, accounting.  ``stedi/demo.py`` is the command around it (options, progress, output).

The gateway runs twice in this process, as the phone app would:

1. *streaming*: for ``--minutes``, serving every board, pairing the simulated accelerometer,
   spooling and uploading; halfway through, one customer grants research consent;
2. the boards are told to stop sampling (control STOP, over BLE) and report their final
   sequence number: from now on what each board made is fixed;
3. *catch-up*: the gateway connects again, resumes each board after what it already spooled,
   and stops once every board's last reading is spooled; then it uploads everything.

So every reading a board made can land, and the accounting compares the boards' own figures
with the landing zone read back from the lake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stedi.contract import TABLES
from stedi.errors import EXIT_INTERRUPTED
from stedi.settings import DEFAULT_SAMPLE_RATE_HZ
from stedi_app.demo_reconcile import BoardCount, Reconciliation, reconcile_lake
from stedi_app.demo_rig import (
    DemoError,
    boards,
    build_firmware,
    demo_serial,
    flash_boards,
    moto_s3,
    radio,
    stop_sampling,
)

log = logging.getLogger(__name__)

#: A file marking a folder as the demo's own lake, so a re-run may clear it (and nothing else).
MARKER = ".stedi-demo-lake"
REPORT_KEY = "_demo/report.json"
#: The pipeline report (``stedi pipeline report``), written inside the --lake folder.
REPORT_HTML = "_demo/report.html"
#: Longest wait for the catch-up run to spool every board's last reading.
CATCH_UP_S = 90.0
#: The customer-key salt when STEDI_CUSTOMER_KEY_SALT is unset (demo data only).
DEMO_SALT = "stedi-demo-salt"


@dataclass
class DemoOptions:
    boards: int = 3
    minutes: float = 1.0
    lake: Path = Path("demo-lake")
    s3: bool = False
    seed: int = 1
    consent: str = "as-of"
    rate_hz: int = DEFAULT_SAMPLE_RATE_HZ


@dataclass(frozen=True)
class DemoCustomer:
    email: str
    name: str
    phone: str
    birthday: str
    serial: str
    consent: str  # "yes" (at registration), "late" (halfway through streaming), "no"


_PEOPLE = (
    ("Ann Example", "1991-02-03"), ("Bo Sample", "1985-06-07"), ("Cy Demo", "1978-11-30"),
    ("Di Trial", "2001-04-15"), ("Ed Proto", "1969-09-09"), ("Flo Mock", "1994-12-24"), ("Gus Stub", "1982-03-01"),
)
#: Board n's customer consents at registration, never (public only), or halfway through streaming.
_CONSENT_CYCLE = ("yes", "no", "late")


def demo_customers(count: int, seed: int) -> list[DemoCustomer]:
    out = []
    for i in range(count):
        name, birthday = _PEOPLE[i % len(_PEOPLE)]
        first = name.split()[0].lower()
        out.append(DemoCustomer(f"{first}.{i + 1}@demo.example.com", name, f"555-01{i:02d}", birthday,
                                demo_serial(seed, i + 1), _CONSENT_CYCLE[i % len(_CONSENT_CYCLE)]))
    return out


@dataclass
class DemoResult:
    lake: str  # where the gateway landed the data
    pipeline_lake: str  # where the pipeline ran (for an S3 lake: its local cache)
    customers: list[DemoCustomer]
    boards: list[BoardCount]
    reconciliation: Reconciliation
    pipeline: dict[str, Any]  # the pipeline run's reconciliation per landing table
    zones: dict[str, int]
    consent_leaks: int  # rows of non-consenting customers' boards in trusted/curated step tables
    gateway: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    report: str | None = None  # the HTML pipeline report, if it was written

    @property
    def ok(self) -> bool:
        balanced = all(r.get("balanced") for r in self.pipeline.values())
        return (self.reconciliation.exact and balanced and self.consent_leaks == 0
                and all(n > 0 for n in self.zones.values()))

    def as_json(self) -> dict[str, Any]:
        r = self.reconciliation
        return {
            "produced": r.produced, "landed": r.landed, "lost": r.lost, "duplicated": r.duplicated,
            "zones": self.zones,
            "unexpected": r.unexpected, "unreadable": r.unreadable,
            "boards": r.per_board,
            "pipeline_balanced": all(x.get("balanced") for x in self.pipeline.values()),
            "consent_leaks": self.consent_leaks,
            "lake": self.lake, "pipeline_lake": self.pipeline_lake, "report": self.report,
            "seconds": round(self.seconds, 1), "ok": self.ok,
        }


class Steps:
    """How the demo tells the command about its progress (the command draws it)."""

    def step(self, name: str) -> None:  # a new step starts
        pass

    def streaming(self, done_s: float, total_s: float, readings: int, uploaded: int) -> None:
        pass


def prepare_lake_dir(path: Path) -> Path:
    """An empty folder for the lake: a previous demo lake (it has the marker) is cleared; any
    other non-empty folder is refused rather than touched."""
    path = path.expanduser().resolve()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not (path / MARKER).is_file():
            raise DemoError(f"{path} exists and is not a demo lake (no {MARKER} in it): "
                            "give another --lake or remove it")
        log.info("clearing the previous demo lake %s", path)
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("made by `stedi demo`; cleared by the next demo run\n")
    return path


def register(home: Path, customers: list[DemoCustomer]) -> None:
    from gateway.customers import Customers
    from gateway.spool import Spool

    spool = Spool(home)
    try:
        book = Customers(spool)
        for c in customers:
            book.register(email=c.email, name=c.name, phone=c.phone, birthday=c.birthday, serial=c.serial)
            if c.consent == "yes":
                book.consent(c.email, "grant", "research")
            elif c.consent == "no":
                book.consent(c.email, "grant", "public")  # shares publicly, not with research
    finally:
        spool.close()


def _gateway(home: Path, lake_url: str, radio_url: str) -> Any:
    from gateway.config import load
    from gateway.service import Gateway

    # Short scans and batches: a few minutes of demo should show several uploads.
    config = load(home, {"lake": lake_url, "ble": radio_url, "accel": "sim", "scan_s": 1.0,
                         "batch_age_s": 5.0, "status_s": 2.0})
    return Gateway(home, config)


def stream(home: Path, lake_url: str, radio_url: str, seconds: float, customers: list[DemoCustomer],
           steps: Steps) -> dict[str, Any]:
    """The gateway serves the boards for ``seconds``; late customers consent halfway through."""
    from gateway.customers import Customers

    gw = _gateway(home, lake_url, radio_url)
    late = [c for c in customers if c.consent == "late"]
    log.info("streaming for %.0f s: gateway %s, lake %s, simulated accelerometers", seconds, gw.id, lake_url)
    started = time.monotonic()

    def tick(g: Any) -> None:
        elapsed = time.monotonic() - started
        if g.phase == "running":
            while late and elapsed >= seconds / 2:
                c = late.pop()
                Customers(g.spool).consent(c.email, "grant", "research")
                log.info("%s granted research consent %.0f s into streaming", c.email, elapsed)
            steps.streaming(min(elapsed, seconds), seconds, g.ingest.counters.readings,
                            g.spool.stats().uploaded_readings)

    code = asyncio.run(gw.run(duration=seconds, on_tick=tick))
    if code != 0 or time.monotonic() - started < seconds - 1.0:
        raise KeyboardInterrupt if code in (0, EXIT_INTERRUPTED) else DemoError(f"the gateway stopped with status {code}: {gw.error}")
    return {"readings": gw.ingest.counters.readings, "duplicates_dropped": gw.ingest.counters.duplicates}


def catch_up(home: Path, lake_url: str, radio_url: str, counts: list[BoardCount]) -> dict[str, Any]:
    """Serve the stopped boards again until each one's last reading is spooled, then upload."""
    gw = _gateway(home, lake_url, radio_url)
    targets = {c.serial: (c.boot_id, c.next_seq - 1) for c in counts if c.next_seq > 0}
    started = time.monotonic()

    def tick(g: Any) -> None:
        if g.stop_readings.is_set() or g.phase != "running":
            return
        behind = {s: t for s, (b, t) in targets.items() if (g.spool.watermark(s, b) or -1) < t}
        if not behind:
            log.info("every board's last reading is spooled: uploading and stopping")
            g.request_stop()
        elif time.monotonic() - started > CATCH_UP_S:
            log.warning("catch-up gave up after %.0f s; boards still behind: %s", CATCH_UP_S, behind)
            g.request_stop()

    code = asyncio.run(gw.run(duration=CATCH_UP_S + 30, on_tick=tick))
    if code == EXIT_INTERRUPTED:
        raise KeyboardInterrupt
    if code != 0:
        raise DemoError(f"the catch-up gateway run stopped with status {code}: {gw.error}")
    return {"readings": gw.ingest.counters.readings, "seconds": round(time.monotonic() - started, 1)}


def mirror_down(lake_url: str, folder: Path) -> int:
    """Copy every object of an S3 lake into a folder lake; returns how many."""
    from stedi.lake import open_lake

    src, dst = open_lake(lake_url), open_lake(folder)
    objects = src.list("")
    for obj in objects:
        dst.put(obj.key, src.get(obj.key))
    return len(objects)


def pipeline(lake_url: str, consent: str, no_consent_serials: list[str],
             progress: Callable[[str], None], cache_root: Path | None = None, report: Path | None = None,
             ) -> tuple[dict[str, Any], dict[str, int], int]:
    """Run the five jobs in a local Spark session; count every table as ``stedi query`` sees it;
    write the HTML report to ``report`` in the same session.

    An S3 lake is synced into a cache under ``cache_root`` and the run publishes back to S3."""
    from cloud_pipeline.config import SALT_ENV, PipelineOptions
    from cloud_pipeline.runner import PipelineRun
    from cloud_pipeline.session import spark_session
    from cloud_pipeline.storage.catalog import table_frames
    from cloud_pipeline.storage.s3_cache import open_store

    salt = os.environ.get(SALT_ENV) or DEMO_SALT
    # Spark's driver on loopback like every other server of the demo (and no hostname warning).
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with spark_session(app_name="stedi-demo") as spark:
        store = open_store(lake_url, "run", cache_root=cache_root)
        options = PipelineOptions(consent="as-of" if consent == "as-of" else "all", salt=salt)
        result = PipelineRun(spark, store, options, progress=progress).run()
        progress("counting every table")
        frames = table_frames(spark, store)
        zones = {t.name: int(frames[t.name].count()) for t in TABLES}
        leaks = 0
        if no_consent_serials:
            for name in ("step_trainer_trusted", "machine_learning_curated"):
                leaks += int(frames[name].where(frames[name]["serialNumber"].isin(no_consent_serials)).count())
        if report is not None:
            from cloud_pipeline.report.html import write_report
            from stedi.lake import LakeError

            progress("writing the report")
            try:
                write_report(spark, store, report)
            except (LakeError, OSError) as exc:  # the demo's figures stand without the page
                log.warning("the pipeline report was not written: %s", exc)
    return result.record.reconciliation, zones, leaks


def run_demo(opts: DemoOptions, steps: Steps) -> DemoResult:
    from stedi.lake import open_lake

    started = time.monotonic()
    customers = demo_customers(opts.boards, opts.seed)
    serials = [c.serial for c in customers]
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="stedi-demo-"))
        stack.callback(shutil.rmtree, work, True)
        folder = prepare_lake_dir(opts.lake)
        lake_url = str(folder)
        if opts.s3:
            steps.step("starting moto's S3 server")
            lake_url = stack.enter_context(moto_s3(work))
        steps.step("building the firmware (mpy-cross)")
        built = build_firmware(work / "build")
        home = work / "gateway"
        # Radio and boards live only while the gateway needs them: off before Spark wants the cores.
        with contextlib.ExitStack() as hardware:
            steps.step(f"starting the virtual radio and {opts.boards} virtual boards")
            air = hardware.enter_context(radio(opts.seed))
            powered = hardware.enter_context(boards(work, air.hostport, opts.boards))
            steps.step(f"flashing {opts.boards} boards with mpremote")
            flash_boards([b.url for b in powered], serials, built, opts.rate_hz)
            steps.step("registering customers")
            register(home, customers)
            steps.step("streaming: boards -> radio -> gateway -> spool -> lake")
            streamed = stream(home, lake_url, air.url, opts.minutes * 60, customers, steps)
            steps.step("stopping the boards' sampling (control STOP over BLE)")
            counts = asyncio.run(stop_sampling(air.url, serials))
            steps.step("catch-up: the gateway collects every reading the boards still hold")
            caught = catch_up(home, lake_url, air.url, counts)
        steps.step("reconciling: boards' sequence numbers against step_trainer landing")
        lake = open_lake(lake_url)
        recon = reconcile_lake(lake, counts)
        pipeline_url = lake_url
        if opts.s3:
            from cloud_pipeline.storage.s3_cache import cache_folder
            from stedi.lake import S3Lake

            # The pipeline runs on the S3 lake itself, through a local cache kept in --lake
            # (queryable as a folder lake once moto is gone); it publishes back to S3.
            assert isinstance(lake, S3Lake)
            pipeline_url = str(cache_folder(lake, folder) / "lake")
        steps.step("pipeline: landing -> trusted -> curated (Spark)")
        no_consent = [c.serial for c in customers if c.consent == "no"]
        report = folder / REPORT_HTML
        recon_pipeline, zones, leaks = pipeline(lake_url, opts.consent, no_consent,
                                                lambda s: steps.step(f"pipeline: {s}"), cache_root=folder,
                                                report=report)
        result = DemoResult(lake_url, pipeline_url, customers, counts, recon, recon_pipeline, zones, leaks,
                            {"streaming": streamed, "catch_up": caught},
                            report=str(report) if report.is_file() else None)
        result.seconds = time.monotonic() - started
        lake.put(REPORT_KEY, (json.dumps(result.as_json(), indent=1) + "\n").encode())
        log.info("demo report written to %s/%s", lake_url, REPORT_KEY)
        return result
    raise AssertionError("unreachable")  # pragma: no cover - the with block returns
