"""The gzip check that keeps a damaged landing file from failing a run (no Spark needed)."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_pipeline.transforms.damaged_files import check_gzip

LINES = [b'{"user":"a@example.com","timestamp":%d,"x":%d.5,"y":0,"z":1}' % (1_700_000_000_000 + i, i) for i in range(400)]
TEXT = b"\n".join(LINES) + b"\n"


def test_sound_files_pass_including_concatenated_members() -> None:
    assert check_gzip(gzip.compress(TEXT)) is None
    assert check_gzip(gzip.compress(TEXT[:100]) + gzip.compress(TEXT[100:])) is None


def test_files_that_are_not_gzip_at_all_are_damaged_with_nothing_recovered() -> None:
    for data in (b"", TEXT, b"\x1f\x8b"):
        damage = check_gzip(data)
        assert damage is not None and damage.lines == [] and damage.rest == [b""]


def test_lines_end_where_sparks_text_reader_ends_them() -> None:
    damage = check_gzip(gzip.compress(b"a\r\nb\rc\nd")[:-1])
    assert damage is not None and damage.lines == [b"a", b"b", b"c"] and damage.rest == [b"d"]
    assert not damage.suspect and not damage.unreadable


def test_bytes_after_the_stream_keep_every_line_and_are_named() -> None:
    damage = check_gzip(gzip.compress(TEXT) + b"trailing junk")
    assert damage is not None
    assert damage.lines == LINES and damage.rest == [b""] and not damage.suspect and damage.unreadable
    assert damage.problem == "13 byte(s) after the end of the gzip stream"


def test_a_corrupt_member_is_quarantined_line_by_line_not_trusted() -> None:
    packed = bytearray(zlib.compress(TEXT, 9)[2:-4])  # a raw deflate body...
    header = gzip.compress(b"")[:10]
    data = bytearray(header + packed)
    data[len(header) + len(packed) // 2] ^= 0xFF
    damage = check_gzip(gzip.compress(LINES[0] + b"\n") + bytes(data) + b"\0" * 8)
    assert damage is not None and damage.problem.startswith("gzip stream is corrupt (member 2")
    # The sound first member is trusted; of the second, deflate decoded garbage before it noticed
    # (a line that is no line of the text), so none of it is.
    assert damage.lines == [LINES[0]] and damage.suspect and damage.unreadable
    assert damage.rest[:9] == LINES[:9] and not set(damage.rest) <= set(LINES)


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
    assert len(damage.rest) == 1 and not damage.suspect
    recovered = b"".join(line + b"\n" for line in damage.lines) + damage.rest[0]
    assert text.startswith(recovered)


def _flushed_gzip(lines: list[bytes], tail: bytes) -> bytes:
    """Lines flushed whole into a gzip stream, then ``tail`` (what the damage left) instead of its end."""
    stream = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    return stream.compress(b"".join(line + b"\n" for line in lines)) + stream.flush(zlib.Z_FULL_FLUSH) + tail


def test_what_is_unreadable_is_told_apart_from_a_cut_end() -> None:
    truncated = check_gzip(gzip.compress(TEXT)[:-20])
    assert truncated is not None and not truncated.unreadable  # every byte was read, the end is missing
    # After a full flush the next byte starts a block: 0xff is block type 3, which deflate reserves.
    # What was decoded before it is all there, but as suspect: the member's checksum is never seen.
    corrupt = check_gzip(_flushed_gzip(LINES[:5], b"\xff" * 40))
    assert corrupt is not None and corrupt.unreadable and corrupt.suspect
    assert corrupt.lines == [] and corrupt.rest == LINES[:5]
    trailing = check_gzip(gzip.compress(TEXT) + b"junk")
    assert trailing is not None and trailing.unreadable


def test_erase_searches_damaged_files_and_names_what_it_could_not(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cloud_pipeline.storage.erase import erase_landing
    from cloud_pipeline.storage.s3_cache import open_store
    from tests.pipeline.helpers import SALT, small_lake

    small_lake(tmp_path)
    landing = tmp_path / "accelerometer" / "landing"
    ann, bob = (b'{"user":"%s@example.com","timestamp":1,"x":0,"y":0,"z":0}' % n for n in (b"ann", b"bob"))
    stream = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    cut = stream.compress(b"\n".join([bob, ann, ann[:30]])) + stream.flush(zlib.Z_SYNC_FLUSH)
    (landing / "cut.json.gz").write_bytes(cut)  # truncated: all of it readable, ann's line cut
    sound_member = gzip.compress(bob + b"\n")
    (landing / "corrupt-ann.json.gz").write_bytes(sound_member + _flushed_gzip([ann, bob], b"\xff" * 40))
    (landing / "corrupt-bob.json.gz").write_bytes(_flushed_gzip([bob], b"\xff" * 40))

    report = erase_landing(open_store(str(tmp_path)), "ann@example.com", SALT)

    # Files with ann's lines are rewritten whole, sound and without her; the cut line named her too.
    assert gzip.decompress((landing / "cut.json.gz").read_bytes()) == bob + b"\n"
    # Of a corrupt file only the sound member's lines stay: the rest were decoded from a corrupt one.
    assert gzip.decompress((landing / "corrupt-ann.json.gz").read_bytes()) == bob + b"\n"
    assert report.suspect_lines_dropped == 1
    # A damaged file with nothing of hers that can be read stays, and is named: it was not all searched.
    assert (landing / "corrupt-bob.json.gz").read_bytes() == _flushed_gzip([bob], b"\xff" * 40)
    assert report.unsearched_files == ["accelerometer/landing/corrupt-bob.json.gz"]
    assert report.lines_removed["accelerometer"] == 4 + 3  # small_lake's 4 of hers, and 3 here
    assert report.files_rewritten == 3 + 2  # small_lake's, and 2 here
