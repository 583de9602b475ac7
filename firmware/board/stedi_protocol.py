# STEDI BLE protocol: UUIDs, batch frames, control writes, status, advertising.
#
# One module for both sides: the board (MicroPython) encodes frames and decodes
# control writes; the gateway (CPython) does the reverse with the same code.
# Keep to the subset common to both interpreters: struct, no f-strings with
# format specs, no dataclasses, no typing.  Layouts are in docs/ble-protocol.md.

import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[no-redef]
        return x


from array import array

PROTOCOL_VERSION = const(1)

# --- GATT identifiers -------------------------------------------------------
# Custom STEDI service (random 128-bit base, lowercase as bleak normalises them).
SERVICE_UUID = "57ed1000-5e7d-4b1a-9f3e-2c4d6a8b0e10"
READINGS_UUID = "57ed1001-5e7d-4b1a-9f3e-2c4d6a8b0e10"  # notify: batch frames
CONTROL_UUID = "57ed1002-5e7d-4b1a-9f3e-2c4d6a8b0e10"  # write: control messages
STATUS_UUID = "57ed1003-5e7d-4b1a-9f3e-2c4d6a8b0e10"  # read + notify: status

NAME_PREFIX = "STEDI-"

# Bluetooth SIG assigned numbers (Assigned Numbers document, section 3.4 / 3.8).
DEVICE_INFORMATION_SERVICE = const(0x180A)
MODEL_NUMBER_CHAR = const(0x2A24)
SERIAL_NUMBER_CHAR = const(0x2A25)
FIRMWARE_REVISION_CHAR = const(0x2A26)
MANUFACTURER_NAME_CHAR = const(0x2A29)
BATTERY_SERVICE = const(0x180F)
BATTERY_LEVEL_CHAR = const(0x2A19)


def uuid16_str(short):
    """A 16-bit SIG UUID as the lowercase 128-bit string bleak reports."""
    h = "%04x" % short
    return "0000" + h + "-0000-1000-8000-00805f9b34fb"


# --- ATT sizes (Core spec Vol 3 Part F) ---------------------------------------
ATT_NOTIFY_OVERHEAD = const(3)  # opcode + attribute handle
MTU_DEFAULT = const(23)
MTU_PREFERRED = const(247)

# --- Batch frame (readings characteristic) ------------------------------------
# header: version u8, flags u8, boot_id u16, first_seq u32, base_time u48 (u32 low + u16 high), count u8
_HEADER_FMT = "<BBHIIHB"
BATCH_HEADER_SIZE = const(15)
BATCH_CRC_SIZE = const(2)
BATCH_OVERHEAD = const(17)
READING_SIZE = const(3)  # delta_ms u8 + distance u16
MAX_DELTA_MS = const(255)
MAX_DISTANCE = const(65535)
MAX_READINGS_PER_FRAME = const(255)

FLAG_CLOCK_SYNCED = const(0x01)  # base_time is epoch ms (always set in version 1)
_FLAGS_KNOWN = const(0x01)

SEQ_MASK = const(0xFFFFFFFF)

# --- CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor ----
_CRC_TABLE = array("H", bytes(512))  # built in place: no 256-item list on a small heap
for _i in range(256):
    _c = _i << 8
    for _b in range(8):
        _c = ((_c << 1) ^ 0x1021) if (_c & 0x8000) else (_c << 1)
    _CRC_TABLE[_i] = _c & 0xFFFF
del _i, _c, _b


