# mypy: ignore-errors
# MicroPython's `bluetooth` module for a virtual board: the documented API and semantics
# (https://docs.micropython.org/en/latest/library/bluetooth.html), peripheral role, with the
# air replaced by the STEDI virtual radio (env STEDI_RADIO=HOST:PORT, board id STEDI_BOARD_ID):
# the calls go as JSON lines (the board protocol, docs/simulator-radio.md) to this board's bumble
# host in the radio hub, which serves the GATT table with a real ATT server.
#
# Threads: a reader thread receives radio frames and queues them; one drain callback at a
# time is scheduled with micropython.schedule (its queue holds only 4 entries) and calls the
# IRQ handler in the main thread, never re-entrantly, as the real ports do.  This build of
# _thread has no GIL, so the queue is guarded by a lock and the IRQ state is only touched by
# the main thread.  Socket writes share a lock because the reader thread also writes (hello
# and state replay after (re)connecting to the radio).
#
# What differs by port (the board profile, _board.profile()):
# - esp32 (NimBLE): a notification the controller has no buffer for is refused with
#   OSError(ENOMEM) (extmod/nimble/modbluetooth_nimble.c, mp_bluetooth_gatts_notify_indicate:
#   ble_hs_mbuf_from_flat() returns NULL -> MP_ENOMEM).
# - picow (BTstack): it is copied onto the GC heap and sent when the controller can take it;
#   gatts_notify returns success (extmod/btstack/modbluetooth_btstack.c, same function:
#   BTSTACK_ACL_BUFFERS_FULL -> m_tracked_calloc + att_server_request_to_send_notification).
#   Here the copy is a bytearray on this interpreter's heap, so it costs the firmware's heap as
#   it does on the board, and a full heap raises MemoryError out of gatts_notify (what the
#   port's m_new did before 1.20; since commit 256f47e2 (1.20) it does not check the allocation
#   at all, and a full heap crashes the board instead, which a firmware must not let happen).
# When the hub sets an airtime budget (conn_interval_ms, packets_per_event in its welcome), the
# controller's rate follows it; otherwise (or when STEDI_AIRTIME is set, which wins)
# the link carries STEDI_AIRTIME notifications per second ("RATE/BUFFERS", default 200/8:
# e.g. a 30 ms connection interval with 6 packets per event, 8 controller buffers; an assumed
# figure, real links vary), so back-pressure shows when a firmware sends faster than that.
# Both ports run the IRQ handler synchronously (MICROPY_PY_BLUETOOTH_USE_SYNC_EVENTS) through
# extmod/modbluetooth.c's invoke_irq_handler_run_protected: an uncaught exception is printed
# and the handler is set to None, so the board gets no more BLE events until irq() is called
# again; and the address memoryview points into the stack frame of the call, so it is
# invalid after the handler returns (docs/library/bluetooth.rst): here it is overwritten.
import _thread
import gc
import json
import os
import socket
import sys
import time
from binascii import hexlify, unhexlify

import _board
import micropython
from micropython import const

# IRQ event codes (MicroPython docs, bluetooth module, "Event Handling").
_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_GATTS_INDICATE_DONE = const(20)
_IRQ_MTU_EXCHANGED = const(21)

# Characteristic/descriptor flags (MicroPython docs; the low byte is the GATT properties
# field, Core Spec Vol 3 Part G 3.3.1.1).
FLAG_BROADCAST = const(0x0001)
FLAG_READ = const(0x0002)
FLAG_WRITE_NO_RESPONSE = const(0x0004)
FLAG_WRITE = const(0x0008)
FLAG_NOTIFY = const(0x0010)
FLAG_INDICATE = const(0x0020)
FLAG_AUTHENTICATED_SIGNED_WRITE = const(0x0040)
FLAG_AUX_WRITE = const(0x0100)
FLAG_READ_ENCRYPTED = const(0x0200)
FLAG_READ_AUTHENTICATED = const(0x0400)
FLAG_READ_AUTHORIZED = const(0x0800)
FLAG_WRITE_ENCRYPTED = const(0x1000)
FLAG_WRITE_AUTHENTICATED = const(0x2000)
FLAG_WRITE_AUTHORIZED = const(0x4000)

ADDR_PUBLIC = const(0)
ADDR_RANDOM = const(1)

