#!/usr/bin/env python3
"""Crash torture: writers, deletions and compactions, then kill -9 at a random moment.

Usage: torture.py EVLOGFS EVLOGCTL [--cycles N] [--seed S] [--keep]

One store lives through every cycle.  A cycle mounts it, starts writers
(own tasks, one task shared by two writers, one writer that splits each
event over several write() calls, sizes from 30 bytes to 8 KiB), a thread
that creates, fills and deletes scratch tasks, and one that asks for
compactions (every third cycle) or compactions with retention
(`keep-last=KEEP`, every fifth; and every tenth cycle one the kill does
not cut short, after the check, so that the store stays bounded over a
long run); after a random delay it kills the daemon with SIGKILL.  Then
it mounts again and checks:

  - every event whose write() returned is there, exactly once, in order
    (per writer); nothing torn, every line parses;
  - only retention may drop events: from the head of a task, never more
    than down to its newest KEEP, never in a cycle without it;
  - a scratch task whose rmdir returned is gone;
  - every view, and every per-task view, equals the filter of the logs;
and unmounts cleanly, after which `evlogctl fsck` must find the store clean.
Exit 0 if every cycle passes.  CI runs 25 cycles; --cycles 500 for the long run.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "mount"))
import mount_test  # noqa: E402  (Mount, deadline_poll, read)

EVLOGCTL = None
PREFIXES = ("w", "w0", "s", "sp", "x", "tmp")
KEEP = 1500             # keep-last=KEEP in retention cycles


class Writer:
    """Appends events {"type", "w", "i"} to one task; acked = events whose write() returned."""

    def __init__(self, name, task, typ, split=False):
        self.name, self.task, self.typ, self.split = name, task, typ, split
        self.lo = 0         # no event below this i may be found (retention moves it)
        self.next = 0       # the next i to write (events found after the last crash)
        self.acked = 0
        self.had = 0        # events found at the last check

    def line(self, rng, i):
        pad = "p" * rng.choice((0, 0, 10, 100, 1000, 8000))
        return json.dumps({"type": self.typ, "w": self.name, "i": i, "pad": pad},
                          separators=(",", ":")) + "\n"

    def run(self, m, stop, rng):
        try:
            fd = os.open(m.p("tasks", self.task, "events"), os.O_WRONLY | os.O_APPEND)
        except OSError:
            return
        try:
            while not stop.is_set():
                data = self.line(rng, self.next).encode()
                if self.split:
                    cuts = sorted(rng.sample(range(1, len(data)), 2))
                    parts = [data[:cuts[0]], data[cuts[0]:cuts[1]], data[cuts[1]:]]
                else:
                    parts = [data]
                for part in parts:
                    done = 0
                    while done < len(part):
                        done += os.write(fd, part[done:])
                self.next += 1
                self.acked = self.next      # its newline's write() returned
        except OSError:
            pass
        finally:
            try:
                os.close(fd)
            except OSError:
                pass


def scratch(m, stop, rng, gone, cycle):
    """Create, fill and delete scratch tasks; remember the deletions acknowledged."""
    n = 0
    while not stop.is_set():
        name = "tmp%d-%d" % (cycle, n)
        n += 1
        try:
            os.mkdir(m.p("tasks", name))
            with open(m.p("tasks", name, "events"), "a") as f:
                for i in range(rng.randint(1, 50)):
                    f.write(json.dumps({"type": "tmp.e", "i": i}) + "\n")
            shutil.rmtree(m.p("tasks", name))
            gone.add(name)
        except OSError:
            return


def compactor(m, stop, rng, command):
    while not stop.is_set():
        try:
            with open(m.p(".control"), "w") as f:
                f.write(command)
        except OSError as e:
            if e.errno not in (16,):        # EBUSY: one runs already
                return
        stop.wait(rng.uniform(0.05, 0.3))


def check(m, writers, gone, counts, retained):
    """Check the remounted store; @counts: events per task at the last check (updated)."""
    logs = {}
    for t in os.listdir(m.p("tasks")):
        logs[t] = mount_test.read(m.p("tasks", t, "events"))
    found = {w.name: [] for w in writers}
    for t, data in logs.items():
        for line in data.splitlines():
            d = json.loads(line)                    # nothing torn
            if "w" in d:
                found[d["w"]].append(d["i"])
    for t, before in counts.items():
        n = len(logs[t].splitlines())
        # retention keeps a task's newest KEEP of what it held; appends only add
        least = min(before, KEEP) if retained else before
        assert n >= least, "task %s: %d events before, %d now" % (t, before, n)
        counts[t] = n
    for w in writers:
        got = found[w.name]
        if not got:
            # none yet, or all dropped by retention (the other writer of a
            # shared task wrote KEEP since); the one in flight may be gone too
            assert (w.had == 0 and w.acked <= w.lo) or retained, \
                "writer %s: events up to %d acknowledged, none found" % (w.name, w.acked)
            if retained:
                w.lo = w.next + 1
            w.next = w.acked = w.lo
            w.had = 0
            continue
        head = got[0]
        assert got == list(range(head, head + len(got))), \
            "writer %s: gap, duplicate or reorder" % w.name
        assert head >= w.lo and (retained or head == w.lo), \
            "writer %s: events from %d on expected, found from %d" % (w.name, w.lo, head)
        assert head + len(got) >= w.acked, "writer %s: acknowledged up to %d, found up to %d" % (
            w.name, w.acked, head + len(got))
        w.lo = head
        w.next = w.acked = head + len(got)
        w.had = len(got)
    for name in gone:
        assert name not in logs, "deleted task %s came back" % name
    for prefix in PREFIXES:
        path = m.p("by-type", prefix, "events")
        if not os.path.exists(path):
            assert not any(json.loads(l)["type"].startswith(prefix)
                           for d in logs.values() for l in d.splitlines()), prefix
            continue
        view = mount_test.read(path).splitlines()
        want = [l for d in logs.values() for l in d.splitlines()
                if json.loads(l)["type"].startswith(prefix)]
        assert sorted(view) == sorted(want), "view %s differs from the logs" % prefix
        for t in os.listdir(m.p("by-type", prefix, "tasks")):
            per = mount_test.read(m.p("by-type", prefix, "tasks", t)).splitlines()
            assert per == [l for l in logs[t].splitlines()
                           if json.loads(l)["type"].startswith(prefix)], (prefix, t)


def main():
    global EVLOGCTL
    ap = argparse.ArgumentParser()
    ap.add_argument("evlogfs")
    ap.add_argument("evlogctl")
    ap.add_argument("--cycles", type=int, default=25)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the store (for a failure)")
    a = ap.parse_args()
    if not os.path.exists("/dev/fuse"):
        print("skip: no /dev/fuse")
        return 77
    mount_test.EVLOGFS = a.evlogfs
    EVLOGCTL = a.evlogctl
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print("seed %d" % seed, flush=True)
    root = tempfile.mkdtemp(prefix="evl-crash-")
    writers = [Writer("w%d" % k, "w%d" % k, "w%d.e" % k) for k in range(4)]
    writers += [Writer("s%d" % k, "shared", "s.e%d" % k) for k in range(2)]
    writers.append(Writer("sp", "split", "sp.e", split=True))
    gone = set()
    t0 = time.monotonic()
    acked_total = 0
    m = mount_test.Mount(root)
    try:
        m.start()
        counts = {}
        for t in ("w0", "w1", "w2", "w3", "shared", "split"):
            os.mkdir(m.p("tasks", t))
            counts[t] = 0
        m.stop()
        for cycle in range(a.cycles):
            m.expect = [r"."]                       # a killed daemon's stderr is not judged
            m.start()
            stop = threading.Event()
            threads = [threading.Thread(target=w.run, args=(m, stop, random.Random(rng.random())))
                       for w in writers]
            threads.append(threading.Thread(target=scratch,
                                            args=(m, stop, random.Random(rng.random()), gone,
                                                  cycle)))
            retained = cycle % 5 == 4
            if retained or cycle % 3 == 2:
                command = "compact keep-last=%d\n" % KEEP if retained else "compact\n"
                threads.append(threading.Thread(target=compactor,
                                                args=(m, stop, random.Random(rng.random()),
                                                      command)))
            for t in threads:
                t.start()
            # the crash moment is random: this wait picks it, it synchronises nothing
            time.sleep(rng.uniform(0.05, 0.6))
            m.kill9()
            stop.set()
            for t in threads:
                t.join()
            acked = sum(w.acked for w in writers)
            m.start()
            check(m, writers, gone, counts, retained)
            if cycle % 10 == 9:
                # a retention the kill cannot cut short, so that the store stays bounded
                with open(m.p(".control"), "w") as f:
                    f.write("compact keep-last=%d\n" % KEEP)
                mount_test.wait_compaction(m)
                check(m, writers, gone, counts, True)
            m.stop(check=False)
            r = subprocess.run([EVLOGCTL, "fsck", m.data], capture_output=True, text=True)
            assert r.returncode == 0, "cycle %d: fsck: %s%s" % (cycle, r.stdout, r.stderr)
            acked_total = acked
            print("cycle %d: %d events acknowledged so far, %d held, %d scratch tasks "
                  "deleted%s: ok" % (cycle + 1, acked, sum(counts.values()), len(gone),
                                     ", retention" if retained else ""), flush=True)
    except BaseException:
        print("FAILED (seed %d, store kept in %s)" % (seed, root), flush=True)
        a.keep = True
        raise
    finally:
        if m.proc:
            m.stop(check=False)
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    print("survived %d cycles in %.0f s, %d acknowledged events, none lost (seed %d)"
          % (a.cycles, time.monotonic() - t0, acked_total, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
