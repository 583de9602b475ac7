"""Fuzz the gateway's decoder and its frame path: random bytes and mutated frames never crash
it; each refused frame is counted in the board's ``bad_frames``, each frame of another boot
in ``stale_frames``, and no reading of a refused frame reaches the spool."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.board import stedi_protocol as proto
from tests.fuzz.frames import any_frames, check_frame, check_status, frame_streams
from tests.fuzz.ingest import check_stream, run_stream
from tests.fuzz.tally import tally

T = 1_790_000_000_000
FAST = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(data=any_frames())
def test_decoder_agrees_with_the_spec_on_any_bytes(data: bytes) -> None:
    tally("gateway decode_batch").add(check_frame(data))


@FAST
@given(data=st.binary(max_size=40) | st.binary(min_size=30, max_size=40).map(lambda b: b"\x01" + b))
def test_status_decoder_refuses_or_decodes(data: bytes) -> None:
    tally("gateway decode_status").add(check_status(data))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boot=st.integers(0, 0xFFFF), data=st.data())
def test_frame_path_counts_every_bad_frame(boot: int, data: st.DataObject) -> None:
    frames = data.draw(frame_streams(boot))
    n, refused = check_stream(frames, boot)
    t = tally("gateway frame path (frames)")
    t.tried += n
    t.bad += refused
    t.counted += refused  # check_stream asserted bad_frames == refused


def test_the_last_readings_of_a_boot_are_stored_and_acknowledged() -> None:
    # A boot never wraps the u32 seq: the board starts a new boot below SEQ_LIMIT (see
    # tests/firmware/test_board.py::test_board_renews_its_boot_when_seqs_run_out).
    from firmware.board.ringbuf import SEQ_LIMIT

    assert SEQ_LIMIT < proto.SEQ_MASK
    boot = 42
    first = SEQ_LIMIT - 10
    frames = [proto.encode_batch(boot, s, [(s + i, T + 50 * (s - first + i), 100) for i in range(5)])
              for s in (first, first + 5)]
    result = run_stream(frames, boot, oldest=first)  # earlier readings went to an earlier spool
    assert sorted(r[0] for r in result.stored) == list(range(first, SEQ_LIMIT))
    assert result.writes[-1] == (proto.OP_ACK, SEQ_LIMIT - 1, boot)
