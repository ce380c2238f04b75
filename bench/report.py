#!/usr/bin/env python3
"""Turn bench/run's samples into the markdown report: medians over rounds, ratios to direct nginx,
hallpass's targets met or missed, every round's values, and the notes.

usage: report.py RAW.tsv META.txt NOTES.txt > results.md
       report.py pool RAW.tsv... > pooled.md
RAW.tsv rows are: round, target, metric, value. Ratio = median(proxy) / median(direct).
"pool" takes several runs' raw.tsv and, for the wrk measures, keeps only the runs during which
other processes used less than QUIET_PCT % of one core: on a shared machine those are the ones
to trust, whichever target they favour.
"""
import collections
import statistics
import sys

TARGETS = ["direct", "hallpass", "haproxy", "squid", "tinyproxy", "tinyproxy_quiet"]
NAMES = {"direct": "direct nginx", "hallpass": "hallpass", "haproxy": "HAProxy", "squid": "Squid",
         "tinyproxy": "tinyproxy", "tinyproxy_quiet": "tinyproxy (quiet)"}

# (label, metric, scale, ratio target for hallpass or None, absolute limit or None, base)
# A ratio target (">=", x) means median(hallpass) / median(base) >= x; "<=" the other way. The
# base is (target, metric): direct nginx for throughput and latency, HAProxy for CPU time, and
# HAProxy's TCP-mode splice relay for the downloads (the cost of moving bytes blind). Cells show
# the ratio to the row's base target.
ROWS = [
    ("GET /1k keep-alive: requests/s", "ka.rps", 1, (">=", 1.0), None, ("haproxy", None)),
    ("keep-alive: p50 latency, ms", "ka.p50_us", 1e-3, None, None, ("direct", None)),
    ("keep-alive: p99 latency, ms", "ka.p99_us", 1e-3, ("<=", 2.0), None, ("direct", None)),
    ("keep-alive: CPU µs per request", "ka.cpu_us_per_req", 1, ("<=", 1.0), None,
     ("haproxy", None)),
    ("GET /1k Connection: close: requests/s", "close.rps", 1, (">=", 0.6), None,
     ("direct", None)),
    ("Connection: close: p50 latency, ms", "close.p50_us", 1e-3, None, None, ("direct", None)),
    ("Connection: close: p99 latency, ms", "close.p99_us", 1e-3, None, None, ("direct", None)),
    ("Connection: close: CPU µs per request", "close.cpu_us_per_req", 1, None, None,
     ("haproxy", None)),
    ("{mib} MiB via CONNECT tunnel (TLS): MB/s", "dl_tunnel.mbps", 1, None, None,
     ("haproxy", None)),
    ("{mib} MiB via CONNECT tunnel (plain HTTP inside): MB/s", "dl_tunnel_plain.mbps", 1,
     (">=", 1.0), None, ("haproxy", None)),
    ("{mib} MiB plain proxied GET: MB/s", "dl_plain.mbps", 1, (">=", 1.0), None,
     ("haproxy", "dl_tunnel_plain.mbps")),
    ("tunnel (TLS): CPU s per GiB", "dl_tunnel.cpu_s_per_gib", 1, None, None, ("haproxy", None)),
    ("tunnel (plain HTTP inside): CPU s per GiB", "dl_tunnel_plain.cpu_s_per_gib", 1,
     ("<=", 1.2), None, ("haproxy", None)),
    ("plain proxied GET: CPU s per GiB", "dl_plain.cpu_s_per_gib", 1, ("<=", 1.2), None,
     ("haproxy", "dl_tunnel_plain.cpu_s_per_gib")),
    ("RSS per idle CONNECT tunnel, KiB", "idle_tunnel.kib_per_conn", 1, None, 4.0,
     ("direct", None)),
    ("RSS per half-sent request head, KiB", "idle_head.kib_per_conn", 1, None, 6.0,
     ("direct", None)),
]


def base_of(row):
    target, metric = row[5]
    return target, metric or row[1]

ERROR_KEYS = ["errors_connect", "errors_read", "errors_write", "errors_status", "errors_timeout"]


