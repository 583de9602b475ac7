"""Batch frames for fuzzing the gateway's decoder: valid frames from the project's encoder, and
mutations of them (bit flips, cuts, extensions, wrong counts and lengths, odd flags and versions,
sequence numbers at the 32-bit wrap), with and without a CRC that matches the mutation.

``reference_decode`` is an independent decoder written from docs/ble-protocol.md only: the
shared decoder must agree with it on every input (same readings, or both refuse).
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st

from firmware.board import stedi_protocol as proto

SEQ_WRAP = 2**32
#: First sequence numbers worth more than their share of tries: both ends of the u32 range.
EDGE_SEQS = (0, 1, 2**31 - 1, 2**31, SEQ_WRAP - 300, SEQ_WRAP - 2, SEQ_WRAP - 1)


def crc16_ccitt_false(data: bytes) -> int:
    """Bit by bit, as the standard defines it (the project's decoder uses a table)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


Reading = tuple[int, int, int]


def reference_decode(data: bytes) -> tuple[int, int, list[Reading]] | None:
    """(boot_id, first_seq, readings) of a valid frame, None for anything the spec refuses."""
    n = len(data)
    if n < 17 or data[0] != 1:
        return None
    if crc16_ccitt_false(data[:-2]) != data[-2] | data[-1] << 8:
        return None
    flags, boot, first, lo, hi, count = struct.unpack("<BHIIHB", data[1:15])
    if flags & ~0x01 or count == 0 or n != 17 + 3 * count:
        return None
    t = hi << 32 | lo
    out = []
    for i in range(count):
        delta, distance = struct.unpack_from("<BH", data, 15 + 3 * i)
        t += delta
        out.append(((first + i) % SEQ_WRAP, t, distance))
    return boot, first, out


def with_crc(frame: bytes | bytearray) -> bytes:
    """The frame with its last two bytes replaced by the CRC of the rest (if it has room)."""
    if len(frame) < 2:
        return bytes(frame)
    c = crc16_ccitt_false(bytes(frame[:-2]))
    return bytes(frame[:-2]) + bytes((c & 0xFF, c >> 8))


@st.composite
def valid_frames(draw: st.DrawFn, boot: int | None = None, first: int | None = None,
                 max_count: int = 255) -> bytes:
    """A frame as the board's encoder writes it (any delta, including before the first reading)."""
    if boot is None:
        boot = draw(st.integers(0, 0xFFFF))
    if first is None:
        first = draw(st.sampled_from(EDGE_SEQS) | st.integers(0, SEQ_WRAP - 1))
    count = draw(st.integers(1, max_count))
    base = draw(st.sampled_from((0, 1_700_000_000_000, 2**48 - 1)) | st.integers(0, 2**48 - 1))
    enc = proto.BatchEncoder(count)
    enc.begin(boot, first, base, count)
    for _ in range(count):
        assert enc.add(draw(st.integers(0, 255)), draw(st.integers(0, 65535)))
    return bytes(enc.buf[: enc.finish()])


def _mutate(draw: st.DrawFn, frame: bytes) -> bytes:
    f = bytearray(frame)
    kind = draw(st.sampled_from(
        ("flip", "byte", "cut", "extend", "count", "flags", "version", "length", "seq_wrap", "boot")
    ))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(f) - 1))
            f[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "byte":
        f[draw(st.integers(0, len(f) - 1))] = draw(st.integers(0, 255))
    elif kind == "cut":
        f = f[: draw(st.integers(0, len(f) - 1))]
    elif kind == "extend":
        f += draw(st.binary(min_size=1, max_size=8))
    elif kind == "count":
        f[14] = draw(st.integers(0, 255))  # count no longer matches the length
    elif kind == "flags":
        f[1] = draw(st.integers(0, 255))
    elif kind == "version":
        f[0] = draw(st.integers(0, 255))
    elif kind == "length":
        # Readings added or removed by whole 3-byte slots, the count left as it was.
        slots = draw(st.integers(-3, 3).filter(bool))
        f = f[: 15 + 3 * max(0, f[14] + slots)] + f[-2:] if slots < 0 else f[:-2] + bytes(3 * slots) + f[-2:]
    elif kind == "seq_wrap":
        struct.pack_into("<I", f, 4, draw(st.sampled_from(EDGE_SEQS)))
    else:  # "boot"
        struct.pack_into("<H", f, 2, draw(st.integers(0, 0xFFFF)))
    # Half the mutations get a matching CRC, so the checks after the CRC see them too.
    return with_crc(f) if draw(st.booleans()) else bytes(f)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    return _mutate(draw, draw(valid_frames(max_count=40)))


def any_frames() -> st.SearchStrategy[bytes]:
    """Random bytes, valid frames and mutated frames."""
    return st.one_of(st.binary(max_size=300), valid_frames(max_count=80), mutated_frames(), mutated_frames())


@st.composite
def frame_streams(draw: st.DrawFn, boot: int) -> list[bytes]:
    """What one connection might deliver: consecutive valid frames of ``boot`` from seq 0, with
    repeats, mutated frames and random bytes mixed in."""
    out: list[bytes] = []
    seq = 0
    for _ in range(draw(st.integers(1, 12))):
        choice = draw(st.sampled_from(("next", "next", "repeat", "mutated", "random", "other_boot")))
        if choice in ("next", "repeat"):
            if choice == "repeat" and seq:
                first = draw(st.integers(0, seq - 1))
            else:
                first = seq
            frame = draw(valid_frames(boot=boot, first=first, max_count=20))
            seq = max(seq, first + frame[14])
            out.append(frame)
        elif choice == "mutated":
            out.append(_mutate(draw, draw(valid_frames(boot=boot, first=seq, max_count=20))))
        elif choice == "other_boot":
            out.append(draw(valid_frames(boot=(boot + 1) & 0xFFFF, first=seq, max_count=5)))
        else:
            out.append(draw(st.binary(max_size=80)))
    return out


def check_frame(data: bytes) -> bool:
    """One input through the gateway's decoder; True if it was refused.  Any exception other
    than the decoder's ValueError, or a disagreement with the spec's reference, fails."""
    want = reference_decode(data)
    try:
        got = proto.decode_batch(data)
    except ValueError as exc:
        assert want is None, f"valid frame refused ({exc}): {data.hex()}"
        assert str(exc), "a refusal must say why"
        return True
    assert want is not None, f"invalid frame accepted: {data.hex()}"
    assert (got[0], got[1], list(got[2])) == want, data.hex()
    return False


def check_status(data: bytes) -> bool:
    """The status decoder: a dict of the documented fields, or ValueError."""
    try:
        status = proto.decode_status(data)
    except ValueError:
        assert len(data) < proto.STATUS_SIZE or data[0] != proto.STATUS_VERSION
        return True
    assert set(status) == set(proto.STATUS_FIELDS)
    return False
