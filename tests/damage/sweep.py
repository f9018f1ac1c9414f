#!/usr/bin/env python3
"""Damage sweep: one random damage to a populated store, then every tool, then checks.

Usage:
  sweep.py EVLOGFS EVLOGCTL [--seed S] [--cases N | --time S] [--out DIR]
           [--step-timeout S] [--known PAT,...] [--keep-max N] [--verbose]
  sweep.py EVLOGFS EVLOGCTL --replay SEED:CASE [--out DIR] [--verbose]

A seed builds one populated store (SPEC section 4 item 10 is the contract
checked here): seven tasks of events of several types; retention done
(`compact task=t0 keep-last=`, `compact task=t1 max-age=`); one task deleted
and not yet purged (then made again: a second incarnation of the same id);
and an unapplied journal tail (commit=sync writes, then kill -9 at once).
An older snapshot of the same store is kept for "restore an older copy";
a share of the cases (--clean-share, 0.25) damages that snapshot instead,
a cleanly unmounted store with nothing for recovery to replay.
The pristine store is mounted once to record what it serves (the reference).

Each case copies the store (cp -a) and applies ONE damage, chosen by
Random("SEED:CASE") from the file list of the store, to one file or
directory of the data directory (task logs, sidecars, journal segments,
index data.mdb / lock.mdb, lock, reserve, directories):

  trunc0 / trunc_rand / trunc_few   truncate to 0, to a random size, by 1..16 bytes
  zero        zero a random range          flip      flip 1..8 random bits
  delete      remove the file (or tree)    dup       copy it over the same file of
  restore_old the file (or tree) from the           another task (or segment), or a
              older snapshot                        task tree to a new task id

Then, each with a timeout (a hang is a failure), it runs: fsck (before
anything touched the damaged store); a mount that reads every log, every
by-type view (each type, its dotted prefixes and first byte; the per-task
files), .control and .metrics, appends one event to every task and reads
its log again; unmount; fsck; fsck --repair; fsck; reindex; fsck; backup
to a fresh directory and fsck of it; a last mount that reads everything.

Failure classes (the worst one names the case):
  crash       a signal exit, a sanitizer report, of the daemon or a tool
  hang        a step did not finish within --step-timeout
  wrong-data  a served line no writer wrote (NUL runs, spliced, torn, unknown),
              a line in another task's log, a deleted task's line, a view
              line of another prefix, a view line its log does not serve
  silent-loss an event whole on disk (or acknowledged through the mount) is
              not served and no loss is named in status/metrics; or a view
              lacks an event its log serves
  unrepaired  after fsck --repair and reindex the store is not fsck-clean,
              the tools exit 2, or the last mount's views are not the
              filter of its logs in gseq order
  unreported  fsck exits 0 on the damaged store though what it then serves
              differs from the undamaged store

What "whole on disk" means: for a task whose files the damage did not
touch, every event the undamaged store served; for the damaged task, every
event that is still a whole line of its damaged log file; for journal
damage, the journal-only events may be lost if the loss is named, and a line
past the index that lost its sidecar record too may be kept in the task's
events.unapplied (nothing can prove it the store's).  "Named"
is a heuristic until the fixes land: a non-zero status member or metric
whose name says lost/loss/damage/corrupt/set-aside/quarantine.

A failing case prints the seed, case number, damage (and a shell line that
applies it), the failing step and evidence, and keeps the damaged store
(before any step ran) with everything the checks need in
OUT/damage-SEED-CASE/, at most --keep-max per (damage, file class, failure
class).  --replay SEED:CASE runs the steps again on a copy of that kept
store: exact, no shrinking needed.  Without a kept store it rebuilds the
seed's store and derives the damage again (the same choice, but the store
is rebuilt by a live mount, so byte offsets may differ).

--core DAMAGE_STEPS runs each case's steps through the core in one process
(tests/damage/steps.c; README "--core"): the volume runs.
EVL_DAMAGE_KEEP_WORK=1 keeps every case's work directory (debugging).

--known PAT,...: local triage only, never in CI: failures whose
"damage:fileclass:failclass" matches a glob pattern are counted as known
and do not fail the run.  Exit 0 if no (unknown) failure, 1 otherwise.
"""
import argparse
import base64
import errno
import fnmatch
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EVLOGFS = EVLOGCTL = None
CORE = None             # --core: damage_steps, the steps of a case in one process
STEP_TIMEOUT = 30.0
VERBOSE = False
LIVE = set()            # daemons started and not yet reaped (killed on the way out)

TYPES = ("a.x", "a.y", "a.y.z", "b", "b.q", "c.r.s", "d")
TASKS = ("t0", "t1", "t2", "t3", "t4", "t5", "t6")
KINDS = ("trunc0", "trunc_rand", "trunc_few", "zero", "flip", "delete", "dup", "restore_old")
FILE_KINDS = KINDS
DIR_KINDS = ("delete", "dup", "restore_old")
CLASSES = ("log", "sidecar", "journal", "index-data", "index-lock", "lock", "reserve", "dir")
SEVERITY = ("crash", "hang", "wrong-data", "silent-loss", "unrepaired", "unreported")
SAN_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                    r"ThreadSanitizer|Assertion .* failed|assertion failed")
# the index walk's child reports an LMDB assertion it caught as damage, not a crash
CAUGHT_RE = re.compile(r"[^\n]*LMDB's own check failed[^\n]*")


def sanitizer_or_abort(text):
    """A sanitizer report or an assertion that stopped a process (not one reported as damage)."""
    return SAN_RE.search(CAUGHT_RE.sub("", text))


NAMED_RE = re.compile(r"lost|loss|damage|corrupt|set_aside|set-aside|aside|quarantin|broken",
                      re.I)


def log(*a):
    if VERBOSE:
        print(*a, flush=True)


def is_mounted(path):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path for line in f)


