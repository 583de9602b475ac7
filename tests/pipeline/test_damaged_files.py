"""The gzip check that keeps a damaged landing file from failing a run (no Spark needed)."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_pipeline.damaged_files import check_gzip

LINES = [b'{"user":"a@example.com","timestamp":%d,"x":%d.5,"y":0,"z":1}' % (1_700_000_000_000 + i, i) for i in range(400)]
TEXT = b"\n".join(LINES) + b"\n"


def test_sound_files_pass_including_concatenated_members() -> None:
    assert check_gzip(gzip.compress(TEXT)) is None
    assert check_gzip(gzip.compress(TEXT[:100]) + gzip.compress(TEXT[100:])) is None


def test_files_that_are_not_gzip_at_all_are_damaged_with_nothing_recovered() -> None:
    for data in (b"", TEXT, b"\x1f\x8b"):
        damage = check_gzip(data)
        assert damage is not None and damage.lines == [] and damage.cut == b""


def test_lines_end_where_sparks_text_reader_ends_them() -> None:
    damage = check_gzip(gzip.compress(b"a\r\nb\rc\nd")[:-1])
    assert damage is not None and damage.lines == [b"a", b"b", b"c"] and damage.cut == b"d"


def test_bytes_after_the_stream_keep_every_line_and_are_named() -> None:
    damage = check_gzip(gzip.compress(TEXT) + b"trailing junk")
    assert damage is not None
    assert damage.lines == LINES and damage.cut == b""
    assert damage.problem == "13 byte(s) after the end of the gzip stream"


def test_a_corrupt_block_is_reported_as_corrupt() -> None:
    packed = bytearray(zlib.compress(TEXT, 9)[2:-4])  # a raw deflate body...
    header = gzip.compress(b"")[:10]
    data = bytearray(header + packed)
    data[len(header) + len(packed) // 2] ^= 0xFF
    damage = check_gzip(bytes(data) + b"\0" * 8)
    assert damage is not None and damage.problem.startswith(("gzip stream is corrupt", "gzip stream ends early"))
    assert damage.lines == LINES[: len(damage.lines)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b), max_size=60), st.data())
def test_a_cut_anywhere_recovers_a_prefix_of_the_lines_and_the_cut_line(lines: list[bytes], data: st.DataObject) -> None:
    text = b"".join(line + b"\n" for line in lines)
    packed = gzip.compress(text)
    cut = data.draw(st.integers(0, len(packed) - 1))
    damage = check_gzip(packed[:cut])
    assert damage is not None  # a gzip file missing even its last byte is never sound
    assert damage.lines == lines[: len(damage.lines)]
    # Nothing is invented: what was recovered, cut line included, is a prefix of the text.
    recovered = b"".join(line + b"\n" for line in damage.lines) + damage.cut
    assert text.startswith(recovered)
