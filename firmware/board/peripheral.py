# The BLE peripheral on MicroPython's low-level `bluetooth` module: GATT services,
# advertising, connection state and queued control writes.  The IRQ handler only
# records what happened and wakes a task; decoding happens in the board's tasks.
#
# Both ports (ESP32 with NimBLE, Pico W with BTstack) run the IRQ handler synchronously, and an
# exception out of it makes MicroPython print it and set the handler to None
# (extmod/modbluetooth.c, invoke_irq_handler_run_protected): the board would keep sampling but
# never hear of a connection again.  So the handler catches everything, counts it and keeps
# going; it allocates nothing of its own (a MemoryError there would lose the event), and
# keep_alive() re-registers it from a task in any case.

import gc

import bluetooth
from micropython import const

from asyncio import ThreadSafeFlag  # loads asyncio's event module now, not mid-start-up
import stedi_protocol as p

# IRQ event codes (MicroPython docs, bluetooth module)
_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)

# characteristic flags (MicroPython docs, bluetooth module)
_FLAG_READ = const(0x0002)
_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)

_ADV_INTERVAL_US = const(100000)
_CONTROL_BUFFER = const(32)
_MAX_PENDING_WRITES = const(8)
# BTstack (Pico W) does not refuse a notification it cannot send yet: it copies it onto the
# MicroPython heap (extmod/btstack/modbluetooth_btstack.c, mp_bluetooth_gatts_notify_indicate),
# and since MicroPython 1.20 does not check that allocation.  Below this much free heap the
# board holds its notifications back (the readings stay in the ring) until the copies drain.
NOTIFY_HEAP_RESERVE = const(4096)


