"""The hub's JSON-lines protocol (UTF-8, ``\\n`` ends a frame): the board protocol between a
board's ``bluetooth`` shim and its bumble host in the hub, and the control frames.

Centrals do not use it: they speak HCI to their own controller.  JSON lines because the board
end is MicroPython (``json`` and ``binascii`` are built in) and a person can watch it with
``nc``.  Bytes travel as lowercase hex strings.  Every frame has a type ``t``; the list is in
``docs/simulator-radio.md``.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

Frame = dict[str, Any]

#: Longest frame accepted (a 512-byte attribute is 1 KiB of hex plus the envelope).
MAX_FRAME = 16 * 1024

#: ATT defaults (Bluetooth Core Spec Vol 3 Part F 3.2.8): MTU 23 until exchanged.
DEFAULT_MTU = 23
MAX_MTU = 517


class ProtocolError(ValueError):
    """A frame that is not a JSON object with a string ``t``."""


def encode(frame: Frame) -> bytes:
    return json.dumps(frame, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> Frame:
    if len(line) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(line)} bytes exceeds {MAX_FRAME}")
    try:
        frame = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {line[:80]!r}") from exc
    if not isinstance(frame, dict) or not isinstance(frame.get("t"), str):
        raise ProtocolError(f"not a frame (needs an object with a string 't'): {line[:80]!r}")
    return frame


def to_hex(data: bytes | bytearray | memoryview | None) -> str | None:
    return None if data is None else binascii.hexlify(bytes(data)).decode()


def from_hex(text: str | None) -> bytes:
    return b"" if not text else binascii.unhexlify(text)


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``sim://HOST:PORT`` -> (host, port)."""
    if text.startswith("sim://"):
        text = text[len("sim://") :]
    host, sep, port = text.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT or sim://HOST:PORT, got {text!r}")
    return host, int(port)


def parse_adv(payload: bytes) -> dict[str, Any]:
    """Decode a BLE advertising payload (AD structures, Core Spec Supplement Part A) into the
    fields a scanner reports: local name, service UUIDs, manufacturer and service data, tx power."""
    out: dict[str, Any] = {"name": None, "uuids": [], "mfr": {}, "svc_data": {}, "tx_power": None}
    i = 0
    while i + 1 < len(payload):
        length = payload[i]
        if length == 0 or i + 1 + length > len(payload):
            break
        kind, value = payload[i + 1], payload[i + 2 : i + 1 + length]
        if kind in (0x08, 0x09):  # shortened / complete local name
            out["name"] = value.decode("utf-8", "replace")
        elif kind in (0x02, 0x03):  # 16-bit service UUIDs
            for j in range(0, len(value) - 1, 2):
                out["uuids"].append(f"0000{int.from_bytes(value[j:j + 2], 'little'):04x}-0000-1000-8000-00805f9b34fb")
        elif kind in (0x06, 0x07):  # 128-bit service UUIDs, little-endian
            for j in range(0, len(value) - 15, 16):
                out["uuids"].append(uuid128_str(value[j : j + 16][::-1]))
        elif kind == 0xFF and len(value) >= 2:
            out["mfr"][int.from_bytes(value[:2], "little")] = bytes(value[2:])
        elif kind == 0x16 and len(value) >= 2:
            key = f"0000{int.from_bytes(value[:2], 'little'):04x}-0000-1000-8000-00805f9b34fb"
            out["svc_data"][key] = bytes(value[2:])
        elif kind == 0x0A and len(value) == 1:
            out["tx_power"] = int.from_bytes(value, "little", signed=True)
        i += 1 + length
    return out


def uuid128_str(big_endian: bytes) -> str:
    h = big_endian.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
