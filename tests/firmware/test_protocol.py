"""The shared protocol module: test vectors under CPython and MicroPython, round trips."""

from __future__ import annotations

import json
import random
import sys

import pytest

from firmware.board import stedi_protocol as p
from tests.firmware import make_vectors
from tests.firmware.helpers import BOARD, MP_SCRIPTS, VECTORS, run_board
from tests.parts import MicroPython

# The checker imports `stedi_protocol` by its board name, as it does under MicroPython.
sys.path[:0] = [str(MP_SCRIPTS), str(BOARD)]
import vector_check  # noqa: E402

del sys.path[:2]


def test_vector_file_matches_generator() -> None:
    assert VECTORS.read_text() == make_vectors.render(), "run python -m tests.firmware.make_vectors"


def test_vectors_under_cpython() -> None:
    vectors = json.loads(VECTORS.read_text())
    count = vector_check.check(vectors)
    total = sum(len(vectors[k]) for k in vectors)
    assert count == total and count >= 30


def test_vectors_under_micropython(micropython: MicroPython) -> None:
    total = sum(len(v) for v in json.loads(VECTORS.read_text()).values())
    out = run_board(micropython, f"import vector_check\nvector_check.main({str(VECTORS)!r})\n")
    assert f"VECTORS OK {total}" in out


def test_doc_example_bytes() -> None:
    frame = p.encode_batch(0x1234, 7, [(7, 1_700_000_000_000, 100), (8, 1_700_000_000_050, 65535),
                                       (9, 1_700_000_000_100, 0)])
    assert frame.hex(" ") == "01 01 34 12 07 00 00 00 00 68 e5 cf 8b 01 03 00 64 00 32 ff ff 32 00 00 41 e8"


def test_bytes_per_reading_goal() -> None:
    n = p.readings_per_frame(247)
    assert n == 75
    assert (p.frame_size(n) + p.ATT_NOTIFY_OVERHEAD) / n <= 4.0
    assert p.frame_size(n) <= 247 - 3
    assert p.readings_per_frame(23) == 1 and p.frame_size(1) <= 20


def test_random_round_trips() -> None:
    rng = random.Random(3)
    for _ in range(300):
        n = rng.randint(1, 255)
        seq0 = rng.randrange(2**32)
        t = rng.randrange(10**12, 2**48 - 255 * 256)
        readings = []
        for i in range(n):
            readings.append(((seq0 + i) % 2**32, t, rng.randrange(65536)))
            t += rng.randint(0, 255)
        frame = p.encode_batch(boot := rng.randrange(65536), seq0, readings)
        assert p.decode_batch(frame) == (boot, seq0, readings)


@pytest.mark.parametrize(
    "readings, reason",
    [
        ([(0, 10**12, 1), (2, 10**12 + 1, 1)], "consecutive"),
        ([(0, 10**12, 1), (1, 10**12 + 256, 1)], "delta"),
        ([(0, 10**12, 1), (1, 10**12 - 1, 1)], "delta"),
        ([(0, 10**12, 65536)], "distance"),
        ([], "1..255"),
    ],
)
def test_encode_batch_rejects(readings: list[tuple[int, int, int]], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        p.encode_batch(1, 0, readings)


def test_every_single_byte_corruption_is_caught() -> None:
    frame = bytes.fromhex(json.loads(VECTORS.read_text())["batches"][2]["hex"])
    caught = 0
    for i in range(len(frame)):
        for bit in range(8):
            bad = bytearray(frame)
            bad[i] ^= 1 << bit
            with pytest.raises(ValueError):
                p.decode_batch(bytes(bad))
            caught += 1
    assert caught == 8 * len(frame)


def test_advertising_fits_and_parses() -> None:
    adv, resp = p.encode_advertising(p.device_name("3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab"))
    assert len(adv) <= 31 and len(resp) <= 31
    fields = dict(p.decode_ad_fields(adv)) | dict(p.decode_ad_fields(resp))
    assert fields[p.AD_NAME_COMPLETE] == b"STEDI-90ab"
    assert fields[p.AD_UUID128_COMPLETE] == p.uuid128_le(p.SERVICE_UUID)
    assert p.uuid128_le(p.SERVICE_UUID)[::-1].hex() == p.SERVICE_UUID.replace("-", "")
    assert p.uuid16_str(0x2A25) == "00002a25-0000-1000-8000-00805f9b34fb"