def poll(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def sig_of(rc):
    """The signal that ended a process (subprocess rc < 0, or a shell's 128+n), or 0."""
    if rc is not None and rc < 0:
        return -rc
    return 0


# ---------------------------------------------------------------- events

def ev_line(seed, task, inc, i, g, typ, pad):
    d = {"type": typ, "task": task, "n": inc, "i": i, "g": g, "s": seed, "pad": "p" * pad}
    return json.dumps(d, separators=(",", ":")) + "\n"


class Known:
    """Every line the harness wrote: line -> (task, incarnation, g); deleted incarnations."""

    def __init__(self):
        self.lines = {}
        self.dead = set()           # (task, inc) deleted
        self.g = 0

    def add(self, line, task, inc):
        self.lines[line.encode()] = (task, inc, self.g)

    def to_json(self):
        return {"lines": [[k.decode(), v[0], v[1], v[2]] for k, v in self.lines.items()],
                "dead": sorted(list(x) for x in self.dead), "g": self.g}

    @classmethod
    def from_json(cls, d):
        k = cls()
        k.lines = {l.encode(): (t, n, g) for l, t, n, g in d["lines"]}
        k.dead = set(tuple(x) for x in d["dead"])
        k.g = d["g"]
        return k


# ---------------------------------------------------------------- the daemon

class Daemon:
    def __init__(self, data, mnt, errpath, opts=""):
        self.data, self.mnt, self.errpath, self.opts = data, mnt, errpath, opts
        self.proc = None

    def start(self):
        """Mount; returns None when mounted, else ("refused"|"crash"|"hang", detail)."""
        os.makedirs(self.mnt, exist_ok=True)
        args = [EVLOGFS, "-f", self.data, self.mnt]
        if self.opts:
            args[2:2] = ["-o", self.opts]
        self.err = open(self.errpath, "a+")
        self.proc = subprocess.Popen(args, stderr=self.err, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL)
        LIVE.add(self)
        poll(lambda: is_mounted(self.mnt) or self.proc.poll() is not None, STEP_TIMEOUT)
        if is_mounted(self.mnt):
            return None
        rc = self.proc.poll()
        if rc is None:
            self.kill()
            return ("hang", "mount did not come up in %ds" % STEP_TIMEOUT)
        self.proc = None
        LIVE.discard(self)
        if sig_of(rc) or sanitizer_or_abort(self.stderr()):
            return ("crash", "daemon died at mount: rc %d: %s" % (rc, tail(self.stderr())))
        return ("refused", "rc %d: %s" % (rc, tail(self.stderr())))

    def stderr(self):
        try:
            with open(self.errpath, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill(self):
        if self.proc is not None:
            try:
                self.proc.kill()
            except OSError:
                pass
            self.proc.wait()
            self.proc = None
        LIVE.discard(self)
        subprocess.run(["fusermount3", "-u", "-z", self.mnt], check=False,
                       stderr=subprocess.DEVNULL)
        poll(lambda: not is_mounted(self.mnt), STEP_TIMEOUT)

    def stop(self):
        """Unmount; returns the daemon's rc, or None for a hang (then it is killed)."""
        if self.proc is None:
            return 0
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], check=False,
                           stderr=subprocess.DEVNULL)
        try:
            rc = self.proc.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self.proc = None
        LIVE.discard(self)
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", self.mnt], check=False)
        return rc

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        LIVE.discard(self)
        subprocess.run(["fusermount3", "-u", "-z", self.mnt], check=False)
        poll(lambda: not is_mounted(self.mnt), STEP_TIMEOUT)


def tail(s, n=600):
    s = s.strip()
    return s if len(s) <= n else "..." + s[-n:]


def ctl(*args):
    """Run evlogctl; (rc, output) with rc None for a hang."""
    try:
        r = subprocess.run([EVLOGCTL] + list(args), capture_output=True, text=True,
                           errors="replace", timeout=STEP_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        return None, out
    return r.returncode, r.stdout + r.stderr


# ---------------------------------------------------------------- the reader (a child)

def reader_main(mnt):
    """Read everything under MNT; append the lines given on stdin; print JSON.

    Runs as a child so that a hung request costs only its timeout."""
    req = json.loads(sys.stdin.read() or "{}")
    out = {"logs": {}, "views": {}, "vtasks": {}, "appends": {}, "logs2": {}, "errors": []}

    def rd(path):
        try:
            with open(path, "rb") as f:
                return base64.b64encode(f.read()).decode()
        except OSError as e:
            return e.errno

    def ls(path):
        try:
            return sorted(os.listdir(path))
        except OSError as e:
            out["errors"].append([path, e.errno])
            return []
    for t in ls(os.path.join(mnt, "tasks")):
        out["logs"][t] = rd(os.path.join(mnt, "tasks", t, "events"))
    prefixes = set()
    out["types"] = ls(os.path.join(mnt, "by-type"))
    for typ in out["types"]:
        prefixes.add(typ)
        prefixes.add(typ[:1])
        parts = typ.split(".")
        for k in range(1, len(parts)):
            prefixes.add(".".join(parts[:k]))
    if not req.get("full", True):
        # a quick look: the full types and their first bytes, no per-task files
        prefixes = set(p for p in prefixes if p in out["types"] or len(p) == 1)
    for p in sorted(prefixes):
        out["views"][p] = rd(os.path.join(mnt, "by-type", p, "events"))
        vt = {}
        for t in ls(os.path.join(mnt, "by-type", p, "tasks")) if req.get("full", True) else ():
            vt[t] = rd(os.path.join(mnt, "by-type", p, "tasks", t))
        out["vtasks"][p] = vt
    out["status"] = rd(os.path.join(mnt, ".control"))
    out["metrics"] = rd(os.path.join(mnt, ".metrics"))
    for t, line in sorted(req.get("appends", {}).items()):
        try:
            fd = os.open(os.path.join(mnt, "tasks", t, "events"), os.O_WRONLY | os.O_APPEND)
            try:
                data = line.encode()
                done = 0
                while done < len(data):
                    done += os.write(fd, data[done:])
            finally:
                os.close(fd)
            out["appends"][t] = 0
        except OSError as e:
            out["appends"][t] = e.errno
        out["logs2"][t] = rd(os.path.join(mnt, "tasks", t, "events"))
    out["by_type_after"] = ls(os.path.join(mnt, "by-type"))
    print(json.dumps(out))
    return 0


def read_mount(mnt, appends=None, full=True):
    """(snapshot dict, None) or (None, (class, detail)).

    @full: also every dotted prefix and every per-task view file (each FUSE round
    trip is slow on a loaded machine, so the first mount takes a quicker look)."""
    try:
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--reader", mnt],
                           input=json.dumps({"appends": appends or {}, "full": full}),
                           capture_output=True,
                           text=True, timeout=STEP_TIMEOUT * 2)
    except subprocess.TimeoutExpired:
        return None, ("hang", "reading the mount took over %ds" % (STEP_TIMEOUT * 2))
    if r.returncode != 0:
        return None, ("reader", "reader rc %d: %s" % (r.returncode, tail(r.stderr)))
    snap = json.loads(r.stdout)

    def dec(v):
        return base64.b64decode(v) if isinstance(v, str) else v
    for key in ("logs", "views", "logs2"):
        snap[key] = {k: dec(v) for k, v in snap[key].items()}
    snap["vtasks"] = {p: {t: dec(v) for t, v in d.items()} for p, d in snap["vtasks"].items()}
    snap["status"] = dec(snap["status"])
    snap["metrics"] = dec(snap["metrics"])
    return snap, None


