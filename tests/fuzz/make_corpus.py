#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/.

Usage: make_corpus.py [DATA_DIR...]

Event and control seeds are written from the literals below.  Journal seeds
come from the journal segments of each DATA_DIR given (a store killed with
kill -9 before a checkpoint, so that its journal holds creates, appends and
deletes): each segment once as is (mode byte 0) and once as the records of
fuzz_journal's framed mode (mode byte 1).
"""
import glob
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def writes(*chunks, max_sel=3):
    """fuzz_event's input: the max_event selector, then (length, bytes) per write()."""
    out = bytes([max_sel])
    for c in chunks:
        out += bytes([len(c)]) + c
    return out


EVENTS = {
    "one": writes(b'{"type":"build.start","id":1}\n'),
    "split": writes(b'{"type":"a.b",', b'"n":[1,2.5e3,-0.1,true,false,null]', b'}\n{"type":"c"}\n'),
    "nested": writes(b'{"x":{"y":[{"z":"\\u00e9\\n"}]},"type":"t\xc3\xa9"}\n'),
    "blank": writes(b"\n  \n", b'{"type":"t"}\r\n'),
    "bad": writes(b'{"type":"a"}\n{"type":1}\n', b"{'type':'x'}\n", b'{"type":"a/b"}\n'),
    "utf8": writes(b'{"type":"\xff"}\n', b'{"type":"ok","s":"\xe2\x82\xac"}\n'),
    "long": writes(b'{"type":"small","pad":"' + b"p" * 40 + b'"}\n', max_sel=1),
    "tail": writes(b'{"type":"t","pad":"' + b"q" * 200, b'"}\n', max_sel=2),
    "dup": writes(b'{"type":"a","type":"b"}\n{"type":"x"} {}\n'),
}

CONTROL = {
    "checkpoint": b"checkpoint\n",
    "compact": b"compact\n",
    "retain": b"compact task=t1 keep-last=10 max-age=12h\n",
    "expire": b"compact expire-idle=30d\n",
    "bad": b"compact keep-last=0\n",
    "crlf": b" checkpoint\r\n",
    "quoted": b'compact task="a \\"b\\\\c" keep-last=3\n',
    "twice": b"compact keep-last=3 keep-last=4\n",
    "huge": b"compact max-age=99999999999999999999999s expire-idle=9223372036s\n",
    "bytes": b"compact task=\x80\xff\n",
    "unknown": b"frobnicate\n",
}


def records(segment):
    """The records of a segment file, as fuzz_journal's framed input."""
    out = b""
    pos = 32
    while pos + 32 <= len(segment):
        magic, typ, length = struct.unpack_from("<IB3xI", segment, pos)
        if magic != 0x524A5645 or pos + 32 + length > len(segment) or length > 0xFFFF:
            break
        out += struct.pack("<BH", typ, length) + segment[pos + 32:pos + 32 + length]
        pos += 32 + length
    return out


def main():
    for name, data in EVENTS.items():
        put("event", name, data)
    for name, data in CONTROL.items():
        put("control", name, data)
    for k, d in enumerate(sys.argv[1:]):
        for seg in sorted(glob.glob(os.path.join(d, "journal", "*.jnl"))):
            with open(seg, "rb") as f:
                data = f.read()
            base = "store%d-%s" % (k, os.path.basename(seg)[:-4].lstrip("0") or "0")
            put("journal", base + "-raw", b"\x00" + data)
            recs = records(data)
            if recs:
                put("journal", base + "-framed", b"\x01" + recs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
