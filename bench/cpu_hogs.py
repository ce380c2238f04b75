#!/usr/bin/env python3
"""Report CPU taken by processes that are not part of the benchmark, so a noisy run is visible.

usage: cpu_hogs.py ROOT_PID SECONDS
Samples /proc twice, SECONDS apart; processes descended from ROOT_PID (bench/run and everything it
started) are ours. Prints one line: "FOREIGN total=<% of one core> <comm>:<%> ..." (top five).
"""
import os
import sys
import time


def snapshot():
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # comm may contain spaces and parentheses: split after the last ")".
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ppid, ticks = int(fields[1]), int(fields[11]) + int(fields[12])
        procs[int(name)] = (comm, ppid, ticks)
    return procs


def descendants(procs, root):
    children = {}
    for pid, (_, ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    ours, stack = set(), [root]
    while stack:
        pid = stack.pop()
        if pid in ours:
            continue
        ours.add(pid)
        stack.extend(children.get(pid, []))
    return ours


def main():
    root, seconds = int(sys.argv[1]), float(sys.argv[2])
    hz = os.sysconf("SC_CLK_TCK")
    a = snapshot()
    time.sleep(seconds)
    b = snapshot()
    ours = descendants(a, root) | descendants(b, root) | {os.getpid()}
    usage = []
    for pid, (comm, _, ticks) in b.items():
        if pid in ours:
            continue
        before = a.get(pid, (comm, 0, ticks if pid in a else 0))[2]
        pct = 100.0 * (ticks - before) / hz / seconds
        if pct > 0:
            usage.append((pct, comm))
    usage.sort(reverse=True)
    total = sum(p for p, _ in usage)
    top = " ".join(f"{c}:{p:.0f}" for p, c in usage[:5] if p >= 1)
    print(f"FOREIGN total={total:.0f} {top}".rstrip())


if __name__ == "__main__":
    main()