# ---------------------------------------------------------------- building a seed's store

def build_base(seed, root):
    """Populate ROOT/base (and ROOT/old, an earlier snapshot); return the context dict."""
    rng = random.Random(seed)
    known = Known()
    data = os.path.join(root, "base")
    mnt = os.path.join(root, "mnt")
    d = Daemon(data, mnt, os.path.join(root, "base.err"))
    counters = {t: 0 for t in TASKS}
    inc = {t: 0 for t in TASKS}

    def write(t, n):
        path = os.path.join(mnt, "tasks", t, "events")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            for _ in range(n):
                known.g += 1
                pad = rng.choice((0, 0, 5, 40, 200, 1500))
                line = ev_line(seed, t, inc[t], counters[t], known.g, rng.choice(TYPES), pad)
                counters[t] += 1
                known.add(line, t, inc[t])
                b = line.encode()
                done = 0
                while done < len(b):
                    done += os.write(fd, b[done:])
        finally:
            os.close(fd)

    def control(cmd):
        with open(os.path.join(mnt, ".control"), "w") as f:
            f.write(cmd)

    def wait_idle():
        def idle():
            with open(os.path.join(mnt, ".control")) as f:
                return json.loads(f.read())["compaction"]["state"] == "idle"
        if not poll(idle, 60):
            raise RuntimeError("base: compaction did not finish")

    e = d.start()
    if e:
        raise RuntimeError("base mount: %r" % (e,))
    try:
        for t in TASKS[:6]:
            os.mkdir(os.path.join(mnt, "tasks", t))
        write("t1", rng.randint(5, 15))     # old enough for max-age=1s below
        time.sleep(1.2)
        for t in TASKS[:6]:
            write(t, rng.randint(10, 40))
        control("compact task=t0 keep-last=%d\n" % rng.randint(3, 8))
        wait_idle()
        control("compact task=t1 max-age=1s\n")
        wait_idle()
        write("t2", rng.randint(1, 5))
        # a deletion left for the next compaction to purge
        shutil.rmtree(os.path.join(mnt, "tasks", "t5"))
        known.dead.add(("t5", 0))
    finally:
        rc = d.stop()
    if rc != 0:
        raise RuntimeError("base: daemon exit %s: %s" % (rc, tail(d.stderr())))
    subprocess.run(["cp", "-a", data, os.path.join(root, "old")], check=True)
    # the unapplied tail: commit=sync writes, then kill -9 at once
    d.opts = "commit=sync"
    e = d.start()
    if e:
        raise RuntimeError("base mount 2: %r" % (e,))
    try:
        inc["t5"] = 1
        counters["t5"] = 0
        for t in ("t5", "t6"):
            os.mkdir(os.path.join(mnt, "tasks", t))
        for t in ("t2", "t3", "t5", "t6", "t4"):
            write(t, rng.randint(3, 12))
    finally:
        d.kill9()
    ctx = {"seed": seed, "known": known.to_json()}
    # the references: what each undamaged store serves (the one with the
    # journal tail, and the cleanly closed older one)
    for key, store in (("", data), ("_clean", os.path.join(root, "old"))):
        ref, raw = reference(store, root, mnt, known)
        ctx["ref" + key], ctx["raw" + key] = ref, raw
    return ctx


def reference(store, root, mnt, known):
    """({task: log served}, {task: log on disk}) of the undamaged STORE."""
    raw = {}
    for t in os.listdir(os.path.join(store, "tasks")):
        try:
            with open(os.path.join(store, "tasks", t, "events"), "rb") as f:
                raw[t] = f.read().decode(errors="replace")
        except OSError:
            pass
    ref = os.path.join(root, "ref")
    subprocess.run(["cp", "-a", store, ref], check=True)
    d = Daemon(ref, mnt, os.path.join(root, "ref.err"))
    e = d.start()
    if e:
        raise RuntimeError("reference mount: %r" % (e,))
    try:
        snap, err = read_mount(mnt)
    finally:
        rc = d.stop()
    if err or rc != 0:
        raise RuntimeError("reference: %r rc %s %s" % (err, rc, tail(d.stderr())))
    fails = check_snapshot(snap, known, "reference", None)
    if fails:
        raise RuntimeError("the undamaged store fails the checks: %r" % fails[:5])
    shutil.rmtree(ref, ignore_errors=True)
    return {t: v.decode(errors="replace") for t, v in snap["logs"].items()}, raw


# ---------------------------------------------------------------- damage

def classify(rel, isdir):
    if isdir:
        return "dir"
    parts = rel.split("/")
    if parts[0] == "tasks" and len(parts) == 3:
        return "log" if parts[2] == "events" else "sidecar"
    if parts[0] == "journal":
        return "journal"
    if parts[0] == "index":
        return {"data.mdb": "index-data", "lock.mdb": "index-lock"}.get(parts[-1], "index-other")
    if rel == "lock":
        return "lock"
    if rel == "reserve":
        return "reserve"
    return "other"


def inventory(data):
    out = []
    for dirpath, dirs, files in os.walk(data):
        dirs.sort()
        for name in sorted(dirs):
            rel = os.path.relpath(os.path.join(dirpath, name), data)
            out.append((rel, True))
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(dirpath, name), data)
            out.append((rel, False))
    return out


