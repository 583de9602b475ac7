"""Figures for the virtual radio, the board shims and the physics model.

    .venv/bin/python benchmarks/radio_bench.py

Prints: physics cost per sample under MicroPython and CPython; heap the shims take on a board;
write->notify round trip through the radio (the bumble hub); notification throughput board ->
bleak, unlimited and under the hub's airtime budget (30 ms connection interval, 6 packets per
event).  The board's own buffer model (STEDI_AIRTIME) is opened wide so the link is measured.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bleak import BleakClient, BleakScanner  # noqa: E402

from simulator import physics  # noqa: E402
from simulator.bleak_backend import backend_kwargs  # noqa: E402
from simulator.radio.server import RadioThread  # noqa: E402

MICROPYTHON = str(Path(sys.executable).parent / "micropython")
SHIMS = REPO / "simulator" / "shims"
ENV = {**os.environ, "MICROPYPATH": f"{SHIMS}:.frozen"}

BLASTER = """
import bluetooth, asyncio
ble = bluetooth.BLE(); ble.active(True); ble.config(gap_name="BLAST", mtu=247)
S = bluetooth.UUID("0000aaaa-0000-1000-8000-00805f9b34fb")
((h,),) = ble.gatts_register_services(((S, ((bluetooth.UUID(0xAAAB), bluetooth.FLAG_WRITE | bluetooth.FLAG_NOTIFY),)),))
conn = [None]; go = asyncio.ThreadSafeFlag()
def irq(e, d):
    if e == 1: conn[0] = d[0]
    elif e == 3:
        v = ble.gatts_read(h)
        if v == b"go": go.set()
        else: ble.gatts_notify(d[0], h, v)
ble.irq(irq)
ble.gap_advertise(100000, b"\\x02\\x01\\x06\\x06\\x09BLAST")
async def main():
    payload = bytes(240)
    while True:
        await go.wait()
        for i in range(2000):
            ble.gatts_notify(conn[0], h, payload)
            if i % 50 == 49:
                await asyncio.sleep_ms(0)
asyncio.run(main())
"""


def physics_cost() -> None:
    code = (
        "import time, stedi_physics as p\n"
        "s = p.seed_for_serial('bench'); t0 = 1790000000000\n"
        "a = time.ticks_us()\n"
        "for i in range(5000): p.distance_mm(s, t0 + i * 50)\n"
        "b = time.ticks_us()\n"
        "for i in range(5000): p.accel_mg(s, t0 + i * 50)\n"
        "c = time.ticks_us()\n"
        "print(time.ticks_diff(b, a) / 5000, time.ticks_diff(c, b) / 5000)\n"
    )
    out = subprocess.run([MICROPYTHON, "-c", code], env=ENV, capture_output=True, text=True, check=True).stdout
    mp_d, mp_a = (float(x) for x in out.split())
    seed = physics.seed_for_serial("bench")
    a = time.perf_counter()
    for i in range(5000):
        physics.distance_mm(seed, 1_790_000_000_000 + i * 50)
    b = time.perf_counter()
    for i in range(5000):
        physics.accel_mg(seed, 1_790_000_000_000 + i * 50)
    c = time.perf_counter()
    print(f"physics distance_mm: {mp_d:.1f} us/sample MicroPython, {(b - a) / 5000 * 1e6:.1f} us/sample CPython")
    print(f"physics accel_mg:    {mp_a:.1f} us/sample MicroPython, {(c - b) / 5000 * 1e6:.1f} us/sample CPython")


def shim_heap() -> None:
    code = (
        "import gc\ngc.collect(); a = gc.mem_free()\nimport bluetooth\ngc.collect(); b = gc.mem_free()\n"
        "import machine\ngc.collect(); c = gc.mem_free()\nprint(a - b, b - c)\n"
    )
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run(
            [MICROPYTHON, "-X", "heapsize=256k", "-c", code], env=ENV, cwd=cwd, capture_output=True, text=True, check=True
        ).stdout
    bt, mach = (int(x) for x in out.split())
    print(f"shim heap: bluetooth {bt / 1024:.1f} KB, machine + physics + _board {mach / 1024:.1f} KB")


async def _central(url: str, label: str = "notification throughput") -> None:
    kw = backend_kwargs(url)
    device = await BleakScanner.find_device_by_name("BLAST", timeout=10, **kw)
    assert device is not None
    got: asyncio.Queue[bytes] = asyncio.Queue()
    async with BleakClient(device, **kw) as client:
        char = client.services.get_characteristic("0000aaab-0000-1000-8000-00805f9b34fb")
        assert char is not None
        await client.start_notify(char, lambda _c, d: got.put_nowait(bytes(d)))
        rtts = []
        for i in range(200):
            t = time.perf_counter()
            await client.write_gatt_char(char, i.to_bytes(2, "little"), response=True)
            await got.get()
            rtts.append((time.perf_counter() - t) * 1000)
        rtts.sort()
        print(
            f"write->IRQ->notify round trip: median {statistics.median(rtts):.2f} ms, "
            f"p95 {rtts[int(len(rtts) * 0.95)]:.2f} ms (200 writes with response)"
        )
        t = time.perf_counter()
        await client.write_gatt_char(char, b"go", response=True)
        n = 0
        while n < 2000:
            await asyncio.wait_for(got.get(), 10)
            n += 1
        dt = time.perf_counter() - t
        print(f"{label}: {n / dt:.0f} notifications/s, {n * 240 / dt / 1024:.0f} KB/s (240-byte payloads)")


def radio_figures(budget: bool = False) -> None:
    with RadioThread(seed=1) as radio, tempfile.TemporaryDirectory() as cwd:
        label = "notification throughput"
        if budget:
            radio.set_faults(conn_interval_ms=30, packets_per_event=6)
            label += " (airtime budget 6 per 30 ms)"
        script = Path(cwd) / "blaster.py"
        script.write_text(BLASTER)
        env = {**ENV, "STEDI_RADIO": radio.hostport, "STEDI_BOARD_ID": "blaster", "STEDI_AIRTIME": "1000000/1000"}
        proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=256k", str(script)], env=env, cwd=cwd)
        try:
            asyncio.run(_central(radio.url, label))
        finally:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    physics_cost()
    shim_heap()
    radio_figures()
    radio_figures(budget=True)
