#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/.

Usage: make_corpus.py [DATA_DIR...]

Event and control seeds are written from the literals below.  Journal seeds
come from the journal segments of each DATA_DIR given (a store killed with
kill -9 before a checkpoint, so that its journal holds creates, appends and
deletes): each segment as is (mode byte 0), and the journal's records as
fuzz_journal's framed mode (mode byte 1), which the build's journal_frames
tool reads with the journal module itself (EVL_BUILD_DIR: the build, by
default build/).
"""
import glob
import os
import subprocess
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
        for k in range(0, len(c), 255):     # a longer line: several writes
            out += bytes([len(c[k:k + 255])]) + c[k:k + 255]
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


def in_strings(frag):
    """@frag in a value, in a key and as the type: one write each."""
    return [b'{"type":"a","k":"' + frag + b'"}\n', b'{"type":"a","' + frag + b'":1}\n',
            b'{"type":"' + frag + b'"}\n']


def in_numbers(num):
    """@num in a value, in an array and as the type: one write each."""
    return [b'{"type":"a","n":' + num + b'}\n', b'{"type":"a","n":[true,' + num + b']}\n',
            b'{"type":' + num + b'}\n']


# The conformance set of tests/unit/event_cases.h, grouped: what RFC 8259 +
# RFC 3629 refuse (and json-c accepted), the valid edges beside them.
STRICT = {
    "utf8-overlong": [b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xe0\x9f\xbf",
                      b"\xf0\x80\x80\xaf", b"\xf0\x8f\xbf\xbf"],
    "utf8-surrogate": [b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\xbd\xed\xb8\x80"],
    "utf8-past-10ffff": [b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80"],
    "utf8-bad-bytes": [b"\xfe", b"\xff", b"\x80", b"\xbf", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3"],
    "utf8-edges": [b"\xc2\x80", b"\xdf\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf", b"\xee\x80\x80",
                   b"\xef\xbf\xbf", b"\xef\xbb\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf"],
    "escape-surrogate": [b"\\ud800", b"\\udbff", b"\\udc00", b"\\udfff", b"\\ud800\\u0041",
                         b"\\ud800\\ud800", b"\\ude00\\ud83d", b"\\ud800x"],
    "escape-bad": [b"\\x", b"\\u12", b"\\uZZZZ", b"\\U0041", b"\\'", b"\\a"],
    "escape-good": [b"\\ud83d\\ude00", b"\\uDBFF\\uDFFF", b"\\u00e9\\\\\\\"", b"\\/",
                    b"\\b\\f\\n\\r\\t", b"\\u0000", b"\\u001f", b"\\u007f", b"\\u002e"],
    "control": [b"\x01", b"x\x1f", b"x\ty", b"x\ry", b"x\x00y", b"a\x7f"],
}
NUMBERS = {
    "number-leading-zero": [b"00", b"-01", b"00.5", b"01", b"-00", b"0123456789012345678901234567890"],
    "number-bad": [b"1.", b"1.e5", b"1e", b"1e+", b"-", b"--1", b"-.5", b".5", b"+1", b"0x10",
                   b"1_000", b"-Infinity", b"NaN", b"Infinity"],
    "number-good": [b"0", b"-0", b"0.5", b"-0.0", b"1e5", b"1E+5", b"1e-5", b"-123.456e-07",
                    b"18446744073709551615", b"-9223372036854775808", b"1e-999"],
    "number-big": [b"18446744073709551616", b"-9223372036854775809",
                   b"123456789012345678901234567890", b"1e999", b"-1E+400", b"2e308"],
}
OTHER = {
    "array-leading-zero": [b'{"type":"a","n":[00]}\n', b'{"type":"a","n":[1e999,00]}\n'],
    "nul-after-number": [b'{"type":"a","n":123\x00456}\n', b'{"type":"a","n":1e999\x007}\n'],
    "type-dot": [b'{"type":"."}\n', b'{"type":".."}\n', b'{"type":".hidden"}\n',
                 b'{"type":"\\u002e"}\n', b'{"type":"a."}\n'],
    "type-dup": [b'{"type":"a","type":"b"}\n', b'{"type":"a","\\u0074ype":"b"}\n',
                 b'{"type":1,"type":"a"}\n', b'{"\\u0074ype":"a"}\n', b'{"type":"a","k":1,"k":2}\n'],
    "structure": [b'{"type":"a"} {}\n', b'{"type":"a"}}\n', b'\xef\xbb\xbf{"type":"a"}\n',
                  b'{"type":"a",}\n', b'{"type":"a","b":[1 2]}\n', b'{"type":"a"}\x0c\n',
                  b'{"type":"a","v":tru}\n', b'{"type":"a","v":NaN}\n'],
    "deep-128": [b'{"type":"d","x":' + b"[" * 127 + b"]" * 127 + b"}\n"],
    "deep-129": [b'{"type":"d","x":' + b"[" * 128 + b"]" * 128 + b"}\n",
                 b'{"type":"d","x":' + b"[" * 128 + b"1" + b"]" * 128 + b"}\n"],
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


def records(data_dir):
    """The records of @data_dir's journal, as fuzz_journal's framed input
    (mode byte included), read by the journal module itself: the journal_frames
    tool of the build (EVL_BUILD_DIR, default build/).  None if it has none."""
    build = os.environ.get("EVL_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
    tool = os.path.join(build, "tests", "tools", "journal_frames")
    r = subprocess.run([tool, data_dir], stdout=subprocess.PIPE)
    if r.returncode == 2:
        return None
    if r.returncode != 0:
        sys.exit("make_corpus.py: journal_frames %s failed" % data_dir)
    return r.stdout


def main():
    for name, data in EVENTS.items():
        put("event", name, data)
    for name, frags in STRICT.items():
        put("event", name, writes(*[w for f in frags for w in in_strings(f)]))
    for name, nums in NUMBERS.items():
        put("event", name, writes(*[w for n in nums for w in in_numbers(n)]))
    for name, lines in OTHER.items():
        put("event", name, writes(*lines))
    for name, data in CONTROL.items():
        put("control", name, data)
    for k, d in enumerate(sys.argv[1:]):
        for seg in sorted(glob.glob(os.path.join(d, "journal", "*.jnl"))):
            with open(seg, "rb") as f:
                data = f.read()
            base = "store%d-%s" % (k, os.path.basename(seg)[:-4].lstrip("0") or "0")
            put("journal", base + "-raw", b"\x00" + data)
        recs = records(d)
        if recs:
            put("journal", "store%d-framed" % k, recs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
