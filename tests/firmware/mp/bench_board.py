# Benchmark scenarios for benchmarks/firmware.py (run under the unix port with the test shims).
import gc

import asyncio
import bluetooth

import app
import config
import stedi_protocol as p
from sensors.sim import SimSensor

SERIAL = "3f1c2a9e-5b7d-4c1a-8e2f-1234567890ab"


def _board(rate, mtu_buffer=600, batch_ms=2000):
    bluetooth._instance = None
    cfg = config.merge({"serial": SERIAL, "rate_hz": min(rate, 50), "buffer_readings": mtu_buffer,
                        "batch_ms": batch_ms})
    board = app.Board(cfg, bluetooth.BLE(), SimSensor(), None)
    return board, bluetooth.BLE()


def on_air(mtu, rate, ms):
    """Stream at `rate` Hz for `ms` to a central at this MTU, acking; bytes on air per reading
    (notification payload + 3-byte ATT header)."""
    board, ble = _board(rate)
    totals = [0, 0, 0]  # notifications, bytes on air, readings

    async def central():
        task = asyncio.create_task(board.run())
        ble.central_connect(1)
        if mtu != 23:
            ble.mtu_exchanged(mtu, 1)
        ble.central_write(board.link.h_control, p.encode_time_sync(1700000000000), 1)
        waited = 0
        while waited < ms:
            await asyncio.sleep_ms(100)
            waited += 100
            last = -1
            for f in ble.take_notified(board.link.h_readings):
                h = p.decode_batch_header(f)
                totals[0] += 1
                totals[1] += len(f) + p.ATT_NOTIFY_OVERHEAD
                totals[2] += h[5]
                last = h[3] + h[5] - 1
            ble.take_notified(board.link.h_status)
            if last >= 0:
                ble.central_write(board.link.h_control, p.encode_ack(last, board.boot_id), 1)
        task.cancel()

    asyncio.run(central())
    print("ONAIR mtu %d rate %d notifications %d bytes %d readings %d" % (mtu, rate, totals[0], totals[1], totals[2]))


def max_rate(rate, ms):
    """Run the whole board (streaming to a central) with the sampler forced to `rate` Hz
    (beyond the protocol's 50 Hz cap) and report samples, the schedule and missed slots."""
    board, ble = _board(50, batch_ms=200)
    s = board.sampler
    s.rate_hz = rate
    s.period_us = 1000000 // rate
    s._rem_step = 1000000 % rate
    result = [0, 0]

    async def central():
        task = asyncio.create_task(board.run())
        ble.central_connect(1)
        ble.mtu_exchanged(247, 1)
        ble.central_write(board.link.h_control, p.encode_time_sync(1700000000000), 1)
        await asyncio.sleep_ms(200)
        n0, m0 = s.samples, s.missed
        s.max_late_us = 0
        waited = 0
        while waited < ms:
            await asyncio.sleep_ms(100)
            waited += 100
            last = -1
            for f in ble.take_notified(board.link.h_readings):
                h = p.decode_batch_header(f)
                last = h[3] + h[5] - 1
            ble.take_notified(board.link.h_status)
            if last >= 0:
                ble.central_write(board.link.h_control, p.encode_ack(last, board.boot_id), 1)
        result[0] = s.samples - n0
        result[1] = s.missed - m0
        task.cancel()

    asyncio.run(central())
    gc.collect()
    print("RATE %d samples %d expected %d missed %d max_late_us %d" % (
        rate, result[0], rate * ms // 1000, result[1], s.max_late_us))
