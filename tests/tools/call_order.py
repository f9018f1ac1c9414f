#!/usr/bin/env python3
"""
call_order.py CORE_DIR - fail if core/'s files call each other in a circle.

Data flows one way through core/ (README, "core/, file by file"): a file
calls functions of the files below it, never of one that calls it back.
This reads every core/*.c, takes the functions each defines with external
linkage, and draws an arrow A -> B for each such function of B that A's
code names (comments and strings left out; a name A defines itself, a
member after -> or . are not calls).  Any strongly connected set of two
files or more is a circle: printed with the names that tie it, exit 1.
Headers are checked for include cycles the same way.
"""
import glob
import os
import re
import sys


def code_only(src):
    src = re.sub(r'/\*.*?\*/', ' ', src, flags=re.S)
    src = re.sub(r'//[^\n]*', ' ', src)
    return re.sub(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', '""', src)


DEF = re.compile(r'^(static\s+)?(?!return\b)[A-Za-z_][^;{}()=]*?\b(\w+)\s*\([^;{}]*\)\s*\{', re.M)
KEYWORDS = {'if', 'for', 'while', 'switch', 'return', 'sizeof', 'do'}
WORD = re.compile(r'(?<![\w.>])([A-Za-z_]\w*)\b')


def sccs(graph):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    core = sys.argv[1] if len(sys.argv) > 1 else 'core'
    files = sorted(glob.glob(os.path.join(core, '*.c')))
    code = {f: code_only(open(f).read()) for f in files}
    own, public = {}, {}
    for f, s in code.items():
        own[f] = set()
        for m in DEF.finditer(s):
            if m.group(2) in KEYWORDS:
                continue
            own[f].add(m.group(2))
            if not m.group(1):
                public.setdefault(m.group(2), f)
    graph, names = {}, {}
    for f, s in code.items():
        for w in set(WORD.findall(s)):
            g = public.get(w)
            if g and g != f and w not in own[f]:
                graph.setdefault(f, set()).add(g)
                names.setdefault((f, g), set()).add(w)
    bad = 0
    for comp in sccs(graph):
        bad = 1
        print('call circle: ' + ', '.join(os.path.basename(c) for c in comp))
        for a in comp:
            for b in comp:
                if (a, b) in names:
                    print('  %s -> %s: %s' % (os.path.basename(a), os.path.basename(b),
                                             ' '.join(sorted(names[(a, b)]))))
    inc = {}
    for h in glob.glob(os.path.join(core, '*.h')):
        for m in re.finditer(r'#include "([^"]+)"', open(h).read()):
            inc.setdefault(os.path.basename(h), set()).add(m.group(1))
    for comp in sccs(inc):
        bad = 1
        print('include circle: ' + ', '.join(comp))
    if not bad:
        print('%d files, %d arrows, no circle' % (len(files), sum(len(v) for v in graph.values())))
    return bad


if __name__ == '__main__':
    sys.exit(main())
