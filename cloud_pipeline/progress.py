"""What a long command is doing, said at least every 2 s: the step, and Spark's progress in it.

A run's steps (a job, a write) can each take many seconds on a big lake.  A watcher thread asks
Spark's status tracker (``SparkContext.statusTracker``, a read-only view of the driver's job
bookkeeping) which stages are running and how many of their tasks are done, and shows it:

* on a terminal, as one transient rich status line, redrawn every second;
* elsewhere (a pipe, a log file), as an INFO log line every ``LOG_EVERY_S`` seconds while a step
  lasts, so a script's output is not flooded with redraws.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from rich.progress import Progress, TaskID

log = logging.getLogger(__name__)

#: How often the status line is redrawn on a terminal.
POLL_S = 1.0
#: How often a log line is written when the output is not a terminal.
LOG_EVERY_S = 5.0


def spark_activity(spark: SparkSession) -> str:
    """Spark's running stages as "stage 12: 3/8 tasks", or "" when none runs."""
    try:
        tracker = spark.sparkContext.statusTracker()
        parts = []
        for stage_id in sorted(tracker.getActiveStageIds()):
            info = tracker.getStageInfo(stage_id)
            if info is not None:
                parts.append(f"stage {stage_id}: {info.numCompletedTasks}/{info.numTasks} tasks")
        return "; ".join(parts)
    except Exception:  # the session stopping under us: nothing to say, and nothing to break
        return ""


class StepProgress:
    """``with StepProgress() as progress:`` then ``progress.step("name")`` and ``progress.watch(spark)``."""

    def __init__(self, tty: bool | None = None):
        self.tty = sys.stderr.isatty() if tty is None else tty
        self._step = "starting"
        self._since = time.monotonic()
        self._started = self._since
        self._spark: SparkSession | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._logged = self._since

    def step(self, name: str) -> None:
        self._step = name
        self._since = time.monotonic()
        self._logged = self._since
        self._show()

    def watch(self, spark: SparkSession) -> None:
        """Also tell Spark's progress within each step."""
        self._spark = spark

    def line(self) -> str:
        activity = spark_activity(self._spark) if self._spark is not None else ""
        return f"{self._step} ({time.monotonic() - self._since:.0f}s)" + (f": {activity}" if activity else "")

    def _show(self) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=self.line())

    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            if self.tty:
                self._show()
            elif time.monotonic() - self._logged >= LOG_EVERY_S:
                self._logged = time.monotonic()
                log.info("still working: %s; %.0fs in all", self.line(), time.monotonic() - self._started)

    def __enter__(self) -> StepProgress:
        if self.tty:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self._step, total=None)
        self._thread = threading.Thread(target=self._poll, name="stedi-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.stop()
