#!/usr/bin/env python3
"""Randomized, seedable, model-based test of a real evlogfs mount.

Usage: simtest.py EVLOGFS EVLOGCTL [--seed S] [--time SECONDS] [--no KIND,...]
                  [--only KIND,...] [--workers N] [--threads N] [--keep]
       simtest.py EVLOGFS EVLOGCTL --replay FILE [--shrink-time SECONDS]

Phases of random operations run against one store mounted with
`evlogfs -f DATA MNT`: several worker processes with several threads each,
every operation chosen by a PRNG seeded from (seed, phase, worker, thread).
Every result is checked against a reference model at once (the thread's own
open files: what a write() or close() must return, what it stored, the
thread's private task byte for byte), and the whole mount is checked at the
quiet point that ends each phase (every log, every view, sizes, status).
Between phases the daemon may be killed with SIGKILL (between operations or
in the middle of them) and mounted again, or unmounted cleanly and checked
with `evlogctl fsck`.  See tests/randomized/README.md for the model's rules.

A failure prints the seed, writes the operation log to a replay file and
shrinks it: the operations are replayed one at a time in the order they
started (one process, one thread; forks still fork), and delta debugging
removes operations while the same kind of failure still shows.  Exit 0 if
every phase passed, 1 on a failure, 77 if /dev/fuse is missing.
"""
import argparse
import collections
import errno
import functools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mount"))
import mount_test  # noqa: E402  (Mount, is_mounted, deadline_poll)

MAXW = 1 << 20                  # the kernel's largest write request (max_write)
PAGE = 4096
DEAD = (errno.ENOTCONN, errno.ECONNABORTED)   # the daemon is gone
SHARED = ("s0", "s1", "s2")     # written by every thread, deleted by nobody
SCRATCH = ("x0", "x1", "x2")    # written, deleted and made again by every thread
NEVER = ("nosuch", "\xff\xfe")  # task ids no thread makes (.control task=)
TYPES = [("a", 6), ("a.b", 4), ("a.c", 3), ("a.b.d", 2), ("ab", 2), ("b", 4),
         ("b.x", 3), ("c", 2), ("c.y", 2), ("d\u00e9", 1), ("e e", 1), ("z", 1)]
TYPE_NAMES = [t for t, _ in TYPES]
TYPE_W = [w for _, w in TYPES]

# Operation kinds (--no / --only take these names).
KINDS = {
    "write": 30, "write_big": 2, "write_bad": 5, "write_oversize": 2, "pwrite": 3,
    "dup": 3, "dup_close": 3, "close": 6, "fork_close": 2, "fork_exit": 2,
    "flush_storm": 1, "fork_exec": 1, "fork_write": 2, "close_race": 1, "fsync": 2,
    "stat": 4, "read_log": 4, "read_view": 4, "read_follow": 3, "status": 3, "control": 3,
    "retention": 1, "retention_huge": 1, "control_bad": 2, "delete": 3, "bad_names": 1,
    "eperm": 1, "ls": 1,
    # inputs the SPEC settled in issue 14 (strict JSON, `.` types, long names,
    # lax and strict .control parsing, UTF-8 in the status): their own kinds,
    # so that a run can leave out what is known to fail until it is fixed
    "write_bad_strict": 2, "names_long": 1, "eperm_strict": 1, "control_lax": 1,
    "control_strict": 1, "control_utf8": 1,
    # not an operation: events may spell an emoji as a \ud83d\ude00 escape pair
    # (so lines cut or refused inside one)
    "escapes": 0,
}
PHASE_KINDS = ("kill_quiet", "kill_mid", "remount")    # between phases (driver)
ALL_KINDS = tuple(KINDS) + PHASE_KINDS


def now():
    return time.monotonic()


class Failure(Exception):
    """A check failed: @kind names the class of failure (shrinking keeps it)."""

    def __init__(self, kind, msg):
        super().__init__("%s: %s" % (kind, msg))
        self.kind = kind
        self.msg = msg

    def sig(self):
        """What shrinking keeps: the kind and the words of the message, without
        the thread, phase, numbers and quoted data."""
        m = re.sub(r"^(thread [0-9.]+ phase [0-9]+|quiet point after phase [0-9]+): ", "",
                   self.msg)
        m = re.sub(r"b?'[^']*'|b?\"[^\"]*\"|[0-9]+", "_", m)
        return self.kind + ": " + m[:60]


class Cfg:
    seed = 0
    max_event = 1 << 20
    commit = "group"
    type_field = "type"
    escapes = True      # events may hold \uXXXX escapes of a surrogate pair (kind "escapes")


CFG = Cfg()


def ename(e):
    if e is None:
        return "?"
    if e >= 0:
        return str(e)
    return errno.errorcode.get(-e, str(-e))


# ---- lines: every event is a function of its id -------------------------

ID_RE = re.compile(rb'"id":"([^"\\]*)"')


def id_parts(eid):
    """'task/P.w.t.h.k~s' -> (task, 'P.w.t.h', k)."""
    task, rest = eid.split("/", 1)
    rest = re.split(r"[~!]", rest, 1)[0]
    hkey, k = rest.rsplit(".", 1)
    return task, hkey, int(k)


@functools.lru_cache(maxsize=4096)
def _ev_small(eid):
    return _ev_build(eid)


def ev_line(eid):
    """The bytes of event @eid, newline included (a pure function of seed and id)."""
    spec = eid.rsplit("~", 1)[1]
    if spec == "s":
        return _ev_small(eid)
    return _ev_build(eid)


