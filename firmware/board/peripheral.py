# The BLE peripheral on MicroPython's low-level `bluetooth` module: GATT services,
# advertising, connection state and queued control writes.  The IRQ handler only
# records what happened and wakes a task; decoding happens in the board's tasks.

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


class Peripheral:
    def __init__(self, ble, serial, firmware_version, model, manufacturer, on_link=None):
        self.ble = ble
        self.on_link = on_link  # called in the IRQ on connect/disconnect: must be short
        self.name = p.device_name(serial)
        self.conn = None
        self.mtu = p.MTU_DEFAULT
        self.connections = 0
        self.writes = []  # control writes waiting for the control task
        self.writes_lost = 0  # writes that found the queue full
        self.write_flag = ThreadSafeFlag()
        ble.active(True)
        ble.config(gap_name=self.name)
        ble.config(mtu=p.MTU_PREFERRED)
        ble.irq(self._irq)
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
        self.ble.gap_advertise(_ADV_INTERVAL_US, adv_data=self.adv_data, resp_data=self.resp_data, connectable=True)

    def _irq(self, event, data):
        if event == _IRQ_CENTRAL_CONNECT:
            self.conn = data[0]
            self.mtu = p.MTU_DEFAULT
            self.connections += 1
            if self.on_link:
                self.on_link()
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if data[0] == self.conn:
                self.conn = None
            self.advertise()
            if self.on_link:
                self.on_link()
        elif event == _IRQ_GATTS_WRITE:
            if data[1] == self.h_control:
                if len(self.writes) < _MAX_PENDING_WRITES:
                    self.writes.append(bytes(self.ble.gatts_read(self.h_control)))
                else:
                    self.writes_lost += 1
                self.write_flag.set()
        elif event == _IRQ_MTU_EXCHANGED:
            if data[0] == self.conn:
                self.mtu = data[1]

    def disconnect(self):
        """End the connection, if any (the IRQ then clears conn and advertises again)."""
        if self.conn is not None:
            self.ble.gap_disconnect(self.conn)

    def take_write(self):
        """The oldest queued control write, or None."""
        if self.writes:
            return self.writes.pop(0)
        return None

    def notify(self, handle, data):
        """Notify the connected central; False if not connected or the stack refused."""
        if self.conn is None:
            return False
        try:
            self.ble.gatts_notify(self.conn, handle, data)
        except OSError:
            return False
        return True

    def set_value(self, handle, data):
        self.ble.gatts_write(handle, data)
