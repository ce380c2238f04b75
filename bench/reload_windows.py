#!/usr/bin/env python3
"""Throughput and latency while a reload compiles, against the same run outside reloads.

Reads a rules_load_client --raw file (one line per request: due/start ms, latency us, status;
"# load started at T Unix time") and hallpass's stderr ("...Z hallpass info: reload ok in N
ms: ..."). Each reload is the interval [end - N ms, end], from the log line's timestamp. The
run is cut into 100 ms windows by when responses completed:
  during   a window wholly inside a reload interval
  outside  a window at least 300 ms away from every reload (and 500 ms from the run's ends)
and the requests by when they were due (started): inside a reload or outside, as above.
Prints the responses per window and the latency of each class, and their ratios.

  reload_windows.py RAW_TSV HALLPASS_STDERR [--seconds S]
"""
import argparse
import datetime
import re
import sys

WINDOW_MS = 100
MARGIN_MS = 300
EDGE_MS = 500


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def median(values):
    return pct(values, 0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("log")
    ap.add_argument("--seconds", type=float, required=True, help="the load's length")
    args = ap.parse_args()

    start_unix = None
    requests = []  # (start_ms, latency_us, status)
    with open(args.raw) as f:
        for line in f:
            if line.startswith("#"):
                m = re.match(r"# load started at ([0-9.]+) Unix time", line)
                if m:
                    start_unix = float(m.group(1))
                continue
            start, latency, status = line.split("\t")
            requests.append((float(start), float(latency), int(status)))
    if start_unix is None:
        sys.exit("reload_windows: no '# load started at' line in " + args.raw)

    end_ms = args.seconds * 1000
    reloads = []  # (begin_ms, end_ms) relative to the load's start
    pattern = re.compile(r"^(\S+)Z hallpass \w+: reload ok in ([0-9]+) ms")
    with open(args.log, errors="replace") as f:
        for line in f:
            m = pattern.match(line)
            if not m:
                continue
            when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
            when = when.replace(tzinfo=datetime.timezone.utc).timestamp()
            finish = (when - start_unix) * 1000
            begin = finish - int(m.group(2))
            if finish > 0 and begin < end_ms:
                reloads.append((begin, finish))

    def reloading(t0, t1):
        return any(b <= t0 and t1 <= e for b, e in reloads)

    def quiet(t0, t1):
        if t0 < EDGE_MS or t1 > end_ms - EDGE_MS:
            return False
        return all(t1 + MARGIN_MS <= b or t0 >= e + MARGIN_MS for b, e in reloads)

    counts = [0] * int(end_ms // WINDOW_MS)
    failed = 0
    lat = {"during": [], "outside": []}
    for start, latency, status in requests:
        if status <= 0:
            failed += 1
            continue
        done = start + latency / 1000
        w = int(done // WINDOW_MS)
        if 0 <= w < len(counts):
            counts[w] += 1
        if reloading(start, start):
            lat["during"].append(latency)
        elif quiet(start, start):
            lat["outside"].append(latency)
    per = {"during": [], "outside": []}
    for w, n in enumerate(counts):
        t0, t1 = w * WINDOW_MS, (w + 1) * WINDOW_MS
        if reloading(t0, t1):
            per["during"].append(n)
        elif quiet(t0, t1):
            per["outside"].append(n)

    lengths = sorted(e - b for b, e in reloads)
    print(f"reloads in the run: {len(reloads)}" +
          (f", each {lengths[0]:.0f}-{lengths[-1]:.0f} ms" if lengths else ""))
    print(f"requests: {len(requests)}, failed: {failed}")
    if not per["during"] or not per["outside"]:
        print("not enough windows to compare (need reloads of 100 ms or more, and time between)")
        return
    rate = {k: 1000 / WINDOW_MS * sum(v) / len(v) for k, v in per.items()}
    for k in ("outside", "during"):
        print(f"{k:8} {len(per[k]):4d} windows: mean {rate[k]:8.0f} responses/s, median window "
              f"{median(per[k]):6.0f}, lowest {min(per[k]):6.0f}; latency (from when due) "
              f"p50 {median(lat[k]):7.0f} us, p99 {pct(lat[k], 0.99):7.0f} us, "
              f"max {max(lat[k]) if lat[k] else float('nan'):7.0f} us (n={len(lat[k])})")
    print(f"RATIO during/outside: responses/s {rate['during'] / rate['outside']:.3f}, "
          f"median window {median(per['during']) / median(per['outside']):.3f}, "
          f"p50 latency {median(lat['during']) / median(lat['outside']):.2f}, "
          f"p99 latency {pct(lat['during'], 0.99) / pct(lat['outside'], 0.99):.2f}")


if __name__ == "__main__":
    main()