def choose_damage(seed, case, base, old, clean_share):
    """The damage of case CASE: a dict.

    A share @clean_share of the cases damages the cleanly closed older store
    OLD instead of BASE (with its journal tail), so that recovery does not
    hide what a damaged log does to the next append (no restore_old there)."""
    clean = random.Random("%d:%d:store" % (seed, case)).random() < clean_share
    if clean:
        base = old
    rng = random.Random("%d:%d" % (seed, case))
    inv = inventory(base)
    by = {}
    for rel, isdir in inv:
        by.setdefault(classify(rel, isdir), []).append(rel)
    cls = rng.choice(sorted(by))
    rel = rng.choice(by[cls])
    path = os.path.join(base, rel)
    kinds = DIR_KINDS if cls == "dir" else FILE_KINDS
    if clean:
        kinds = tuple(k for k in kinds if k != "restore_old")
    kind = rng.choice(kinds)
    dmg = {"kind": kind, "class": cls, "path": rel}
    if clean:
        dmg["store"] = "clean"
    size = 0 if cls == "dir" else os.path.getsize(path)
    if kind == "trunc_rand":
        dmg["size"] = rng.randrange(size) if size else 0
    elif kind == "trunc_few":
        dmg["size"] = max(0, size - rng.randint(1, 16))
    elif kind == "zero":
        off = rng.randrange(size) if size else 0
        dmg["off"], dmg["len"] = off, min(size - off, rng.choice((1, 8, 24, 100, 4096)))
    elif kind == "flip":
        n = rng.randint(1, 8)
        dmg["bits"] = sorted(rng.randrange(size * 8) for _ in range(n)) if size else []
    elif kind == "dup":
        if cls == "dir":
            # a task tree copied to a new id; any other tree: to a sibling name
            dmg["to"] = rel + "-copy"
        else:
            parts = rel.split("/")
            if parts[0] == "tasks" and len(parts) == 3:
                others = [t for t in sorted(os.listdir(os.path.join(base, "tasks")))
                          if t != parts[1]]
                dmg["to"] = "tasks/%s/%s" % (rng.choice(others), parts[2]) if others else rel
            else:
                sibs = [r for r in by[cls] if r != rel]
                dmg["to"] = rng.choice(sibs) if sibs else rel + ".copy"
    return dmg


def damage_shell(dmg, data="DATA"):
    """A shell line that applies @dmg to DATA (OLD: the older snapshot)."""
    p = shlex.quote(os.path.join(data, dmg["path"]))
    k = dmg["kind"]
    if k == "trunc0":
        return "truncate -s 0 %s" % p
    if k in ("trunc_rand", "trunc_few"):
        return "truncate -s %d %s" % (dmg["size"], p)
    if k == "zero":
        return "dd if=/dev/zero of=%s bs=1 seek=%d count=%d conv=notrunc" % (
            p, dmg["off"], dmg["len"])
    if k == "flip":
        return ("python3 -c 'import sys;f=open(sys.argv[1],\"r+b\");d=bytearray(f.read());"
                "[d.__setitem__(b//8,d[b//8]^(1<<(b%%8))) for b in %r];f.seek(0);f.write(d)' %s"
                % (dmg["bits"], p))
    if k == "delete":
        return "rm -rf %s" % p
    if k == "dup":
        return "rm -rf %s && cp -a %s %s" % (shlex.quote(os.path.join(data, dmg["to"])), p,
                                            shlex.quote(os.path.join(data, dmg["to"])))
    if k == "restore_old":
        return "rm -rf %s && cp -a OLD/%s %s  # OLD: an older copy of the store" % (
            p, shlex.quote(dmg["path"]), p)
    return "?"


def apply_damage(dmg, data, old):
    p = os.path.join(data, dmg["path"])
    k = dmg["kind"]
    if k == "trunc0":
        os.truncate(p, 0)
    elif k in ("trunc_rand", "trunc_few"):
        os.truncate(p, dmg["size"])
    elif k == "zero":
        with open(p, "r+b") as f:
            f.seek(dmg["off"])
            f.write(b"\0" * dmg["len"])
    elif k == "flip":
        with open(p, "r+b") as f:
            b = bytearray(f.read())
            for bit in dmg["bits"]:
                b[bit // 8] ^= 1 << (bit % 8)
            f.seek(0)
            f.write(b)
    elif k == "delete":
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)
    elif k == "dup":
        to = os.path.join(data, dmg["to"])
        if to != p:
            if os.path.isdir(to):
                shutil.rmtree(to)
            elif os.path.lexists(to):
                os.unlink(to)
            os.makedirs(os.path.dirname(to), exist_ok=True)
            subprocess.run(["cp", "-a", p, to], check=True)
    elif k == "restore_old":
        src = os.path.join(old, dmg["path"])
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.unlink(p)
        if os.path.lexists(src):
            subprocess.run(["cp", "-a", src, p], check=True)


def damaged_tasks(dmg):
    """Tasks whose files the damage touched ("*": all of them)."""
    out = set()
    for rel in (dmg["path"], dmg.get("to")):
        if not rel:
            continue
        parts = rel.split("/")
        if parts[0] == "tasks":
            if len(parts) == 1:
                return {"*"}
            out.add(parts[1].rsplit("-copy", 1)[0] if dmg["kind"] == "dup" and rel == dmg.get("to")
                    else parts[1])
    return out


# ---------------------------------------------------------------- checks

class Failure:
    def __init__(self, cls, step, what):
        self.cls, self.step, self.what = cls, step, what

    def __repr__(self):
        return "%s at %s: %s" % (self.cls, self.step, self.what.replace("\n", " | "))


def lines_of(data):
    """(whole lines with their newline, torn tail or b"")."""
    parts = data.split(b"\n")
    return [p + b"\n" for p in parts[:-1]], parts[-1]


def check_lines(data, where, known, task=None, prefix=None, alias=None):
    """Wrong-data checks of one served file; returns a list of problem strings.

    @alias: {task: another task whose events it may hold} (a task tree copied to a new id)."""
    bad = []
    ls, torn = lines_of(data)
    if torn:
        bad.append("%s: torn last line %r" % (where, torn[:80]))
    for n, line in enumerate(ls):
        if b"\0" in line:
            bad.append("%s line %d: NUL bytes %r" % (where, n + 1, line[:80]))
            continue
        k = known.lines.get(line)
        if k is None:
            bad.append("%s line %d: no writer wrote it %r" % (where, n + 1, line[:100]))
            continue
        if task is not None and k[0] != task and (alias or {}).get(task) != k[0]:
            bad.append("%s line %d: an event of task %s" % (where, n + 1, k[0]))
        if (k[0], k[1]) in known.dead:
            bad.append("%s line %d: an event of deleted %s (incarnation %d)" % (
                where, n + 1, k[0], k[1]))
        if prefix is not None:
            typ = json.loads(line)["type"]
            if not typ.startswith(prefix):
                bad.append("%s line %d: type %s in view %s" % (where, n + 1, typ, prefix))
    return bad


