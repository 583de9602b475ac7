"""The first hour of a new STEDI user, replayed with the real `stedi` command; writes docs/first-hour.md.

Runs, in a fresh temporary folder (its own gateway home and lake), what a person does after
`bash scripts/setup.sh`: check the set-up, run a short demo, start a virtual radio and board, flash
the board, look at it, bind a gateway to a lake, register a customer and their consent, stream,
run the pipeline, query, write the report; then the mistakes such a person makes, each with the
message it gets.  Each step's command, exit code, time and (trimmed) output go into the
transcript, so the document stays what the commands really print: re-run it after a change
(a few minutes on 2 cores):

    .venv/bin/python scripts/first_hour.py [--out docs/first-hour.md] [--keep]

It only runs commands and records them: whatever the `stedi` at hand prints is what the
transcript shows, so a step that fails is recorded as failed, not hidden.  The radio and board it
starts are stopped on the way out.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: The board's serial number, as a person would copy it from the sticker: a UUID.
SERIAL = "5a3c0e7e-2b1d-4f6a-9c8b-0d1e2f3a4b5c"
#: Lines of output kept from the start and from the end of a long step.
HEAD_LINES, TAIL_LINES = 14, 10
#: The order and titles of the steps; the test checks the document names each of them.
STEPS = (
    "Check the set-up",
    "Run the demo",
    "Start a virtual radio and board",
    "Flash the board",
    "Look at the board",
    "Bind the gateway to a lake",
    "Register a customer",
    "Record their consent",
    "Stream",
    "Run the pipeline",
    "Query",
    "Write the report",
    "Mistake 1: a mistyped lake path",
    "Mistake 2: a second writer",
    "Mistake 3: an invalid serial number",
    "Mistake 4: another lake for the same gateway",
)


@dataclass
class Step:
    title: str
    note: str
    commands: list[tuple[str, int, float, str]] = field(default_factory=list)  # (shown, exit, seconds, output)


def stedi_command() -> list[str]:
    """The `stedi` console script next to this Python (the set-up's .venv), else on PATH."""
    beside = Path(sys.executable).parent / "stedi"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("stedi")
    if found is None:
        sys.exit("no `stedi` command: run bash scripts/setup.sh first")
    return [found]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Transcript:
    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.env = env
        self.steps: list[Step] = []
        self.stedi = stedi_command()

    def step(self, title: str, note: str) -> Step:
        assert title in STEPS, title
        step = Step(title, note)
        self.steps.append(step)
        print(f"== {title}", file=sys.stderr, flush=True)
        return step

    def shown(self, text: str) -> str:
        """``text`` with the work folder written ``$WORK``; in a table's row the cell is padded
        back to its width, so the table's borders stay in line."""
        work = str(self.work)
        pad = " " * max(0, len(work) - len("$WORK"))
        lines = []
        for line in text.split("\n"):
            if "│" in line:
                line = re.sub(re.escape(work) + r"(\S*)", lambda m: "$WORK" + m.group(1) + pad, line)
            lines.append(line.replace(work, "$WORK"))
        return "\n".join(lines)

    def run(self, step: Step, *args: str, timeout: float = 900) -> tuple[int, str]:
        shown = "stedi " + " ".join(_quote(a) for a in args)
        print(f"   $ {self.shown(shown)}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            done = subprocess.run([*self.stedi, *args], env=self.env, cwd=self.work, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=timeout)
            code, output = done.returncode, done.stdout
        except subprocess.TimeoutExpired as exc:
            raw = exc.stdout or ""
            code, output = -1, (raw.decode() if isinstance(raw, bytes) else raw) + f"\n(stopped after {timeout:.0f} s)"
        took = time.monotonic() - started
        step.commands.append((self.shown(shown), code, took, self.shown(output)))
        return code, output

    def start(self, *args: str) -> subprocess.Popen[str]:
        """A long-running `stedi` command (the radio, the board), its output in a log file."""
        log = open(self.work / f"{args[1]}.log", "w")  # noqa: SIM115 - closed with the process
        return subprocess.Popen([*self.stedi, *args], env=self.env, cwd=self.work, stdout=log,
                                stderr=subprocess.STDOUT, text=True)

    def markdown(self, started: float) -> str:
        out = [
            "# The first hour",
            "",
            "What a new user does after `bash scripts/setup.sh`, and what the `stedi` command answers, "
            "including three common mistakes and one more. Generated by `scripts/first_hour.py` "
            "(re-run it after a change: `.venv/bin/python scripts/first_hour.py`); every command ran for "
            "real, in a fresh folder shown as `$WORK` (the gateway home is `$WORK/home`, `STEDI_HOME`). "
            f"Long outputs are trimmed to their first {HEAD_LINES} and last {TAIL_LINES} lines. "
            f"The whole hour took {time.monotonic() - started:.0f} s here.",
            "",
        ]
        for n, step in enumerate(self.steps, 1):
            out += [f"## {n}. {step.title}", "", step.note, ""]
            for shown, code, took, output in step.commands:
                out += ["```", f"$ {shown}", _trim(output).rstrip("\n"), "```",
                        f"exit {code}, {took:.1f} s", ""]
        return "\n".join(out).rstrip("\n") + "\n"


def _quote(arg: str) -> str:
    return f'"{arg}"' if re.search(r"[\s*(),]", arg) else arg


def _trim(output: str) -> str:
    # Colour codes and rich's progress redraws are for terminals, not for a document.
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output).replace("\r", "\n")
    lines = [line.rstrip() for line in text.splitlines()]
    lines = [line for n, line in enumerate(lines) if line or (n and lines[n - 1])]
    if len(lines) > HEAD_LINES + TAIL_LINES + 1:
        cut = len(lines) - HEAD_LINES - TAIL_LINES
        lines = [*lines[:HEAD_LINES], f"... ({cut} lines cut) ...", *lines[-TAIL_LINES:]]
    return "\n".join(lines) or "(no output)"


def _wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {seconds:.0f} s (see the logs in the work folder)")


def first_hour(t: Transcript) -> None:
    lake = t.work / "lake"
    radio_port, board_port = free_port(), free_port()
    board_url = f"socket://127.0.0.1:{board_port}"

    s = t.step("Check the set-up", "The set-up installed the command and recorded Spark's classes once per user "
               "(`~/.stedi/cache`, found from any `STEDI_HOME`); `--if-missing` makes the check quick.")
    t.run(s, "--version")
    t.run(s, "pipeline", "warm-up", "--if-missing")

    s = t.step("Run the demo", "The whole chain without hardware, short: two boards for a quarter of a minute.")
    t.run(s, "demo", "--boards", "2", "--minutes", "0.25", "--lake", str(t.work / "demo-lake"))

    s = t.step("Start a virtual radio and board", "In two other terminals (here: in the background). The board "
               "is a real MicroPython with an empty flash, on the radio as `trainer-1`.")
    radio = t.start("sim", "radio", "--listen", f"127.0.0.1:{radio_port}")
    board = t.start("sim", "board", "--listen", f"127.0.0.1:{board_port}", "--flash", str(t.work / "board-flash"),
                    "--radio", f"127.0.0.1:{radio_port}", "--id", "trainer-1")
    s.commands.append((f"stedi sim radio --listen 127.0.0.1:{radio_port} &", 0, 0.0, "(runs in the background)"))
    s.commands.append((t.shown(f"stedi sim board --listen 127.0.0.1:{board_port} --flash {t.work}/board-flash "
                               f"--radio 127.0.0.1:{radio_port} --id trainer-1 &"), 0, 0.0,
                       "(runs in the background)"))
    try:
        _wait_for_port(radio_port)
        _wait_for_port(board_port)
        _with_board(t, lake, radio_port, board_url)
    finally:
        for process in (board, radio):
            process.terminate()
        for process in (board, radio):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    s = t.step("Run the pipeline", "The five Spark jobs: landing -> trusted -> curated, with the reconciliation.")
    code, out = t.run(s, "pipeline", "run", "--lake", str(lake))
    if code == 2 and "--create" in out:  # a lake must exist first: the user follows the message
        t.run(s, "pipeline", "run", "--lake", str(lake), "--create")

    s = t.step("Query", "SQL over the tables, like Athena (DuckDB, embedded; `--engine spark` for Spark SQL).")
    t.run(s, "query", "--lake", str(lake),
          "SELECT serialNumber, COUNT(*) AS readings FROM step_trainer_trusted GROUP BY serialNumber")

    s = t.step("Write the report", "One HTML page: rows per zone, reconciliation, quarantine, plots.")
    t.run(s, "pipeline", "report", "--lake", str(lake), "--out", str(t.work / "report.html"))

    s = t.step("Mistake 1: a mistyped lake path", "`lkae` for `lake`.")
    t.run(s, "pipeline", "run", "--lake", str(t.work / "lkae"))

    s = t.step("Mistake 2: a second writer", "A second `pipeline run` on the lake while the first still runs "
               "(started 2 s later, in another terminal).")
    first_started = time.monotonic()
    first = subprocess.Popen([*t.stedi, "pipeline", "run", "--lake", str(lake), "--full-refresh"], env=t.env,
                             cwd=t.work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2)
        t.run(s, "pipeline", "run", "--lake", str(lake), "--full-refresh")
    finally:
        first_out, _ = first.communicate(timeout=900)
    s.commands.append((t.shown(f"stedi pipeline run --lake {lake} --full-refresh   # the first one"),
                       first.returncode, time.monotonic() - first_started, t.shown(first_out)))

    s = t.step("Mistake 3: an invalid serial number", "The serial is the board's UUID, not a name.")
    t.run(s, "gateway", "register", "--email", "bo@example.com", "--name", "Bo Example", "--phone",
          "+1 555 0101", "--birthday", "1985-07-14", "--serial", "trainer-2")

    s = t.step("Mistake 4: another lake for the same gateway", "Consent sent to another lake than the one this "
               "gateway's readings go to would leave every reading without its customer.")
    t.run(s, "gateway", "consent", "grant", "public", "--email", "ann@example.com", "--lake", str(t.work / "lake2"))


def _with_board(t: Transcript, lake: Path, radio_port: int, board_url: str) -> None:
    s = t.step("Flash the board", "Build the firmware with mpy-cross and copy it with the real mpremote; the "
               "serial number is the board's UUID.")
    t.run(s, "firmware", "flash", "--port", board_url, "--serial", SERIAL)

    s = t.step("Look at the board", "Reading the board interrupts its firmware; `info` restarts it afterwards.")
    t.run(s, "firmware", "info", "--port", board_url)

    s = t.step("Bind the gateway to a lake", "Everything this gateway sends (customers, readings) goes to one lake.")
    t.run(s, "gateway", "init", "--lake", str(lake))

    s = t.step("Register a customer", "The customer and their board's serial number.")
    t.run(s, "gateway", "register", "--email", "ann@example.com", "--name", "Ann Example", "--phone",
          "+1 555 0100", "--birthday", "1990-04-01", "--serial", SERIAL)

    s = t.step("Record their consent", "Only readings of customers who share with research reach the trusted zone.")
    t.run(s, "gateway", "consent", "grant", "research", "--email", "ann@example.com")
    t.run(s, "gateway", "customers")

    s = t.step("Stream", "The gateway finds the board on the radio, streams for 20 s with a simulated phone "
               "accelerometer, then uploads everything to the lake.")
    t.run(s, "gateway", "run", "--ble", f"sim://127.0.0.1:{radio_port}", "--accel", "sim", "--duration", "20",
          "--batch-age", "5", "--no-live")
    t.run(s, "gateway", "status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "first-hour.md", help="The transcript to write.")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder (its path is printed).")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stedi-first-hour-"))
    env = dict(os.environ, STEDI_HOME=str(work / "home"), STEDI_LAKE=str(work / "lake"), COLUMNS="110",
               PYTHONUNBUFFERED="1")
    env.pop("STEDI_CACHE", None)  # the per-user cache, as a new user has it
    started = time.monotonic()
    transcript = Transcript(work, env)
    try:
        first_hour(transcript)
    finally:
        args.out.write_text(transcript.markdown(started))
        print(f"wrote {args.out} ({len(transcript.steps)} steps, {time.monotonic() - started:.0f} s)", file=sys.stderr)
        if args.keep:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
