# Recording fake of MicroPython's `bluetooth` module for the firmware's unit tests
# (a test double, not the simulator's virtual radio).  It keeps attribute values,
# records advertising and notifications, and lets a test play the central:
# central_connect(), central_write(), mtu_exchanged(), central_disconnect().
#
# As on both ports (extmod/modbluetooth.c, invoke_irq_handler_run_protected), an exception
# out of the IRQ handler is printed and the handler is set to None: no more events.
# A stack that cannot take a notification (refuse_notify) fails the way the board
# profile's stack does (env STEDI_BOARD_PROFILE): NimBLE on esp32 raises OSError(ENOMEM);
# BTstack on picow copies it onto the heap and only fails when that copy does not fit,
# with MemoryError (see simulator/shims/bluetooth.py).

import sys

import _board

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_MTU_EXCHANGED = 21

FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010


class UUID:
    def __init__(self, value):
        if isinstance(value, int):
            if value < 0 or value > 0xFFFF:
                raise ValueError("16-bit UUID out of range")
        elif isinstance(value, str):
            if len(value.replace("-", "")) != 32:
                raise ValueError("invalid UUID string")
            value = value.lower()
        else:
            raise TypeError("UUID wants int or str")
        self.value = value

    def __eq__(self, other):
        return isinstance(other, UUID) and other.value == self.value

    def __hash__(self):
        return hash(self.value)

    def __repr__(self):
        return "UUID(%r)" % (self.value,)


class FakeBLE:
    def __init__(self):
        self.is_active = False
        self.configured = {}
        self.handler = None
        self.values = {}  # handle -> bytes
        self.buffers = {}  # handle -> (len, append)
        self.chars = {}  # uuid value -> (handle, flags)
        self.services = []
        self.adverts = []  # (interval_us, adv_data, resp_data, connectable)
        self.notified = []  # (conn, handle, bytes)
        self.refuse_notify = 0  # the stack has no room for this many notifications
        self.fail_advertise = 0  # gap_advertise raises OSError this many times (stack busy)
        self.irq_exceptions = 0  # exceptions the handler let out (each one disabled it)
        self.btstack = _board.profile() == "picow"
        self.after_notify = None  # (handle, fn): fn() runs once, right after a notify of handle
        self.connected = set()
        self._next_handle = 1

    def active(self, flag=None):
        if flag is not None:
            self.is_active = bool(flag)
        return self.is_active

    def config(self, *args, **kwargs):
        if args:
            return self.configured[args[0]]
        for k in kwargs:
            if k == "mtu" and not (23 <= kwargs[k] <= 517):
                raise ValueError("mtu out of range")
            self.configured[k] = kwargs[k]

    def irq(self, handler):
        self.handler = handler

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        if self.fail_advertise:
            self.fail_advertise -= 1
            raise OSError(114)  # EALREADY, as NimBLE reports an advertising set still busy
        if adv_data is not None and len(adv_data) > 31:
            raise ValueError("adv_data longer than 31 bytes")
        if resp_data is not None and len(resp_data) > 31:
            raise ValueError("resp_data longer than 31 bytes")
        self.adverts.append((interval_us, adv_data, resp_data, connectable))

    def gatts_register_services(self, services):
        if not self.is_active:
            raise OSError("not active")
        out = []
        for service_uuid, chars in services:
            handles = []
            self._next_handle += 1  # the service declaration
            for char in chars:
                uuid, flags = char[0], char[1]
                self._next_handle += 1  # the characteristic declaration
                h = self._next_handle
                self._next_handle += 1
                if flags & FLAG_NOTIFY:
                    self._next_handle += 1  # CCCD
                self.values[h] = b""
                self.chars[uuid.value] = (h, flags)
                handles.append(h)
            self.services.append(service_uuid.value)
            out.append(tuple(handles))
        return tuple(out)

    def gatts_read(self, handle):
        return self.values[handle]

    def gatts_write(self, handle, data, send_update=False):
        self.values[handle] = bytes(data)

    def gatts_set_buffer(self, handle, length, append=False):
        self.buffers[handle] = (length, append)

    def gatts_notify(self, conn, handle, data=None):
        if conn not in self.connected:
            raise OSError("not connected")
        if self.refuse_notify:
            self.refuse_notify -= 1
            if self.btstack:
                raise MemoryError("memory allocation failed")  # BTstack's heap copy did not fit
            raise OSError(12)  # ENOMEM: NimBLE is out of buffers
        self.notified.append((conn, handle, bytes(self.values[handle] if data is None else data)))
        hook = self.after_notify
        if hook is not None and hook[0] == handle:
            # an IRQ the stack runs as the notify returns (both ports call handlers synchronously)
            self.after_notify = None
            hook[1]()

    # --- the test plays the central --------------------------------------------
    def _invoke(self, event, data):
        handler = self.handler
        if handler is None:
            return
        try:
            handler(event, data)
        except Exception as e:
            print("Unhandled exception in IRQ callback handler")
            sys.print_exception(e)
            self.irq_exceptions += 1
            self.handler = None

    def handle_of(self, uuid_value):
        return self.chars[uuid_value][0]

    def central_connect(self, conn=0):
        self.connected.add(conn)
        self._invoke(_IRQ_CENTRAL_CONNECT, (conn, 0, b"\x00\x00\x00\x00\x00\x01"))

    def central_disconnect(self, conn=0):
        self.connected.discard(conn)
        self._invoke(_IRQ_CENTRAL_DISCONNECT, (conn, 0, b"\x00\x00\x00\x00\x00\x01"))

    def gap_disconnect(self, conn):
        # As the stack does: False if not connected, else the disconnect event follows.
        if conn not in self.connected:
            return False
        self.central_disconnect(conn)
        return True

    def mtu_exchanged(self, mtu, conn=0):
        self._invoke(_IRQ_MTU_EXCHANGED, (conn, mtu))

    def central_write(self, handle, data, conn=0):
        limit = self.buffers.get(handle, (20, False))[0]
        self.values[handle] = bytes(data[:limit])
        self._invoke(_IRQ_GATTS_WRITE, (conn, handle))

    def take_notified(self, handle):
        got = [d for (_c, h, d) in self.notified if h == handle]
        self.notified = [n for n in self.notified if n[1] != handle]
        return got


_instance = None


def BLE():
    global _instance
    if _instance is None:
        _instance = FakeBLE()
    return _instance