def named_loss(snap):
    """Does status or metrics name a loss (a heuristic until the fixes land)?"""
    def walk(o, key=""):
        if isinstance(o, dict):
            return any(walk(v, k) for k, v in o.items())
        if isinstance(o, list):
            return any(walk(v, key) for v in o) or (bool(o) and bool(NAMED_RE.search(key)))
        if NAMED_RE.search(key):
            return o not in (None, 0, False, "", "null")
        return False
    try:
        if walk(json.loads(snap["status"])):
            return True
    except (ValueError, TypeError):
        pass
    if isinstance(snap["metrics"], bytes):
        for line in snap["metrics"].decode(errors="replace").splitlines():
            if line.startswith("#"):
                continue
            m = re.match(r"(\S+)\s+(\S+)", line)
            if m and NAMED_RE.search(m.group(1)):
                try:
                    if float(m.group(2)) > 0:
                        return True
                except ValueError:
                    pass
    return False


def check_snapshot(snap, known, step, whole, acked=None, final=False, alias=None):
    """All checks of one mount's snapshot; @whole: {task: set(lines)} that must be served."""
    fails = []
    alias = alias or {}
    logs = snap["logs"]
    for t, v in logs.items():
        if isinstance(v, bytes):
            for b in check_lines(v, "tasks/%s/events" % t, known, task=t, alias=alias):
                fails.append(Failure("wrong-data", step, b))
    for t, v in snap["logs2"].items():
        if isinstance(v, bytes):
            for b in check_lines(v, "tasks/%s/events after an append" % t, known, task=t,
                                 alias=alias):
                fails.append(Failure("wrong-data", step, b))
            if snap["appends"].get(t) == 0 and isinstance(logs.get(t), bytes):
                line = acked[t].encode() if acked else None
                if line and not v.endswith(line):
                    fails.append(Failure("silent-loss", step, "tasks/%s: an acknowledged append "
                                         "is not at the end of the log" % t))
    named = named_loss(snap)
    logsets = {t: set(lines_of(v)[0]) for t, v in logs.items() if isinstance(v, bytes)}
    for p, v in snap["views"].items():
        if not isinstance(v, bytes):
            # a listed view that cannot be read hides its events: a loss, unless named
            if not named:
                fails.append(Failure("silent-loss", step, "by-type/%s/events: listed, read "
                                     "errno %s" % (p, errno.errorcode.get(v, v))))
            continue
        fails += [Failure("wrong-data", step, b)
                  for b in check_lines(v, "by-type/%s/events" % p, known, prefix=p)]
        vl, _ = lines_of(v)
        want = []
        for t, data in logs.items():
            if isinstance(data, bytes):
                for line in lines_of(data)[0]:
                    k = known.lines.get(line)
                    if k and json.loads(line)["type"].startswith(p):
                        # a copied tree's events: reindex gives them gseqs after all others
                        want.append((t in alias and k[0] == alias[t], k[2], line))
        have = set(vl)
        for line in vl:
            k = known.lines.get(line)
            if k and k[0] in logsets and line not in logsets[k[0]]:
                fails.append(Failure("wrong-data", step, "by-type/%s/events: %r is not in its "
                                     "task's log" % (p, line[:80])))
                break
        missing = [l for _, _, l in want if l not in have]
        if missing:
            fails.append(Failure("silent-loss", step, "by-type/%s/events lacks %d events its "
                                 "logs serve, e.g. %r" % (p, len(missing), missing[0][:80])))
        if final and not missing:
            want.sort()
            if vl != [l for _, _, l in want]:
                fails.append(Failure("unrepaired", step, "by-type/%s/events is not the filter "
                                     "of the logs in gseq order" % p))
        for t, pv in snap["vtasks"].get(p, {}).items():
            if not isinstance(pv, bytes):
                continue
            fails += [Failure("wrong-data", step, b) for b in check_lines(
                pv, "by-type/%s/tasks/%s" % (p, t), known, task=t, prefix=p, alias=alias)]
            if final and isinstance(logs.get(t), bytes):
                wantt = [l for l in lines_of(logs[t])[0] if l in known.lines and
                         json.loads(l)["type"].startswith(p)]
                if lines_of(pv)[0] != wantt:
                    fails.append(Failure("unrepaired", step, "by-type/%s/tasks/%s is not the "
                                         "filter of its log" % (p, t)))
    # every served type has its view
    types = set()
    for t, v in logs.items():
        if isinstance(v, bytes):
            for line in lines_of(v)[0]:
                if line in known.lines:
                    types.add(json.loads(line)["type"])
    for typ in sorted(types - set(snap["views"])):
        fails.append(Failure("silent-loss", step, "type %s is served by a log but not listed "
                             "in by-type" % typ))
    if whole is not None:
        for t, need in sorted(whole.items()):
            v = logs.get(t)
            if isinstance(v, bytes):
                have = set(lines_of(v)[0])
                miss = [l for l in need if l not in have]
                if miss:
                    fails.append(Failure("silent-loss", step, "tasks/%s serves %d of %d events "
                                         "whole on disk, e.g. lacks %r%s" % (
                                             t, len(need) - len(miss), len(need),
                                             sorted(miss)[0][:80],
                                             " (a loss is named)" if named else "")))
            elif need and (final or not named):
                fails.append(Failure("silent-loss", step, "tasks/%s: %d events whole on disk, "
                                     "%s%s" % (t, len(need), "not listed" if v is None else
                                               "read errno %s" % errno.errorcode.get(v, v),
                                               "" if not named else " (a loss is named)")))
    return fails


def whole_sets(ctx, dmg, data, known):
    """{task: lines that must be served} for the damaged store at DATA."""
    key = "_clean" if dmg.get("store") == "clean" else ""
    ref = {t: set(l.encode() for l in v.splitlines(keepends=True))
           for t, v in ctx["ref" + key].items()}
    raw = {t: set(l.encode() for l in v.splitlines(keepends=True))
           for t, v in ctx["raw" + key].items()}
    hit = damaged_tasks(dmg)
    out = {}
    for t, lines in ref.items():
        if dmg["class"] == "journal" or dmg["path"] == "journal":
            lines = lines & raw.get(t, set())       # the journal-only ones may go (named)
        if "*" in hit or t in hit:
            try:
                with open(os.path.join(data, "tasks", t, "events"), "rb") as f:
                    ondisk = set(lines_of(f.read())[0])
            except OSError:
                ondisk = set()
            lines = lines & ondisk
        out[t] = lines
    return out