_DEFAULT_MTU = const(23)      # ATT_MTU before exchange (Core Spec Vol 3 Part F 3.2.8)
_DEFAULT_BUFFER = const(20)   # gatts_set_buffer default (MicroPython docs)
_ENOTCONN = const(107)
_ENOMEM = const(12)
_EINVAL = const(22)
_EOPNOTSUPP = const(95)
_CCCD = const(0x2902)         # Client Characteristic Configuration descriptor


class UUID:
    """bluetooth.UUID(0x181A), UUID('6e400001-b5a3-f393-e0a9-e50e24dcca9e') or UUID(bytes);
    bytes(uuid) gives the little-endian form used in advertising payloads."""

    def __init__(self, value):
        if isinstance(value, UUID):
            b = value._b
        elif isinstance(value, int):
            if value < 0 or value > 0xFFFFFFFF:
                raise ValueError("invalid UUID")
            b = value.to_bytes(2 if value <= 0xFFFF else 4, "little")
        elif isinstance(value, str):
            h = value.replace("-", "")
            if len(h) not in (4, 8, 32):
                raise ValueError("invalid UUID")
            b = bytes(reversed(unhexlify(h)))
        else:
            b = bytes(value)
            if len(b) not in (2, 4, 16):
                raise ValueError("invalid UUID")
        self._b = b

    def __len__(self):
        return len(self._b)

    def __iter__(self):
        return iter(self._b)

    def __eq__(self, other):
        return isinstance(other, UUID) and other._b == self._b

    def __hash__(self):
        return hash(self._b)

    def _text(self):
        h = hexlify(bytes(reversed(self._b))).decode()
        if len(h) == 32:
            return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
        return h

    def __str__(self):
        t = self._text()
        return "UUID(0x" + t + ")" if len(t) < 32 else "UUID('" + t + "')"

    __repr__ = __str__


def _board_id():
    bid = os.getenv("STEDI_BOARD_ID")
    if bid:
        return bid
    try:
        with open("config.json") as f:
            return str(json.load(f).get("serial", "board"))
    except (OSError, ValueError):
        return "board"


def _mac_for(bid):
    # A stable random-static address from the board id (top two bits set, Core Spec Vol 6
    # Part B 1.3.2.1), so a board keeps its address across resets like real hardware.
    h = 0x811C9DC5
    for c in bid.encode():
        h = ((h ^ c) * 0x01000193) & 0xFFFFFFFF
    return bytes((0xC0 | (h >> 26) & 0x3F, (h >> 18) & 0xFF, (h >> 10) & 0xFF, (h >> 2) & 0xFF, 0x5E, 0xD1))


def _addr_text(b):
    return ":".join(f"{x:02X}" for x in b)


def _addr_bytes(text):
    return unhexlify(text.replace(":", ""))