def load(raw_path):
    samples = collections.defaultdict(list)  # (target, metric) -> [(round, value)]
    with open(raw_path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            rnd, target, metric, value = parts
            try:
                samples[(target, metric)].append((int(rnd), float(value)))
            except ValueError:
                continue
    return samples


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def median(samples, target, metric, scale=1):
    vals = [v for _, v in samples.get((target, metric), [])]
    return statistics.median(vals) * scale if vals else None


def verdict(row, samples):
    label, metric, scale, ratio_target, limit, _ = row
    hp = median(samples, "hallpass", metric, scale)
    if hp is None:
        return "no data"
    if limit is not None:
        ok = hp <= limit
        return f"≤ {fmt(limit)} KiB: **{'met' if ok else 'missed'}**" + (
            "" if ok else f" ({hp / limit:.1f}× the limit)")
    if ratio_target is None:
        return ""
    op, want = ratio_target
    base_target, base_metric = base_of(row)
    base = median(samples, base_target, base_metric, scale)
    if not base:
        return f"no {NAMES[base_target]} data"
    ratio = hp / base
    ok = ratio >= want if op == ">=" else ratio <= want
    sign = "≥" if op == ">=" else "≤"
    return f"{sign} {want}× {NAMES[base_target]}: **{'met' if ok else 'missed'}** ({ratio:.2f}×)"


QUIET_PCT = 20


def pool(paths):
    """Quiet wrk runs from several bench/run outputs: medians, ratios and sample counts."""
    runs = []  # one dict per (file, round, target): metric -> value
    for path in paths:
        per = collections.defaultdict(dict)
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 4:
                    per[(parts[0], parts[1])][parts[2]] = float(parts[3])
        runs.extend({"target": k[1], **v} for k, v in per.items())
    out = [f"Quiet wrk runs (other processes < {QUIET_PCT} % of one core) pooled over "
           f"{len(paths)} bench/run results; n = runs kept of all runs.", "",
           "| measure | " + " | ".join(NAMES[t] for t in TARGETS) + " |",
           "| --- |" + " ---: |" * len(TARGETS)]
    for label, metric, scale, _, _, _ in ROWS:
        scen = metric.split(".")[0]
        if scen not in ("ka", "close"):
            continue
        med = {}
        counts = {}
        for t in TARGETS:
            every = [r for r in runs if r["target"] == t and metric in r]
            quiet = [r[metric] * scale for r in every
                     if r.get(f"{scen}.foreign_pct", 100) < QUIET_PCT]
            med[t] = statistics.median(quiet) if quiet else None
            counts[t] = (len(quiet), len(every))
        cells = []
        for t in TARGETS:
            v, (n, total) = med[t], counts[t]
            ratio = f" ({v / med['direct']:.2f}×)" if v is not None and med["direct"] and \
                t != "direct" else ""
            cells.append(f"{fmt(v)}{ratio}, n={n}/{total}")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    print("\n".join(out))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "pool":
        pool(sys.argv[2:])
        return
    raw, meta_path, notes_path = sys.argv[1:4]
    samples = load(raw)
    meta = {}
    with open(meta_path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    with open(notes_path) as f:
        notes = [line.rstrip("\n") for line in f if line.strip()]
    mib = meta.get("download_mib", "?")
    out = []
    w = out.append

    w(f"# hallpass benchmark ({meta.get('mode', '?')} run, {meta.get('date', '?')})")
    w("")
    w(f"- machine: {meta.get('nproc')} cores, {meta.get('cpu')}, kernel {meta.get('kernel')}; "
      "wrk, nginx and the proxy share the cores")
    w(f"- {meta.get('rounds')} interleaved round(s), each value the median over rounds; wrk: "
      f"{meta.get('wrk')}; download {mib} MiB; {meta.get('idle_count')} idle connections; "
      f"{meta.get('elapsed_s')} s of measuring, of which {meta.get('quiet_wait_s', '?')} s waiting "
      "for other processes to leave the CPU")
    w(f"- hallpass {meta.get('hallpass')}; nginx {meta.get('nginx')}, "
      f"HAProxy {meta.get('haproxy')}, Squid {meta.get('squid')}, "
      f"tinyproxy {meta.get('tinyproxy')}, wrk {meta.get('wrk')}, curl {meta.get('curl')}")
    w("- cells: median (ratio to the row's base: direct nginx, or HAProxy for CPU time and the "
      "downloads, where HAProxy is its TCP-mode splice relay); RSS rows are absolute; "
      "tinyproxy's RSS is measured once, on the quiet setup (logging does not change it); for "
      "direct nginx, CPU is nginx's own")
    w("")
    w("| measure | " + " | ".join(NAMES[t] for t in TARGETS) + " | hallpass target |")
    w("| --- |" + " ---: |" * len(TARGETS) + " --- |")
    for row in ROWS:
        label, metric, scale, _, _, _ = row
        base_target, base_metric = base_of(row)
        base = median(samples, base_target, base_metric, scale)
        cells = []
        for t in TARGETS:
            v = median(samples, t, metric, scale)
            if v is not None and base and t != base_target and not metric.startswith("idle"):
                cells.append(f"{fmt(v)} ({v / base:.2f}×)")
            else:
                cells.append(fmt(v))
        w(f"| {label.format(mib=mib)} | " + " | ".join(cells) + f" | {verdict(row, samples)} |")
    w("")

    w("## Every round")
    w("")
    w("| measure | " + " | ".join(NAMES[t] for t in TARGETS) + " |")
    w("| --- |" + " ---: |" * len(TARGETS))
    for label, metric, scale, _, _, _ in ROWS:
        cells = []
        for t in TARGETS:
            vals = sorted(samples.get((t, metric), []))
            cells.append(" / ".join(fmt(v * scale) for _, v in vals) if vals else "–")
        w(f"| {label.format(mib=mib)} | " + " | ".join(cells) + " |")
    w("")

    w("## wrk errors, origin connections and TCP counters (summed over rounds)")
    w("")
    w("Origin connections: how many TCP connections nginx accepted during the runs; a proxy that")
    w("reuses upstream connections stays near 50 per keep-alive run.")
    w("")
    w("TCP retransmits, listen drops and retransmission timeouts are the kernel's counters during")
    w("the runs, system-wide (other sessions' traffic included): on loopback, a retransmission")
    w("waits at least the 200 ms minimum RTO, which shows up in p99 and max latency.")
    w("")
    w("| scenario | target | requests | connect | read | write | status > 399 | timeout "
      "| origin connections | TCP retransmits | listen drops | RTO timeouts | max latency, ms |")
    w("| --- | --- |" + " ---: |" * 11)
    for scen in ("ka", "close"):
        for t in TARGETS:
            total = lambda k: sum(v for _, v in samples.get((t, f"{scen}.{k}"), []))
            if not samples.get((t, f"{scen}.requests")):
                continue
            w(f"| {scen} | {NAMES[t]} | {total('requests'):,.0f} | " +
              " | ".join(f"{total(k):,.0f}" for k in ERROR_KEYS) +
              f" | {total('origin_conns'):,.0f} | {total('tcp_retrans'):,.0f}"
              f" | {total('listen_drops'):,.0f} | {total('tcp_timeouts'):,.0f} | " +
              " / ".join(fmt(v / 1000) for _, v in sorted(samples.get((t, f"{scen}.max_us"), []))) +
              " |")
    w("")

    w("## CPU used by other processes during each wrk run (% of one core, per round)")
    w("")
    w("Anything above ~20 % means another session was compiling or testing on the same 2 cores.")
    w("")
    w("| scenario | " + " | ".join(NAMES[t] for t in TARGETS) + " |")
    w("| --- |" + " ---: |" * len(TARGETS))
    for scen, label in (("ka", "keep-alive"), ("close", "Connection: close")):
        cells = []
        for t in TARGETS:
            vals = sorted(samples.get((t, f"{scen}.foreign_pct"), []))
            cells.append(" / ".join(f"{v:.0f}" for _, v in vals) if vals else "–")
        w(f"| {label} | " + " | ".join(cells) + " |")
    w("")

    w("## Idle connections: what was held")
    w("")
    w("| proxy | mode | opened (per round) | descriptors added | RSS before, KiB |")
    w("| --- | --- | --- | --- | --- |")
    for t in TARGETS[1:]:
        for mode in ("tunnel", "head"):
            opened = sorted(samples.get((t, f"idle_{mode}.opened"), []))
            if not opened:
                continue
            fds = sorted(samples.get((t, f"idle_{mode}.fds_added"), []))
            before = sorted(samples.get((t, f"idle_{mode}.rss_before_kib"), []))
            w(f"| {NAMES[t]} | {mode} | " + " / ".join(fmt(v) for _, v in opened) + " | " +
              " / ".join(fmt(v) for _, v in fds) + " | " +
              " / ".join(fmt(v) for _, v in before) + " |")
    w("")

    w("## Notes")
    w("")
    if notes:
        for n in notes:
            w(f"- {n}")
    else:
        w("- none: no wrk errors, no failed checks, no proxy died")
    print("\n".join(out))


if __name__ == "__main__":
    main()