def kept_aside(dmg, data, need):
    """@need less, for journal damage, the lines kept in tasks/<t>/events.unapplied: a
    line past the index whose sidecar record a crash took too (killed between the two
    writes) cannot be proven the store's once the journal is gone, and is kept aside,
    counted (lines_unapplied), as the README says."""
    if not (dmg["class"] == "journal" or dmg["path"] == "journal"):
        return need
    out = {}
    for t, lines in need.items():
        try:
            with open(os.path.join(data, "tasks", t, "events.unapplied"), "rb") as f:
                kept = set(lines_of(f.read())[0])
        except OSError:
            kept = set()
        out[t] = lines - kept
    return out


def appends_for(ctx, known):
    """The event the first mount appends to each task (recorded in @known)."""
    appends = {}
    for t in TASKS:
        known.g += 1
        line = ev_line(ctx["seed"], t, 1 if t == "t5" else 0, 10000, known.g, TYPES[known.g % 7],
                       3)
        appends[t] = line
        known.add(line, t, 1 if t == "t5" else 0)
    return appends


# ---------------------------------------------------------------- --core: the steps in one process

def core_run(work, appends):
    """Run damage_steps on WORK (the steps of run_steps, through the core, no FUSE)."""
    with open(os.path.join(work, "appends"), "w") as f:
        for t, line in sorted(appends.items()):
            f.write("%s\t%s" % (t, line))
    try:
        r = subprocess.run([CORE, work, str(int(STEP_TIMEOUT))], capture_output=True, text=True,
                           errors="replace", timeout=STEP_TIMEOUT * 12)
    except subprocess.TimeoutExpired:
        raise RuntimeError("damage_steps did not finish in %ds" % (STEP_TIMEOUT * 12))
    if r.returncode != 0:
        raise RuntimeError("damage_steps rc %d: %s" % (r.returncode, tail(r.stderr)))


def core_result(work, step):
    """(rc, output) of a step damage_steps ran: rc None for a hang, -SIG for a signal."""
    d = os.path.join(work, "out", step)
    try:
        res = open(os.path.join(d, "result")).read().split()
    except OSError:
        return 0, "(not run)"
    out = open(os.path.join(d, "out"), errors="replace").read()
    if res[0] == "hang":
        return None, out
    return (-int(res[1]) if res[0] == "signal" else int(res[1])), out


def core_snapshot(snapdir):
    """The snapshot dict read_mount gives, from damage_steps' files."""
    def files(sub):
        d = os.path.join(snapdir, sub)
        out = {}
        if not os.path.isdir(d):
            return out
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if os.path.isdir(p):
                continue
            if name.endswith(".errno"):
                out[name[:-6]] = int(open(p).read())
            else:
                out[name] = open(p, "rb").read()
        return out
    snap = {"logs": files("logs"), "logs2": files("logs2"), "views": files("views"),
            "vtasks": {}, "appends": {}}
    vt = os.path.join(snapdir, "vtasks")
    if os.path.isdir(vt):
        for p in os.listdir(vt):
            snap["vtasks"][p] = files(os.path.join("vtasks", p))
    for line in open(os.path.join(snapdir, "appends")).read().splitlines():
        t, e = line.rsplit(" ", 1)
        snap["appends"][t] = int(e)
    snap["types"] = open(os.path.join(snapdir, "types")).read().split()
    snap["status"] = open(os.path.join(snapdir, "status.json"), "rb").read()
    snap["metrics"] = b""
    return snap


def core_mount(work, step, fails, notes):
    """mount()'s result for a mount step damage_steps ran."""
    rc, out = core_result(work, step)
    if rc is None:
        fails.append(Failure("hang", step, "the open, reads or close took over %ds: %s" % (
            STEP_TIMEOUT, tail(out))))
        return None, "hang"
    if rc < 0 or sanitizer_or_abort(out):
        fails.append(Failure("crash", step, "rc %d: %s" % (rc, tail(out))))
        return None, "crash"
    if rc == 3:
        notes.append("%s: mount refused: %s" % (step, tail(out)))
        if not re.search(r"evlogctl|reindex|fsck", out):
            notes.append("%s: the refusal names no way out" % step)
        return None, "refused"
    snap = core_snapshot(os.path.join(work, "out", step, "snap"))
    snap["daemon_rc"] = rc
    return snap, None


# ---------------------------------------------------------------- one case

