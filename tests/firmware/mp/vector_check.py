# Checks tests/firmware/vectors.json against stedi_protocol.  Common subset of
# MicroPython and CPython: the same file runs under both interpreters.
import json

import stedi_protocol as p


def _fail(what, name, got, want):
    raise AssertionError("%s %r: got %r, want %r" % (what, name, got, want))


def _expect_error(fn, data, name, fragment):
    try:
        fn(data)
    except ValueError as e:
        if fragment not in str(e):
            _fail("error text", name, str(e), fragment)
        return
    _fail("no ValueError", name, None, fragment)


def check(vectors):
    n = 0
    for v in vectors["crc"]:
        got = p.crc16(v["ascii"].encode())
        if got != v["crc"]:
            _fail("crc", v["ascii"], got, v["crc"])
        n += 1
    for v in vectors["batches"]:
        frame = bytes.fromhex(v["hex"])
        boot_id, first_seq, readings = p.decode_batch(frame)
        want = [tuple(r) for r in v["readings"]]
        if (boot_id, first_seq, readings) != (v["boot_id"], v["first_seq"], want):
            _fail("decode", v["name"], (boot_id, first_seq, readings), want)
        again = p.encode_batch(v["boot_id"], v["first_seq"], want)
        if again != frame:
            _fail("encode", v["name"], again, frame)
        n += 1
    for v in vectors["bad_batches"]:
        _expect_error(p.decode_batch, bytes.fromhex(v["hex"]), v["name"], v["error"])
        n += 1
    for v in vectors["controls"]:
        data = bytes.fromhex(v["hex"])
        got = p.decode_control(data)
        if got != (v["op"], v["value"], v["boot_id"]):
            _fail("control", v["name"], got, (v["op"], v["value"], v["boot_id"]))
        n += 1
    for v in vectors["bad_controls"]:
        _expect_error(p.decode_control, bytes.fromhex(v["hex"]), v["name"], v["error"])
        n += 1
    for v in vectors["statuses"]:
        got = p.decode_status(bytes.fromhex(v["hex"]))
        for k in p.STATUS_FIELDS:
            if got[k] != v["fields"][k]:
                _fail("status " + k, v["name"], got[k], v["fields"][k])
        n += 1
    return n


def main(path):
    with open(path) as f:
        vectors = json.load(f)
    print("VECTORS OK %d" % check(vectors))


if __name__ == "__main__":
    import sys

    main(sys.argv[1])