def crc16(data, start=0, end=None, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of data[start:end] (check value of b"123456789" is 0x29B1)."""
    if end is None:
        end = len(data)
    table = _CRC_TABLE
    for i in range(start, end):
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ data[i]) & 0xFF]
    return crc


def readings_per_frame(mtu):
    """How many readings fit in one notification at this ATT MTU (at least 1)."""
    n = (mtu - ATT_NOTIFY_OVERHEAD - BATCH_OVERHEAD) // READING_SIZE
    if n < 1:
        return 1
    if n > MAX_READINGS_PER_FRAME:
        return MAX_READINGS_PER_FRAME
    return n


def frame_size(count):
    return BATCH_OVERHEAD + READING_SIZE * count


class BatchEncoder:
    """Fills one preallocated buffer with a batch frame; nothing is allocated per reading.

    begin(...) once, add(delta, distance) per reading until it returns False,
    then finish() returns the frame length (send buf[:length]).
    """

    def __init__(self, max_readings=MAX_READINGS_PER_FRAME):
        if max_readings < 1 or max_readings > MAX_READINGS_PER_FRAME:
            raise ValueError("max_readings must be 1..255")
        self.max_readings = max_readings
        self.buf = bytearray(frame_size(max_readings))
        self.count = 0
        self.limit = max_readings

    def begin(self, boot_id, first_seq, base_time_ms, limit=None, flags=FLAG_CLOCK_SYNCED):
        if limit is None or limit > self.max_readings:
            limit = self.max_readings
        self.limit = limit
        self.count = 0
        struct.pack_into(
            _HEADER_FMT,
            self.buf,
            0,
            PROTOCOL_VERSION,
            flags,
            boot_id & 0xFFFF,
            first_seq & SEQ_MASK,
            base_time_ms & 0xFFFFFFFF,
            (base_time_ms >> 32) & 0xFFFF,
            0,
        )

    def add(self, delta_ms, distance):
        """Append a reading delta_ms after the previous one; False when the frame is full
        or the delta does not fit (the caller then starts a new frame)."""
        n = self.count
        if n >= self.limit or delta_ms < 0 or delta_ms > MAX_DELTA_MS:
            return False
        if distance < 0 or distance > MAX_DISTANCE:
            raise ValueError("distance out of range")
        buf = self.buf
        pos = BATCH_HEADER_SIZE + n * READING_SIZE
        buf[pos] = delta_ms
        buf[pos + 1] = distance & 0xFF
        buf[pos + 2] = distance >> 8
        self.count = n + 1
        return True

    def finish(self):
        buf = self.buf
        n = self.count
        if n == 0:
            raise ValueError("empty batch")
        buf[BATCH_HEADER_SIZE - 1] = n
        end = BATCH_HEADER_SIZE + n * READING_SIZE
        c = crc16(buf, 0, end)
        buf[end] = c & 0xFF
        buf[end + 1] = c >> 8
        return end + BATCH_CRC_SIZE


def encode_batch(boot_id, first_seq, readings, flags=FLAG_CLOCK_SYNCED):
    """Encode (seq, epoch_ms, distance) readings with consecutive seqs into one frame (bytes).

    Raises ValueError if they cannot share a frame (gap in seq, time going back or
    jumping more than 255 ms, more than 255 readings)."""
    n = len(readings)
    if n < 1 or n > MAX_READINGS_PER_FRAME:
        raise ValueError("a frame holds 1..255 readings")
    enc = BatchEncoder(n)
    base = readings[0][1]
    enc.begin(boot_id, first_seq, base, n, flags)
    prev = base
    seq = first_seq
    for r in readings:
        if r[0] != (seq & SEQ_MASK):
            raise ValueError("seq not consecutive from first_seq")
        if not enc.add(r[1] - prev, r[2]):
            raise ValueError("time delta out of 0..255 ms")
        prev = r[1]
        seq += 1
    return bytes(enc.buf[: enc.finish()])


def decode_batch_header(data):
    """(version, flags, boot_id, first_seq, base_time_ms, count) of a frame, after checking
    length and CRC.  Raises ValueError with the reason."""
    n = len(data)
    if n < BATCH_OVERHEAD:
        raise ValueError("frame too short: %d bytes" % n)
    version = data[0]
    if version != PROTOCOL_VERSION:
        raise ValueError("unsupported frame version %d" % version)
    got = data[n - 2] | (data[n - 1] << 8)
    want = crc16(data, 0, n - 2)
    if got != want:
        raise ValueError("bad CRC: frame says 0x%04x, computed 0x%04x" % (got, want))
    _v, flags, boot_id, first_seq, lo, hi, count = struct.unpack_from(_HEADER_FMT, data, 0)
    if flags & ~_FLAGS_KNOWN:
        raise ValueError("unknown flag bits 0x%02x" % flags)
    if count == 0:
        raise ValueError("frame with no readings")
    if n != frame_size(count):
        raise ValueError("length %d does not match count %d (want %d)" % (n, count, frame_size(count)))
    return version, flags, boot_id, first_seq, (hi << 32) | lo, count


def decode_batch(data):
    """Decode a batch frame into (boot_id, first_seq, readings), readings a list of
    (seq, epoch_ms, distance).  Raises ValueError on bad CRC, version, length or shape."""
    _v, _flags, boot_id, first_seq, t, count = decode_batch_header(data)
    readings = []
    pos = BATCH_HEADER_SIZE
    seq = first_seq
    for _ in range(count):
        t += data[pos]
        readings.append((seq, t, data[pos + 1] | (data[pos + 2] << 8)))
        seq = (seq + 1) & SEQ_MASK
        pos += READING_SIZE
    return boot_id, first_seq, readings


# --- Control writes (control characteristic) ----------------------------------
OP_TIME_SYNC = const(0x01)  # u64 epoch_ms
OP_ACK = const(0x02)  # u32 seq [u16 boot_id]: release readings with seq <= this
OP_RESUME = const(0x03)  # u32 seq [u16 boot_id]: send again from this seq
OP_SET_RATE = const(0x04)  # u8 hz
OP_START = const(0x05)  # start sampling
OP_STOP = const(0x06)  # stop sampling

MIN_RATE_HZ = const(1)
MAX_RATE_HZ = const(50)
CONTROL_MAX_SIZE = const(9)
# Epoch ms must be plausible: 2001-09-09 .. 2286-11-20 (10**12 .. 10**13).
_EPOCH_MIN = 1000000000000
_EPOCH_MAX = 10000000000000


def encode_time_sync(epoch_ms):
    if not (_EPOCH_MIN <= epoch_ms < _EPOCH_MAX):
        raise ValueError("epoch_ms not plausible")
    return struct.pack("<BQ", OP_TIME_SYNC, epoch_ms)


def _encode_seq(op, seq, boot_id):
    if seq < 0 or seq > SEQ_MASK:
        raise ValueError("seq out of u32 range")
    if boot_id is None:
        return struct.pack("<BI", op, seq)
    return struct.pack("<BIH", op, seq, boot_id & 0xFFFF)


def encode_ack(seq, boot_id=None):
    """Acknowledge every reading with sequence number <= seq (optionally only for boot_id)."""
    return _encode_seq(OP_ACK, seq, boot_id)


def encode_resume(seq, boot_id=None):
    """Ask the board to send again from seq (acknowledges everything before seq)."""
    return _encode_seq(OP_RESUME, seq, boot_id)


def encode_set_rate(hz):
    if not (MIN_RATE_HZ <= hz <= MAX_RATE_HZ):
        raise ValueError("rate must be 1..50 Hz")
    return bytes((OP_SET_RATE, hz))


def encode_start():
    return bytes((OP_START,))


def encode_stop():
    return bytes((OP_STOP,))


def decode_control(data):
    """Decode a control write into (opcode, value, boot_id); boot_id is None when absent.

    value: epoch_ms for TIME_SYNC, seq for ACK/RESUME, hz for SET_RATE, None for
    START/STOP.  Raises ValueError on wrong length, unknown opcode or bad value."""
    n = len(data)
    if n == 0:
        raise ValueError("empty control write")
    op = data[0]
    if op == OP_TIME_SYNC:
        if n != 9:
            raise ValueError("time sync wants 9 bytes")
        epoch = struct.unpack_from("<Q", data, 1)[0]
        if not (_EPOCH_MIN <= epoch < _EPOCH_MAX):
            raise ValueError("epoch_ms not plausible")
        return op, epoch, None
    if op == OP_ACK or op == OP_RESUME:
        if n == 5:
            return op, struct.unpack_from("<I", data, 1)[0], None
        if n == 7:
            seq, boot_id = struct.unpack_from("<IH", data, 1)
            return op, seq, boot_id
        raise ValueError("ack/resume wants 5 or 7 bytes")
    if op == OP_SET_RATE:
        if n != 2:
            raise ValueError("set rate wants 2 bytes")
        hz = data[1]
        if hz < MIN_RATE_HZ or hz > MAX_RATE_HZ:
            raise ValueError("rate must be 1..50 Hz")
        return op, hz, None
    if op == OP_START or op == OP_STOP:
        if n != 1:
            raise ValueError("start/stop wants 1 byte")
        return op, None, None
    raise ValueError("unknown opcode 0x%02x" % op)


# --- Status (status characteristic) --------------------------------------------
STATUS_VERSION = const(1)
# version, flags, boot_id, fw major/minor/patch, next_seq, fill, capacity, dropped,
# sensor_errors, malformed_writes, battery_pct, rate_hz
_STATUS_FMT = "<BBHBBBIIIIIHBB"
STATUS_SIZE = const(31)
STATUS_FLAG_SYNCED = const(0x01)
STATUS_FLAG_SAMPLING = const(0x02)
BATTERY_UNKNOWN = const(255)

STATUS_FIELDS = (
    "firmware_version",
    "boot_id",
    "next_seq",
    "fill",
    "capacity",
    "dropped",
    "sensor_errors",
    "malformed_writes",
    "battery_pct",
    "rate_hz",
    "clock_synced",
    "sampling",
)


def parse_version(text):
    """'1.2.3' -> (1, 2, 3); each part 0..255."""
    parts = text.split(".")
    if len(parts) != 3:
        raise ValueError("firmware version must be MAJOR.MINOR.PATCH")
    out = tuple(int(p) for p in parts)
    for p in out:
        if p < 0 or p > 255:
            raise ValueError("version part out of 0..255")
    return out


def encode_status_into(
    buf,
    firmware_version,
    boot_id,
    next_seq,
    fill,
    capacity,
    dropped,
    sensor_errors,
    malformed_writes,
    battery_pct,
    rate_hz,
    clock_synced,
    sampling,
):
    """Write the 31-byte status into buf (firmware_version as a (major, minor, patch) tuple).
    Counters saturate instead of wrapping."""
    flags = (STATUS_FLAG_SYNCED if clock_synced else 0) | (STATUS_FLAG_SAMPLING if sampling else 0)
    struct.pack_into(
        _STATUS_FMT,
        buf,
        0,
        STATUS_VERSION,
        flags,
        boot_id & 0xFFFF,
        firmware_version[0],
        firmware_version[1],
        firmware_version[2],
        next_seq & SEQ_MASK,
        min(fill, SEQ_MASK),
        min(capacity, SEQ_MASK),
        min(dropped, SEQ_MASK),
        min(sensor_errors, SEQ_MASK),
        min(malformed_writes, 0xFFFF),
        battery_pct if 0 <= battery_pct <= 100 else BATTERY_UNKNOWN,
        rate_hz,
    )
    return STATUS_SIZE


def encode_status(**fields):
    """The status value as bytes; keyword arguments are the names in STATUS_FIELDS."""
    buf = bytearray(STATUS_SIZE)
    encode_status_into(buf, *[fields[k] for k in STATUS_FIELDS])
    return bytes(buf)


def decode_status(data):
    """Status bytes -> dict with the keys in STATUS_FIELDS ('firmware_version' as 'M.m.p').
    Raises ValueError on wrong length or version (a notification shorter than the
    status was cut by a small MTU: read the characteristic instead)."""
    if len(data) < STATUS_SIZE:
        raise ValueError("status too short: %d bytes, want %d" % (len(data), STATUS_SIZE))
    if data[0] != STATUS_VERSION:
        raise ValueError("unsupported status version %d" % data[0])
    (_v, flags, boot_id, ma, mi, pa, next_seq, fill, capacity, dropped, errors, malformed, battery, rate) = (
        struct.unpack_from(_STATUS_FMT, data, 0)
    )
    return {
        "firmware_version": "%d.%d.%d" % (ma, mi, pa),
        "boot_id": boot_id,
        "next_seq": next_seq,
        "fill": fill,
        "capacity": capacity,
        "dropped": dropped,
        "sensor_errors": errors,
        "malformed_writes": malformed,
        "battery_pct": None if battery == BATTERY_UNKNOWN else battery,
        "rate_hz": rate,
        "clock_synced": bool(flags & STATUS_FLAG_SYNCED),
        "sampling": bool(flags & STATUS_FLAG_SAMPLING),
    }


# --- Advertising payload (Core spec Supplement, Part A) ------------------------
AD_FLAGS = const(0x01)
AD_UUID128_COMPLETE = const(0x07)
AD_NAME_SHORT = const(0x08)
AD_NAME_COMPLETE = const(0x09)
_AD_FLAGS_LE_GENERAL_NO_BREDR = const(0x06)


def device_name(serial):
    """'STEDI-' + the last four characters of the serial number."""
    return NAME_PREFIX + serial[-4:]


def uuid128_le(uuid_str):
    """A 128-bit UUID string as the 16 little-endian bytes used on air."""
    h = uuid_str.replace("-", "")
    if len(h) != 32:
        raise ValueError("not a 128-bit UUID")
    b = bytearray(16)
    for i in range(16):
        b[15 - i] = int(h[2 * i : 2 * i + 2], 16)
    return bytes(b)


def _ad_field(ad_type, value):
    return bytes((len(value) + 1, ad_type)) + value


def encode_advertising(name):
    """(adv_data, resp_data): flags + service UUID in the advertisement, the complete
    local name in the scan response (both together exceed 31 bytes)."""
    adv = _ad_field(AD_FLAGS, bytes((_AD_FLAGS_LE_GENERAL_NO_BREDR,))) + _ad_field(
        AD_UUID128_COMPLETE, uuid128_le(SERVICE_UUID)
    )
    resp = _ad_field(AD_NAME_COMPLETE, name.encode())
    return adv, resp


def decode_ad_fields(payload):
    """Split an advertising payload into a list of (ad_type, value bytes).  Raises ValueError."""
    out = []
    i = 0
    n = len(payload)
    while i < n:
        length = payload[i]
        if length == 0:
            break  # zero padding ends the significant part
        if i + 1 + length > n:
            raise ValueError("AD field runs past the payload")
        out.append((payload[i + 1], bytes(payload[i + 2 : i + 1 + length])))
        i += 1 + length
    return out