def run_steps(ctx, dmg, work, known):
    """Run every step on WORK/data (already damaged); return the failures."""
    data = os.path.join(work, "data")
    mnt = os.path.join(work, "mnt")
    fails = []
    notes = []
    whole = whole_sets(ctx, dmg, data, known)
    alias = {}
    if dmg["kind"] == "dup" and dmg["class"] == "dir" and dmg["path"].startswith("tasks/"):
        alias[dmg["to"].split("/")[1]] = dmg["path"].split("/")[1]

    appends = appends_for(ctx, known)
    if CORE:
        core_run(work, appends)

    def tool(step, *args):
        rc, out = core_result(work, step) if CORE else ctl(*args)
        log("  %s: rc %s %s" % (step, rc, tail(out, 300).replace("\n", " | ")))
        if rc is None:
            fails.append(Failure("hang", step, "evlogctl %s: no exit in %ds: %s" % (
                " ".join(args[:1]), STEP_TIMEOUT, tail(out))))
        elif sig_of(rc) or sanitizer_or_abort(out):
            fails.append(Failure("crash", step, "evlogctl %s: rc %d: %s" % (
                args[0], rc, tail(out))))
        return rc, out

    def mount(step, appends=None, full=True):
        if CORE:
            return core_mount(work, step, fails, notes)
        d = Daemon(data, mnt, os.path.join(work, "daemon-%s.err" % step))
        e = d.start()
        if e:
            if e[0] == "refused":
                notes.append("%s: mount refused: %s" % (step, e[1]))
                if not re.search(r"evlogctl|reindex|fsck", e[1]):
                    notes.append("%s: the refusal names no way out" % step)
                return None, "refused"
            fails.append(Failure(e[0], step, e[1]))
            return None, e[0]
        snap, err = read_mount(mnt, appends, full)
        if err:
            d.kill()
            cls = "crash" if (d.proc is None and False) else err[0]
            fails.append(Failure("hang" if cls == "hang" else "crash", step, err[1] + " " +
                                 tail(d.stderr())))
            return None, "hang"
        rc = d.stop()
        if rc is None:
            fails.append(Failure("hang", step + "-unmount", "the daemon did not exit in %ds" %
                                 STEP_TIMEOUT))
        elif sig_of(rc) or sanitizer_or_abort(d.stderr()):
            fails.append(Failure("crash", step, "daemon rc %d: %s" % (rc, tail(d.stderr()))))
        snap["daemon_rc"] = rc
        return snap, None

    rc_pre, out_pre = tool("fsck-pre", "fsck", data)
    # the first mount: read, append one event to every task, read again
    snap, how = mount("mount", appends, full=False)
    acked = {}
    if snap is not None:
        fs = check_snapshot(snap, known, "mount", kept_aside(dmg, data, whole), appends,
                            alias=alias)
        fails += fs
        acked = {t: appends[t] for t, r in snap["appends"].items() if r == 0}
        if rc_pre == 0 and fs:
            fails.append(Failure("unreported", "fsck-pre", "fsck exit 0 on the damaged store, "
                                 "which then served: %r" % fs[0]))
    tool("fsck", "fsck", data)
    rc_rep, out_rep = tool("repair", "fsck", data, "--repair")
    rc1, out1 = tool("fsck-after-repair", "fsck", data)
    if rc1 not in (0, None):
        notes.append("fsck --repair left the store unclean (rc %s): %s" % (rc1, tail(out1, 300)))
    rc_ri, out_ri = tool("reindex", "reindex", data)
    rc2, out2 = tool("fsck-after-reindex", "fsck", data)
    if rc2 not in (0, None):
        fails.append(Failure("unrepaired", "fsck-after-reindex", "rc %s after repair (rc %s) and "
                             "reindex (rc %s): %s" % (rc2, rc_rep, rc_ri, tail(out2))))
    bk = os.path.join(work, "backup")
    rc_bk, out_bk = tool("backup", "backup", data, bk)
    if rc_bk == 0:
        rc3, out3 = tool("fsck-backup", "fsck", bk)
        if rc3 not in (0, None):
            fails.append(Failure("unrepaired", "fsck-backup", "the backup of the repaired store "
                                 "is not clean: rc %s: %s" % (rc3, tail(out3))))
    elif rc_bk is not None and rc2 == 0:
        fails.append(Failure("unrepaired", "backup", "backup of a clean store: rc %s: %s" % (
            rc_bk, tail(out_bk))))
    # the last mount: every whole event, every acknowledged append, views = filter
    need = {t: set(v) for t, v in whole.items()}
    for t, line in acked.items():
        need.setdefault(t, set()).add(line.encode())
    snap2, how2 = mount("mount-final")
    if snap2 is not None:
        fails += check_snapshot(snap2, known, "mount-final", kept_aside(dmg, data, need), None,
                                final=True, alias=alias)
    elif how2 == "refused" and rc2 == 0:
        fails.append(Failure("unrepaired", "mount-final", "a fsck-clean store does not mount: " +
                             "; ".join(notes[-2:])))
    return fails, notes


def worst(fails):
    return min((SEVERITY.index(f.cls) for f in fails), default=None)


def run_case(ctx, seed, case, sroot, out, args, counts, kept, replay_from=None):
    known = Known.from_json(ctx["known"])
    base = os.path.join(sroot, "base")
    old = os.path.join(sroot, "old")
    work = tempfile.mkdtemp(prefix="case-", dir=sroot)
    try:
        data = os.path.join(work, "data")
        if replay_from:
            dmg = json.load(open(os.path.join(replay_from, "case.json")))["damage"]
            subprocess.run(["cp", "-a", os.path.join(replay_from, "damaged"), data], check=True)
        else:
            dmg = choose_damage(seed, case, base, old, args.clean_share)
            src = old if dmg.get("store") == "clean" else base
            subprocess.run(["cp", "-a", src, data], check=True)
            apply_damage(dmg, data, old)
        keep_src = os.path.join(work, "damaged")
        subprocess.run(["cp", "-a", data, keep_src], check=True)
        log("case %d:%d %s %s %s" % (seed, case, dmg["kind"], dmg["class"], dmg["path"]))
        fails, notes = run_steps(ctx, dmg, work, known)
        key = (dmg["kind"], dmg["class"] + ("/clean" if dmg.get("store") == "clean" else ""))
        w = worst(fails)
        counts.setdefault(key, {})
        cls = SEVERITY[w] if w is not None else "ok"
        knownfail = False
        if w is not None and any(fnmatch.fnmatch("%s:%s:%s" % (dmg["kind"], dmg["class"], cls), p)
                                 for p in args.known):
            knownfail = True
            cls = "known:" + cls
        counts[key][cls] = counts[key].get(cls, 0) + 1
        if w is None:
            return None
        shell = damage_shell(dmg)
        if dmg.get("store") == "clean":
            shell += "  # on a cleanly unmounted store"
        rec = {"seed": seed, "case": case, "damage": dmg, "shell": shell,
               "class": SEVERITY[w], "failures": [repr(f) for f in fails], "notes": notes,
               "replay": "%s %s %s --replay %d:%d --out %s" % (
                   "python3 " + os.path.abspath(__file__), EVLOGFS, EVLOGCTL, seed, case,
                   out)}
        kk = key + (SEVERITY[w],)
        if not replay_from and kept.get(kk, 0) < args.keep_max:
            kept[kk] = kept.get(kk, 0) + 1
            dest = os.path.join(out, "damage-%d-%d" % (seed, case))
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            shutil.move(keep_src, os.path.join(dest, "damaged"))
            if dmg["kind"] == "restore_old" or True:
                pass
            with open(os.path.join(dest, "case.json"), "w") as f:
                json.dump(dict(rec, ctx=ctx), f)
            rec["kept"] = dest
        print("FAIL seed %d case %d: %s (%s %s %s)\n  damage: %s\n%s%s\n  replay: %s" % (
            seed, case, SEVERITY[w] + (" [known]" if knownfail else ""), dmg["kind"],
            key[1], dmg["path"], rec["shell"],
            "".join("  %r\n" % f for f in fails[:6]),
            "".join("  note: %s\n" % n.replace("\n", " | ") for n in notes[:3]), rec["replay"]),
            flush=True)
        rec["known"] = knownfail
        return rec
    finally:
        for m in (os.path.join(work, "mnt"),):
            if os.path.exists(m) and is_mounted(m):
                subprocess.run(["fusermount3", "-u", "-z", m], check=False)
        if not os.environ.get("EVL_DAMAGE_KEEP_WORK"):
            shutil.rmtree(work, ignore_errors=True)


