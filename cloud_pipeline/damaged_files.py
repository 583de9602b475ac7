"""Landing files Spark cannot read whole: damaged gzip streams.

Spark decompresses a ``.json.gz`` file as it reads it, and a truncated or corrupt stream makes the
read (and so the whole run) fail.  A gateway killed mid-upload by a tool that does not write
atomically, or a copy cut short, leaves exactly such a file.  So a new gzip landing file is
decompressed here first: a sound one goes to Spark as usual; of a damaged one, the complete
lines that could be recovered are parsed like any others, and the rest (the line the damage cut,
possibly empty) becomes one quarantine record under the rule ``damaged_file`` with the reason.
The file is then on record in the reconciliation instead of stopping the run.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

#: zlib's window bits for a gzip header and trailer (RFC 1952) rather than a raw deflate stream.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
#: Compressed bytes fed per step: a corrupt block then costs at most this much recovered text.
_CHUNK = 64 * 1024
#: Where Spark's text reader ends a line when no separator is set: \n, \r\n or a lone \r.
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Damage:
    """What could be read of a damaged gzip file."""

    lines: list[bytes]  # complete lines before the damage, without their line ends
    cut: bytes  # the text after the last complete line: the line the damage cut (may be empty)
    problem: str  # what is wrong, for the quarantine reason


def _inflate(data: bytes, keep: bool) -> tuple[bytes, str | None]:
    """Decompress every gzip member of ``data``; returns what stopped it, if anything, and the
    text when ``keep`` (only damaged files need it: a sound one is not held in memory)."""
    out: list[bytes] = []
    member = 0
    while True:
        member += 1
        stream = zlib.decompressobj(_GZIP_WBITS)
        read = 0
        try:
            while read < len(data) and not stream.eof:
                text = stream.decompress(data[read : read + _CHUNK])
                if keep:
                    out.append(text)
                read += _CHUNK
        except zlib.error as error:
            return b"".join(out), f"gzip stream is corrupt (member {member}: {error})"
        if not stream.eof:
            return b"".join(out) + stream.flush(), "gzip stream ends early: the file is truncated"
        rest = stream.unused_data + data[read:]
        if not rest:
            return b"".join(out), None
        # Concatenated members are one valid gzip file (RFC 1952, 2.2); anything else after the
        # end of a member is not.
        if not rest.startswith(b"\x1f\x8b"):
            return b"".join(out), f"{len(rest)} byte(s) after the end of the gzip stream"
        data = rest


def check_gzip(data: bytes) -> Damage | None:
    """None when ``data`` is a sound gzip file; else what can be recovered of it."""
    if not data:
        return Damage([], b"", "file is empty: not even a gzip header")
    _, problem = _inflate(data, keep=False)
    if problem is None:
        return None
    text, _ = _inflate(data, keep=True)
    *lines, cut = _LINE_END.split(text)
    return Damage(lines, cut, problem)