class Peripheral:
    def __init__(self, ble, serial, firmware_version, model, manufacturer, on_link=None, heap_queued=False):
        self.ble = ble
        self.on_link = on_link  # called in the IRQ on connect/disconnect: must be short
        self.name = p.device_name(serial)
        self.conn = None
        self.mtu = p.MTU_DEFAULT
        self.connections = 0
        self.generation = 0  # +1 at every connect and disconnect
        self.heap_queued = heap_queued  # the stack queues notifications on the heap (BTstack)
        # Control writes waiting for the control task: a ring of fixed slots the IRQ copies into.
        # The IRQ only moves _wput and the task only _wtake (both modulo twice the slots), so
        # an IRQ between any two bytecodes of the task loses nothing.
        self._wbuf = bytearray(_CONTROL_BUFFER * _MAX_PENDING_WRITES)
        self._wlen = bytearray(_MAX_PENDING_WRITES)
        self._wput = 0
        self._wtake = 0
        self.writes_lost = 0  # writes that found the queue full
        self.irq_errors = 0  # exceptions caught in the IRQ handler
        self.adv_failures = 0  # gap_advertise calls the stack refused (retried by keep_alive)
        self.adv_pending = False
        self.notify_deferred = 0  # notifications held back: too little heap for BTstack's copy
        self.write_flag = ThreadSafeFlag()
        self._irq_handler = self._irq  # one bound method, registered now and by keep_alive()
        ble.active(True)
        ble.config(gap_name=self.name)
        ble.config(mtu=p.MTU_PREFERRED)
        ble.irq(self._irq_handler)
        stedi = (
            bluetooth.UUID(p.SERVICE_UUID),
            (
                (bluetooth.UUID(p.READINGS_UUID), _FLAG_NOTIFY),
                (bluetooth.UUID(p.CONTROL_UUID), _FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE),
                (bluetooth.UUID(p.STATUS_UUID), _FLAG_READ | _FLAG_NOTIFY),
            ),
        )
        info = (
            bluetooth.UUID(p.DEVICE_INFORMATION_SERVICE),
            (
                (bluetooth.UUID(p.MODEL_NUMBER_CHAR), _FLAG_READ),
                (bluetooth.UUID(p.SERIAL_NUMBER_CHAR), _FLAG_READ),
                (bluetooth.UUID(p.FIRMWARE_REVISION_CHAR), _FLAG_READ),
                (bluetooth.UUID(p.MANUFACTURER_NAME_CHAR), _FLAG_READ),
            ),
        )
        battery = (
            bluetooth.UUID(p.BATTERY_SERVICE),
            ((bluetooth.UUID(p.BATTERY_LEVEL_CHAR), _FLAG_READ | _FLAG_NOTIFY),),
        )
        ((self.h_readings, self.h_control, self.h_status), (h_model, h_serial, h_fw, h_maker), (self.h_battery,)) = (
            ble.gatts_register_services((stedi, info, battery))
        )
        ble.gatts_set_buffer(self.h_control, _CONTROL_BUFFER, False)
        ble.gatts_write(h_model, model.encode())
        ble.gatts_write(h_serial, serial.encode())
        ble.gatts_write(h_fw, firmware_version.encode())
        ble.gatts_write(h_maker, manufacturer.encode())
        self.adv_data, self.resp_data = p.encode_advertising(self.name)
        self.advertise()

    def advertise(self):
        """Advertise; if the stack refuses (it raises OSError), keep_alive() tries again."""
        try:
            self.ble.gap_advertise(_ADV_INTERVAL_US, adv_data=self.adv_data, resp_data=self.resp_data,
                                   connectable=True)
        except OSError:
            self.adv_failures += 1
            self.adv_pending = True
            return False
        self.adv_pending = False
        return True

    def keep_alive(self):
        """From a task, now and then: the IRQ handler registered again (should anything ever have
        got out of it, the port would have switched it off) and failed advertising retried."""
        self.ble.irq(self._irq_handler)
        if self.adv_pending and self.conn is None:
            self.advertise()

    def _irq(self, event, data):
        try:
            if event == _IRQ_CENTRAL_CONNECT:
                self.conn = data[0]
                self.mtu = p.MTU_DEFAULT
                self.connections += 1
                self.generation += 1
                self.adv_pending = False  # the stack stopped advertising for the connection
                if self.on_link:
                    self.on_link()
            elif event == _IRQ_CENTRAL_DISCONNECT:
                if data[0] == self.conn:
                    self.conn = None
                self.generation += 1
                if self.on_link:
                    self.on_link()
                self.advertise()
            elif event == _IRQ_GATTS_WRITE:
                if data[1] == self.h_control:
                    self._queue_write(self.ble.gatts_read(self.h_control))
                    self.write_flag.set()
            elif event == _IRQ_MTU_EXCHANGED:
                if data[0] == self.conn:
                    self.mtu = data[1]
        except Exception:
            self.irq_errors += 1

    def _queue_write(self, value):
        # Copied byte by byte into a fixed slot: no allocation in the IRQ.
        put = self._wput
        if (put - self._wtake) % (2 * _MAX_PENDING_WRITES) >= _MAX_PENDING_WRITES:
            self.writes_lost += 1
            return
        slot = put % _MAX_PENDING_WRITES
        n = len(value)
        if n > _CONTROL_BUFFER:
            n = _CONTROL_BUFFER
        base = slot * _CONTROL_BUFFER
        buf = self._wbuf
        for i in range(n):
            buf[base + i] = value[i]
        self._wlen[slot] = n
        self._wput = (put + 1) % (2 * _MAX_PENDING_WRITES)  # published last

    def disconnect(self):
        """End the connection, if any (the IRQ then clears conn and advertises again)."""
        if self.conn is not None:
            self.ble.gap_disconnect(self.conn)

    def pending_writes(self):
        """Control writes queued for the control task."""
        return (self._wput - self._wtake) % (2 * _MAX_PENDING_WRITES)

    def take_write(self):
        """The oldest queued control write (bytes), or None."""
        take = self._wtake
        if take == self._wput:
            return None
        slot = take % _MAX_PENDING_WRITES
        base = slot * _CONTROL_BUFFER
        data = bytes(self._wbuf[base:base + self._wlen[slot]])
        self._wtake = (take + 1) % (2 * _MAX_PENDING_WRITES)
        return data

    def notify(self, handle, data):
        """Notify the connected central; False if not connected or the stack cannot take it now
        (the caller keeps what it sent and tries again later).

        The stacks push back differently: NimBLE (ESP32) raises OSError(ENOMEM) when out of
        buffers (extmod/nimble/modbluetooth_nimble.c); BTstack (Pico W) copies onto the heap, so
        the board holds back while the heap is short, and a MemoryError from the copy is a
        refusal too, never an exception that would end the task sending."""
        if self.conn is None:
            return False
        if self.heap_queued and gc.mem_free() < NOTIFY_HEAP_RESERVE:
            gc.collect()
            if gc.mem_free() < NOTIFY_HEAP_RESERVE:
                self.notify_deferred += 1
                return False
        try:
            self.ble.gatts_notify(self.conn, handle, data)
        except OSError:  # out of buffers (ENOMEM), or the link is gone (ENOTCONN)
            return False
        except MemoryError:  # BTstack's copy did not fit: nothing was queued
            gc.collect()
            return False
        return True

    def set_value(self, handle, data):
        self.ble.gatts_write(handle, data)
