"""Fuzz the firmware under the real MicroPython interpreter, one long-lived interpreter per
target: the shared protocol decoders agree with CPython on every input (same result or same
refusal, same reason), and a running board ignores and counts exactly the control writes the
protocol says it must, without crashing or breaking its ring buffer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.board.stedi_protocol import encode_stop
from tests.fuzz.frames import any_frames
from tests.fuzz.micropython import (
    BoardServer,
    DecoderServer,
    check_board_write,
    check_decoders_agree,
    control_writes,
    near_seq_writes,
    resolve_near,
)
from tests.fuzz.tally import tally
from tests.parts import MicroPython

MANY = settings(max_examples=1500, deadline=None)


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from firmware.build import build

    try:
        return build(tmp_path_factory.mktemp("fuzz-firmware")).out
    except Exception as e:  # noqa: BLE001 - missing mpy-cross is a missing part
        from tests.parts import missing_part

        missing_part(f"mpy-cross ({e})")
        raise


@pytest.fixture(scope="module")
def decoders(micropython: MicroPython, firmware: Path) -> Iterator[DecoderServer]:
    server = DecoderServer(micropython.binary, firmware)
    yield server
    server.close()


@pytest.fixture(scope="module")
def board(micropython: MicroPython, firmware: Path) -> Iterator[BoardServer]:
    server = BoardServer(micropython.binary, firmware)
    yield server
    server.close()


@MANY
@given(data=any_frames())
def test_frame_decoder_same_under_both_interpreters(decoders: DecoderServer, data: bytes) -> None:
    tally("micropython=cpython decode_batch").add(check_decoders_agree(decoders, "b", data))


@MANY
@given(data=control_writes())
def test_control_decoder_same_under_both_interpreters(decoders: DecoderServer, data: bytes) -> None:
    tally("micropython=cpython decode_control").add(check_decoders_agree(decoders, "c", data))


@settings(max_examples=500, deadline=None)
@given(kind=st.sampled_from(("s", "a")), data=st.binary(max_size=40) | st.binary(min_size=30, max_size=33).map(
    lambda b: b"\x01" + b))
def test_status_and_advertising_decoders_same_under_both_interpreters(
    decoders: DecoderServer, kind: str, data: bytes
) -> None:
    tally(f"micropython=cpython {'decode_status' if kind == 's' else 'decode_ad_fields'}").add(
        check_decoders_agree(decoders, kind, data)
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_board_counts_every_malformed_control_write(board: BoardServer, data: st.DataObject) -> None:
    # STOP is common so that next_seq stands still and ACK/RESUME near it hit the edge exactly.
    items = data.draw(st.lists(control_writes(board.boot_id) | near_seq_writes() | st.just(encode_stop()),
                               min_size=1, max_size=12))
    t = tally("firmware control writes (running board)")
    for item in items:
        w = item if isinstance(item, bytes) else resolve_near(board, item)
        refused = check_board_write(board, w)
        t.add(refused)
        t.counted += int(refused)  # check_board_write asserted the board counted it