class _BLE:
    def __init__(self):
        self._active = False
        self._handler = None
        self._id = _board_id()
        self._mac = _mac_for(self._id)
        self._name = "MPY STEDI"
        self._mtu = 256
        self._rxbuf = 1024
        self._sock = None
        self._gen = 0
        self._wlock = _thread.allocate_lock()
        self._qlock = _thread.allocate_lock()
        self._queue = []
        self._pending = False
        self._drain_ref = self._drain  # bound once: no allocation per schedule
        self._flag = None
        # GATT server state (main thread only)
        self._values = {}       # value handle -> bytes
        self._buffers = {}      # value handle -> (size, append)
        self._cccd = {}         # cccd handle -> characteristic value handle
        self._subs = {}         # (conn, value handle) -> cccd bits
        self._services = []     # wire description sent to the radio
        self._next_handle = 1
        self._conns = {}        # conn handle -> (addr_type, addr bytes)
        self._conn_mtu = {}
        self._adv = None        # last advertising frame, replayed after a radio reconnect
        self._last_adv = (None, None)
        self._addr_mv = bytearray(6)  # the memoryview handed to IRQs; scribbled after each
        self._btstack = _board.profile() == "picow"
        self._airtime_set = bool(os.getenv("STEDI_AIRTIME"))
        rate, _, buffers = (os.getenv("STEDI_AIRTIME") or "200/8").partition("/")
        self._slot_us = 1000000 // max(1, int(rate))  # airtime of one notification
        self._air_buffers = max(1, int(buffers or 8))
        self._air_free_at = time.ticks_us()  # when the controller's queue will be empty
        self._alock = _thread.allocate_lock()
        self._held = []         # picow: notifications copied onto the heap, oldest first
        self._sender = False    # picow: a thread sends the held ones as airtime allows

    # ------------------------------------------------------------ radio link
    def active(self, flag=None):
        if flag is None:
            return self._active
        flag = bool(flag)
        if flag and not self._active:
            self._active = True
            self._gen += 1
            radio = os.getenv("STEDI_RADIO")
            if radio:
                _thread.start_new_thread(self._reader, (radio, self._gen))
            else:
                print("bluetooth: STEDI_RADIO is not set; this board is alone in the air")
            self._keep_prompt()
        elif not flag and self._active:
            self._active = False
            self._gen += 1
            s, self._sock = self._sock, None
            if s:
                try:
                    s.close()
                except OSError:
                    pass
            self._adv = None
            self._conns = {}
        return self._active

    def _keep_prompt(self):
        # The unix port does not run scheduled callbacks while asyncio blocks in poll() on
        # sockets only (a board's ports do, from their event poll hook).  A task awaiting a
        # ThreadSafeFlag that the reader thread sets wakes the loop, so IRQs stay prompt.
        try:
            import asyncio
            self._flag = asyncio.ThreadSafeFlag()

            async def keeper(flag):
                while True:
                    await flag.wait()

            asyncio.create_task(keeper(self._flag))
        except (ImportError, AttributeError):
            self._flag = None

    def _write(self, frame):
        s = self._sock
        if s is None:
            return False
        try:
            data = json.dumps(frame)
        except MemoryError:
            gc.collect()
            try:
                data = json.dumps(frame)
            except MemoryError:
                raise OSError(_ENOMEM) from None  # as a port does when the stack is out of buffers
        with self._wlock:
            try:
                s.write(data)
                s.write(b"\n")
                return True
            except OSError:
                return False

    def _greeting(self):
        yield {"t": "hello", "role": "peripheral", "id": self._id,
               "addr": _addr_text(self._mac), "addr_type": ADDR_RANDOM, "mtu": self._mtu}
        if self._services:
            yield {"t": "services", "services": self._services}
        if self._adv:
            yield self._adv

    def _reader(self, radio, gen):
        host, port = radio.rsplit(":", 1)
        warned = False
        acc = bytearray()
        while gen == self._gen:
            try:
                s = socket.socket()
                s.connect(socket.getaddrinfo(host, int(port))[0][-1])
            except MemoryError:
                gc.collect()
                time.sleep_ms(50)
                continue
            except OSError:
                if not warned:
                    print("bluetooth: radio", radio, "unreachable; retrying")
                    warned = True
                time.sleep_ms(300)
                continue
            try:
                s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: frames are small and urgent
            except OSError:
                pass
            try:
                # The socket is published only under the write lock and after the hello: a
                # frame the main thread writes meanwhile (an advert, services) must not reach
                # the radio before this node has said who it is.
                with self._wlock:
                    self._sock = s
                    for frame in self._greeting():
                        s.write(json.dumps(frame))
                        s.write(b"\n")
            except (OSError, MemoryError):
                self._sock = None
                s.close()
                gc.collect()
                time.sleep_ms(50)
                continue
            # The BLE stack's buffers live outside the heap on a board; here they are on it, so
            # survive a full heap: recv allocates before it reads, so on MemoryError nothing
            # received is lost; the thread collects garbage and tries again.
            chunk = None
            while gen == self._gen:
                try:
                    if chunk is None:
                        chunk = s.recv(1024)
                        if not chunk:
                            break
                    acc.extend(chunk)
                    chunk = None
                    while True:
                        i = acc.find(b"\n")
                        if i < 0:
                            break
                        self._push(acc[:i])
                        acc[: i + 1] = b""
                except MemoryError:
                    gc.collect()
                    time.sleep_ms(5)
                except OSError:
                    break
            acc[:] = b""
            self._sock = None
            try:
                s.close()
            except OSError:
                pass
            self._push(None)  # radio gone: every link is lost
            if gen == self._gen:
                print("bluetooth: lost the radio; reconnecting")
                time.sleep_ms(300)

    def _push(self, item):
        with self._qlock:
            self._queue.append(item)
            need = not self._pending
            self._pending = True
        if need:
            while True:
                try:
                    micropython.schedule(self._drain_ref, None)
                    break
                except RuntimeError:  # schedule queue full: the main thread is busy; retry
                    time.sleep_ms(2)
        f = self._flag
        if f is not None:
            f.set()

    def _drain(self, _):
        with self._qlock:
            items = self._queue
            self._queue = []
            self._pending = False
        for line in items:
            if line is None:
                for conn in list(self._conns):
                    self._lost(conn)
                continue
            for _attempt in range(3):
                try:
                    frame = json.loads(line)
                    break
                except MemoryError:
                    gc.collect()
                except ValueError:
                    print("bluetooth: bad frame from radio:", line[:60])
                    frame = None
                    break
            else:
                print("bluetooth: out of memory; a frame from the radio was lost")
                continue
            if frame is not None:
                self._on_frame(frame)

    def _irq(self, event, data):
        h = self._handler
        if h is None:
            return None
        try:
            return h(event, data)
        except Exception as e:
            # extmod/modbluetooth.c, invoke_irq_handler_run_protected: print it and disable
            # the handler; no more BLE events until the program calls irq() again.
            print("Unhandled exception in IRQ callback handler")
            sys.print_exception(e)
            self._handler = None
        finally:
            mv = self._addr_mv
            for i in range(6):
                mv[i] = 0xEE  # the stack frame the port's memoryview pointed at is gone
        return None

    def _addr(self, addr):
        mv = self._addr_mv
        mv[:] = addr
        return memoryview(mv)

    def _lost(self, conn):
        at, addr = self._conns.pop(conn)
        self._conn_mtu.pop(conn, None)
        for key in list(self._subs):
            if key[0] == conn:
                del self._subs[key]
        with self._alock:
            # The stack forgets what it still held for the link (the heap copies are freed).
            self._held = [x for x in self._held if x[0] != conn]
        self._irq(_IRQ_CENTRAL_DISCONNECT, (conn, at, self._addr(addr)))

    def _on_frame(self, f):
        t = f["t"]
        if t == "welcome":
            budget = f.get("faults") or {}
            interval = budget.get("conn_interval_ms") or 0
            if interval and not self._airtime_set:
                self._slot_us = int(interval * 1000) // max(1, int(budget.get("packets_per_event") or 1))
        elif t == "connect":
            conn = f["conn"]
            addr = _addr_bytes(f["addr"])
            self._conns[conn] = (f.get("addr_type", 0), addr)
            self._adv = None  # the radio stopped our advertising, as the stacks do
            self._irq(_IRQ_CENTRAL_CONNECT, (conn, f.get("addr_type", 0), self._addr(addr)))
        elif t == "disconnect":
            if f["conn"] in self._conns:
                self._lost(f["conn"])
        elif t == "mtu":
            self._conn_mtu[f["conn"]] = f["mtu"]
            self._irq(_IRQ_MTU_EXCHANGED, (f["conn"], f["mtu"]))
        elif t == "read":
            h = f["h"]
            if h in self._cccd:
                v = self._subs.get((f["conn"], self._cccd[h]), 0).to_bytes(2, "little")
            elif h in self._values:
                v = self._values[h]
            else:
                self._write({"t": "read_rsp", "id": f["id"], "error": "invalid handle"})
                return
            self._write({"t": "read_rsp", "id": f["id"], "d": hexlify(v).decode()})
        elif t == "write":
            self._on_write(f)
        elif t == "indicate_done":
            self._irq(_IRQ_GATTS_INDICATE_DONE, (f["conn"], f["h"], f["status"]))

    def _on_write(self, f):
        h, conn = f["h"], f["conn"]
        data = unhexlify(f.get("d") or "")
        if h in self._cccd:
            # The stack keeps subscriptions itself; no IRQ (as NimBLE does).
            self._subs[(conn, self._cccd[h])] = int.from_bytes(data[:2], "little") if data else 0
        elif h in self._values:
            size, append = self._buffers.get(h, (_DEFAULT_BUFFER, False))
            if append:
                data = (self._values[h] + data)[-size:]
            self._values[h] = data[:size]
        elif f.get("rsp"):
            self._write({"t": "write_rsp", "id": f["id"], "error": "invalid handle"})
            return
        if f.get("rsp"):
            self._write({"t": "write_rsp", "id": f["id"]})
        if h not in self._cccd:
            self._irq(_IRQ_GATTS_WRITE, (conn, h))

    # ------------------------------------------------------------ configuration
    def config(self, *args, **kwargs):
        if args:
            if len(args) != 1 or kwargs:
                raise TypeError("config takes one parameter name or keyword arguments")
            name = args[0]
            if name == "mac":
                return (ADDR_RANDOM, self._mac)
            if name == "addr_mode":
                return ADDR_RANDOM
            if name == "gap_name":
                return self._name.encode()
            if name == "mtu":
                return self._mtu
            if name == "rxbuf":
                return self._rxbuf
            raise ValueError("unknown config param")
        for name, value in kwargs.items():
            if name == "gap_name":
                self._name = value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
            elif name == "mtu":
                if value < _DEFAULT_MTU or value > 517:
                    raise ValueError("mtu out of range")
                self._mtu = value
                self._write({"t": "mtu_pref", "mtu": value})
            elif name == "rxbuf":
                self._rxbuf = value
            elif name in ("addr_mode", "bond", "mitm", "io", "le_secure", "interval"):
                pass  # accepted; the virtual radio has no pairing or address modes
            else:
                raise ValueError("unknown config param")
        return None

    def irq(self, handler):
        self._handler = handler

    # ------------------------------------------------------------ GAP
    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        self._check_active()
        if interval_us is None:
            self._adv = None
            self._write({"t": "adv", "adv": None})
            return
        # adv_data/resp_data None reuse the previous payloads (MicroPython docs).
        if adv_data is None:
            adv_data = self._last_adv[0] or b""
        if resp_data is None:
            resp_data = self._last_adv[1] or b""
        if len(adv_data) > 31 or len(resp_data) > 31:
            raise OSError(_EINVAL)  # legacy advertising payloads hold 31 bytes
        self._last_adv = (bytes(adv_data), bytes(resp_data))
        self._adv = {"t": "adv", "interval_us": interval_us, "adv": hexlify(bytes(adv_data)).decode(),
                     "resp": hexlify(bytes(resp_data)).decode(), "connectable": bool(connectable)}
        self._write(self._adv)

    def gap_disconnect(self, conn_handle):
        if conn_handle not in self._conns:
            return False
        self._write({"t": "disconnect", "conn": conn_handle})
        return True

    def gap_scan(self, *args, **kwargs):
        raise OSError(_EOPNOTSUPP)  # central role is not simulated: boards are peripherals

    def gap_connect(self, *args, **kwargs):
        raise OSError(_EOPNOTSUPP)

    # ------------------------------------------------------------ GATT server
    def _check_active(self):
        if not self._active:
            raise OSError(_EINVAL)  # the ports raise when the stack is not active

    def gatts_register_services(self, services_definition):
        self._check_active()
        self._values = {}
        self._buffers = {}
        self._cccd = {}
        self._services = []
        # picow: handles and room come from BTstack's fixed 512-byte table (_board.BtstackAttDb);
        # what does not fit is left out of the served table, and the call still succeeds.
        att = _board.BtstackAttDb() if self._btstack else None
        handle = 1
        result = []
        for service in services_definition:
            s_uuid, chars = UUID(service[0]), service[1]
            if att is not None:
                if len(s_uuid) == 4:
                    raise OSError(_EINVAL)  # BTstack takes 16- and 128-bit UUIDs only
                handle, served = att.add_service(len(s_uuid))
            else:
                served = True
            wire = {"uuid": s_uuid._text(), "handle": handle, "chars": []}
            handle += 1
            handles = []
            for ch in chars:
                c_uuid, flags = UUID(ch[0]), ch[1]
                descs = ch[2] if len(ch) > 2 else ()
                notifies = bool(flags & (FLAG_NOTIFY | FLAG_INDICATE))
                if att is not None:
                    if len(c_uuid) == 4:
                        raise OSError(_EINVAL)
                    (value, stored), declared, cccd_stored = att.add_characteristic(len(c_uuid), notifies)
                    present = served and declared and stored
                    handle = att.next_handle
                else:
                    value = handle + 1  # declaration, then value (Core Spec Vol 3 Part G 3.3)
                    handle += 2
                    present = cccd_stored = True
                handles.append(value)
                self._values[value] = b""
                c = {"uuid": c_uuid._text(), "handle": value, "flags": flags, "descs": []}
                if notifies and cccd_stored:
                    cccd = value + 1
                    self._cccd[cccd] = value
                    c["descs"].append({"uuid": "2902", "handle": cccd})
                    if att is None:
                        handle += 1
                for d in descs:
                    d_uuid = UUID(d[0])
                    if att is not None:
                        d_handle, d_stored = att.add_descriptor(len(d_uuid))
                        handle = att.next_handle
                    else:
                        d_handle, d_stored = handle, True
                        handle += 1
                    handles.append(d_handle)
                    self._values[d_handle] = b""
                    if d_stored:
                        c["descs"].append({"uuid": d_uuid._text(), "handle": d_handle, "flags": d[1]})
                if present:
                    wire["chars"].append(c)
            if served:
                self._services.append(wire)
            result.append(tuple(handles))
        if att is not None and att.dropped:
            # BTstack says only "att_db: out of memory" in its log; the twin says it on stderr.
            sys.stderr.write(f"bluetooth (picow): GATT table needs more than BTstack's {_board.ATT_DB_SIZE} bytes; "
                             f"{att.dropped} attribute(s) left out\n")
        self.att_db_bytes = att.size() if att is not None else None
        self._write({"t": "services", "services": self._services})
        return tuple(result)

    def gatts_read(self, value_handle):
        if value_handle not in self._values:
            raise OSError(_EINVAL)
        v = self._values[value_handle]
        if self._buffers.get(value_handle, (0, False))[1]:
            self._values[value_handle] = b""  # append mode: reading consumes
        return v

    def gatts_write(self, value_handle, data, send_update=False):
        if value_handle not in self._values:
            raise OSError(_EINVAL)
        self._values[value_handle] = bytes(data)
        if send_update:
            for (conn, h), bits in self._subs.items():
                if h == value_handle and bits:
                    if bits & 1:
                        self.gatts_notify(conn, h)
                    else:
                        self.gatts_indicate(conn, h)

    def _payload(self, conn_handle, value_handle, data):
        if conn_handle not in self._conns:
            raise OSError(_ENOTCONN)
        if data is None:
            data = self._values.get(value_handle, b"")
        # One ATT notification carries at most ATT_MTU - 3 bytes; the rest is cut off.
        return hexlify(bytes(data)[: self._conn_mtu.get(conn_handle, _DEFAULT_MTU) - 3]).decode()

    def _air_slot(self):
        """Take the controller's next free buffer (True), or False if all are in use."""
        with self._alock:
            now = time.ticks_us()
            if time.ticks_diff(self._air_free_at, now) < 0:
                self._air_free_at = now
            queued = (time.ticks_diff(self._air_free_at, now) + self._slot_us - 1) // self._slot_us
            if queued >= self._air_buffers:
                return False
            self._air_free_at = time.ticks_add(self._air_free_at, self._slot_us)
            return True

    def gatts_notify(self, conn_handle, value_handle, data=None):
        # Sent whatever the client's subscription state (MicroPython docs).
        if not self._btstack:
            d = self._payload(conn_handle, value_handle, data)
            if not self._air_slot():
                raise OSError(_ENOMEM)  # NimBLE: no buffer for it
            self._write({"t": "notify", "conn": conn_handle, "h": value_handle, "d": d})
            return
        if conn_handle not in self._conns:
            raise OSError(_ENOTCONN)
        if data is None:
            data = self._values.get(value_handle, b"")
        if not self._held and self._air_slot():
            d = self._payload(conn_handle, value_handle, data)
            try:
                self._write({"t": "notify", "conn": conn_handle, "h": value_handle, "d": d})
            except OSError:
                raise MemoryError from None  # this shim's own frame did not fit the heap: no ENOMEM on BTstack
            return
        # BTstack: copied (cut to MTU-3 first) onto the heap; a full heap raises MemoryError here.
        n = min(len(data), self._conn_mtu.get(conn_handle, _DEFAULT_MTU) - 3)
        copy = bytearray(n)
        copy[:] = memoryview(data)[:n]
        with self._alock:
            self._held.append((conn_handle, value_handle, copy))
            start = not self._sender
            self._sender = True
        if start:
            _thread.start_new_thread(self._send_held, ())

    def _send_held(self):
        # picow: the controller takes the held notifications, oldest first, as airtime allows.
        while True:
            with self._alock:
                if not self._held:
                    self._sender = False
                    return
            if not self._air_slot():
                time.sleep_us(self._slot_us)
                continue
            with self._alock:
                if not self._held:  # the link went meanwhile
                    continue
                conn, h, copy = self._held.pop(0)
            while True:
                try:
                    self._write({"t": "notify", "conn": conn, "h": h, "d": hexlify(copy).decode()})
                    break
                except (MemoryError, OSError):
                    gc.collect()
                    time.sleep_ms(5)

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        d = self._payload(conn_handle, value_handle, data)
        self._write({"t": "indicate", "conn": conn_handle, "h": value_handle, "d": d})

    def gatts_set_buffer(self, value_handle, length, append=False):
        if value_handle not in self._values:
            raise OSError(_EINVAL)
        self._buffers[value_handle] = (length, bool(append))


_ble = None


def BLE():
    """The singleton BLE object, as on the ports."""
    global _ble
    if _ble is None:
        _ble = _BLE()
    return _ble
