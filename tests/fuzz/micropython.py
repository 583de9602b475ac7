"""Long-lived MicroPython interpreters for fuzzing: one process answers thousands of inputs over
a pipe (one line each), so hypothesis can feed the real firmware one input per example without
paying an interpreter start per input.

- ``DecoderServer`` (``mp/decoder_server.py``): the shared protocol decoders; every answer is
  compared with CPython's answer for the same bytes.
- ``BoardServer`` (``mp/board_server.py``): a running ``Board`` taking control writes through
  the BLE shim's IRQ path, reporting how its malformed count moved.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from types import ModuleType

from hypothesis import strategies as st

from firmware.board import stedi_protocol as proto
from tests.parts import REPO

HERE = Path(__file__).resolve().parent
MP = HERE / "mp"
SHIMS = REPO / "tests" / "firmware" / "shims"
SIM_SHIMS = REPO / "simulator" / "shims"
#: The control characteristic's write buffer (docs/ble-protocol.md): longer writes are cut.
CONTROL_BUFFER = 32


def _load_answer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stedi_fuzz_decoder_server", MP / "decoder_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SERVER = _load_answer()


def cpython_answer(kind: str, data: bytes) -> str:
    """CPython's answer, with the very same rendering code the MicroPython server runs."""
    return str(_SERVER.answer(proto, kind, data))


class LineProcess:
    """A MicroPython script on MICROPYPATH ``path`` that answers one stdin line with one line."""

    def __init__(self, binary: str, script: Path, path: list[Path], heap: str = "96k"):
        env = dict(os.environ)
        env["MICROPYPATH"] = os.pathsep.join([*(str(p) for p in path), ".frozen"])
        self.proc = subprocess.Popen(
            [binary, "-X", f"heapsize={heap}", str(script)], env=env, text=True, bufsize=1,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.asked = 0

    def readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=5)
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"MicroPython exited with {self.proc.returncode}: {err}")
        return line.rstrip("\n")

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        self.asked += 1
        return self.readline()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class DecoderServer(LineProcess):
    def __init__(self, binary: str, board: Path):
        super().__init__(binary, MP / "decoder_server.py", [board])

    def answer(self, kind: str, data: bytes) -> str:
        return self.ask(f"{kind} {data.hex()}")


def check_decoders_agree(server: DecoderServer, kind: str, data: bytes) -> bool:
    """Both interpreters give the same result or the same refusal; True if refused."""
    here = cpython_answer(kind, data)
    there = server.answer(kind, data)
    assert there == here, f"{kind} {data.hex()}: MicroPython {there!r}, CPython {here!r}"
    return here.startswith("ERR")


class BoardServer(LineProcess):
    def __init__(self, binary: str, board: Path):
        # the simulator's shims after the doubles: their board-profile rules (_board, esp32 here)
        super().__init__(binary, MP / "board_server.py", [SHIMS, board, SIM_SHIMS])
        first = self.readline()
        assert first.startswith("READY "), first
        self.boot_id, self.next_seq = (int(x) for x in first.split()[1:3])
        self.malformed = 0
        self.lost = 0

    def write(self, data: bytes) -> tuple[int, int, int, int, bool]:
        reply = self.ask(data.hex())
        assert not reply.startswith("CRASH"), reply
        added, lost, next_seq, length, ok = (int(x) for x in reply.split())
        self.malformed += added
        self.lost = lost
        self.next_seq = next_seq
        return added, lost, next_seq, length, bool(ok)


def expected_rejection(data: bytes, boot_id: int, next_seq: int) -> bool:
    """Whether the board must ignore and count this write (docs/ble-protocol.md, control messages)."""
    try:
        op, value, write_boot = proto.decode_control(data)
    except ValueError:
        return True
    if write_boot is not None and write_boot != boot_id:
        return True
    if op == proto.OP_ACK:
        return bool(value >= next_seq)
    if op == proto.OP_RESUME:
        return bool(value > next_seq)
    return False


def check_board_write(board: BoardServer, data: bytes) -> bool:
    """One control write into the running firmware; True if it was (rightly) refused."""
    added, lost, next_seq, length, ok = board.write(data)
    seen = data[:CONTROL_BUFFER]
    assert ok, f"ring or rate invariant broken, or the write was not handled once, after {data.hex()}"
    assert lost == 0, "a write was lost from the IRQ queue though each was handled before the next"
    assert length == len(seen), (length, len(seen))
    want = expected_rejection(seen, board.boot_id, next_seq)
    assert added == int(want), f"{seen.hex()}: malformed +{added}, expected +{int(want)} (next_seq {next_seq})"
    return want


def near_seq_writes() -> st.SearchStrategy[tuple[int, int, bool]]:
    """ACK or RESUME a few readings either side of the board's next_seq, resolved when sent
    (``resolve_near``): the edge between a fair and a stale acknowledgement is hit often."""
    return st.tuples(st.sampled_from((proto.OP_ACK, proto.OP_RESUME)), st.integers(-3, 3), st.booleans())


def resolve_near(board: BoardServer, item: tuple[int, int, bool]) -> bytes:
    op, delta, with_boot = item
    seq = max(0, board.next_seq + delta)
    return (proto.encode_ack if op == proto.OP_ACK else proto.encode_resume)(seq, board.boot_id if with_boot else None)


def control_writes(boot_id: int | None = None) -> st.SearchStrategy[bytes]:
    """Random writes, well-formed writes of every opcode with any value, and well-formed
    opcodes with the wrong length; ACK/RESUME near the board's sequence numbers."""
    boots = st.integers(0, 0xFFFF) if boot_id is None else st.sampled_from((boot_id, boot_id ^ 1)) | st.integers(0, 0xFFFF)
    seqs = st.integers(0, 400) | st.sampled_from((proto.SEQ_MASK, proto.SEQ_MASK - 1, 2**31)) | st.integers(0, proto.SEQ_MASK)
    times = st.integers(0, 2**64 - 1) | st.integers(10**12 - 2, 10**12 + 2) | st.integers(10**13 - 2, 10**13 + 2)
    well_formed = st.one_of(
        times.map(lambda t: bytes((proto.OP_TIME_SYNC,)) + t.to_bytes(8, "little")),
        st.tuples(st.sampled_from((proto.OP_ACK, proto.OP_RESUME)), seqs, st.none() | boots).map(
            lambda a: bytes((a[0],)) + a[1].to_bytes(4, "little") + (b"" if a[2] is None else a[2].to_bytes(2, "little"))
        ),
        st.integers(0, 255).map(lambda hz: bytes((proto.OP_SET_RATE, hz))),
        st.sampled_from((bytes((proto.OP_START,)), bytes((proto.OP_STOP,)))),
    )
    wrong_length = st.tuples(st.integers(1, 6), st.binary(max_size=12)).map(lambda a: bytes((a[0],)) + a[1])
    return st.one_of(st.binary(max_size=40), well_formed, well_formed, wrong_length)
