# A small peripheral of the tests' own, run under the real MicroPython interpreter with the
# shims: it advertises a service, answers reads, echoes writes back as notifications and
# counts (notifications every 50 ms while a central is subscribed).  It prints one line per
# IRQ so the tests can check what the board saw.
import asyncio
import struct

import bluetooth
from micropython import const

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_INDICATE_DONE = const(20)
_IRQ_MTU_EXCHANGED = const(21)

SVC = bluetooth.UUID("6e400001-b5a3-f393-e0a9-e50e24dcca9e")
COUNTER = (bluetooth.UUID("6e400002-b5a3-f393-e0a9-e50e24dcca9e"), bluetooth.FLAG_READ | bluetooth.FLAG_NOTIFY)
ECHO = (bluetooth.UUID("6e400003-b5a3-f393-e0a9-e50e24dcca9e"),
        bluetooth.FLAG_WRITE | bluetooth.FLAG_WRITE_NO_RESPONSE | bluetooth.FLAG_NOTIFY)
INFO = (bluetooth.UUID(0x2A24), bluetooth.FLAG_READ)

ble = bluetooth.BLE()
ble.active(True)
ble.config(gap_name="PERIPH", mtu=185)
((h_counter, h_echo, h_info),) = ble.gatts_register_services(((SVC, (COUNTER, ECHO, INFO)),))
ble.gatts_write(h_info, b"virtual-model-1")
ble.gatts_set_buffer(h_echo, 200)
conns = set()
event = asyncio.ThreadSafeFlag()
in_irq = [False]


def adv_payload(name):
    p = bytearray(b"\x02\x01\x06")
    p += bytes((len(name) + 1, 0x09)) + name
    u = bytes(SVC)
    p += bytes((len(u) + 1, 0x07)) + u
    return p


def advertise():
    ble.gap_advertise(100000, adv_payload(b"PERIPH"))


def irq(event_code, data):
    assert not in_irq[0], "re-entrant IRQ"
    in_irq[0] = True
    if event_code == _IRQ_CENTRAL_CONNECT:
        conn, addr_type, addr = data
        assert type(addr) is memoryview and len(addr) == 6
        conns.add(conn)
        print("IRQ connect", conn, addr_type, bytes(addr).hex())
    elif event_code == _IRQ_CENTRAL_DISCONNECT:
        conn, addr_type, addr = data
        assert type(addr) is memoryview
        conns.discard(conn)
        print("IRQ disconnect", conn)
        advertise()
    elif event_code == _IRQ_GATTS_WRITE:
        conn, handle = data
        value = ble.gatts_read(handle)
        print("IRQ write", conn, handle, value)
        if value == b"bye":
            ble.gap_disconnect(conn)
        elif value == b"big":
            ble.gatts_notify(conn, h_echo, bytes(range(200)))
        elif value == b"ind":
            ble.gatts_indicate(conn, h_echo, b"indicated")
        else:
            ble.gatts_notify(conn, h_echo, value)
    elif event_code == _IRQ_MTU_EXCHANGED:
        print("IRQ mtu", data[0], data[1])
    elif event_code == _IRQ_GATTS_INDICATE_DONE:
        print("IRQ indicate_done", data[0], data[1], data[2])
    event.set()
    in_irq[0] = False


ble.irq(irq)
advertise()
print("READY", ble.config("mac")[1].hex())


async def main():
    n = 0
    while True:
        await asyncio.sleep_ms(50)
        ble.gatts_write(h_counter, struct.pack("<I", n))
        for c in list(conns):
            try:
                ble.gatts_notify(c, h_counter, struct.pack("<I", n))
            except OSError:
                pass
        n += 1


asyncio.run(main())
