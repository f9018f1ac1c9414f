#!/usr/bin/env python3
"""The event validator against Python's json module, on random and mutated lines.

Usage: event_differential.py EVENT_VERDICT [--seed N] [--count N]

EVENT_VERDICT is build/tests/unit/event_verdict.  Each input is judged by
both; any disagreement is printed with the seed and the input (hex) and
fails the run.  The reference verdict is Python's
json.loads(line.decode('utf-8', 'strict')), which is RFC 8259 + RFC 3629,
narrowed by the choices the SPEC makes where the RFC leaves room:
  - NaN, Infinity, -Infinity are refused (Python takes them by default);
  - an escaped lone surrogate ("\\ud800") is refused (Python takes it: a str
    that cannot be encoded back to UTF-8);
  - containers nest at most 128 deep, the event included;
  - the top level is an object with exactly one member "type", a string of
    1-255 UTF-8 bytes without '/', control characters or DEL, not
    starting with '.'.
Numbers are left as text (parse_int/parse_float), so any grammatical number
passes, as RFC 8259 says, however large.
Inputs: the conformance set (event_verdict --cases), random events with
random strings, numbers and nesting, and mutations of both (bytes flipped,
inserted, deleted, duplicated, spliced).  Default: seed from the clock
(printed), 30,000 inputs.
"""
import json
import os
import random
import struct
import subprocess
import sys
import time

DEPTH = 128


class Pairs(list):
    pass


class Num:
    """A number kept as its text: any size, never a str."""

    def __init__(self, text):
        self.text = text


def reject_constant(name):
    raise ValueError("constant " + name)


def depth_of(v):
    """Container depth: an object or array counts 1, scalars 0 (iterative)."""
    best, stack = 0, [(v, 1)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, Pairs):
            best = max(best, d)
            stack.extend((val, d + 1) for _, val in x)
        elif isinstance(x, list):
            best = max(best, d)
            stack.extend((val, d + 1) for val in x)
    return best


def strings_ok(v):
    """Every key and string encodes to UTF-8 (no lone surrogate)."""
    stack = [v]
    while stack:
        x = stack.pop()
        try:
            if isinstance(x, str):
                x.encode("utf-8")
            elif isinstance(x, Pairs):
                for k, val in x:
                    k.encode("utf-8")
                    stack.append(val)
            elif isinstance(x, list):
                stack.extend(x)
        except UnicodeEncodeError:
            return False
    return True


def reference(line):
    """The type (bytes) Python's json and the SPEC accept, or None."""
    try:
        text = line.decode("utf-8", "strict")
        doc = json.loads(text, parse_constant=reject_constant, object_pairs_hook=Pairs,
                         parse_int=Num, parse_float=Num)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, Pairs) or depth_of(doc) > DEPTH or not strings_ok(doc):
        return None
    types = [v for k, v in doc if k == "type"]
    if len(types) != 1 or not isinstance(types[0], str):
        return None
    t = types[0].encode("utf-8")
    if not 1 <= len(t) <= 255 or t[:1] == b"." or b"/" in t:
        return None
    if any(c < 0x20 or c == 0x7f for c in t):
        return None
    return t


# ---- generators ----

ALPHABET = ["a", "b", "type", "é", "€", "😀", "\u0000", "\u001f", "\u007f", "\ud7ff",
            "\ue000", "\uffff", "\U0010ffff", ".", "/", " ", "\"", "\\", "\t"]
ESCAPES = ["\\n", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\r", "\\t", "\\u0041", "\\u00e9",
           "\\ud83d\\ude00", "\\ud800", "\\udc00", "\\u002e", "\\u0000", "\\uDBFF\\uDFFF",
           "\\x", "\\u12"]
NUMBERS = ["0", "-0", "1", "-1", "0.5", "1e5", "1E+5", "1e-5", "-0.0e-0", "123456789",
           "18446744073709551615", "18446744073709551616", "1e999", "-1e999", "1e-999",
           "123456789012345678901234567890", "00", "01", "-01", "1.", ".5", "1e", "-", "+1",
           "0x1", "NaN", "Infinity", "-Infinity", "1.5e+308", "2e308"]
INTERESTING = [b"\x00", b"\x01", b"\x1f", b"\x7f", b"\x80", b"\xbf", b"\xc0", b"\xc1", b"\xc2",
               b"\xdf", b"\xe0", b"\xed", b"\xef", b"\xf0", b"\xf4", b"\xf5", b"\xff",
               b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xef\xbb\xbf", b'"',
               b"\\", b"0", b".", b"e", b"-", b"{", b"}", b"[", b"]", b",", b":", b" ",
               b"\t", b"\r", b"\n", b"\\u", b"\\ud800", b"null", b"tru", b"'", b"/"]