def _ev_build(eid):
    r = random.Random("%d:%s" % (CFG.seed, eid))
    spec = eid.rsplit("~", 1)[1]
    typ = r.choices(TYPE_NAMES, TYPE_W)[0]
    fields = [("id", json.dumps(eid))]
    if r.random() < 0.3:
        fields.append(("n", r.choice(["0", "-1", "12.5", "1e-3", "-0.25E+2",
                                      "123456789012345678", "true", "false", "null"])))
    if r.random() < 0.2:
        ascii_ = r.random() < 0.5 and CFG.escapes      # \ud83d\ude00: a surrogate pair
        fields.append(("u", json.dumps("\u00e9\u20ac\U0001F600\u2028 \u00fc",
                                       ensure_ascii=ascii_)))
    if r.random() < 0.15:
        fields.append(("arr", '[1,"x",null,true,{"k":[]},-0.5]'))
    if r.random() < 0.1:
        fields.append(("o", '{"x":{"y":[{"z":"w"}]}}'))
    if r.random() < 0.15:
        fields.append(("esc", json.dumps('q"\\/\n\t\u0001\u007f')))
    if r.random() < 0.05:
        # README "Events", accepted: numbers of any size, a member other than
        # the type given twice, containers 128 deep (the event counting as 1)
        fields.append(r.choice([("big", "1e999"), ("big", "-123456789012345678901234567890.5e-400"),
                                ("dup", '1,"dup":2'), ("deep", "[" * 127 + "]" * 127)]))
    if r.random() < 0.1:
        tt = '"' + "".join("\\u%04x" % ord(c) for c in typ) + '"'
    else:
        tt = json.dumps(typ, ensure_ascii=r.random() < 0.5)
    fields.insert(r.randrange(len(fields) + 1), (CFG.type_field, tt))
    lead = " " if r.random() < 0.03 else ""
    cr = "\r" if r.random() < 0.03 else ""
    sep = ", " if r.random() < 0.1 else ","

    def build(padn):
        fs = fields + ([("pad", '"' + "x" * padn + '"')] if padn is not None else [])
        return (lead + "{" + sep.join('"%s":%s' % kv for kv in fs) + "}" + cr + "\n").encode()

    if spec == "s":
        padn = r.choice([None, r.randrange(0, 60), r.randrange(60, 400)])
    elif spec == "m":
        padn = r.randrange(1000, 20000)
    elif spec == "l":
        padn = r.randrange(50000, max(50001, min(CFG.max_event // 2, 400000)))
    else:                                   # 'L<n>': exactly n bytes
        padn = max(0, int(spec[1:]) - len(build(0)))
    line = build(padn)
    if spec[0] != "L" and len(line) > CFG.max_event:
        line = build(max(0, (padn or 0) - (len(line) - CFG.max_event)))
    return line


BAD = {
    "trunc": b'{"type":"a","id":"%s"',
    "garbage": b'{"type":"a","id":"%s"} x',
    "two": b'{"type":"a","id":"%s"}{"type":"b"}',
    "array": b'["a","%s"]',
    "string": b'"%s"',
    "number": b'12',
    "notype": b'{"kind":"a","id":"%s"}',
    "typenum": b'{"type":1,"id":"%s"}',
    "typenull": b'{"type":null,"id":"%s"}',
    "typeempty": b'{"type":"","id":"%s"}',
    "typeslash": b'{"type":"a/b","id":"%s"}',
    "typeslash_esc": b'{"type":"a\\/b","id":"%s"}',
    "typelong": b'{"type":"' + b"t" * 256 + b'","id":"%s"}',
    "typedot": b'{"type":".","id":"%s"}',
    "typedotdot": b'{"type":"..","id":"%s"}',
    "typedotx": b'{"type":".x","id":"%s"}',
    "typectrl_esc": b'{"type":"a\\u0001b","id":"%s"}',
    "typedel_esc": b'{"type":"a\\u007f","id":"%s"}',
    "rawctrl": b'{"type":"a","id":"%s","x":"\x01"}',
    "rawnul": b'{"type":"a","id":"%s","x":"\x00"}',
    "rawtab_type": b'{"type":"a\tb","id":"%s"}',
    "formfeed": b'{"type":"a",\x0c"id":"%s"}',
    "ff": b'{"type":"a","id":"%s","x":"\xff"}',
    "overlong2": b'{"type":"a","id":"%s","x":"\xc0\xaf"}',
    "overlong3": b'{"type":"a","id":"%s","x":"\xe0\x80\xaf"}',
    "overlong4": b'{"type":"a","id":"%s","x":"\xf0\x80\x80\xaf"}',
    "surrogate": b'{"type":"a","id":"%s","x":"\xed\xa0\x80"}',
    "above10ffff": b'{"type":"a","id":"%s","x":"\xf4\x90\x80\x80"}',
    "f5": b'{"type":"a","id":"%s","x":"\xf5\x80\x80\x80"}',
    "cut_utf8": b'{"type":"a","id":"%s","x":"\xe2\x82"}',
    "lone_cont": b'{"type":"a","id":"%s","x":"\x80"}',
    "utf8_key": b'{"type":"a","id":"%s","\xc0\xaf":1}',
    "utf8_type": b'{"type":"a\xe0\x80\xaf","id":"%s"}',
    "zero": b'{"type":"a","id":"%s","n":00}',
    "negzero": b'{"type":"a","id":"%s","n":-01}',
    "zerofrac": b'{"type":"a","id":"%s","n":00.5}',
    "arrzero": b'{"type":"a","id":"%s","n":[00]}',
    "nan": b'{"type":"a","id":"%s","n":NaN}',
    "inf": b'{"type":"a","id":"%s","n":Infinity}',
    "minf": b'{"type":"a","id":"%s","n":-Infinity}',
    "squote": b"{'type':'a','id':'%s'}",
    "tcomma": b'{"type":"a","id":"%s",}',
    "bom": b'\xef\xbb\xbf{"type":"a","id":"%s"}',
    "comment": b'{"type":"a","id":"%s"} // c',
    "numdot": b'{"type":"a","id":"%s","n":1.}',
    "hex": b'{"type":"a","id":"%s","n":0x10}',
    "unquoted": b'{type:"a","id":"%s"}',
    "bare": b'{"type":"a","id":"%s","v":undefined}',
    "plus": b'{"type":"a","id":"%s","n":+1}',
    "leadingdot": b'{"type":"a","id":"%s","n":.5}',
    "badesc": b'{"type":"a","id":"%s","x":"\\q"}',
    "shortu": b'{"type":"a","id":"%s","x":"\\u12"}',
    # README "Events": escaped lone surrogates, the type twice, a type
    # starting with '.' however spelled, nesting past 128, a vertical tab
    # after the object
    "esc_lone_hi": b'{"type":"a","id":"%s","x":"\\ud800"}',
    "esc_lone_lo": b'{"type":"a","id":"%s","x":"\\udc00"}',
    "esc_hi_nolo": b'{"type":"a","id":"%s","x":"\\ud83dx"}',
    "esc_hi_hi": b'{"type":"a","id":"%s","x":"\\ud83d\\ud83d"}',
    "esc_lone_key": b'{"type":"a","id":"%s","\\udc00":1}',
    "esc_lone_type": b'{"type":"a\\ud800","id":"%s"}',
    "duptype": b'{"type":"a","id":"%s","type":"b"}',
    "duptype_same": b'{"type":"a","id":"%s","type":"a"}',
    "duptype_esc": b'{"type":"a","id":"%s","\\u0074ype":"b"}',
    "typedot_esc": b'{"type":"\\u002e","id":"%s"}',
    "typedotx_esc": b'{"type":"\\u002ex","id":"%s"}',
    "deep": b'{"type":"a","id":"%s","x":' + b"[" * 128 + b"]" * 128 + b'}',
    "deep_obj": b'{"type":"a","id":"%s","x":' + b'{"k":' * 128 + b'1' + b'}' * 128 + b'}',
    "vtab": b'{"type":"a","id":"%s"}\x0b',
}
BAD_STRICT = ["above10ffff", "arrzero", "f5", "negzero", "overlong2", "overlong3", "overlong4",
              "surrogate", "typedot", "typedotdot", "typedotx", "utf8_key", "utf8_type", "zero",
              "zerofrac", "esc_lone_hi", "esc_lone_lo", "esc_hi_nolo", "esc_hi_hi", "esc_lone_key",
              "esc_lone_type", "duptype", "duptype_same", "duptype_esc", "typedot_esc",
              "typedotx_esc", "deep", "deep_obj", "vtab"]
BAD_KINDS = sorted(BAD)


def bad_line(bid):
    kind = bid.rsplit("!", 1)[1]
    pat = BAD[kind]
    body = pat % bid.encode() if b"%s" in pat else pat
    return body + b"\n"


def seg_bytes(seg):
    tag, spec, a, b = seg
    if tag == "e":
        whole = ev_line(spec)
    elif tag == "b":
        whole = bad_line(spec)
    else:
        whole = spec.encode("latin-1")
    return whole[a:b]


def data_of(segs):
    return b"".join(seg_bytes(s) for s in segs)


def _no_constant(name):
    raise ValueError(name)


class _Obj(dict):
    """A JSON object that remembers its member names in order, twice if twice."""
    names = ()


def _obj(pairs):
    o = _Obj(pairs)
    o.names = [k for k, _ in pairs]
    return o


def _scalar_values_ok(x, depth):
    """README "Events": containers nested deeper than 128 (the event object
    counting as 1) and escaped lone surrogates are refused."""
    if isinstance(x, str):
        return not any(0xd800 <= ord(ch) <= 0xdfff for ch in x)
    if isinstance(x, (dict, list)):
        if depth > 128:
            return False
        items = x.items() if isinstance(x, dict) else ((None, v) for v in x)
        return all((k is None or _scalar_values_ok(k, depth)) and
                   _scalar_values_ok(v, depth + 1) for k, v in items)
    return True


def valid_event(line):
    """RFC 8259 + RFC 3629 + the SPEC's type rules + README "Events" (the
    verdict table), as strict as Python's json is: it refuses overlong and
    surrogate UTF-8, leading zeros and the rest, and accepts numbers of any
    size and repeated members, as the README says; lone escaped surrogates,
    depth and a repeated type member are checked here."""
    try:
        s = line.decode("utf-8")
        obj = json.loads(s, parse_constant=_no_constant, object_pairs_hook=_obj)
    except (ValueError, RecursionError):
        return False
    if not isinstance(obj, dict):
        return False
    if obj.names.count(CFG.type_field) != 1 or not _scalar_values_ok(obj, 1):
        return False
    t = obj.get(CFG.type_field)
    if not isinstance(t, str):
        return False
    try:
        tb = t.encode("utf-8")
    except UnicodeEncodeError:
        return False
    if not 1 <= len(tb) <= 255 or tb[:1] == b".":
        return False
    return not any(c < 0x20 or c == 0x7f or c == 0x2f for c in tb)


def classify(line):
    """One line without its newline: 'big', 'blank', 'valid' or 'invalid'."""
    if len(line) + 1 > CFG.max_event:
        return "big"
    if not line.strip(b" \t\r"):
        return "blank"
    return "valid" if valid_event(line) else "invalid"


_meta = {}


def ev_meta(eid):
    """(length, crc32, type bytes) of event @eid."""
    m = _meta.get(eid)
    if m is None:
        if "!" in eid:
            raise Failure("model", "no stored line of refused line %s is known" % eid)
        b = ev_line(eid)
        t = json.loads(b)[CFG.type_field].encode()
        m = _meta[eid] = (len(b), zlib.crc32(b), t)
    return m


def line_id(line):
    """The id of a stored line (newline included) if it is whole, else a Failure."""
    m = ID_RE.search(line)
    if not m:
        raise Failure("garbage", "a line no writer wrote: %r" % line[:200])
    eid = m.group(1).decode("utf-8", "replace")
    if "!" in eid:
        # A line that must be refused once whole may begin with a valid event
        # (`{...} x`, `{...}{...}`): held as far as that and closed by its
        # writer, it is stored (README "Writing", Close).  Any other line of
        # it must never be stored.
        part = line[:-1]
        if not (line.endswith(b"\n") and bad_line(eid).startswith(part) and
                classify(part) == "valid"):
            raise Failure("rejected_stored", "a line that had to be refused is stored: %r"
                          % line[:300])
        if eid not in _meta:
            _meta[eid] = (len(line), zlib.crc32(line),
                          json.loads(part)[CFG.type_field].encode())
        return eid
    if "~" not in eid or "/" not in eid:
        raise Failure("garbage", "a line no writer wrote: %r" % line[:200])
    n, crc, _ = ev_meta(eid)
    if len(line) != n or zlib.crc32(line) != crc:
        # a close stored the line its writer cut between the CR and the newline
        if not (len(line) == n - 1 and line.endswith(b"}\n") and
                ev_line(eid) == line[:-1] + b"\r\n"):
            raise Failure("torn", "event %s is torn or spliced: %d bytes, want %d: %r"
                          % (eid, len(line), n, line[:200]))
    return eid


def self_test():
    for k in BAD_KINDS:
        b = bad_line("t/0.0.0.0.0!" + k)
        assert classify(b[:-1]) == "invalid", k
    for i in range(300):
        for c in "sml":
            b = ev_line("t/0.0.0.0.%d~%s" % (i, c))
            assert classify(b[:-1]) == "valid" and b.count(b"\n") == 1, b[:200]
            assert line_id(b) == "t/0.0.0.0.%d~%s" % (i, c)
    m = CFG.max_event
    assert len(ev_line("t/0.0.0.0.1~L%d" % m)) == m
    assert classify(ev_line("t/0.0.0.0.1~L%d" % m)[:-1]) == "valid"
    assert classify(ev_line("t/0.0.0.0.1~L%d" % (m + 1))[:-1]) == "big"


# ---- the model of one open file (a handle) ------------------------------
#
# A handle's state is a set of possible worlds (held bytes, the processes
# that wrote part of them, the EFBIG resend prefix).  README "Writing"
# decides every case this model meets, so one world is left after each call
# whose result the writer sees; more than one only where a result is not
# seen (a call cut by a kill) or a rule depends on what the kernel did.

EMPTY = (b"", frozenset(), b"")

# README "Writing": "The kernel hands a write() to evlogfs in requests of at
# most 1 MiB and 256 pages of the writer's buffer ..., so a write() of up to
# 1 MiB - 4095 bytes (1,044,481) is always one request, and up to 1 MiB from
# a page-aligned buffer."  The first request of a larger write() is 1 MiB
# less the buffer's offset in its page (0..4095; Python's buffer, so not
# known here); the next ones start page-aligned and are 1 MiB.
ONE_REQ = MAXW - (PAGE - 1)
# core/writer.c RESEND_PREFIX: how much of a refused request the resend rule compares
RESEND = 4096


def req_boundary(n):
    """Can a request of a write() end @n bytes into its data?"""
    r = n % MAXW
    return r == 0 or r >= ONE_REQ


def split_lines(held, data):
    """Lines that @data completes: [(start, nl, content)] in data offsets (start
    is negative when the line began in @held), and the unterminated tail."""
    out = []
    pos = 0
    first = True
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        if first:
            out.append((pos - len(held), nl, held + data[pos:nl]))
        else:
            out.append((pos, nl, data[pos:nl]))
        first = False
        pos = nl + 1
    if first:
        return out, held + data, -len(held)
    return out, data[pos:], pos


def first_trigger(lines, tail, tail_ls):
    """Where the first refused line is decided: (offset, errno, line start) or None.
    A line over max_event is refused by the request holding its max_event-th
    byte; an invalid line by the request holding its newline."""
    M = CFG.max_event
    for ls, nl, content in lines:
        c = classify(content)
        if c == "big":
            return (ls + M - 1, errno.EFBIG, ls)
        if c == "invalid":
            return (nl, errno.EINVAL, ls)
    if len(tail) >= M:
        return (tail_ls + M - 1, errno.EFBIG, tail_ls)
    return None


def valid_lines(lines):
    return [c + b"\n" for _, _, c in lines if classify(c) == "valid"]


def stored_part(world, data, n, who):
    """The first @n bytes of @data were stored (whole requests): (lines
    stored, the world after).  The writers of the held line (fs/ops.c
    note_writer): whoever continued it; a request with a newline begins a
    new one, written by @who alone."""
    held, owners, _ = world
    lines, tail, _ = split_lines(held, data[:n])
    if not tail:
        return valid_lines(lines), EMPTY
    own = frozenset([who]) if b"\n" in data[:n] else owners | {who}
    return valid_lines(lines), (tail, own, b"")


def world_write(world, data, res, who, orphan):
    """Outcomes [(stored lines, new world)] of write(@data) returning @res
    (count or -errno) by process @who in @world; [] if @res is impossible."""
    held, owners, resend = world
    if resend:
        # README "Writing": "after EFBIG, a next write() that begins with the
        # same bytes as the refused request ... gets EFBIG again" (only the
        # next one; a pwrite refused with EPERM is not a write that counts)
        if data.startswith(resend):
            return [([], (held, owners, b""))] if res == -errno.EFBIG else []
        if res == -errno.ENOENT and orphan is not False:
            # deleted: refused before or after the store looked at the resend
            return [([], world), ([], (held, owners, b""))]
        world = (held, owners, b"")
    if res == -errno.ENOENT and orphan is not False:
        return [([], world)]                # the task is gone: nothing stored
    L = len(data)
    lines, tail, tail_ls = split_lines(held, data)
    trig = first_trigger(lines, tail, tail_ls)
    if trig is None:
        if res == L:
            good, w = stored_part(world, data, L, who)
            return [] if orphan and good else [(good, w)]
        if orphan is None and L >= ONE_REQ and 0 < res < L and req_boundary(res):
            # deleted between two of the requests the kernel split it into
            good, w = stored_part(world, data, res, who)
            return [(good, w)]
        return []
    t, e, ls = trig
    if res < 0:
        # the first request is refused: nothing stored (all or nothing)
        if res != -e or t >= MAXW:
            return []
        if ls < 0:
            # README: the refused line continued the held one: "what they
            # left held is dropped"
            return [([], (b"", frozenset(), data[:RESEND] if e == errno.EFBIG else b""))]
        # "A refused line that began in the refused write() leaves the
        # handle as before"
        return [([], world)]
    # a short count: the requests before @res stored, the one at @res refused
    n = res
    if not (L >= ONE_REQ and 0 < n < L and req_boundary(n) and n <= t < n + MAXW):
        return []
    good, w = stored_part(world, data, n, who)
    if orphan and good:
        return []
    if ls < n:
        w = (b"", frozenset(), data[n:n + RESEND] if e == errno.EFBIG else b"")
    return [(good, w)]


def world_close(world, res, who, orphan):
    """Outcomes of close() by process @who returning @res (None: not seen).
    README "Writing", Close: a held line is stored by a close of a process
    that wrote part of it if it is a valid event as it stands; if not, that
    close() fails with EINVAL and the line stays held; a close by any other
    process neither stores nor drops it and succeeds."""
    held, owners, resend = world
    gone = (b"", frozenset(), resend)       # the resend rule outlives a close
    if held and who in owners:
        c = classify(held)
        if c == "valid":
            if orphan:
                return [([], gone)] if res in (None, -errno.ENOENT) else []
            if res in (None, 0):
                return [([held + b"\n"], gone)]
            if res == -errno.ENOENT and orphan is None:
                return [([], gone)]
            return []
        if c == "blank":
            # SPEC 3: "Lines of only whitespace are skipped": committing one
            # stores nothing (core/writer.c evl_writer_flush_valid drops it,
            # tests/unit/test_store.c flush_valid_keeps_an_incomplete_line)
            return [([], gone)] if res in (None, 0) else []
        # "big" cannot be held: a write that would hold max_event bytes is refused
        return [([], world)] if res in (None, -errno.EINVAL) else []
    return [([], world)] if res in (None, 0) else []


def world_release(world, orphan):
    """The last close is followed by the release (README: "is stored at the
    release, after the last close, whatever is still held"; a refusal then is
    only logged).  Nobody is told, and it runs after close() returned, so
    what it stores is "maybe"."""
    held = world[0]
    if held and classify(held) == "valid" and not orphan:
        return [([], EMPTY), ([held + b"\n"], EMPTY)]
    return [([], EMPTY)]


def combine(outs, what):
    if not outs:
        raise Failure("result", what)
    sets = [set(o[0]) for o in outs]
    sure = set.intersection(*sets)
    maybe = set.union(*sets) - sure
    worlds = []
    for _, w in outs:
        if w not in worlds:
            worlds.append(w)
    order = [ln for ln in outs[0][0] if ln in sure]
    return order, sorted(maybe), worlds


# ---- one worker thread: its open files, its private task, its operations --

class Handle:
    """An open file on tasks/<task>/events: its descriptors and its model."""

    def __init__(self, hid, task, cls, append, orphan):
        self.hid, self.task, self.cls, self.append = hid, task, cls, append
        self.fds = []
        self.worlds = [EMPTY]
        self.ino = None
        # False: known alive (private task, exact phase); True: known deleted;
        # None: another thread may delete it at any moment
        self.orphan = orphan
        self.k = 0
        self.hist = collections.deque(maxlen=8)     # for failure messages
        self.stream = []        # generator only: [bytes, tag, spec] not yet sent
        self.desync = False     # generator only: what it holds is not the stream's
        self.next_off = None    # without O_APPEND: where the open file's last write ended
        self.soff = 0           # bytes of stream[0] already sent

    def held(self):
        return self.worlds[0][0] if len(self.worlds) == 1 else None


class Ctx:
    """One worker thread (or the replayer acting for it)."""

    def __init__(self, run, phase, w, t, seed, mode, kinds, priv_init):
        self.run, self.phase, self.w, self.t = run, phase, w, t
        self.key = "%d.%d" % (w, t)
        self.rng = random.Random("%d:%d:%d:%d" % (seed, phase, w, t))
        self.mode = mode            # {"exact": bool, "retention": "none"|"keep"|"age"}
        self.kinds = kinds
        self.handles = {}
        self.next_hid = 0
        self.log = []
        self.dead = False           # the daemon is gone (ENOTCONN)
        self.priv = "p%d_%d" % (w, t)
        # the private task in an exact phase: None (absent), "tomb", or its lines
        self.priv_lines = priv_init
        self.nchild = 0
        self.ops = []
        self.failure = None
        self.after_kill = False     # closes after a kill between operations store nothing

    # -- helpers --
    def p(self, *parts):
        return os.path.join(self.run.mnt, *parts)

    def exact_priv(self, task):
        return self.mode["exact"] and task == self.priv

    def cls_of(self, task):
        return "p" if task.startswith("p") else "s" if task in SHARED else "x"

    def task_state(self, task):
        """"live" or "absent" when this thread knows (its private task in an
        exact phase, names no thread makes), else None."""
        if task in NEVER:
            return "absent"
        if self.exact_priv(task):
            return "live" if isinstance(self.priv_lines, list) else "absent"
        return None

    def orphan_init(self, task):
        return False if self.exact_priv(task) else None

    def fail(self, kind, msg):
        raise Failure(kind, "thread %s phase %d: %s" % (self.key, self.phase, msg))

    def record(self, rec, t0, w0):
        rec["th"] = self.key
        rec["ph"] = self.phase
        rec["t0"], rec["w0"] = t0, w0
        rec["t1"], rec["w1"] = now(), time.time()
        self.log.append(rec)
        return rec

    def alive(self):
        """Is the daemon still there (after a result only its death explains)?"""
        try:
            os.stat(self.p(".control"))
        except OSError as e:
            return e.errno not in DEAD
        return True

    def died(self, res):
        # EIO too, if the daemon is found gone right after: the kernel ends
        # with EIO a request that a daemon thread was copying in, or whose
        # reply it was copying out, when it died (fs/fuse/dev.c
        # fuse_dev_do_read, fuse_dev_do_write).  An EIO of a live daemon
        # still fails: the model expects none.
        if res is not None and (-res in DEAD or res == -errno.EIO and not self.alive()):
            self.dead = True
            return True
        return False

    def events(self, h, lines, maybe=()):
        """The record's 'ev' list for stored lines of handle @h."""
        ev = []
        for st, group in (("a", lines), ("m", maybe)):
            for ln in group:
                eid = line_id(ln)
                n, crc, typ = ev_meta(eid)
                ev.append([eid, st, h.task, h.ino, n, crc, typ.decode(),
                           zlib.crc32(ln) if len(ln) != n else None])
        if lines and self.exact_priv(h.task) and h.orphan is False:
            if not isinstance(self.priv_lines, list):
                self.fail("model", "stored in private task %s that is not live" % h.task)
            self.priv_lines.extend(lines)
        return ev

    def dead_events(self, h, data):
        """A call the daemon's death interrupted: what it would store is 'maybe'."""
        maybe = set()
        for held, _, _ in h.worlds:
            lines, _, _ = split_lines(held, data)
            maybe.update(valid_lines(lines))
            if held and not data:
                if classify(held) == "valid":
                    maybe.add(held + b"\n")
        out = []
        for ln in sorted(maybe):
            eid = line_id(ln)
            n, crc, typ = ev_meta(eid)
            out.append([eid, "m", h.task, h.ino, n, crc, typ.decode(),
                        zlib.crc32(ln) if len(ln) != n else None])
        return out

    def step_write(self, h, data, res, who="P", what="write"):
        outs = []
        for w in h.worlds:
            outs += world_write(w, data, res, who, h.orphan)
        desc = "%s of %d bytes to %s (handle %d, held %s) returned %s" % (
            what, len(data), h.task, h.hid,
            "/".join("%d by %s%s" % (len(w[0]), "+".join(sorted(w[1])) or "-",
                                     "+resend" if w[2] else "") for w in h.worlds),
            ename(res))
        if not outs:
            self.fail("write_result", desc + ": the model allows none of that; data %r..%r; "
                      "this handle's last calls: %s" % (data[:120], data[-120:], list(h.hist)))
        h.hist.append("%s(%d)=%s" % (what, len(data), ename(res)))
        lines, maybe, worlds = combine(outs, desc)
        if res == -errno.ENOENT and h.orphan is None:
            h.orphan = True
        h.worlds = worlds
        return lines, maybe

    def step_close(self, h, res, who="P"):
        outs = []
        for w in h.worlds:
            outs += world_close(w, res, who, h.orphan)
        desc = "close of %s (handle %d, held %r) by %s returned %s; this handle's last " \
            "calls: %s" % (h.task, h.hid, [w[0][:80] for w in h.worlds], who, ename(res),
                           list(h.hist))
        h.hist.append("close by %s=%s" % (who, ename(res)))
        lines, maybe, worlds = combine(outs, desc)
        if res == -errno.ENOENT and h.orphan is None:
            h.orphan = True
        h.worlds = worlds
        return lines, maybe

    def step_release(self, h):
        """The release after the last close: what it may store is "maybe"."""
        outs = []
        for w in h.worlds:
            outs += world_release(w, h.orphan)
        lines, maybe, worlds = combine(outs, "release of %s" % h.task)
        h.worlds = worlds
        return self.events(h, lines, maybe)

    # -- executing one operation (live or replayed) --
    def run_op(self, op):
        fn = getattr(self, "x_" + op["op"])
        return fn(op)

    def handle(self, op):
        h = self.handles.get(op["h"])
        if h is None or not h.fds:
            return None
        return h

    def x_open(self, op):
        t0, w0 = now(), time.time()
        task = op["task"]
        flags = os.O_WRONLY | (os.O_APPEND if op["append"] else 0)
        rec = {"op": "open", "task": task}
        try:
            fd = os.open(self.p("tasks", task, "events"), flags)
        except OSError as e:
            res = -e.errno
            rec["res"] = res
            if self.died(res):
                return self.record(rec, t0, w0)
            if res != -errno.ENOENT:
                self.fail("errno", "open %s: %s" % (task, ename(res)))
            if self.exact_priv(task) and isinstance(self.priv_lines, list):
                self.fail("errno", "open of live private task %s: ENOENT" % task)
            return self.record(rec, t0, w0)
        if self.exact_priv(task) and not isinstance(self.priv_lines, list):
            os.close(fd)
            self.fail("errno", "open of private task %s succeeded, it is %s"
                      % (task, self.priv_lines or "absent"))
        h = Handle(op["h"], task, self.cls_of(task), op["append"], self.orphan_init(task))
        h.fds.append(fd)
        try:
            h.ino = os.fstat(fd).st_ino
        except OSError as e:
            if self.died(-e.errno):
                h.ino = None
            elif e.errno == errno.ENOENT and h.orphan is None:
                h.orphan = True
            else:
                self.fail("errno", "fstat of a new handle on %s: %s" % (task, ename(-e.errno)))
        self.handles[h.hid] = h
        rec.update(res=0, h=h.hid, ino=h.ino)
        return self.record(rec, t0, w0)

    def offset_for(self, h, how):
        size = sum(len(x) for x in self.priv_lines)
        held = len(h.held() or b"")
        if how == "end":
            return size + held
        # README: a write without O_APPEND is refused unless at the end or
        # where the open file's last write ended
        return next(o for o in (0, 7, 1, 3) if o != size + held and o != h.next_off)

    def x_write(self, op):
        h = self.handle(op)
        if h is None:
            return None
        data = data_of(op["segs"])
        fd = h.fds[op.get("fd", 0) % len(h.fds)]
        off = op.get("off")
        rec = {"op": "write", "h": h.hid, "task": h.task, "n": len(data), "segs": op["segs"]}
        if off:
            if not (self.exact_priv(h.task) and h.orphan is False and
                    isinstance(self.priv_lines, list) and len(h.worlds) == 1):
                return None
            rec["off"] = off
            offset = self.offset_for(h, off)
        t0, w0 = now(), time.time()
        try:
            res = os.pwrite(fd, data, offset) if off else os.write(fd, data)
        except OSError as e:
            res = -e.errno
        rec["res"] = res
        if self.died(res):
            # a write at a bad offset is refused whole, by a live daemon too
            rec["ev"] = [] if off == "bad" else self.dead_events(h, data)
            return self.record(rec, t0, w0)
        if off == "bad":
            if res != -errno.EPERM:
                self.fail("errno", "write at offset %d (not the end) of %s returned %s, "
                          "want EPERM" % (offset, h.task, ename(res)))
            return self.record(rec, t0, w0)
        if res > 0 and not h.append:
            try:
                h.next_off = offset + res if off else os.lseek(fd, 0, os.SEEK_CUR)
            except OSError:
                h.next_off = None
        if 0 < res < len(data) and not self.alive():
            # killed between two of the requests the kernel split it into: the
            # kernel returns the count of those before, and the ENOTCONN is lost
            self.dead = True
            rec["ev"] = self.dead_events(h, data)
            return self.record(rec, t0, w0)
        lines, maybe = self.step_write(h, data, res, what="pwrite" if off else "write")
        rec["ev"] = self.events(h, lines, maybe)
        return self.record(rec, t0, w0)

    def close_fd(self, h, i, keep):
        """close() one descriptor of @h (a dup of it if @keep)."""
        t0, w0 = now(), time.time()
        rec = {"op": "dup_close" if keep else "close", "h": h.hid, "task": h.task}
        fd = h.fds[i % len(h.fds)]
        try:
            if keep:
                fd = os.dup(fd)
            else:
                h.fds.remove(fd)
            os.close(fd)
            res = 0
        except OSError as e:
            res = -e.errno
        rec["res"] = res
        if not h.fds:
            del self.handles[h.hid]
        if self.died(res):
            rec["ev"] = [] if self.after_kill else self.dead_events(h, b"")
            return self.record(rec, t0, w0)
        lines, maybe = self.step_close(h, res)
        rec["ev"] = self.events(h, lines, maybe)
        if not h.fds:
            rec["ev"] += self.step_release(h)
        return self.record(rec, t0, w0)

    def x_close(self, op):
        h = self.handle(op)
        return h and self.close_fd(h, op.get("fd", 0), False)

    def x_dup_close(self, op):
        h = self.handle(op)
        return h and self.close_fd(h, op.get("fd", 0), True)

    def x_dup(self, op):
        h = self.handle(op)
        if h is None:
            return None
        t0, w0 = now(), time.time()
        h.fds.append(os.dup(h.fds[0]))
        return self.record({"op": "dup", "h": h.hid, "res": 0}, t0, w0)

    def x_fsync(self, op):
        h = self.handle(op)
        if h is None:
            return None
        t0, w0 = now(), time.time()
        try:
            (os.fdatasync if op.get("data") else os.fsync)(h.fds[0])
            res = 0
        except OSError as e:
            res = -e.errno
        rec = self.record({"op": "fsync", "h": h.hid, "res": res}, t0, w0)
        if res and not self.died(res):
            self.fail("errno", "fsync of %s: %s" % (h.task, ename(res)))
        return rec

    # -- children --
    def child(self, body):
        """Fork; the child runs @body() (os calls only) and reports its list of
        results on a pipe.  Returns (pid, read end)."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                out = body()
                os.write(w, (json.dumps(out) + "\n").encode())
            except BaseException:
                try:
                    os.write(w, b"[\"exception\"]\n")
                except OSError:
                    pass
            finally:
                os._exit(0)
        os.close(w)
        return pid, r

    def child_result(self, pid, r):
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = os.read(r, 65536)
            if not chunk:
                break
            buf += chunk
        os.close(r)
        os.waitpid(pid, 0)
        try:
            return json.loads(buf)
        except ValueError:
            return ["no report"]

    def x_fork(self, op):
        """A child that inherits every descriptor: it closes them, exits, execs
        /bin/true, or writes through the handle and exits; @op["n"] children
        exit together (concurrent FLUSHes on one open file)."""
        h = self.handle(op)
        if h is None:
            return None
        mode = op["mode"]
        t0, w0 = now(), time.time()
        rec = {"op": "fork", "mode": mode, "h": h.hid, "task": h.task}
        fds = list(h.fds)
        if mode == "close":
            def body():
                out = []
                for fd in fds:
                    try:
                        os.close(fd)
                        out.append(0)
                    except OSError as e:
                        out.append(-e.errno)
                return out
            pid, r = self.child(body)
            res = self.child_result(pid, r)
            rec["res"] = res
            for x in res:
                if x != 0 and not (isinstance(x, int) and self.died(x)):
                    self.fail("errno", "a child's close of an inherited descriptor of %s "
                              "returned %s (it never wrote: must be 0)" % (h.task, ename(x)))
        elif mode in ("exit", "exec"):
            gate_r, gate_w = os.pipe()
            pids = []
            for _ in range(op.get("n", 1)):
                pid = os.fork()
                if pid == 0:
                    try:
                        os.close(gate_w)
                        os.read(gate_r, 1)      # all leave together
                        if mode == "exec":
                            os.execv("/bin/true", ["true"])
                    finally:
                        os._exit(0)
                pids.append(pid)
            # a byte for each, not the end of the pipe: children that other
            # threads fork meanwhile inherit gate_w and keep it open
            os.write(gate_w, b"g" * len(pids))
            os.close(gate_r)
            os.close(gate_w)
            for pid in pids:
                os.waitpid(pid, 0)
            rec["res"] = 0
        elif mode == "write":
            chunks = [data_of(s) for s in op["writes"]]
            close = op.get("close")

            def body():
                out = {"w": [], "c": None}     # write() results, then close()'s
                for c in chunks:
                    try:
                        out["w"].append(os.write(fds[0], c))
                    except OSError as e:
                        out["w"].append(-e.errno)
                        break
                if close:
                    try:
                        os.close(fds[0])
                        out["c"] = 0
                    except OSError as e:
                        out["c"] = -e.errno
                return out
            pid, r = self.child(body)
            res = self.child_result(pid, r)
            rec["res"] = res
            rec["writes"] = op["writes"]
            self.nchild += 1
            who = "C%d" % self.nchild
            ev = []
            if not isinstance(res, dict):
                self.fail("harness", "child failed: %r" % res)
            for c, x in zip(chunks, res["w"]):
                if self.died(x):
                    ev += self.dead_events(h, c)
                    break
                lines, maybe = self.step_write(h, c, x, who, "child's write")
                ev += self.events(h, lines, maybe)
            if res["c"] is not None and not self.dead and not self.died(res["c"]):
                lines, maybe = self.step_close(h, res["c"], who)
                ev += self.events(h, lines, maybe)
            if not self.dead and not self.alive():
                # Its exit closed the rest, and the FLUSH that commits a line
                # it held returns to nobody.  The daemon died before that
                # FLUSH or while it waited (seed 9003: kill_mid while every
                # writer waited on a slow daemon), so nobody was told the
                # line is stored: "maybe", as for a call cut by the kill.
                # The mount cannot come back before the driver remounts, so
                # alive now means alive through the exit.
                self.dead = True
                ev += self.dead_events(h, b"")
            if not self.dead:
                # its exit closed the rest: a line it held is stored now (unseen result)
                lines, maybe = self.step_close(h, None, who)
                ev += self.events(h, lines, maybe)
            rec["ev"] = ev
        return self.record(rec, t0, w0)

    def x_storm(self, op):
        """Half a line, then 8 children exit at once (8 concurrent FLUSHes from
        processes that never wrote), then the rest of the line or our close."""
        h = self.handle(op)
        if h is None:
            return None
        rec = self.x_write({"op": "write", "h": h.hid, "segs": op["pre"]})
        if self.dead or rec is None:
            return rec
        self.x_fork({"op": "fork", "mode": "exit", "h": h.hid, "n": op["n"]})
        if op.get("post"):
            return self.x_write({"op": "write", "h": h.hid, "segs": op["post"]})
        return self.close_fd(h, 0, False)

    def x_race(self, op):
        """Write lines in halves while other threads of this process loop
        close(dup(fd)).  Those closes are the writer's own (README: threads of
        a process count as one writer), and a half line is never a valid
        event, so each gets EINVAL and the half stays held (README "Writing",
        Close), or 0 when nothing is held: every second half completes its
        line, stored whole, once."""
        h = self.handle(op)
        if h is None or h.worlds != [EMPTY]:
            return None
        for eid, cut in op["lines"]:
            c = classify(ev_line(eid)[:cut])
            if c != "invalid":
                self.fail("harness", "close_race: the first half of %s is %s" % (eid, c))
        t0, w0 = now(), time.time()
        fd = h.fds[0]
        stop = threading.Event()
        counts = collections.Counter()

        def helper():
            while not stop.is_set():
                try:
                    d = os.dup(fd)
                except OSError as e:
                    counts["dup:" + ename(-e.errno)] += 1
                    return
                try:
                    os.close(d)
                    counts[0] += 1
                except OSError as e:
                    counts[-e.errno] += 1
                time.sleep(0)
        helpers = [threading.Thread(target=helper) for _ in range(op["helpers"])]
        for th in helpers:
            th.start()
        results = []
        ev = []
        try:
            for eid, cut in op["lines"]:
                line = ev_line(eid)
                halves = [line[:cut], line[cut:]]
                for half in halves:
                    try:
                        r = os.write(fd, half)
                    except OSError as e:
                        r = -e.errno
                    results.append(r)
                    if self.died(r):
                        ev += self.dead_events(h, half)
                        break
                    lines, maybe = self.step_write(h, half, r)
                    ev += self.events(h, lines, maybe)
                    if r < 0:
                        break
                if self.dead or results[-1] < 0:
                    break
        finally:
            stop.set()
            for th in helpers:
                th.join()
        rec = {"op": "race", "h": h.hid, "task": h.task, "res": results,
               "closes": {str(k): v for k, v in counts.items()}, "ev": ev,
               "lines": op["lines"], "helpers": op["helpers"]}
        self.record(rec, t0, w0)
        if self.dead:
            return rec
        bad = {k: v for k, v in counts.items() if k not in (0, -errno.EINVAL)
               and not (isinstance(k, int) and -k in DEAD)}
        if bad:
            self.fail("race", "%s: close(dup(fd)) returned %r" % (h.task, bad))
        return rec

    # -- reads --
    def priv_bytes(self, prefix=None):
        lines = self.priv_lines
        if prefix is not None:
            pb = prefix.encode()
            lines = [x for x in lines if ev_meta(line_id(x))[2].startswith(pb)]
        return b"".join(lines)

    def check_chunk(self, what, data, at_start, short, belongs):
        """Every whole line of a read is an event whole, where it belongs; a read
        that returned less than asked (the end) ends with a whole line."""
        if short and data and not data.endswith(b"\n"):
            self.fail("torn", "%s: a read that reached the end stops inside a line: ...%r"
                      % (what, data[-200:]))
        parts = data.split(b"\n")
        parts.pop()
        if not at_start:
            parts = parts[1:]
        for x in parts:
            try:
                eid = line_id(x + b"\n")
            except Failure as f:
                self.fail(f.kind, "%s: %s" % (what, f.msg))
            why = belongs(eid)
            if why:
                self.fail("misplaced", "%s: event %s %s" % (what, eid, why))

    def x_read(self, op):
        path = op["path"]
        t0, w0 = now(), time.time()
        rec = {"op": "read", "path": path, "how": op["how"]}
        what = "/".join(path)
        view = path[0] == "by-type"
        prefix = path[1].encode() if view else None
        task = path[1] if not view else (path[3] if len(path) == 4 else None)
        exact = task is not None and self.exact_priv(task) and isinstance(self.priv_lines, list)
        want = None
        if exact:
            want = self.priv_bytes(path[1] if view else None)
        # a view that holds an event of our live private task cannot vanish
        must_exist = (exact and bool(want)) or (
            view and self.mode["exact"] and isinstance(self.priv_lines, list) and
            task is None and bool(self.priv_bytes(path[1])))

        def belongs(eid):
            etask = eid.split("/", 1)[0]
            if task is not None and etask != task:
                return "of task %s" % etask
            if view and not ev_meta(eid)[2].startswith(prefix):
                return "of type %r" % ev_meta(eid)[2]
            return None

        try:
            fd = os.open(self.p(*path), os.O_RDONLY)
        except OSError as e:
            rec["res"] = -e.errno
            self.record(rec, t0, w0)
            if self.died(-e.errno):
                return rec
            if e.errno != errno.ENOENT or must_exist:
                self.fail("errno", "open %s: %s" % (what, ename(-e.errno)))
            if exact and not view and isinstance(self.priv_lines, list):
                self.fail("errno", "open of live private task %s: ENOENT" % task)
            return rec
        try:
            if exact and not view and not isinstance(self.priv_lines, list):
                self.fail("errno", "open of private task %s, %s, succeeded"
                          % (task, self.priv_lines or "absent"))
            size = os.fstat(fd).st_size
            rec["size"] = size
            if exact and size != len(want) and "stat" in self.kinds:
                self.fail("size", "%s: st_size %d, the model says %d" % (what, size, len(want)))
            if op["how"] == "whole":
                chunks = []
                while True:
                    b = os.read(fd, op["bs"])
                    if not b:
                        break
                    chunks.append(b)
                data = b"".join(chunks)
                rec["got"] = len(data)
                self.check_chunk(what + " (read whole)", data, True, True, belongs)
                if exact and data != want:
                    i = diff_at(data, want)
                    self.fail("content", "%s: read %d bytes that differ from the model's %d "
                              "at byte %d: %r, want %r" % (what, len(data), len(want), i,
                                                           data[max(0, i - 80):i + 120],
                                                           want[max(0, i - 80):i + 120]))
            else:
                reads = []
                if op["how"] == "tail":
                    pairs = [(max(0, size - op["sz"][0]), op["sz"][0])]
                else:
                    pairs = [(max(0, int(f * size) + d), s) for f, d, s in
                             zip(op["fr"], op["dx"], op["sz"])]
                for off, sz in pairs:
                    b = os.pread(fd, sz, off)
                    reads.append([off, sz, len(b)])
                    self.check_chunk("%s (pread %d at %d)" % (what, sz, off), b, off == 0,
                                     len(b) < sz, belongs)
                    if exact and b != want[off:off + sz]:
                        i = diff_at(b, want[off:off + sz])
                        self.fail("content", "%s: pread(%d, %d) returned %d bytes that differ "
                                  "from the model's %d at byte %d: %r, want %r" % (
                                      what, sz, off, len(b), len(want[off:off + sz]), off + i,
                                      b[max(0, i - 80):i + 120],
                                      want[off + max(0, i - 80):off + i + 120]))
                rec["reads"] = reads
            rec["res"] = 0
        except OSError as e:
            rec["res"] = -e.errno
            if not self.died(-e.errno):
                if e.errno != errno.ENOENT or must_exist:
                    self.fail("errno", "reading %s: %s" % (what, ename(-e.errno)))
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
        return self.record(rec, t0, w0)

    def x_stat(self, op):
        h = self.handles.get(op.get("h"))
        task = h.task if h else op["task"]
        t0, w0 = now(), time.time()
        rec = {"op": "stat", "task": task}
        try:
            st = os.fstat(h.fds[0]) if h and h.fds else os.stat(self.p("tasks", task, "events"))
            rec["res"] = 0
            rec["size"] = st.st_size
        except OSError as e:
            rec["res"] = -e.errno
        self.record(rec, t0, w0)
        if self.died(rec["res"]):
            return rec
        if self.exact_priv(task) and (h is None or h.orphan is False):
            live = isinstance(self.priv_lines, list)
            if rec["res"] == 0 and live:
                want = len(self.priv_bytes())
                if rec["size"] != want:
                    self.fail("size", "st_size of %s is %d, the model says %d"
                              % (task, rec["size"], want))
            elif rec["res"] != (0 if live else -errno.ENOENT):
                self.fail("errno", "stat of private task %s (%s): %s"
                          % (task, "live" if live else self.priv_lines, ename(rec["res"])))
        elif rec["res"] not in (0, -errno.ENOENT):
            self.fail("errno", "stat %s: %s" % (task, ename(rec["res"])))
        return rec

    def read_status(self, why):
        try:
            with open(self.p(".control"), "rb") as f:
                raw = f.read()
        except OSError as e:
            if self.died(-e.errno):
                return None
            self.fail("status", "reading .control (%s): %s" % (why, ename(-e.errno)))
        try:
            st = json.loads(raw.decode("utf-8"))
        except ValueError as e:
            self.fail("status", "status after %s is not valid JSON (%s): %r" % (why, e, raw[:600]))
        if not isinstance(st, dict) or "counts" not in st or "compaction" not in st:
            self.fail("status", "status after %s lacks counts/compaction: %r" % (why, raw[:300]))
        return st

    def x_status(self, op):
        t0, w0 = now(), time.time()
        self.read_status("a read")
        try:
            with open(self.p(".metrics"), "rb") as f:
                text = f.read().decode("utf-8")
            for ln in text.splitlines():
                if ln and not ln.startswith("#") and not METRIC_RE.match(ln):
                    self.fail("metrics", "not Prometheus text: %r" % ln)
        except OSError as e:
            if not self.died(-e.errno):
                self.fail("metrics", "reading .metrics: %s" % ename(-e.errno))
        except UnicodeDecodeError:
            self.fail("metrics", ".metrics is not UTF-8")
        return self.record({"op": "status", "res": 0}, t0, w0)

    def x_control(self, op):
        cmd = op["cmd"].encode("latin-1")
        t0, w0 = now(), time.time()
        try:
            fd = os.open(self.p(".control"), os.O_WRONLY)
            try:
                os.write(fd, cmd)
                res = 0
            finally:
                os.close(fd)
        except OSError as e:
            res = -e.errno
        rec = {"op": "control", "cmd": op["cmd"], "want": op["want"], "res": res}
        if op.get("comp"):
            rec["comp"] = op["comp"]
        self.record(rec, t0, w0)
        if self.died(res):
            return rec
        want = op["want"]
        if want == "compact_task":
            # evlogfs(8): "task= must name a live task (else ENOENT)", looked
            # up before a running compaction makes it EBUSY
            state = self.task_state(op["comp"]["task"])
            want = {"live": "compact", "absent": "enoent"}.get(state, "compact_task")
        ok = {"ok": (0,), "einval": (-errno.EINVAL,), "enoent": (-errno.ENOENT,),
              "compact": (0, -errno.EBUSY),
              "compact_task": (0, -errno.EBUSY, -errno.ENOENT)}[want]
        if res not in ok:
            self.fail("control", "%r returned %s, want %s" % (op["cmd"], ename(res),
                                                               "/".join(ename(x) for x in ok)))
        self.read_status("command %r" % op["cmd"])
        return rec

    def x_delete(self, op):
        """mkdir, rm -r (unlink events, rmdir), unlink only, rmdir only."""
        task, how = op["task"], op["how"]
        exact = self.exact_priv(task)
        state = ("live" if isinstance(self.priv_lines, list) else self.priv_lines or "absent") \
            if exact else None
        t0, w0 = now(), time.time()
        rec = {"op": "delete", "task": task, "how": how}
        ev_path = self.p("tasks", task, "events")
        res = []

        def call(fn, *a):
            try:
                fn(*a)
                res.append(0)
            except OSError as e:
                res.append(-e.errno)
            return res[-1]

        if how == "mkdir":
            r = call(os.mkdir, self.p("tasks", task))
            if r == 0:
                try:
                    rec["ino"] = os.stat(ev_path).st_ino
                except OSError:
                    pass
            want = [{"live": -errno.EEXIST}.get(state, 0)] if exact else None
            if state == "tomb" and r == -errno.EEXIST:
                want = [r]      # the emptied directory is still there, as on a disk
            allowed = (0, -errno.EEXIST)
        elif how in ("rm", "unlink"):
            try:
                rec["ino"] = os.stat(ev_path).st_ino
            except OSError:
                pass
            r = call(os.unlink, ev_path)
            want = [0 if state == "live" else -errno.ENOENT]
            if how == "rm":
                call(os.rmdir, self.p("tasks", task))
                want.append(-errno.ENOENT if state == "absent" else 0)
            allowed = (0, -errno.ENOENT, -errno.ENOTEMPTY)
        else:
            r = call(os.rmdir, self.p("tasks", task))
            want = [{"live": -errno.ENOTEMPTY, "tomb": 0}.get(state, -errno.ENOENT)]
            allowed = (0, -errno.ENOENT, -errno.ENOTEMPTY)
        rec["res"] = res
        self.record(rec, t0, w0)
        if any(self.died(x) for x in res):
            return rec
        if exact and res != want:
            self.fail("errno", "%s of private task %s (%s): %s, want %s" % (
                how, task, state, [ename(x) for x in res], [ename(x) for x in want]))
        if not exact and any(x not in allowed for x in res):
            self.fail("errno", "%s of task %s: %s" % (how, task, [ename(x) for x in res]))
        if exact:
            if how == "mkdir":
                if res == [0]:
                    self.priv_lines = []
            elif how in ("rm", "unlink") and state == "live":
                self.priv_lines = "tomb" if how == "unlink" else None
                for h in self.handles.values():
                    if h.task == task:
                        h.orphan = True
            elif how == "rm" or (how == "rmdir" and state == "tomb"):
                self.priv_lines = None
        return rec

    def x_calls(self, op):
        """Calls with a fixed answer: [name, path..., want errnos]."""
        t0, w0 = now(), time.time()
        out = []
        for c in op["calls"]:
            name, args, want = c[0], c[1:-1], c[-1]
            try:
                CALLS[name](self, *args)
                r = 0
            except OSError as e:
                r = -e.errno
            out.append(r)
            if self.died(r):
                break
            if r not in want:
                self.record({"op": "calls", "calls": op["calls"], "res": out}, t0, w0)
                self.fail("errno", "%s %r: %s, want %s" % (name, args, ename(r),
                                                           "/".join(ename(x) for x in want)))
        return self.record({"op": "calls", "calls": op["calls"], "res": out}, t0, w0)

    def x_ls(self, op):
        t0, w0 = now(), time.time()
        for d in ("tasks", "by-type"):
            try:
                names = os.listdir(self.p(d))
            except OSError as e:
                if self.died(-e.errno):
                    break
                self.fail("errno", "ls %s: %s" % (d, ename(-e.errno)))
            if len(names) != len(set(names)):
                self.fail("ls", "ls %s lists a name twice: %r" % (d, sorted(names)))
            if d == "by-type":
                for n in names:
                    if n.startswith(".") or not n:
                        self.fail("ls", "by-type lists type %r" % n)
        return self.record({"op": "ls", "res": 0}, t0, w0)


METRIC_RE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? '
                       r'([-+]?[0-9.eE+-]+|[-+]?Inf|NaN)( -?[0-9]+)?$')


def diff_at(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def _c_open(ctx, flags, *path):
    os.close(os.open(ctx.p(*path), flags))


CALLS = {
    "open_trunc": lambda c, *p: _c_open(c, os.O_WRONLY | os.O_TRUNC, *p),
    "open_w": lambda c, *p: _c_open(c, os.O_WRONLY, *p),
    "open_creat": lambda c, *p: _c_open(c, os.O_WRONLY | os.O_CREAT, *p),
    "open_r": lambda c, *p: _c_open(c, os.O_RDONLY, *p),
    "truncate0": lambda c, *p: os.truncate(c.p(*p), 0),
    "truncate_same": lambda c, *p: os.truncate(c.p(*p), os.stat(c.p(*p)).st_size),
    "rename": lambda c, *p: os.rename(c.p(*p), c.p(*p[:-1], "other")),
    "link": lambda c, *p: os.link(c.p(*p), c.p(*p[:-1], "other")),
    "symlink": lambda c, *p: os.symlink("x", c.p(*p)),
    "chmod": lambda c, *p: os.chmod(c.p(*p), 0o600),
    "utime": lambda c, *p: os.utime(c.p(*p)),
    "mkdir": lambda c, *p: os.mkdir(c.p(*p)),
    "rmdir": lambda c, *p: os.rmdir(c.p(*p)),
    "unlink": lambda c, *p: os.unlink(c.p(*p)),
    "stat": lambda c, *p: os.stat(c.p(*p)),
    "mknod": lambda c, *p: os.mknod(c.p(*p)),
}


# ---- choosing operations (live runs only; a replay reads them from the log) --

DURATIONS = ["1s", "2s", "3s", "5s", "20s", "1m", "1h", "30d"]
HUGE = ["30000d", "99999d"]    # longer than the clock's age: nothing is that old (A3)
CONTROL_OK = ["checkpoint", "checkpoint\n", "checkpoint \n"]
CONTROL_LAX = [" checkpoint", "checkpoint\r\n", "\tcheckpoint\n"]
CONTROL_BAD = ["frobnicate", "compact bogus=1", "compact max-age=1y", "compact keep-last=0",
               "compact keep-last=-3", "compact keep-last=x", "compact max-age=",
               "compact task=.hid", "compact task=", "checkpoint now",
               "compact\x00", "checkpoint\ncheckpoint", "c" * 600,
               "compact expire-idle=-1d", "compact keep-last=18446744073709551616"]
CONTROL_STRICT = ["compact keep-last=5 keep-last=7", "compact max-age=99999999999999999999999s",
                  "compact task=x0 task=x1"]


def seconds(d):
    return int(d[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[d[-1]]


class Gen:
    """Picks the next operation of a thread from its PRNG and its model."""

    def __init__(self, ctx):
        self.c = ctx
        self.r = ctx.rng
        kinds = [k for k in KINDS if k in ctx.kinds]
        if ctx.mode["retention"] == "none" and "retention" in kinds:
            kinds.remove("retention")
        kinds = [k for k in kinds if KINDS[k]]
        self.kinds = kinds
        self.weights = [KINDS[k] for k in kinds]
        self.bad_kinds = [k for k in BAD_KINDS if k not in BAD_STRICT]

    # -- the stream of lines a handle writes --
    def new_id(self, h, cls="s"):
        eid = "%s/%d.%s.%d.%d~%s" % (h.task, self.c.phase, self.c.key, h.hid, h.k, cls)
        h.k += 1
        return eid

    def push(self, h, tag, spec):
        n = len(ev_line(spec) if tag == "e" else bad_line(spec) if tag == "b"
                else spec.encode("latin-1"))
        h.stream.append([n, tag, spec])

    def push_event(self, h, cls="s"):
        self.push(h, "e", self.new_id(h, cls))

    def push_bad(self, h, kind=None):
        kind = kind or self.r.choice(self.bad_kinds)
        bid = "%s/%d.%s.%d.%d!%s" % (h.task, self.c.phase, self.c.key, h.hid, h.k, kind)
        h.k += 1
        self.push(h, "b", bid)

    def queued(self, h):
        return sum(x[0] for x in h.stream) - h.soff

    def fill(self, h, n, classes="sssssm"):
        while self.queued(h) < n:
            self.push_event(h, self.r.choice(classes))

    def take(self, h, n):
        segs = []
        while n > 0:
            if not h.stream:
                self.push_event(h)
            ln, tag, spec = h.stream[0]
            a = h.soff
            b = min(ln, a + n)
            segs.append([tag, spec, a, b])
            n -= b - a
            if b == ln:
                h.stream.pop(0)
                h.soff = 0
            else:
                h.soff = b
        return segs

    def rest_of_line(self, h):
        return h.stream[0][0] - h.soff if h.soff else 0

    def drop_partial(self, h):
        """The rest of a line the daemon no longer holds is never sent."""
        if h.soff:
            h.stream.pop(0)
            h.soff = 0

    def after(self, op, rec):
        """Keep the stream in step with what the daemon holds: when it holds
        nothing (a line refused, or stored by a close), the rest of the line
        the stream was in is never sent; when it holds something else (the
        line a refused write() did not continue, a child's part of a line),
        the next operation ends that line with "x\n" (refused, dropped) so
        that no stream bytes are spliced onto it."""
        h = self.c.handles.get(op.get("h"))
        if h is None or len(h.worlds) != 1:
            return
        held = h.worlds[0][0]
        sent = seg_bytes((h.stream[0][1], h.stream[0][2], 0, h.soff)) if h.soff else b""
        if held == sent:
            h.desync = False
        elif not held:
            self.drop_partial(h)
            h.desync = False
        else:
            h.desync = True

    # -- picking --
    def pick(self, pred=lambda h: True):
        hs = [h for h in self.c.handles.values() if h.fds and pred(h)]
        return self.r.choice(hs) if hs else None

    def clean(self, h):
        return h.worlds == [EMPTY] and not h.soff

    def next(self):
        c = self.c
        for h in c.handles.values():
            if len(h.worlds) > 1 or h.desync:
                return {"op": "write", "h": h.hid, "segs": [["r", "x\n", 0, 2]], "resync": True}
            if h.orphan and h.fds:
                return {"op": "close", "h": h.hid, "fd": 0}    # its task is gone
        for _ in range(20):
            k = self.r.choices(self.kinds, self.weights)[0]
            op = getattr(self, "g_" + k)()
            if op:
                return op
        return {"op": "ls"}

    def task_choice(self):
        x = self.r.random()
        if x < 0.4:
            return self.c.priv
        return self.r.choice(SHARED if x < 0.75 else SCRATCH)

    def g_open(self, task=None, append=True):
        c = self.c
        if len(c.handles) >= 4:
            return None
        task = task or self.task_choice()
        if c.exact_priv(task) and not isinstance(c.priv_lines, list) and self.r.random() < 0.8:
            return {"op": "delete", "task": task, "how": "mkdir"}
        if not c.exact_priv(task) and task not in SCRATCH and self.r.random() < 0.05:
            return {"op": "delete", "task": task, "how": "mkdir"}
        hid = c.next_hid
        c.next_hid += 1
        return {"op": "open", "h": hid, "task": task, "append": append}

    def writable(self, pred=lambda h: True):
        h = self.pick(lambda h: h.append and pred(h))
        if h is None or self.r.random() < 0.05:
            return None, self.g_open()
        return h, None

    def size(self, h):
        x = self.r.random()
        head = h.stream[0][0] if h.stream else 0
        if head > CFG.max_event // 2 and x < 0.7:
            return self.r.randrange(1, min(MAXW, 2 * CFG.max_event))
        if x < 0.35:
            return self.r.randrange(1, 41)
        if x < 0.6:
            return (self.rest_of_line(h) or self.r.randrange(1, 200)) + \
                self.r.choice([0, 0, 1, 5, 30])
        if x < 0.88:
            return self.r.randrange(100, 8192)
        if x < 0.98:
            return self.r.randrange(8192, 65536)
        return self.r.randrange(65536, 512 * 1024)

    def g_write(self):
        h, op = self.writable()
        if op or h is None:
            return op
        return {"op": "write", "h": h.hid, "fd": self.r.randrange(8),
                "segs": self.take(h, self.size(h))}

    def g_write_big(self):
        h, op = self.writable()
        if op or h is None:
            return op
        r = self.r
        n = r.choice([MAXW - r.randrange(0, PAGE + 1), MAXW, MAXW - r.randrange(1, 64),
                      MAXW + r.randrange(1, 5 * MAXW // 2)])
        x = r.random()
        if x < 0.5:
            at = r.randrange(0, n)
            self.fill(h, at, "sssml")
            if x < 0.35:
                self.push_bad(h)
            else:
                self.push_event(h, "L%d" % (CFG.max_event + r.randrange(1, CFG.max_event)))
        elif x < 0.65:
            # the bad line right at the end: in the last bytes of a 1 MiB request
            self.fill(h, n - 40, "sssml")
            self.push_bad(h, "typenum")
            n = self.queued(h)
        self.fill(h, n, "sssml")
        return {"op": "write", "h": h.hid, "segs": self.take(h, n)}

    def g_write_bad_strict(self):
        return self.g_write_bad(self.r.choice(BAD_STRICT))

    def g_write_bad(self, kind=None):
        h, op = self.writable()
        if op or h is None:
            return op
        r = self.r
        if r.random() < 0.3:
            self.push_bad(h, kind)      # cut up by the next writes
            return self.g_write()
        rest = self.rest_of_line(h)
        if rest:
            self.drop_queued(h)
        for _ in range(r.choice([0, 0, 1, 3])):
            self.push_event(h)
        self.push_bad(h, kind)
        for _ in range(r.choice([0, 0, 1, 2])):
            self.push_event(h)
        n = self.queued(h) - r.choice([0, 0, 0, 10])
        return {"op": "write", "h": h.hid, "segs": self.take(h, max(1, n))}

    def drop_queued(self, h):
        """Forget lines queued after the current one (never sent: gaps in k)."""
        del h.stream[1:]

    def g_write_oversize(self):
        h, op = self.writable()
        if op or h is None:
            return op
        r = self.r
        M = CFG.max_event
        size = r.choice([M - 1, M, M + 1, M + 2, M + r.randrange(1, M)])
        self.drop_queued(h)
        self.push_event(h, "L%d" % size)
        if r.random() < 0.5:
            return self.g_write()       # in pieces, by the next writes
        self.push_event(h)
        return {"op": "write", "h": h.hid, "segs": self.take(h, self.queued(h))}

    def g_pwrite(self):
        c = self.c
        h = self.pick(lambda h: not h.append and c.exact_priv(h.task) and h.orphan is False)
        if h is None:
            if c.mode["exact"] and isinstance(c.priv_lines, list):
                return self.g_open(c.priv, append=False)
            return None
        if self.r.random() < 0.2:
            # not from the stream: the daemon must refuse it, nothing of it is held
            return {"op": "write", "h": h.hid, "off": "bad",
                    "segs": [["r", '{"type":"z","id":"bad-offset"}\n', 0, 31]]}
        return {"op": "write", "h": h.hid, "segs": self.take(h, self.size(h)), "off": "end"}

    def g_dup(self):
        h = self.pick(lambda h: len(h.fds) < 4)
        return h and {"op": "dup", "h": h.hid}

    def g_dup_close(self):
        h = self.pick()
        return h and {"op": "dup_close", "h": h.hid, "fd": self.r.randrange(4)}

    def g_close(self):
        h = self.pick()
        return h and {"op": "close", "h": h.hid, "fd": self.r.randrange(4)}

    def g_fork_close(self):
        h = self.pick()
        return h and {"op": "fork", "mode": "close", "h": h.hid}

    def g_fork_exit(self):
        h = self.pick()
        return h and {"op": "fork", "mode": "exit", "h": h.hid, "n": self.r.choice([1, 1, 3])}

    def g_fork_exec(self):
        h = self.pick()
        return h and {"op": "fork", "mode": "exec", "h": h.hid, "n": 1}

    def cut(self, line):
        """Where to cut a line in two: before its newline, or inside it where
        neither part is a whole event (never between a CR and its newline)."""
        if self.r.random() < 0.4:
            return len(line) - 1
        c = self.r.randrange(1, len(line) - 1)
        return len(line) - 1 if line[c:] == b"\r\n" else c

    def g_flush_storm(self):
        h = self.pick(lambda h: h.append and self.clean(h))
        if h is None:
            return self.g_open()
        del h.stream[:]           # queued lines are never sent: k stays in order
        eid = self.new_id(h)
        line = ev_line(eid)
        cut = self.cut(line)
        pre = [["e", eid, 0, cut]]
        post = [["e", eid, cut, len(line)]] if self.r.random() < 0.7 else None
        return {"op": "storm", "h": h.hid, "pre": pre, "post": post, "n": 8}

    def g_fork_write(self):
        h = self.pick(lambda h: h.append and self.clean(h))
        if h is None:
            return self.g_open()
        del h.stream[:]           # queued lines are never sent: k stays in order
        writes = []
        for _ in range(self.r.randrange(1, 4)):
            segs = []
            for _ in range(self.r.randrange(1, 4)):
                eid = self.new_id(h)
                segs.append(["e", eid, 0, len(ev_line(eid))])
            writes.append(segs)
        if self.r.random() < 0.6:
            eid = self.new_id(h)
            cut = self.cut(ev_line(eid))
            writes[-1].append(["e", eid, 0, cut])
        return {"op": "fork", "mode": "write", "h": h.hid, "writes": writes,
                "close": self.r.random() < 0.5}

    def g_close_race(self):
        h = self.pick(lambda h: h.append and self.clean(h))
        if h is None:
            return self.g_open()
        del h.stream[:]           # queued lines are never sent: k stays in order
        lines = []
        for _ in range(self.r.randrange(3, 13)):
            eid = self.new_id(h)
            line = ev_line(eid)
            # never inside a leading blank: a writer's close drops a held line
            # of blanks (SPEC 3, skipped), so the concurrent closes would make
            # the rest a line of its own (see README "Known failures")
            lead = len(line) - len(line.lstrip(b" "))
            lines.append([eid, self.r.randrange(1 + lead, len(line) - 2)])
        return {"op": "race", "h": h.hid, "lines": lines, "helpers": self.r.choice([1, 2])}

    def g_fsync(self):
        h = self.pick()
        return h and {"op": "fsync", "h": h.hid, "data": self.r.random() < 0.5}

    def g_stat(self):
        h = self.pick()
        if h and self.r.random() < 0.6:
            return {"op": "stat", "h": h.hid}
        return {"op": "stat", "task": self.task_choice()}

    def read_how(self, how=None):
        r = self.r
        how = how or r.choice(["offs", "offs", "tail"])
        op = {"how": how, "bs": r.choice([1, 7, 100, 4096, 65536, 1 << 20])}
        if how == "whole" and op["bs"] < 100 and r.random() < 0.8:
            op["bs"] = 4096
        n = r.randrange(1, 5)
        op["fr"] = [r.random() for _ in range(n)]
        op["dx"] = [r.choice([0, 0, -1, 1]) for _ in range(n)]
        op["sz"] = [r.choice([1, 10, 100, 1000, 4096, 70000]) for _ in range(n)]
        return op

    def g_read_log(self, how=None):
        op = self.read_how(how)
        op.update(op="read", path=["tasks", self.task_choice(), "events"])
        return op

    def g_read_follow(self):
        """cat: read a log or a view from 0 to the end through one descriptor."""
        if self.r.random() < 0.5:
            return self.g_read_log("whole")
        return self.g_read_view("whole")

    def prefix_choice(self):
        t = self.r.choice(TYPE_NAMES)
        return t[:self.r.randrange(1, len(t) + 1)]

    def g_read_view(self, how=None):
        op = self.read_how(how)
        p = self.prefix_choice()
        if self.r.random() < 0.3:
            op.update(op="read", path=["by-type", p, "tasks", self.task_choice()])
        else:
            op.update(op="read", path=["by-type", p, "events"])
        return op

    def g_status(self):
        return {"op": "status"}

    def g_control(self):
        r = self.r
        x = r.random()
        if x < 0.4:
            return {"op": "control", "cmd": r.choice(CONTROL_OK), "want": "ok"}
        if x < 0.7:
            return {"op": "control", "cmd": r.choice(["compact", "compact\n"]),
                    "want": "compact", "comp": {}}
        task = r.choice([self.task_choice(), "nosuch"])
        return {"op": "control", "cmd": "compact task=%s" % task, "want": "compact_task",
                "comp": {"task": task}}

    def g_retention_huge(self):
        if self.c.mode["retention"] != "age":
            return None
        d = self.r.choice(HUGE)
        key, word = self.r.choice([("idle", "expire-idle"), ("age", "max-age")])
        return {"op": "control", "cmd": "compact %s=%s" % (word, d), "want": "compact",
                "comp": {key: seconds(d)}}

    def g_retention(self):
        r = self.r
        mode = self.c.mode["retention"]
        args = {}
        words = []
        if r.random() < 0.3:
            args["task"] = self.task_choice()
            words.append("task=" + args["task"])
        if mode == "keep" or r.random() < 0.4:
            args["keep"] = r.choice([1, 2, 5, 20, 100, 1000])
            words.append("keep-last=%d" % args["keep"])
        if mode == "age":
            if r.random() < 0.6 or not words:
                d = r.choice(DURATIONS)
                args["age"] = seconds(d)
                words.append("max-age=" + d)
            if r.random() < 0.5:
                d = r.choice(DURATIONS)
                args["idle"] = seconds(d)
                words.append("expire-idle=" + d)
        if "keep" not in args and "age" not in args and "idle" not in args:
            args["keep"] = 50
            words.append("keep-last=50")
        r.shuffle(words)
        return {"op": "control", "cmd": "compact " + " ".join(words),
                "want": "compact_task" if "task" in args else "compact", "comp": args}

    def g_control_bad(self):
        return {"op": "control", "cmd": self.r.choice(CONTROL_BAD), "want": "einval"}

    def g_control_lax(self):
        return {"op": "control", "cmd": self.r.choice(CONTROL_LAX), "want": "ok"}

    def g_control_strict(self):
        return {"op": "control", "cmd": self.r.choice(CONTROL_STRICT), "want": "einval"}

    def g_control_utf8(self):
        if self.r.random() < 0.5:
            return {"op": "control", "cmd": "\x80\x81\n", "want": "einval"}
        return {"op": "control", "cmd": "compact task=\xff\xfe", "want": "compact_task",
                "comp": {"task": "\xff\xfe"}}

    def g_delete(self):
        c = self.c
        r = self.r
        if r.random() < 0.5 and not (c.mode["exact"] and self.r.random() < 0.5):
            task = r.choice(SCRATCH)
        else:
            task = c.priv
        how = r.choice(["mkdir", "mkdir", "rm", "rm", "unlink", "rmdir"])
        return {"op": "delete", "task": task, "how": how}

    def g_bad_names(self):
        EI, NO = -errno.EINVAL, -errno.ENOENT
        calls = [["mkdir", "tasks", ".hid", [EI]], ["mkdir", "tasks", "a\x01b", [EI]],
                 ["mkdir", "tasks", "a\x7f", [EI]],
                 ["stat", "by-type", "qq-none", [NO]],
                 ["open_r", "by-type", "qq-none", "events", [NO]],
                 ["stat", "tasks", "nosuch", "events", [NO]], ["stat", "by-type", "a" * 255, [NO]],
                 ["stat", "by-type", ".x", [NO, EI]]]
        return {"op": "calls", "calls": self.r.sample(calls, self.r.randrange(1, 4))}

    def g_names_long(self):
        EN = -errno.ENAMETOOLONG
        calls = [["mkdir", "tasks", "x" * 256, [EN]], ["stat", "tasks", "x" * 256, "events", [EN]],
                 ["stat", "by-type", "y" * 256, [EN]], ["open_r", "tasks", "z" * 300, [EN]]]
        return {"op": "calls", "calls": self.r.sample(calls, self.r.randrange(1, 3))}

    def g_eperm(self):
        c = self.c
        EP, NO = -errno.EPERM, -errno.ENOENT
        exact = c.mode["exact"] and isinstance(c.priv_lines, list)
        t = c.priv if exact else self.task_choice()
        ok = [] if exact else [NO]
        calls = [["open_trunc", "tasks", t, "events", [EP] + ok],
                 ["rename", "tasks", t, "events", [EP] + ok],
                 ["rename", "tasks", t, [EP] + ok],
                 ["link", "tasks", t, "events", [EP] + ok],
                 ["symlink", "tasks", t, "new", [EP] + ok],
                 ["chmod", "tasks", t, "events", [EP] + ok],
                 ["open_creat", "tasks", t, "new", [EP] + ok],
                 ["mkdir", "tasks", t, "sub", [EP] + ok],
                 ["mknod", "tasks", t, "node", [EP] + ok],
                 ["mkdir", "by-type", "newdir", [EP]], ["mkdir", "newtop", [EP]],
                 ["open_w", ".metrics", [EP, -errno.EACCES]],
                 ["utime", "tasks", t, "events", [0] + ok],
                 ["truncate_same", "tasks", t, "events", [0] + ok + ([] if exact else [EP])]]
        if exact and c.priv_lines:
            calls.append(["truncate0", "tasks", t, "events", [EP]])
            p = ev_meta(line_id(c.priv_lines[-1]))[2].decode()
            calls += [["open_w", "by-type", p, "events", [EP]],
                      ["unlink", "by-type", p, "events", [EP]],
                      ["open_w", "by-type", p, "tasks", t, [EP]]]
        return {"op": "calls", "calls": self.r.sample(calls, self.r.randrange(1, 5))}

    def g_eperm_strict(self):
        return {"op": "calls", "calls": [["truncate0", ".metrics", [-errno.EPERM, -errno.EACCES]]]}

    def g_ls(self):
        return {"op": "ls"}


# ---- a worker process: T threads, each a Ctx driven by a Gen ---------------

def thread_body(ctx, deadline, stopfile, done, go_close):
    gen = Gen(ctx)
    try:
        while not ctx.dead and now() < deadline and not os.path.exists(stopfile):
            op = gen.next()
            t0 = now()
            ctx.ops.append([t0, ctx.key, op])
            rec = ctx.run_op(op)
            gen.after(op, rec)
    except Failure as f:
        ctx.failure = f
    except Exception:
        ctx.failure = Failure("harness", traceback.format_exc())
    if ctx.failure:
        open(stopfile, "a").close()
    done.set()
    go_close.wait()
    try:
        close_all(ctx)
    except Failure as f:
        ctx.failure = ctx.failure or f
    except Exception:
        ctx.failure = ctx.failure or Failure("harness", traceback.format_exc())


def close_all(ctx):
    for h in list(ctx.handles.values()):
        while h.fds:
            op = {"op": "close", "h": h.hid, "fd": 0}
            ctx.ops.append([now(), ctx.key, op])
            ctx.run_op(op)


def worker_main(run, phase, w, mode, deadline, priv, pipe_r, pipe_w, logpath):
    ctxs = []
    threads = []
    go_close = threading.Event()
    for t in range(run.args.threads):
        ctx = Ctx(run, phase, w, t, run.seed, mode, run.kinds, priv.get("p%d_%d" % (w, t)))
        ctx.ops = []
        ctx.failure = None
        done = threading.Event()
        th = threading.Thread(target=thread_body,
                              args=(ctx, deadline, run.stopfile, done, go_close))
        ctxs.append((ctx, done))
        threads.append(th)
    for th in threads:
        th.start()
    for _, done in ctxs:
        done.wait()
    os.write(pipe_w, b"R")
    cmd = os.read(pipe_r, 1)
    if cmd == b"K":
        for ctx, _ in ctxs:
            ctx.after_kill = True
    go_close.set()
    for th in threads:
        th.join()
    out = {"ops": [], "records": [], "failures": []}
    for ctx, _ in ctxs:
        out["ops"] += ctx.ops
        out["records"] += ctx.log
        if ctx.failure:
            out["failures"].append([ctx.failure.kind, ctx.failure.msg])
    with open(logpath, "w") as f:
        json.dump(out, f)


# ---- the global model and the quiet-point check ---------------------------

class Ev:
    __slots__ = ("st", "task", "ino", "t0", "t1", "w0", "w1", "crc")

    def __init__(self, st, task, ino, rec, crc):
        self.st, self.task, self.ino = st, task, ino
        self.crc = crc          # of the line stored, when it is not the canonical one
        self.t0, self.t1, self.w0, self.w1 = rec["t0"], rec["t1"], rec["w0"], rec["w1"]


class Model:
    """What every thread was told, merged: acknowledged and maybe-stored events,
    task incarnations (inode numbers), deletions and compactions."""

    def __init__(self):
        self.events = {}
        self.first_seen = {}            # (task, ino) -> t0
        self.created = {}               # (task, ino) -> (w0, w1)
        self.unlinks = collections.defaultdict(list)    # task -> [t1]
        self.comps = []                 # {"args", "t0", "w0", "w1"}
        self.prev_views = {}            # prefix -> [ids] at the last check

    def ingest(self, rec):
        op = rec.get("op")
        for eid, st, task, ino, n, crc, typ, crc_stored in rec.get("ev", ()):
            if eid not in _meta:
                _meta[eid] = (n, crc, typ.encode())
            old = self.events.get(eid)
            if old is None or old.st == "m":
                self.events[eid] = ev = Ev(st, task, ino, rec, crc_stored)
                if old is not None and old.t0 < ev.t0:
                    # An earlier call may have stored it (a line a forked
                    # child left held and its exit's FLUSH committed, seed
                    # 902898013): it began no later than that call did.
                    ev.t0, ev.w0 = old.t0, old.w0
        res = rec.get("res")
        died = isinstance(res, int) and -res in DEAD
        if op == "open" and rec.get("ino"):
            k = (rec["task"], rec["ino"])
            self.first_seen[k] = min(self.first_seen.get(k, rec["t0"]), rec["t0"])
        elif op == "delete":
            res = rec["res"]
            died = any(-x in DEAD for x in res)
            if rec["how"] == "mkdir" and res == [0] and rec.get("ino"):
                k = (rec["task"], rec["ino"])
                self.created[k] = (rec["w0"], rec["w1"])
                self.first_seen[k] = min(self.first_seen.get(k, rec["t0"]), rec["t0"])
            if rec["how"] in ("rm", "unlink") and (res[0] == 0 or died):
                self.unlinks[rec["task"]].append(rec["t1"] if not died else float("inf"))
        elif op == "control" and "comp" in rec and (res == 0 or died):
            self.comps.append({"args": rec["comp"], "t0": rec["t0"], "w0": rec["w0"],
                               "w1": None})

    def end_comps(self):
        for c in self.comps:
            if c["w1"] is None:
                c["w1"] = time.time()


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


class Checker:
    """The quiet-point check of a whole mount against the model."""

    def __init__(self, run, model):
        self.run = run
        self.m = model

    def p(self, *parts):
        return os.path.join(self.run.mnt, *parts)

    def fail(self, kind, msg):
        raise Failure(kind, "quiet point after phase %d: %s" % (self.run.phase, msg))

    def check(self):
        run, m = self.run, self.m
        if run.mount.proc is None or run.mount.proc.poll() is not None:
            self.fail("daemon_died", "the daemon exited (%s): %s" % (
                run.mount.proc and run.mount.proc.returncode, tail_text(daemon_err(run.mount))))
        m.end_comps()
        self.wait_idle()
        ctl = self.status()
        # the logs
        live = {}                       # task -> (ino, [ids])
        lines_of = {}                   # id -> line
        where = {}
        priv = {}
        for name in sorted(os.listdir(self.p("tasks"))):
            try:
                st = os.stat(self.p("tasks", name, "events"))
            except FileNotFoundError:
                if name.startswith("p"):
                    priv[name] = "tomb"
                continue
            data = read_all(self.p("tasks", name, "events"))
            if st.st_size != len(data):
                self.fail("size", "tasks/%s/events: st_size %d, read %d bytes"
                          % (name, st.st_size, len(data)))
            if data and not data.endswith(b"\n"):
                self.fail("torn", "tasks/%s/events ends inside a line" % name)
            ids = []
            for ln in data.splitlines(keepends=True):
                try:
                    eid = line_id(ln)
                except Failure as f:
                    self.fail(f.kind, "tasks/%s/events: %s" % (name, f.msg))
                if eid in where:
                    self.fail("duplicate", "event %s is in %s and again in %s"
                              % (eid, where[eid], name))
                where[eid] = name
                lines_of[eid] = ln
                ids.append(eid)
            live[name] = (st.st_ino, ids)
            if name.startswith("p"):
                priv[name] = [lines_of[i] for i in ids]
        self.check_logs(live, where, lines_of)
        types = set()
        for eid in where:
            types.add(ev_meta(eid)[2])
        self.check_views(live, lines_of, types)
        c = ctl["counts"]
        want = {"tasks": len(live), "events": len(where), "types": len(types)}
        got = {k: c.get(k) for k in want}
        if got != want:
            self.fail("status_counts", "status counts %r, the mount holds %r" % (got, want))
        return priv, len(where)

    def wait_idle(self):
        end = now() + 600
        while True:
            st = self.status()
            if st["compaction"]["state"] == "idle":
                return
            if now() > end:
                self.fail("hang", "the compaction is still running after 600 s: %r"
                          % st["compaction"])
            time.sleep(0.05)

    def status(self):
        raw = read_all(self.p(".control"))
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError as e:
            self.fail("status", "status is not valid JSON (%s): %r" % (e, raw[:600]))

    def check_logs(self, live, where, lines_of):
        m = self.m
        by_inc = collections.defaultdict(list)
        for eid, ev in m.events.items():
            by_inc[(ev.task, ev.ino)].append(eid)
        # every stored event was acknowledged (or may have been), where it was written
        for eid, name in where.items():
            ev = m.events.get(eid)
            if ev is None:
                self.fail("unacked_stored", "event %s is in tasks/%s but no write that "
                          "stored it returned success (and none was cut short)" % (eid, name))
            if ev.crc is not None and zlib.crc32(lines_of[eid]) != ev.crc or \
                    ev.crc is None and len(lines_of[eid]) != ev_meta(eid)[0]:
                self.fail("torn", "event %s in tasks/%s is not the line its writer stored: %r"
                          % (eid, name, lines_of[eid][:200]))
            if ev.task != name or (ev.ino is not None and ev.ino != live[name][0]):
                self.fail("misplaced", "event %s written to %s (inode %s) is in %s (inode %s)"
                          % (eid, ev.task, ev.ino, name, live[name][0]))
        vanished = {}
        for (task, ino), eids in by_inc.items():
            acked = [e for e in eids if m.events[e].st == "a"]
            if not acked:
                continue
            if task in live and (ino is None or live[task][0] == ino):
                missing = [e for e in acked if e not in where]
                if missing:
                    self.justify_drop(task, ino, live[task][1], acked, missing)
            elif ino is not None:
                why = self.justify_gone(task, ino, eids)
                if why:
                    vanished[(task, ino)] = (len(acked), why)
        if vanished:
            (task, ino), (n, why) = sorted(vanished.items())[0]
            self.fail("lost", "task %s (inode %d) with %d acknowledged events is gone: %s"
                      % (task, ino, n, why))
        # order: a task log keeps append order (as far as time tells it)
        for name, (ino, ids) in live.items():
            self.check_order("tasks/%s/events" % name, ids)

    def check_order(self, what, ids):
        m = self.m
        seen = {}
        for i, eid in enumerate(ids):
            _, hkey, k = id_parts(eid)
            if seen.get(hkey, -1) >= k:
                self.fail("order", "%s: event %s follows a later event of the same handle"
                          % (what, eid))
            seen[hkey] = k
        low = float("inf")
        low_id = None
        for eid in reversed(ids):
            ev = m.events[eid]
            if low < ev.t0:
                self.fail("order", "%s: event %s comes before %s, whose write returned "
                          "before the first one's began" % (what, eid, low_id))
            if ev.st == "a" and ev.t1 < low:
                low, low_id = ev.t1, eid

    def justify_drop(self, task, ino, present, acked, missing):
        """Acknowledged events missing from a live task: retention only, oldest first."""
        m = self.m
        comps = [c for c in m.comps if c["args"].get("task", task) == task and
                 ("keep" in c["args"] or "age" in c["args"])]
        what = "task %s: %d acknowledged events missing (first %s)" % (task, len(missing),
                                                                       missing[0])
        if not comps:
            self.fail("lost", what + ", and no retention was asked for")
        # the oldest ones only: none missing began after one present had ended
        pres = [m.events[e] for e in present if m.events[e].st == "a"]
        if pres:
            first_end = min(e.t1 for e in pres)
            late = [e for e in missing if m.events[e].t0 > first_end]
            if late:
                self.fail("lost", what + "; %s began after a kept event had been written: "
                          "not the oldest" % late[0])
        keeps = [c["args"]["keep"] for c in comps if "keep" in c["args"]]
        if keeps and len(present) >= min(min(keeps), len(acked)):
            return
        ages = [c["w1"] - c["args"]["age"] for c in comps if "age" in c["args"]]
        if ages and all(m.events[e].w0 <= max(ages) for e in missing):
            return
        self.fail("lost", what + "; %d kept, keep-last %s, max-age limits %s" % (
            len(present), keeps, ages))

    def justify_gone(self, task, ino, eids):
        """Why incarnation @ino of @task may be gone, or None if it may."""
        m = self.m
        first = m.first_seen.get((task, ino))
        if first is None:
            evs = [m.events[e] for e in eids]
            first = min(e.t0 for e in evs)
        if any(t1 >= first for t1 in m.unlinks.get(task, ())):
            return None
        acts = [(m.events[e].w0, m.events[e].w1) for e in eids if m.events[e].st == "a"]
        born = None
        if (task, ino) in m.created:
            acts.append(m.created[(task, ino)])
            born = m.created[(task, ino)][0]
        for c in m.comps:
            a = c["args"]
            if "idle" not in a or a.get("task", task) != task:
                continue
            if expirable(acts, a["idle"], c["w0"], c["w1"], born):
                return None
        return "no rm -r of it and no expire-idle could have deleted it (expire-idle: %s)" % [
            c["args"]["idle"] for c in m.comps if "idle" in c["args"]]

    def check_views(self, live, lines_of, types):
        m = self.m
        listed = set(os.fsencode(x) for x in os.listdir(self.p("by-type")))
        if listed != types:
            self.fail("view", "ls by-type: %r, the logs hold types %r" % (
                sorted(listed), sorted(types)))
        prefixes = set()
        for t in TYPE_NAMES:
            tb = t.encode()
            for i in range(1, len(tb) + 1):
                prefixes.add(tb[:i])
        prefixes.update([b"q", b"a.q", b"b.x.", b"c.y.z"])
        # the filter of the logs, for every prefix at once
        sels = {pb: collections.defaultdict(list) for pb in prefixes}
        match = {}
        for name in sorted(live):
            for e in live[name][1]:
                t = ev_meta(e)[2]
                ps = match.get(t)
                if ps is None:
                    ps = match[t] = [pb for pb in prefixes if t.startswith(pb)]
                for pb in ps:
                    sels[pb][name].append(e)
        for pb in sorted(prefixes):
            p = os.fsdecode(pb)
            want = sels[pb]
            path = self.p("by-type", p, "events")
            if not want:
                try:
                    os.stat(path)
                except FileNotFoundError:
                    continue
                self.fail("view", "by-type/%s/events exists, but no event's type starts with "
                          "it" % p)
            try:
                size = os.stat(path).st_size
                data = read_all(path)
            except OSError as e:
                self.fail("view", "by-type/%s/events: %s" % (p, e))
            if size != len(data):
                self.fail("size", "by-type/%s/events: st_size %d, read %d bytes"
                          % (p, size, len(data)))
            ids = []
            for ln in data.splitlines(keepends=True):
                try:
                    ids.append(line_id(ln))
                except Failure as f:
                    self.fail(f.kind, "by-type/%s/events: %s" % (p, f.msg))
            allw = sorted(e for sel in want.values() for e in sel)
            if sorted(ids) != allw:
                extra = sorted(set(ids) - set(allw))[:3]
                lack = sorted(set(allw) - set(ids))[:3]
                dup = [e for e, n in collections.Counter(ids).items() if n > 1][:3]
                self.fail("view", "by-type/%s/events is not the filter of the logs: %d events, "
                          "want %d; extra %r, missing %r, twice %r" % (
                              p, len(ids), len(allw), extra, lack, dup))
            # the view's order keeps each task's order and real time
            per = collections.defaultdict(list)
            for e in ids:
                per[where_task(e)].append(e)
            for name, sel in want.items():
                if per[name] != sel:
                    self.fail("view", "by-type/%s/events has task %s's events in another "
                              "order than its log" % (p, name))
            self.check_order("by-type/%s/events" % p, ids)
            prev = m.prev_views.get(p)
            if prev is not None:
                now_set = set(ids)
                prev_set = set(prev)
                a = [e for e in prev if e in now_set]
                b = [e for e in ids if e in prev_set]
                if a != b:
                    self.fail("view", "by-type/%s/events: the commit order of events changed "
                              "since the last quiet point" % p)
            m.prev_views[p] = ids
            # per-task views and their listing
            tl = set(os.listdir(self.p("by-type", p, "tasks")))
            if tl != set(want):
                self.fail("view", "ls by-type/%s/tasks: %r, want %r" % (p, sorted(tl),
                                                                      sorted(want)))
            for name, sel in want.items():
                got = read_all(self.p("by-type", p, "tasks", name))
                exp = b"".join(lines_of[e] for e in sel)
                if got != exp:
                    self.fail("view", "by-type/%s/tasks/%s differs from the filter of its log "
                              "(%d bytes, want %d)" % (p, name, len(got), len(exp)))


def where_task(eid):
    return eid.split("/", 1)[0]


def expirable(acts, D, lo, hi, born=None):
    """Could a task with activity @acts [(w0, w1)] (its acknowledged appends
    and its mkdir) be deleted by an expire-idle of @D seconds at some moment t
    of [lo, hi]?  README "Compaction is bounded": it deletes a task "checking
    each is still idle (pending appends included) as its delete is
    journaled": at t, no append in (t - D, t], and an append that begins
    after t gets ENOENT, so none of @acts began after t.  A task's creation
    counts as its first append (created_ns = last_ns): made at @born or
    later, it is idle at t only if t >= born + D."""
    cands = {lo, hi}
    for a0, a1 in acts:
        for t in (a0, a1, a0 + D):
            if lo <= t <= hi:
                cands.add(t)
    if born is not None and lo <= born + D <= hi:
        cands.add(born + D)
    for t in cands:
        if born is not None and t < born + D:
            continue
        if any(a0 > t for a0, _ in acts):
            continue
        if all(not (a0 > t - D and a1 <= t) for a0, a1 in acts):
            return True
    return False


def tail_text(s, n=3000):
    return s[-n:]


def daemon_err(mount):
    """The daemon's stderr so far (it may quote bytes that are not UTF-8)."""
    try:
        mount.err.flush()
        with open(mount.err.name, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except (OSError, AttributeError):
        return ""


# ---- the driver: mounts, phases, kills, checks ------------------------------

BAD_STDERR = re.compile(r": (error|crit|alert|emerg): |AddressSanitizer|LeakSanitizer|"
                        r"UndefinedBehaviorSanitizer|ThreadSanitizer|runtime error:|"
                        r"Assertion|Segmentation|double free|corrupted")


class Run:
    """One store, one mount, the model; the same object drives a live run and a replay."""

    def __init__(self, args, root, seed, opts, kinds):
        self.args, self.root, self.seed, self.kinds = args, root, seed, kinds
        self.stopfile = os.path.join(root, "STOP")
        self.mount = mount_test.Mount(root, opts=opts, mount_timeout=120)
        self.mnt = self.mount.mnt
        self.phase = 0
        self.model = Model()
        self.oplog = []                 # [t0, key, op]: what a replay runs
        self.priv = {}                  # private tasks at the last check
        self.stored = 0                 # events in the store at the last check
        self.mounted = False
        self.dead_mount = False
        self.nops = 0

    def dop(self, what, **kw):
        op = {"op": "D", "what": what}
        op.update(kw)
        self.oplog.append([now(), "D", op])
        return op

    def start(self):
        if self.dead_mount:
            # the killed daemon's mount stayed until now, so that every call
            # in flight or after the kill got ENOTCONN rather than the empty
            # directory under it
            subprocess.run(["fusermount3", "-u", "-z", self.mnt], check=False,
                           capture_output=True)
            mount_test.deadline_poll(lambda: not mount_test.is_mounted(self.mnt),
                                     "the lazy unmount", 60)
            self.dead_mount = False
        self.mount.start()
        self.mounted = True

    def judge_stderr(self, killed):
        text = daemon_err(self.mount)
        for ln in text.splitlines():
            if BAD_STDERR.search(ln):
                raise Failure("daemon_stderr", "the daemon said: %s\n%s" % (ln, tail_text(text)))

    def kill9(self):
        self.dop("kill")
        self.mount.proc.kill()
        self.mount.proc.wait()
        self.mount.proc = None
        self.mounted = False
        self.dead_mount = True
        self.judge_stderr(True)
        self.priv = {k: v for k, v in self.priv.items() if v != "tomb"}

    def stop(self):
        """Clean unmount: exit status 0, then evlogctl fsck must find nothing."""
        m = self.mount
        for _ in range(20):
            r = subprocess.run(["fusermount3", "-u", m.mnt], check=False, capture_output=True,
                               text=True)
            if r.returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise Failure("unmount", "fusermount3 -u: %s" % r.stderr.strip())
        try:
            rc = m.proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait()
            rc = "hung"
        m.proc = None
        self.mounted = False
        if rc != 0:
            raise Failure("unmount", "the daemon exited %s after a clean unmount: %s"
                          % (rc, tail_text(daemon_err(m))))
        self.judge_stderr(False)
        mount_test.wait_store_released(m.data)
        r = subprocess.run([self.args.evlogctl, "fsck", m.data], capture_output=True, text=True)
        if r.returncode != 0:
            raise Failure("fsck", "evlogctl fsck exit %d: %s%s" % (r.returncode, r.stdout[-3000:],
                                                                   r.stderr[-3000:]))
        self.priv = {k: v for k, v in self.priv.items() if v != "tomb"}

    def trim(self):
        """Keep the store small on long runs: a retention the model knows about."""
        cmd = "compact keep-last=300"
        op = self.dop("trim", cmd=cmd)
        self.do_trim(op)

    def do_trim(self, op):
        t0, w0 = now(), time.time()
        while True:
            try:
                fd = os.open(os.path.join(self.mnt, ".control"), os.O_WRONLY)
                try:
                    os.write(fd, op["cmd"].encode())
                finally:
                    os.close(fd)
                break
            except OSError as e:
                if e.errno != errno.EBUSY or now() > t0 + 600:
                    raise Failure("control", "%s: %s" % (op["cmd"], ename(-e.errno)))
                time.sleep(0.1)
        self.model.ingest({"op": "control", "comp": {"keep": 300}, "res": 0, "t0": t0,
                           "w0": w0, "t1": now(), "w1": time.time()})

    def quiet_check(self):
        self.dop("check")
        if os.environ.get("SIMTEST_PROFILE"):
            import cProfile
            import pstats
            pr = cProfile.Profile()
            pr.enable()
            self.priv, self.stored = Checker(self, self.model).check()
            pr.disable()
            pstats.Stats(pr).sort_stats("cumulative").print_stats(15)
            return
        self.priv, self.stored = Checker(self, self.model).check()

    def ingest(self, records):
        for rec in records:
            self.model.ingest(rec)

    # -- a live phase --
    def live_phase(self, rng, budget):
        a = self.args
        self.phase += 1
        P = self.phase
        retention = "none"
        if "retention" in self.kinds:
            retention = rng.choices(["none", "keep", "age"], [5, 2, 2])[0]
        mode = {"exact": retention == "none", "retention": retention}
        ends = ["clean"] * 4 + [k for k in PHASE_KINDS if k in self.kinds]
        end = rng.choice(ends)
        dur = min(rng.uniform(2, a.phase_time), budget)
        self.dop("phase", ph=P, mode=mode)
        deadline = now() + dur
        if os.path.exists(self.stopfile):
            os.unlink(self.stopfile)
        workers = []
        for w in range(a.workers):
            r1, w1 = os.pipe()
            r2, w2 = os.pipe()
            logpath = os.path.join(self.root, "log-%d-%d.json" % (P, w))
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    os.close(w1)
                    os.close(r2)
                    import faulthandler
                    faulthandler.register(signal.SIGUSR1, all_threads=True)
                    worker_main(self, P, w, mode, deadline, self.priv, r1, w2, logpath)
                except BaseException:
                    traceback.print_exc()
                    code = 3
                finally:
                    os._exit(code)
            os.close(r1)
            os.close(w2)
            workers.append((pid, w1, r2, logpath))
        killed = False
        t_start = now()
        if end == "kill_mid":
            at = t_start + rng.uniform(0.1, dur)
            while now() < at and not os.path.exists(self.stopfile):
                time.sleep(0.02)
            self.kill9()
            killed = True
        # every worker done with its operations (or stuck: a hang is a failure)
        hang = None
        for pid, w1, r2, _ in workers:
            if not wait_readable(r2, max(0, deadline - now()) + 600):
                hang = pid
                break
            os.read(r2, 1)
        if hang:
            self.report_hang(workers)
        if end == "kill_quiet" and not killed:
            self.kill9()
            killed = True
            go = b"K"
        else:
            go = b"G"
        for pid, w1, r2, _ in workers:
            try:
                os.write(w1, go)
            except OSError:
                pass
        failures = []
        for pid, w1, r2, logpath in workers:
            _, status = os.waitpid(pid, 0)
            os.close(w1)
            os.close(r2)
            if status != 0:
                failures.append(["harness", "worker %d exited with status %d" % (pid, status)])
                continue
            with open(logpath) as f:
                out = json.load(f)
            os.unlink(logpath)
            self.oplog += out["ops"]
            self.ingest(out["records"])
            failures += out["failures"]
            self.nops += len(out["ops"])
        if not killed and self.mount.proc.poll() is not None:
            raise Failure("daemon_died", "the daemon exited with %s during phase %d: %s" % (
                self.mount.proc.returncode, P, tail_text(daemon_err(self.mount))))
        if failures:
            real = [f for f in failures if f[0] != "harness"] or failures
            raise Failure(real[0][0], real[0][1])
        if killed:
            self.dop("remount")
            self.start()
        elif end == "remount":
            self.dop("stop")
            self.stop()
            self.dop("remount")
            self.start()
        t_mid = now()
        if self.stored > a.max_events:
            self.trim()
        self.quiet_check()
        if a.verbose:
            print("  phase %d: operations %.1f s, workers' end %.1f s, check %.1f s" % (
                P, dur, t_mid - deadline, now() - t_mid), flush=True)
        return mode, end, dur

    def report_hang(self, workers):
        info = []
        if self.mount.proc:
            dpid = self.mount.proc.pid
            for tid in sorted(os.listdir("/proc/%d/task" % dpid)):
                try:
                    with open("/proc/%d/task/%s/wchan" % (dpid, tid)) as f:
                        wchan = f.read()
                    with open("/proc/%d/task/%s/comm" % (dpid, tid)) as f:
                        comm = f.read().strip()
                    info.append("daemon thread %s (%s): %s" % (tid, comm, wchan))
                except OSError:
                    pass
        for pid, _, _, _ in workers:
            try:
                os.kill(pid, signal.SIGUSR1)        # faulthandler: stacks to our stderr
            except OSError:
                pass
        time.sleep(1)
        raise Failure("hang", "a worker made no progress for 600 s after its phase ended\n"
                      + "\n".join(info))


def wait_readable(fd, timeout):
    import select
    r, _, _ = select.select([fd], [], [], timeout)
    return bool(r)


# ---- replay and shrinking ---------------------------------------------------

def replay(args, saved, ops, verbose=False):
    """Run @ops one at a time on a fresh store.  (Failure, index) or (None, None)."""
    root = tempfile.mkdtemp(prefix="evl-replay-")
    run = Run(args, root, saved["seed"], saved["opts"], set(saved["kinds"]))
    ctxs = {}
    mode = {"exact": True, "retention": "none"}
    seen = {}
    idx = None
    try:
        run.start()
        for idx, (t0, key, op) in enumerate(ops):
            if key == "D":
                what = op["what"]
                if what == "phase":
                    run.phase = op["ph"]
                    mode = op["mode"]
                    for c in ctxs.values():
                        if not c.dead:
                            close_all(c)    # what a shrunk log no longer closes
                        run.ingest(c.log[seen.get(c.key, 0):])
                    ctxs = {}
                    seen = {}
                elif what == "kill":
                    if run.mounted:
                        run.kill9()
                elif what == "remount":
                    if not run.mounted:
                        run.start()
                elif what == "stop":
                    if run.mounted:
                        run.stop()
                elif what == "trim":
                    if run.mounted:
                        run.do_trim(op)
                elif what == "check":
                    for c in ctxs.values():
                        run.ingest(c.log[seen.get(c.key, 0):])
                        seen[c.key] = len(c.log)
                    if not run.mounted:
                        run.start()
                    run.priv, run.stored = Checker(run, run.model).check()
                continue
            ctx = ctxs.get(key)
            if ctx is None:
                w, t = map(int, key.split("."))
                ctx = ctxs[key] = Ctx(run, run.phase, w, t, run.seed, mode, run.kinds,
                                      run.priv.get("p%d_%d" % (w, t)))
            if ctx.dead:
                continue
            if verbose:
                print("%6d %s %s" % (idx, key, short_op(op)), flush=True)
            ctx.run_op(op)
        idx = len(ops)
        for c in ctxs.values():
            if not c.dead:
                close_all(c)
            run.ingest(c.log[seen.get(c.key, 0):])
        if not run.mounted:
            run.start()
        Checker(run, run.model).check()
        run.stop()
        return None, None
    except Failure as f:
        return f, idx
    except Exception:
        return Failure("harness", traceback.format_exc()), idx
    finally:
        cleanup(run, root)


def short_op(op):
    d = {k: v for k, v in op.items() if k not in ("segs", "writes", "lines", "pre", "post")}
    for k in ("segs", "pre", "post"):
        if op.get(k):
            d[k] = "%d bytes" % len(data_of(op[k]))
    return json.dumps(d)[:200]


def cleanup(run, root):
    m = run.mount
    if m.proc is not None:
        try:
            m.proc.kill()
            m.proc.wait()
        except OSError:
            pass
        m.proc = None
    with open("/proc/mounts") as f:
        mps = [line.split()[1] for line in f]
    for mp in mps:
        if mp.startswith(root):
            subprocess.run(["fusermount3", "-u", "-z", mp], check=False, capture_output=True)
    if not run.args.keep:
        shutil.rmtree(root, ignore_errors=True)


def shrink(args, saved, sig, budget):
    """Delta debugging over the recorded operations, keeping failures whose
    signature is @sig."""
    end = now() + budget
    ops = saved["ops"]
    tries = 0

    def fails(cand):
        nonlocal tries
        tries += 1
        f, idx = replay(args, saved, cand)
        if f is not None and f.sig() == sig:
            return idx
        return None

    idx = None
    for _ in range(3):
        idx = fails(ops)
        if idx is not None:
            break
    if idx is None:
        return None, tries
    ops = ops[:idx + 1]
    n = 2
    while len(ops) > 1 and now() < end:
        keep = [i for i, o in enumerate(ops) if o[1] == "D" and o[2]["what"] == "phase"]
        body = [i for i in range(len(ops) - 1) if i not in keep]
        if not body:
            break
        n = min(n, len(body))
        size = (len(body) + n - 1) // n
        done = False
        for k in range(n):
            drop = set(body[k * size:(k + 1) * size])
            cand = [o for i, o in enumerate(ops) if i not in drop]
            if now() > end:
                break
            got = fails(cand)
            if got is not None:
                ops = cand[:got + 1]
                n = max(n - 1, 2)
                done = True
                break
        if not done:
            if n >= len(body):
                break
            n = min(2 * n, len(body))
    return ops, tries


def save(path, saved, ops, failure):
    d = dict(saved)
    d["ops"] = ops
    d["failure"] = [failure.kind, failure.msg]
    with open(path, "w") as f:
        json.dump(d, f)


# ---- main -------------------------------------------------------------------

def parse_kinds(a):
    kinds = set(ALL_KINDS)
    if a.only:
        kinds = set(a.only.split(","))
    if a.no:
        kinds -= set(a.no.split(","))
    unknown = kinds - set(ALL_KINDS)
    if unknown:
        sys.exit("unknown kinds %s; known: %s" % (sorted(unknown), ", ".join(ALL_KINDS)))
    return kinds


def setup_cfg(seed, saved=None, kinds=ALL_KINDS):
    CFG.escapes = "escapes" in (saved["kinds"] if saved else kinds)
    if saved:
        CFG.seed = saved["seed"]
        CFG.max_event = saved["max_event"]
        CFG.commit = saved["commit"]
        return saved["opts"]
    r = random.Random("mount:%d" % seed)
    CFG.seed = seed
    CFG.max_event = r.choice([1 << 20, 1 << 20, 1 << 20, 65536, 4096 + 123])
    CFG.commit = r.choice(["group", "group", "group", "sync"])
    opts = ["commit=" + CFG.commit, "commit_ms=%d" % r.choice([1, 10, 10, 50])]
    if CFG.max_event != 1 << 20:
        opts.append("max_event=%d" % CFG.max_event)
    return ",".join(opts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("evlogfs")
    ap.add_argument("evlogctl")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--time", type=float, default=120, help="seconds of phases (default 120)")
    ap.add_argument("--replay", help="replay a saved operation log")
    ap.add_argument("--shrink-time", type=float, default=300,
                    help="seconds spent shrinking a failure (0: none)")
    ap.add_argument("--no", help="operation kinds to leave out (comma-separated)")
    ap.add_argument("--only", help="the only operation kinds to run")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--phase-time", type=float, default=10)
    ap.add_argument("--max-events", type=int, default=20000,
                    help="trim the store with keep-last when it holds more")
    ap.add_argument("--keep", action="store_true", help="keep temp dirs")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--out", default=".", help="where replay files go")
    a = ap.parse_args()
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        print("skip: no /dev/fuse or fusermount3")
        return 77
    mount_test.EVLOGFS = a.evlogfs
    if a.replay:
        with open(a.replay) as f:
            saved = json.load(f)
        setup_cfg(None, saved)
        a.threads, a.workers = saved["threads"], saved["workers"]
        print("replaying %d operations of seed %d (%s), one at a time" % (
            len(saved["ops"]), saved["seed"], saved["opts"]), flush=True)
        f, idx = replay(a, saved, saved["ops"], verbose=a.verbose)
        if f is None:
            print("replay passed")
            return 0
        print("replay FAILED at operation %s: %s" % (idx, f), flush=True)
        if a.shrink_time > 0:
            ops, tries = shrink(a, saved, f.sig(), a.shrink_time)
            if ops:
                path = a.replay.replace(".json", "") + ".min.json"
                save(path, saved, ops, f)
                print("shrunk to %d operations in %d replays: %s" % (len(ops), tries, path))
        return 1
    seed = a.seed if a.seed is not None else random.randrange(1 << 31)
    kinds = parse_kinds(a)
    opts = setup_cfg(seed, kinds=kinds)
    self_test()
    print("seed %d: -o %s, %d workers x %d threads, %.0f s%s" % (
        seed, opts, a.workers, a.threads, a.time,
        (", without " + ",".join(sorted(set(ALL_KINDS) - kinds))) if kinds != set(ALL_KINDS)
        else ""), flush=True)
    root = tempfile.mkdtemp(prefix="evl-rand-")
    run = Run(a, root, seed, opts, kinds)
    run.nops = 0
    saved = {"seed": seed, "opts": opts, "max_event": CFG.max_event, "commit": CFG.commit,
             "kinds": sorted(kinds), "workers": a.workers, "threads": a.threads}
    rng = random.Random("phases:%d" % seed)
    t_begin = now()
    failure = None
    try:
        run.start()
        while now() - t_begin < a.time:
            t0 = now()
            mode, end, dur = run.live_phase(rng, max(1, a.time - (now() - t_begin)))
            acked = sum(1 for e in run.model.events.values() if e.st == "a")
            print("phase %d (%s%s, %s, %.1f s of operations, %.1f s in all): ok; %d operations, "
                  "%d events acknowledged so far, %d stored" % (
                      run.phase, "exact" if mode["exact"] else "retention " + mode["retention"],
                      "", end, dur, now() - t0, run.nops, acked, run.stored), flush=True)
        run.dop("stop")
        run.stop()
    except Failure as f:
        failure = f
    except Exception:
        failure = Failure("harness", traceback.format_exc())
    finally:
        if failure:
            try:
                err = [ln for ln in daemon_err(run.mount).splitlines()
                       if ": info: " not in ln and "rejected event" not in ln]
                print("daemon stderr (warnings and worse, last 30):\n  " +
                      "\n  ".join(err[-30:]), flush=True)
            except (OSError, AttributeError):
                pass
        cleanup(run, root)
    if failure is None:
        print("seed %d: passed, %d phases, %d operations in %.0f s" % (
            seed, run.phase, run.nops, now() - t_begin))
        return 0
    run.oplog.sort(key=lambda x: x[0])
    saved["ops"] = run.oplog
    os.makedirs(a.out, exist_ok=True)
    path = os.path.abspath(os.path.join(a.out, "simtest-%d.json" % seed))
    save(path, saved, run.oplog, failure)
    print("FAILED (seed %d, phase %d): %s" % (seed, run.phase, failure), flush=True)
    print("operation log: %s (%d operations); replay: %s %s %s --replay %s" % (
        path, len(run.oplog), sys.argv[0], a.evlogfs, a.evlogctl, path), flush=True)
    if a.shrink_time > 0 and failure.kind not in ("harness",):
        print("shrinking (up to %.0f s)..." % a.shrink_time, flush=True)
        ops, tries = shrink(a, saved, failure.sig(), a.shrink_time)
        if ops is None:
            print("the one-at-a-time replay did not fail with %s in %d tries: the failure "
                  "needs the concurrency; the seed and the log above are the repro"
                  % (failure.kind, tries))
        else:
            mpath = path.replace(".json", ".min.json")
            save(mpath, saved, ops, failure)
            print("minimal replay: %d operations (%d replays): %s" % (len(ops), tries, mpath))
            for t0, key, op in ops:
                print("   %s %s" % (key, short_op(op)))
    return 1


if __name__ == "__main__":
    sys.exit(main())
