# Answers decode requests on stdin, one per line: "<kind> <hex bytes>".  The same answer()
# runs under CPython (tests/fuzz/micropython.py imports it), so both interpreters' results can
# be compared as text.  Common subset of MicroPython and CPython.
import sys


def _batch(p, data):
    boot, first, readings = p.decode_batch(data)
    return "%d %d %s" % (boot, first, ";".join("%d,%d,%d" % r for r in readings))


def _control(p, data):
    op, value, boot = p.decode_control(data)
    return "%d %r %r" % (op, value, boot)


def _status(p, data):
    d = p.decode_status(data)
    return " ".join("%s=%r" % (k, d[k]) for k in p.STATUS_FIELDS)


def _ad(p, data):
    return ";".join("%d:%s" % (t, ",".join("%d" % b for b in v)) for t, v in p.decode_ad_fields(data))


KINDS = {"b": _batch, "c": _control, "s": _status, "a": _ad}


def answer(p, kind, data):
    try:
        return "OK " + KINDS[kind](p, data)
    except ValueError as e:
        return "ERR " + str(e)


def serve(p):
    import gc

    n = 0
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        kind, _, text = line.strip().partition(" ")
        sys.stdout.write(answer(p, kind, bytes.fromhex(text)) + "\n")
        n += 1
        if n % 200 == 0:
            gc.collect()


if __name__ == "__main__":
    import stedi_protocol

    serve(stedi_protocol)