def rand_string(r):
    parts = []
    for _ in range(r.randint(0, 6)):
        if r.random() < 0.3:
            parts.append(r.choice(ESCAPES))
        else:
            s = r.choice(ALPHABET)
            if s in ("\"", "\\") or ord(s[0]) < 0x20:
                s = json.dumps(s)[1:-1]     # escaped as JSON would
            parts.append(s)
    return '"' + "".join(parts) + '"'


def rand_value(r, depth):
    k = r.random()
    if depth < 4 and k < 0.15:
        return rand_object(r, depth + 1)
    if depth < 4 and k < 0.3:
        return "[" + ",".join(rand_value(r, depth + 1) for _ in range(r.randint(0, 3))) + "]"
    if k < 0.6:
        return rand_string(r)
    if k < 0.85:
        return r.choice(NUMBERS)
    return r.choice(["true", "false", "null"])


def rand_object(r, depth):
    members = []
    for _ in range(r.randint(0, 4)):
        members.append(rand_string(r) + ":" + rand_value(r, depth))
    return "{" + ",".join(members) + "}"


def rand_event(r):
    members = []
    if r.random() < 0.9:
        t = r.choice(['"a"', '"tool.call"', '"é"', '"."', '".x"', '""', '"a/b"', "1", "null",
                      rand_string(r)])
        members.append('"type":' + t)
    for _ in range(r.randint(0, 4)):
        members.append(rand_string(r) + ":" + rand_value(r, 1))
    if r.random() < 0.05:
        members.append('"type":"dup"')
    r.shuffle(members)
    ws = r.choice(["", " ", "\t", "\r", " \r\t"])
    out = ws + "{" + ",".join(members) + "}" + ws
    if r.random() < 0.02:
        n = r.choice([DEPTH - 2, DEPTH - 1, DEPTH, DEPTH + 1])
        out = '{"type":"deep","x":' + "[" * n + "]" * n + "}"
    return out.encode("utf-8", "surrogatepass")


def mutate(r, b, pool):
    b = bytearray(b)
    for _ in range(r.randint(1, 3)):
        op = r.randrange(6)
        pos = r.randint(0, len(b))
        if op == 0 and b:
            b[min(pos, len(b) - 1)] = r.randrange(256)
        elif op == 1:
            b[pos:pos] = r.choice(INTERESTING)
        elif op == 2 and b:
            del b[pos:pos + r.randint(1, 4)]
        elif op == 3 and b:
            end = min(len(b), pos + r.randint(1, 8))
            b[pos:pos] = b[pos:end]
        elif op == 4:
            other = r.choice(pool)
            cut = r.randint(0, len(other))
            b = b[:pos] + other[cut:]
        else:
            b[pos:pos] = r.choice(NUMBERS).encode()
    return bytes(b)


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    exe = args[0]
    seed = int(time.time())
    count = 30000
    if "--seed" in args:
        seed = int(args[args.index("--seed") + 1])
    if "--count" in args:
        count = int(args[args.index("--count") + 1])
    seed = int(os.environ.get("EVL_DIFF_SEED", seed))
    print("event_differential: seed %d, %d inputs" % (seed, count))
    r = random.Random(seed)

    cases = [bytes.fromhex(h) for h in
             subprocess.run([exe, "--cases"], check=True, capture_output=True,
                            text=True).stdout.split()]
    inputs = list(cases)
    pool = list(cases)
    while len(inputs) < count:
        k = r.random()
        if k < 0.35:
            b = rand_event(r)
            pool.append(b)
        else:
            b = mutate(r, r.choice(pool), pool)
        inputs.append(b)

    data = b"".join(struct.pack("<I", len(b)) + b for b in inputs)
    out = subprocess.run([exe], input=data, check=True, capture_output=True).stdout
    verdicts = out.decode().splitlines()
    if len(verdicts) != len(inputs):
        print("event_verdict gave %d verdicts for %d inputs" % (len(verdicts), len(inputs)))
        return 1
    bad = 0
    accepted = 0
    for b, v in zip(inputs, verdicts):
        ref = reference(b)
        ours = bytes.fromhex(v[3:]) if v.startswith("ok ") else None
        accepted += ours is not None
        if ours != ref:
            bad += 1
            if bad <= 20:
                print("DISAGREE (seed %d): input %s\n  validator: %s\n  python: %s"
                      % (seed, b.hex(), v, "ok " + ref.hex() if ref is not None else "refused"))
    print("event_differential: %d inputs, %d accepted, %d disagreements"
          % (len(inputs), accepted, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
