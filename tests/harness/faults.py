"""The fault suite's harness: the whole chain under faults, then an exact accounting.

One run (:func:`run_faults`) starts the virtual radio with seeded loss and random
disconnects, N virtual boards running the real firmware, and the gateway as a separate
process (``stedi gateway run``, so a SIGKILL is a real one) landing into moto's S3 server
behind a switchable TCP proxy (an outage is the proxy off) or into a folder.  A seeded
schedule then injects the faults: SIGKILLs of the gateway (each followed by a restart),
S3 outages, hard resets of a board, jumps of the phone's clock.  At the end the boards are
told to stop sampling and report their last sequence number, the gateway catches up, and
landing is read back from the lake and compared by (serial, boot id, seq) with what the
boards made (``stedi_app.demo_reconcile``).  Optionally the Spark pipeline runs and the
trusted and curated step rows are compared with the landed readings of consenting customers.

What "exact" means after a board reset: a reset empties the board's RAM, so the readings it
made but had not yet had acknowledged (seq ``oldest .. next - 1`` of the dying boot, read
from the board's REPL just before the reset) may be gone for good.  Those missing readings
are counted apart as ``lost_on_board_reset``; any other missing reading is ``lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stedi.lake import FolderLake, S3Lake, open_lake
from stedi_app.demo_reconcile import landing_lines
from stedi_app.demo_rig import DemoError, boards, build_firmware, moto_s3, radio, stop_sampling
from stedi_app.demo_run import catch_up, demo_customers, register

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
#: Debug lines of the gateway that tell what it was doing when it was killed (their events).
PHASE_LOGGERS = "gateway.spool=DEBUG,gateway.uploader=DEBUG"
Key = tuple[str, int, int]  # (serial, bootId, seq)


# ---- the plan -------------------------------------------------------------------------

@dataclass
class FaultPlan:
    """What to inject, when (seconds from the start of streaming); seeded, so a run replays."""

    seconds: float = 30.0  # streaming time under faults
    boards: int = 2
    seed: int = 1
    s3: bool = True  # moto's S3 server behind the proxy; else a folder lake
    loss: float = 0.0  # radio: probability an unacknowledged packet is lost
    disconnect_per_s: float = 0.0  # radio: probability per second each link drops
    kill_every_s: float = 0.0  # mean time between SIGKILLs of the gateway (0: none)
    commit_delay_s: float = 0.0  # gateway spool_commit_delay_s: widens the commit window for kills
    upload_delay_s: float = 0.0  # proxy delay per chunk: widens the upload window for kills
    outages: list[tuple[float, float]] = field(default_factory=list)  # (start, length) of S3 outages
    resets: list[float] = field(default_factory=list)  # times of board hard resets
    clock_jumps: list[tuple[float, float]] = field(default_factory=list)  # (time, jump s) of the phone clock
    batch_age_s: float = 2.0
    rate_hz: int = 20
    pipeline: bool = False  # run the Spark pipeline and check trusted/curated


@dataclass(frozen=True)
class Fault:
    at: float
    kind: str  # kill | outage | reset | clock
    value: float = 0.0  # outage length, clock jump (s), board index


def schedule(plan: FaultPlan) -> list[Fault]:
    """Every fault of the plan in time order; kill times drawn from the seed."""
    rng = random.Random(plan.seed)
    faults = [Fault(start, "outage", length) for start, length in plan.outages]
    faults += [Fault(t, "reset", float(rng.randrange(plan.boards))) for t in plan.resets]
    faults += [Fault(t, "clock", jump) for t, jump in plan.clock_jumps]
    if plan.kill_every_s > 0:
        t = plan.kill_every_s * rng.uniform(0.5, 1.5)
        while t < plan.seconds - 2.0:
            faults.append(Fault(t, "kill"))
            t += plan.kill_every_s * rng.uniform(0.5, 1.5)
    return sorted(faults, key=lambda f: (f.at, f.kind))


# ---- the results ------------------------------------------------------------------------

@dataclass
class BootCount:
    """One boot of one board: what it made, and for a boot ended by a reset, what died in RAM."""

    serial: str
    boot_id: int
    next_seq: int  # readings made in this boot: seq 0 .. next_seq - 1
    dropped: int = 0  # thrown away by the board's full ring buffer
    unacked_from: int | None = None  # reset boots: oldest unacknowledged seq when RAM was lost


@dataclass
class Figures:
    produced: int = 0
    landed: int = 0
    lost: int = 0
    lost_on_board_reset: int = 0
    duplicated: int = 0
    unexpected: int = 0
    unreadable: int = 0
    board_dropped: int = 0
    disconnects_injected: int = 0
    frames_dropped: int = 0  # notifications lost with a dropped link (in flight, or sent after it went)
    packets_lost: int = 0  # packets the air lost: adverts missed, data packets retransmitted
    kills: list[str] = field(default_factory=list)  # the phase each kill hit
    outages_s: list[float] = field(default_factory=list)
    resets: int = 0
    clock_jumps_s: list[float] = field(default_factory=list)
    restarts: int = 0
    gateway_exits: list[int] = field(default_factory=list)  # exit codes of runs that ended on their own
    boots: list[dict[str, Any]] = field(default_factory=list)
    curated: dict[str, Any] | None = None
    seconds: float = 0.0
    work: str = ""

    @property
    def kills_by_phase(self) -> dict[str, int]:
        return dict(Counter(self.kills))

    @property
    def exact(self) -> bool:
        landing_ok = (self.lost == 0 and self.duplicated == 0 and self.unexpected == 0 and self.unreadable == 0
                      and self.board_dropped == 0)
        return landing_ok and (self.curated is None or bool(self.curated.get("exact")))

    def as_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(kills=len(self.kills), kills_by_phase=self.kills_by_phase, outage_total_s=round(sum(self.outages_s), 1),
                 longest_outage_s=round(max(self.outages_s, default=0.0), 1), exact=self.exact)
        d.pop("outages_s")
        d["outages"] = [round(x, 1) for x in self.outages_s]
        return d


# ---- the gateway as a process ------------------------------------------------------------

def phase_at_end(log_text: str) -> str:
    """What the gateway was doing when its log stops: ``commit`` (a spool transaction begun
    and not committed), ``upload`` (a put begun and not finished), both, or ``between`` (frames
    arriving, acknowledgements, connecting: no commit or put in progress).

    The log is the gateway's JSON lines (STEDI_LOG_FORMAT=json); the events are read from their
    structured fields (``event``, ``state``, ``key``), never from the wording of a message."""
    from gateway.spool import COMMIT_EVENT
    from gateway.uploader import PUT_EVENT

    commit_open = False
    puts_open: set[str] = set()
    for line in log_text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # not a log record: something else on stderr, or the line the kill cut short
        if not isinstance(record, dict):
            continue
        if record.get("event") == COMMIT_EVENT:
            commit_open = record["state"] == "begins"
        elif record.get("event") == PUT_EVENT:
            if record["state"] == "begins":
                puts_open.add(record["key"])
            else:
                puts_open.discard(record["key"])
    phases = [name for name, on in (("commit", commit_open), ("upload", bool(puts_open))) if on]
    return "+".join(phases) or "between"


class GatewayProcess:
    """``stedi gateway run`` in its own process: started, SIGKILLed, restarted, stopped."""

    def __init__(self, home: Path, radio_url: str, lake_url: str, env: dict[str, str], logs: Path):
        self.home, self.radio_url, self.lake_url, self.env, self.logs = home, radio_url, lake_url, env, logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def log_path(self) -> Path:
        return self.logs / f"gateway-{self.runs}.log"

    def start(self) -> None:
        self.runs += 1
        argv = [sys.executable, "-m", "stedi_app.cli", "gateway", "run", "--home", str(self.home), "--ble",
                self.radio_url, "--lake", self.lake_url, "--no-live"]
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=self.env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=out,
                                         start_new_session=True)
        log.info("gateway run %d started (pid %d)", self.runs, self.proc.pid)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> str:
        """SIGKILL; returns the phase the gateway was in (from its log, read after it died)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        phase = phase_at_end(self.log_path.read_text(errors="replace"))
        log.info("gateway run %d SIGKILLed during %s", self.runs, phase)
        return phase

    def stop(self, timeout: float) -> int:
        """SIGTERM: stop taking readings, upload everything spooled, exit."""
        if self.proc is None or self.proc.poll() is not None:
            return 0 if self.proc is None else int(self.proc.returncode)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return int(self.proc.wait(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise DemoError(f"the gateway did not drain within {timeout:.0f} s (log {self.log_path})") from None

    def close(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()


# ---- boards ------------------------------------------------------------------------------

def flash_dirs(work: Path, serials: list[str], rate_hz: int) -> None:
    """Each board's flash holds the firmware as ``stedi firmware build`` makes it, with its own
    config.json, before it powers up (the demo flashes with mpremote; the fault runs want the
    seconds that takes)."""
    from firmware.deploy import make_config

    built = build_firmware(work / "build")
    template = json.loads((built.out / "config.json").read_text())
    for n, serial in enumerate(serials, 1):
        flash = work / f"board-{n}"
        shutil.copytree(built.out, flash, dirs_exist_ok=True)
        (flash / "config.json").write_text(json.dumps(make_config(template, serial, "sim", rate_hz)))


_RESET_LINE = re.compile(r"STEDI-RESET (\d+) (\d+) (\d+) (\d+)")


def reset_board(url: str, serial: str) -> BootCount:
    """Hard reset through the REPL, like a person with mpremote: Ctrl-C stops the firmware,
    the board's figures are read (``board`` is a global of main.py; ``resume``: no soft reset
    before, which would clear it), then ``machine.reset()``."""
    from firmware.deploy import mpremote

    out = mpremote(url, "resume", "exec",
                   "print('STEDI-RESET %d %d %d %d' % (board.boot_id, board.ring.oldest, board.ring.next, "
                   "board.ring.dropped))", "reset", timeout=60)
    m = _RESET_LINE.search(out)
    if m is None:
        raise DemoError(f"board {serial} did not report its figures before the reset: {out[-300:]!r}")
    boot, oldest, nxt, dropped = (int(g) for g in m.groups())
    log.info("board %s reset: boot %d had made seq 0..%d, seq %d.. not acknowledged (die with the RAM)",
             serial, boot, nxt - 1, oldest)
    return BootCount(serial, boot, nxt, dropped, unacked_from=oldest)


# ---- the accounting ----------------------------------------------------------------------

def step_rows(lake: FolderLake | S3Lake) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    bad = 0
    for line in landing_lines(lake, "step_trainer"):
        try:
            r = json.loads(line)
            rows.append({"serial": str(r["serialNumber"]), "boot": int(r["bootId"]), "seq": int(r["seq"]),
                         "t": int(r["sensorReadingTime"])})
        except (ValueError, KeyError, TypeError):
            bad += 1
    return rows, bad


def account(boots: list[BootCount], rows: list[dict[str, Any]], unreadable: int, figures: Figures) -> None:
    """Fill the landing figures: by (serial, boot, seq) against what each boot made."""
    counts = Counter((r["serial"], r["boot"], r["seq"]) for r in rows)
    known: dict[tuple[str, int], BootCount] = {(b.serial, b.boot_id): b for b in boots}
    for b in boots:
        have = {seq for (s, boot, seq) in counts if s == b.serial and boot == b.boot_id}
        missing = [s for s in range(b.next_seq) if s not in have]
        died = [s for s in missing if b.unacked_from is not None and s >= b.unacked_from]
        landed = sum(n for (s, boot, _q), n in counts.items() if s == b.serial and boot == b.boot_id)
        figures.boots.append({"serial": b.serial, "boot": b.boot_id, "produced": b.next_seq, "landed": landed,
                              "lost": len(missing) - len(died), "lost_on_board_reset": len(died),
                              "duplicated": landed - len(have), "board_dropped": b.dropped,
                              "reset": b.unacked_from is not None})
        figures.produced += b.next_seq
        figures.lost += len(missing) - len(died)
        figures.lost_on_board_reset += len(died)
        figures.board_dropped += b.dropped
    figures.landed = sum(counts.values())
    figures.duplicated = sum(n - 1 for n in counts.values())
    figures.unexpected = sum(n for (s, boot, seq), n in counts.items()
                             if not (0 <= seq < getattr(known.get((s, boot)), "next_seq", 0)))
    figures.unreadable = unreadable


def consent_dates(lake: FolderLake | S3Lake) -> dict[str, int | None]:
    """Research consent date per serial from the customers' latest landing records."""
    latest: dict[str, dict[str, Any]] = {}
    for line in landing_lines(lake, "customer"):
        r = json.loads(line)
        if r["email"] not in latest or r["lastUpdateDate"] >= latest[r["email"]]["lastUpdateDate"]:
            latest[r["email"]] = r
    return {r["serialNumber"]: r["shareWithResearchAsOfDate"] for r in latest.values()}


def check_curated(lake_url: str, work: Path, rows: list[dict[str, Any]], progress: Callable[[str], None]) -> dict[str, Any]:
    """Run the pipeline (consent as-of) and compare step_trainer_trusted and
    machine_learning_curated with the landed readings of consenting customers taken from
    their consent date on: the same (serial, boot, seq), each exactly once."""
    from cloud_pipeline.config import PipelineOptions
    from cloud_pipeline.runner import run_pipeline
    from cloud_pipeline.session import spark_session
    from cloud_pipeline.storage.catalog import table_frames
    from cloud_pipeline.storage.s3_cache import open_store
    from stedi.lake import LakeError
    from stedi_app.demo_run import DEMO_SALT, mirror_down

    pipeline_url = lake_url
    if lake_url.startswith("s3://"):
        try:
            open_store(lake_url)
        except LakeError:
            folder = work / "pipeline-lake"
            mirror_down(lake_url, folder)
            pipeline_url = str(folder)
    consent = consent_dates(open_lake(lake_url))
    expected = {(r["serial"], r["boot"], r["seq"]) for r in rows
                if consent.get(r["serial"]) is not None and r["t"] >= int(consent[r["serial"]] or 0)}
    excluded = len({(r["serial"], r["boot"], r["seq"]) for r in rows}) - len(expected)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with spark_session(app_name="stedi-faults") as spark:
        progress("pipeline: landing -> trusted -> curated (Spark)")
        run_pipeline(spark, pipeline_url, PipelineOptions(consent="as-of", salt=DEMO_SALT), progress=progress)
        frames = table_frames(spark, open_store(pipeline_url))
        out: dict[str, Any] = {"expected": len(expected), "excluded_by_consent": excluded}
        exact = True
        for name in ("step_trainer_trusted", "machine_learning_curated"):
            got = [(str(r[0]), int(r[1]), int(r[2]))
                   for r in frames[name].select("serialNumber", "bootId", "seq").collect()]
            have = set(got)
            figures = {"rows": len(got), "missing": len(expected - have), "extra": len(have - expected),
                       "duplicated": len(got) - len(have)}
            out[name] = figures
            exact = exact and figures["missing"] == 0 and figures["extra"] == 0 and figures["duplicated"] == 0
        out["exact"] = exact
    return out


# ---- the run -----------------------------------------------------------------------------

def _gateway_toml(home: Path, plan: FaultPlan, clock_file: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "gateway.toml").write_text(
        "[gateway]\n"
        'accel = "sim"\n'
        "scan_s = 0.5\n"
        "status_s = 1.0\n"
        f"batch_age_s = {plan.batch_age_s}\n"
        f'clock = "offset-file:{clock_file}"\n'
        f"spool_commit_delay_s = {plan.commit_delay_s}\n"
    )


@contextlib.contextmanager
def _s3_behind_proxy(work: Path) -> Iterator[tuple[str, Any]]:
    from simulator.tcp_proxy import TcpProxy

    with moto_s3(work) as lake_url:
        port = int(os.environ["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
        proxy = TcpProxy(port)
        try:
            yield lake_url, proxy
        finally:
            proxy.close()


def run_faults(plan: FaultPlan, progress: Callable[[str], None] = lambda _m: None,
               keep: Path | None = None) -> Figures:
    """Run the plan; the figures say what was injected and how every reading ended."""
    started = time.monotonic()
    figures = Figures()
    faults = schedule(plan)
    customers = demo_customers(plan.boards, plan.seed)
    serials = [c.serial for c in customers]
    with contextlib.ExitStack() as stack:
        work = keep or Path(tempfile.mkdtemp(prefix="stedi-faults-"))
        work.mkdir(parents=True, exist_ok=True)
        figures.work = str(work)
        if keep is None:
            stack.callback(shutil.rmtree, work, True)
        proxy: Any = None
        if plan.s3:
            lake_url, proxy = stack.enter_context(_s3_behind_proxy(work))
            proxy.delay_s = plan.upload_delay_s
        else:
            lake_url = str(work / "lake")
        home = work / "gateway"
        clock_file = work / "clock-offset-ms"
        clock_file.write_text("0\n")
        _gateway_toml(home, plan, clock_file)
        env = dict(os.environ, PYTHONPATH=str(REPO), STEDI_LOG=PHASE_LOGGERS, STEDI_LOG_FORMAT="json")
        if proxy is not None:
            env["AWS_ENDPOINT_URL"] = proxy.url
        progress("building the firmware and powering up the boards")
        flash_dirs(work, serials, plan.rate_hz)
        register(home, customers)
        boots: list[BootCount] = []
        with contextlib.ExitStack() as hardware:
            air = hardware.enter_context(radio(plan.seed))
            powered = hardware.enter_context(boards(work, air.hostport, plan.boards))
            air.set_faults(loss=plan.loss, disconnect_per_s=plan.disconnect_per_s)
            gw = GatewayProcess(home, air.url, lake_url, env, work)
            hardware.callback(gw.close)
            gw.start()
            t0 = time.monotonic()
            late = [c for c in customers if c.consent == "late"]
            outage_ends: list[float] = []
            offset_ms = 0
            pending = list(faults)
            last_report = 0.0
            while True:
                now = time.monotonic() - t0
                if now >= plan.seconds:
                    break
                if late and now >= plan.seconds / 2:
                    _grant_research(home, late.pop().email)
                if proxy is not None and outage_ends and now >= outage_ends[0]:
                    outage_ends.pop(0)
                    if not outage_ends:
                        proxy.on()
                        progress(f"{now:5.1f}s  S3 back")
                if not gw.alive:
                    # Not killed by us: the gateway ended on its own (a crash or exit 3): say so.
                    code = gw.proc.returncode if gw.proc is not None else -1
                    figures.gateway_exits.append(int(code))
                    progress(f"{now:5.1f}s  the gateway exited on its own with status {code} "
                             f"(log {gw.log_path}); restarting")
                    figures.restarts += 1
                    gw.start()
                while pending and pending[0].at <= now:
                    f = pending.pop(0)
                    if f.kind == "kill" and gw.alive:
                        phase = gw.kill()
                        figures.kills.append(phase)
                        progress(f"{now:5.1f}s  SIGKILL #{len(figures.kills)} during {phase}")
                        time.sleep(random.Random(plan.seed + len(figures.kills)).uniform(0.2, 1.0))
                        figures.restarts += 1
                        gw.start()
                    elif f.kind == "outage" and proxy is not None:
                        proxy.off()
                        figures.outages_s.append(f.value)
                        outage_ends.append(now + f.value)
                        outage_ends.sort()
                        progress(f"{now:5.1f}s  S3 away for {f.value:.0f} s")
                    elif f.kind == "reset":
                        i = int(f.value)
                        boots.append(reset_board(powered[i].url, serials[i]))
                        figures.resets += 1
                        progress(f"{now:5.1f}s  board {i + 1} reset (boot {boots[-1].boot_id} made "
                                 f"{boots[-1].next_seq}, {boots[-1].next_seq - (boots[-1].unacked_from or 0)} "
                                 "unacknowledged)")
                    elif f.kind == "clock":
                        offset_ms += int(f.value * 1000)
                        clock_file.write_text(f"{offset_ms}\n")
                        figures.clock_jumps_s.append(f.value)
                        progress(f"{now:5.1f}s  phone clock jumps {f.value:+.0f} s")
                if now - last_report >= 10:
                    last_report = now
                    progress(f"{now:5.1f}s  streaming: {_status_line(home)}")
                time.sleep(0.05)
            if proxy is not None:
                proxy.on()
                proxy.delay_s = 0.0
            air.set_faults(loss=0.0, disconnect_per_s=0.0)
            stats = air.status()["stats"]
            figures.disconnects_injected = stats["fault_drops"]
            figures.frames_dropped = stats["lost_in_flight"]
            figures.packets_lost = stats["lost"]
            progress("faults over: the gateway drains its spool (SIGTERM)")
            if not gw.alive:
                gw.start()
                time.sleep(2.0)
            code = gw.stop(timeout=180)
            if code != 0:
                raise DemoError(f"the gateway exited with {code} on SIGTERM (log {gw.log_path})")
            progress("stopping the boards' sampling (control STOP over BLE)")
            counts = asyncio.run(stop_sampling(air.url, serials))
            progress("catch-up: the gateway collects what the boards still hold")
            catch_up(home, lake_url, air.url, counts)
        boots += [BootCount(c.serial, c.boot_id, c.next_seq, c.dropped) for c in counts]
        progress("reconciling by (serial, boot, seq) against step_trainer landing")
        lake = open_lake(lake_url)
        rows, unreadable = step_rows(lake)
        account(boots, rows, unreadable, figures)
        if plan.pipeline:
            figures.curated = check_curated(lake_url, work, rows, progress)
    figures.seconds = round(time.monotonic() - started, 1)
    return figures


def _grant_research(home: Path, email: str) -> None:
    from gateway.customers import Customers
    from gateway.spool import Spool

    spool = Spool(home)
    try:
        Customers(spool).consent(email, "grant", "research")
    finally:
        spool.close()
    log.info("%s granted research consent while the gateway runs", email)


def _status_line(home: Path) -> str:
    from gateway.status import GatewayStatus

    try:
        s = GatewayStatus.read(home)
    except (OSError, ValueError):  # not written yet
        return "gateway starting"
    return (f"{s.readings} readings this run, spool {s.spool_depth}, "
            f"uploaded {s.uploaded_readings}, {sum(b.connected for b in s.boards)} "
            f"boards connected{', upload error' if s.upload_error else ''}")


__all__ = ["BootCount", "Fault", "FaultPlan", "Figures", "GatewayProcess", "account",
           "phase_at_end", "run_faults", "schedule"]