def report(counts, recs, ncases, t0):
    total = {}
    print("\n%-12s %-11s %s" % ("damage", "file", "results"))
    for (kind, cls) in sorted(counts):
        c = counts[(kind, cls)]
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
        print("%-12s %-11s %s" % (kind, cls, " ".join("%s=%d" % kv for kv in sorted(c.items()))))
    print("\n%d cases in %.0f s: %s" % (ncases, time.monotonic() - t0,
                                       " ".join("%s=%d" % kv for kv in sorted(total.items()))))
    short = sorted((r for r in recs if not r.get("known")),
                   key=lambda r: (SEVERITY.index(r["class"]), len(r["shell"])))
    if short:
        print("\nshortest repros (worst first):")
        seen = set()
        for r in short:
            k = (r["class"], r["damage"]["kind"], r["damage"]["class"])
            if k in seen:
                continue
            seen.add(k)
            print("  [%s] %s\n      %s" % (r["class"], r["shell"], r["replay"]))
            if len(seen) >= 10:
                break


def main():
    global EVLOGFS, EVLOGCTL, STEP_TIMEOUT, VERBOSE, CORE
    if len(sys.argv) >= 3 and sys.argv[1] == "--reader":
        return reader_main(sys.argv[2])
    ap = argparse.ArgumentParser(description="damage sweep (see the docstring)")
    ap.add_argument("evlogfs")
    ap.add_argument("evlogctl")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--cases", type=int, default=None, help="cases to run (default 20)")
    ap.add_argument("--time", type=float, default=None, help="run cases for S seconds")
    ap.add_argument("--cases-per-seed", type=int, default=200,
                    help="build a new store (next seed) after this many cases")
    ap.add_argument("--clean-share", type=float, default=0.25,
                    help="share of cases that damage the cleanly closed store")
    ap.add_argument("--replay", default=None, help="SEED:CASE")
    ap.add_argument("--out", default=None, help="where failing cases are kept (default .)")
    ap.add_argument("--step-timeout", type=float, default=60.0,
                    help="seconds a step may take (reading a mount: twice that); "
                    "a loaded machine needs the margin: 20 s made false hangs")
    ap.add_argument("--known", default="", help="triage only: PAT,... globs of "
                    "damage:fileclass:failclass counted as known")
    ap.add_argument("--keep-max", type=int, default=3,
                    help="kept stores per damage, file class and failure class")
    ap.add_argument("--json", default=None, help="write every failure record here")
    ap.add_argument("--core", default=None, metavar="DAMAGE_STEPS",
                    help="run each case's steps through the core in one process "
                    "(tests/damage/steps.c): no mount per step, many cases per second")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    if not os.path.exists("/dev/fuse"):
        print("skip: no /dev/fuse")
        return 77
    EVLOGFS, EVLOGCTL = os.path.abspath(a.evlogfs), os.path.abspath(a.evlogctl)
    STEP_TIMEOUT = a.step_timeout
    VERBOSE = a.verbose
    CORE = os.path.abspath(a.core) if a.core else None
    a.known = [p for p in a.known.split(",") if p]
    out = os.path.abspath(a.out or ".")
    os.makedirs(out, exist_ok=True)
    t0 = time.monotonic()
    counts, kept, recs = {}, {}, []
    # SIGTERM (meson's timeout, a kill by hand) unwinds: unmount, remove temp dirs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    top = tempfile.mkdtemp(prefix="evl-damage-")
    try:
        if a.replay:
            seed, case = (int(x) for x in a.replay.split(":"))
            kept_dir = os.path.join(out, "damage-%d-%d" % (seed, case))
            sroot = os.path.join(top, "s%d" % seed)
            os.makedirs(sroot)
            if os.path.exists(os.path.join(kept_dir, "case.json")):
                ctx = json.load(open(os.path.join(kept_dir, "case.json")))["ctx"]
                print("replaying the kept store %s" % kept_dir, flush=True)
                r = run_case(ctx, seed, case, sroot, out, a, counts, kept, replay_from=kept_dir)
            else:
                print("no kept store in %s: rebuilding seed %d (the same damage choice, "
                      "offsets may differ)" % (kept_dir, seed), flush=True)
                ctx = build_base(seed, sroot)
                r = run_case(ctx, seed, case, sroot, out, a, counts, kept)
            print("case %d:%d: %s" % (seed, case, "ok" if r is None else r["class"]))
            return 0 if r is None else 1
        seed = a.seed if a.seed is not None else random.randrange(1 << 30)
        ncases = a.cases if a.cases is not None else (None if a.time else 20)
        print("seed %d" % seed, flush=True)
        case = 0
        sroot = None
        ctx = None
        while True:
            if ncases is not None and case >= ncases:
                break
            if a.time is not None and time.monotonic() - t0 >= a.time:
                break
            if ctx is None or (case and case % a.cases_per_seed == 0):
                cur = seed + case // a.cases_per_seed
                if sroot:
                    shutil.rmtree(sroot, ignore_errors=True)
                sroot = os.path.join(top, "s%d" % cur)
                os.makedirs(sroot)
                ctx = build_base(cur, sroot)
                print("seed %d: store built (%d events written)" % (
                    cur, len(ctx["known"]["lines"])), flush=True)
            cur = seed + case // a.cases_per_seed
            r = run_case(ctx, cur, case, sroot, out, a, counts, kept)
            if r:
                recs.append(r)
            case += 1
            if case % 50 == 0:
                print("%d cases, %d failing" % (case, len(recs)), flush=True)
        bad = [r for r in recs if not r.get("known")]
        print("seed %d: %s" % (seed, "FAILED (%d cases)" % len(bad) if bad else "ok"))
        return 1 if bad else 0
    finally:
        if not a.replay:
            # also when stopped by SIGTERM: what ran is counted
            report(counts, recs, sum(sum(c.values()) for c in counts.values()), t0)
            if a.json:
                with open(a.json, "w") as f:
                    json.dump({"counts": [[k[0], k[1], v] for k, v in counts.items()],
                               "failures": recs}, f, indent=1)
        for d in list(LIVE):
            d.kill()
        if not os.environ.get("EVL_DAMAGE_KEEP_WORK"):
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
