"""Landing files Spark cannot read whole: damaged gzip streams.

Spark decompresses a ``.json.gz`` file as it reads it, and a truncated or corrupt stream makes the
read (and so the whole run) fail.  A gateway killed mid-upload by a tool that does not write
atomically, or a copy cut short, leaves exactly such a file.  So a new gzip landing file is
decompressed here first: a sound one goes to Spark as usual; of a damaged one, the complete
lines that can be trusted are parsed like any others, and the rest becomes quarantine records
under the rule ``damaged_file`` with the reason.  The file is then on record in the
reconciliation instead of stopping the run.

Which lines can be trusted: those of gzip members whose CRC-32 checked out, and of a stream that
was merely cut short (deflate decodes a prefix exactly; such text is as trustworthy as a plain
JSON file, which has no checksum at all).  Text decoded from a corrupt member cannot be: deflate
may decode garbage for a while before it meets something invalid, and such garbage can look like
a record with the wrong numbers.  So every line of a corrupt member goes to the quarantine.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

#: zlib's window bits for a gzip header and trailer (RFC 1952) rather than a raw deflate stream.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
#: Compressed bytes fed per step.
_CHUNK = 64 * 1024
#: Where Spark's text reader ends a line when no separator is set: \n, \r\n or a lone \r.
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Damage:
    """What could be read of a damaged gzip file."""

    lines: list[bytes]  # complete lines that can be trusted, without their line ends
    #: What goes to the quarantine, at least one item: the line a cut ended (may be empty), or
    #: every line decoded from a corrupt member.
    rest: list[bytes]
    problem: str  # what is wrong, for the quarantine reason
    #: Whether ``rest`` holds text decoded from a corrupt member (else it is the trusted cut line).
    suspect: bool = False
    #: Whether part of the file could not be decoded at all (a corrupt block and what follows it,
    #: or bytes after the end of the stream).  A truncated file has none: all of it was read.
    unreadable: bool = False


@dataclass(frozen=True)
class _Inflated:
    trusted: bytes  # text of members whose checksum held, or of a stream that was only cut short
    suspect: bytes  # text decoded from a corrupt member before zlib noticed
    problem: str | None
    unreadable: bool


def _decodable_start(stream: zlib._Decompress, chunk: bytes) -> bytes:
    """What ``stream`` yields of ``chunk`` before the byte it fails on: fed a byte at a time, so
    the text decoded before the error is not lost with it."""
    out = []
    for i in range(len(chunk)):
        try:
            out.append(stream.decompress(chunk[i : i + 1]))
        except zlib.error:
            break
    return b"".join(out)


def _inflate(data: bytes, keep: bool) -> _Inflated:
    """Decompress every gzip member of ``data``.  The text is kept only when ``keep`` (only
    damaged files need it: a sound one is not held in memory)."""
    trusted: list[bytes] = []
    member = 0
    while True:
        member += 1
        stream = zlib.decompressobj(_GZIP_WBITS)
        out: list[bytes] = []
        read = 0
        try:
            while read < len(data) and not stream.eof:
                chunk = data[read : read + _CHUNK]
                before = stream.copy() if keep else stream
                text = stream.decompress(chunk)
                if keep:
                    out.append(text)
                read += _CHUNK
        except zlib.error as error:
            if keep:
                out.append(_decodable_start(before, chunk))
            problem = f"gzip stream is corrupt (member {member}: {error})"
            return _Inflated(b"".join(trusted), b"".join(out), problem, True)
        if not stream.eof:
            out.append(stream.flush())
            return _Inflated(b"".join(trusted + out), b"", "gzip stream ends early: the file is truncated", False)
        trusted += out  # the member's end was reached: zlib checked its CRC-32 and length
        rest = stream.unused_data + data[read:]
        if not rest:
            return _Inflated(b"".join(trusted), b"", None, False)
        # Concatenated members are one valid gzip file (RFC 1952, 2.2); anything else after the
        # end of a member is not.
        if not rest.startswith(b"\x1f\x8b"):
            return _Inflated(b"".join(trusted), b"", f"{len(rest)} byte(s) after the end of the gzip stream", True)
        data = rest


#: An empty file: not even a gzip header, so nothing to recover.
_EMPTY = Damage([], [b""], "file is empty: not even a gzip header")


def _damage(inflated: _Inflated) -> Damage:
    """What can be recovered of a file that failed, split into trusted lines and the rest."""
    assert inflated.problem is not None
    *lines, cut = _LINE_END.split(inflated.trusted)
    rest = [cut]
    if inflated.suspect:
        # The trusted text's unfinished line goes on in the suspect text: it is suspect too.
        rest = _LINE_END.split(cut + inflated.suspect)
        if len(rest) > 1 and rest[-1] == b"":
            rest.pop()  # the suspect text ended with a line end: no cut line after it
    return Damage(lines, rest, inflated.problem, bool(inflated.suspect), inflated.unreadable)


def check_gzip(data: bytes) -> Damage | None:
    """None when ``data`` is a sound gzip file; else what can be recovered of it.  A sound file's
    text is not kept (Spark reads it): see ``read_gzip`` for callers that need it."""
    if not data:
        return _EMPTY
    if _inflate(data, keep=False).problem is None:
        return None
    return _damage(_inflate(data, keep=True))


def read_gzip(data: bytes) -> tuple[bytes, Damage | None]:
    """The text of a sound gzip file and None, or b"" and what can be recovered of a damaged one:
    decoded once, by the same rules as ``check_gzip``."""
    if not data:
        return b"", _EMPTY
    inflated = _inflate(data, keep=True)
    if inflated.problem is None:
        return inflated.trusted, None
    return b"", _damage(inflated)
