#!/usr/bin/env bash
# The rule engine's speed and memory with 1M list names (the rule engine's speed and memory targets); results
# and how to read them: docs/benchmarks-rules.md. Steps (default: all, in this order):
#   decide      rules_decide_bench: decide() per request, 1M names + 1k regexes + 100 rules
#   callgrind   the same under callgrind: instructions per decision (repeatable)
#   load        rules_file_bench: load_rules_file of 1M names, wall/CPU time, memory
#   squid-load  Squid 5.7 with the same 1M names as a dstdomain ACL: -k parse and start-up
#   reload      hallpass under keep-alive load while SIGHUP reloads 1M names every 2 s; Squid
#               under the same load through one SIGHUP (= squid -k reconfigure)
#   reload-speed  requests while a reload compiles vs outside reloads, in the same run
#               (bench/reload_windows.py): open-loop at 60 % of the measured capacity, then
#               closed-loop (saturated), a SIGHUP every 8 s (a reload takes 1-3 s of it)
#   throughput  wrk keep-alive GET /1k through hallpass: no rules vs 1M names vs the full set
#   proxy-callgrind  the same three under callgrind (1 worker): instructions per proxied request
#
#   bench/rules_bench.sh [--quick] [--rounds N] [--out DIR] [--keep-tmp] [STEP...]
#
# --rounds: throughput rounds (default 3; each round runs every configuration once).
# --quick: short runs (a smoke test, not numbers to quote). Results: DIR/<step>.txt, default
# bench/results-rules/<UTC date>T<time>-<commit>/. BUILD_DIR (default build-rbench, a release build) is configured and
# built here with -j2. HALLPASS_BIN runs another hallpass binary in the proxy steps (an A/B
# against an older build). Loopback only; every process started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-rbench}
OUT=
QUICK=0
BENCH_KEEP_TMP=0
WRK_ROUNDS_ARG=
STEPS=()
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 ;;
        --out) OUT=$2; shift ;;
        --keep-tmp) BENCH_KEEP_TMP=1 ;;
        --rounds) WRK_ROUNDS_ARG=$2; shift ;;
        -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        decide | callgrind | load | squid-load | reload | reload-speed | throughput | proxy-callgrind) STEPS+=("$1") ;;
        *) echo "unknown argument \"$1\" (try --help)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#STEPS[@]} -gt 0 ] || STEPS=(decide callgrind load squid-load reload reload-speed throughput proxy-callgrind)

if [ "$QUICK" = 1 ]; then
    DECIDE_CALLS=100000 LOAD_ROUNDS=2 SQUID_ROUNDS=1 RELOAD_SECS=6 SQUID_RELOAD_SECS=30
    WRK_SECS=3 WRK_ROUNDS=1 SPEED_SECS=10
else
    DECIDE_CALLS=1000000 LOAD_ROUNDS=5 SQUID_ROUNDS=3 RELOAD_SECS=20 SQUID_RELOAD_SECS=60
    WRK_SECS=10 WRK_ROUNDS=3 SPEED_SECS=40
fi
WRK_ROUNDS=${WRK_ROUNDS_ARG:-$WRK_ROUNDS}
HUP_EVERY_MS=2000
# Squid gets one SIGHUP (1 s into the run): a reconfigure of 1M names takes longer than 2 s
# (tens of seconds on a busy machine), and a second one before it finishes restarts it.
SQUID_HUP_EVERY_MS=1000000
CONNS=32

# bench/lib.sh: log, die, ensure_packages, the temp dir and cleanup on exit, start_bg, stop_pid,
# forget_pid, free_port, wait_port. (Its rules_origin and rules_hallpass serve bench/run; this
# script has its own, rules_origin and rules_hallpass.)
BENCH_LOG_TAG=rules-bench
. "$ROOT/bench/lib.sh"

# cpu_ns PID: CPU time of all PID's threads so far (schedstat: ns on the CPU).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }
# vmrss_kib PID: VmRSS of PID alone (the numbers in docs/benchmarks-rules.md are measured so).
vmrss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---------------------------------------------------------------------------------------------
# Origin and proxies.

rules_origin() {
    mkdir -p "$TMP/www" "$TMP/nginx-tmp"
    head -c 1024 /dev/urandom >"$TMP/www/1k"
    chmod 755 "$TMP/www"
    chmod 644 "$TMP/www/1k"
    ORIGIN_PORT=$(free_port)
    cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/octet-stream;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx-tmp/body;
    proxy_temp_path $TMP/nginx-tmp/proxy;
    fastcgi_temp_path $TMP/nginx-tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx-tmp/uwsgi;
    scgi_temp_path $TMP/nginx-tmp/scgi;
    server { listen 127.0.0.1:$ORIGIN_PORT; root $TMP/www; }
}
EOF
    start_bg nginx nginx -c "$TMP/nginx.conf"
    wait_port "$ORIGIN_PORT" "$START_PID" || die "nginx did not start: $(cat "$TMP/nginx.err")"
    URL="http://127.0.0.1:$ORIGIN_PORT/1k"
}

# rules_hallpass TAG RULES_YAML|none: sets HP_PID, HP_PORT; the config is $TMP/in/TAG.yaml
# (beside the lists, whose paths are relative to it).
rules_hallpass() {
    local tag=$1 rules=$2 conf="$TMP/in/$1.yaml" i
    printf 'server:\n  admin: "off"\n  max_connections: 20000\n  allow_local_destinations: ["127.0.0.0/8"]\n  user: root\n' >"$conf"
    [ "$rules" = none ] || cat "$TMP/in/$rules" >>"$conf"
    start_bg "$tag" "${HALLPASS_BIN:-$BUILD_DIR/src/hallpass}" -c "$conf" --listen 127.0.0.1:0 --threads "$(nproc)"
    HP_PID=$START_PID
    HP_PORT=
    for i in $(seq 600); do
        HP_PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/$tag.err" | head -1)
        [ -n "$HP_PORT" ] && break
        kill -0 "$HP_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$HP_PORT" ] || die "hallpass did not start: $(tail -5 "$TMP/$tag.err")"
}

# squid_conf TAG WITH_ACL(0|1): writes $TMP/TAG/squid.conf, sets SQ_PORT and SQ_CONF.
squid_conf() {
    local tag=$1 acl=$2
    SQ_PORT=$(free_port)
    mkdir -p "$TMP/$tag"
    chmod 777 "$TMP/$tag"   # squid drops to user "proxy"
    SQ_CONF=$TMP/$tag/squid.conf
    {
        echo "http_port 127.0.0.1:$SQ_PORT"
        if [ "$acl" = 1 ]; then
            echo "acl blocked dstdomain \"$TMP/in/squid-1m.acl\""
            echo "http_access deny blocked"
        fi
        cat <<EOF
http_access allow localhost
http_access deny all
cache deny all
access_log none
cache_log $TMP/$tag/cache.log
pid_filename $TMP/$tag/squid.pid
coredump_dir $TMP/$tag
netdb_filename none
pinger_enable off
visible_hostname hallpass-bench
max_filedescriptors 16384
shutdown_lifetime 1 second
EOF
    } >"$SQ_CONF"
}

# check_fetch PORT: one GET of the origin's /1k through the proxy.
check_fetch() {
    local got
    got=$(curl -s -o /dev/null -w '%{http_code}:%{size_download}' --max-time 10 \
        -x "http://127.0.0.1:$1" "$URL" || true)
    [ "$got" = "200:1024" ] || die "GET through port $1 gave \"$got\", want 200:1024"
}

# ---------------------------------------------------------------------------------------------
# Steps.

step_decide() {
    log "decide: $DECIDE_CALLS calls per host category (loadavg $(loadavg))"
    "$BUILD_DIR/bench/rules_decide_bench" --calls "$DECIDE_CALLS"
}

step_callgrind() {
    ensure_packages valgrind
    log "callgrind: instructions per decide() (loadavg $(loadavg))"
    local dir=$TMP/callgrind
    mkdir -p "$dir"
    (cd "$dir" && valgrind --tool=callgrind --instr-atstart=no \
        "$BUILD_DIR/bench/rules_decide_bench" --callgrind --calls 20000 >"$dir/out.txt" 2>"$dir/err.txt")
    local n
    n=$(sed -n 's/^callgrind: \([0-9]*\) calls per category/\1/p' "$dir/out.txt")
    [ -n "$n" ] || die "callgrind run failed: $(tail -3 "$dir/err.txt")"
    printf '%-30s %12s\n' "hosts" "instr/call"
    local f
    # callgrind.out.PID.N: one dump per category, N in the order the bench ran them.
    for f in $(cd "$dir" && ls callgrind.out.*.* | sort -t. -k4,4n); do
        awk -v n="$n" '
            /^desc: Trigger: Client Request: / { sub(/^desc: Trigger: Client Request: /, ""); name = $0 }
            /^(summary|totals):/ { ir = $2 }
            END { if (name != "") printf "%-30s %12.0f\n", name, ir / n }' "$dir/$f"
    done
    echo "(Ir per decide(), $n calls per category after $n warm-up calls; release build)"
    local mixed
    mixed=$(grep -l 'Client Request: mixed, 1k' "$dir"/callgrind.out.*.* | head -1)
    if [ -n "$mixed" ]; then
        echo
        echo "where the instructions of \"mixed, 1k requests\" go (callgrind_annotate, self cost):"
        callgrind_annotate --inclusive=no "$mixed" 2>/dev/null | grep -E '^ *[0-9,]+ \(' |
            head -14 | sed -E 's/\[[^]]*\/([^/]*)\]$/[\1]/' | cut -c1-150
    fi
}

step_load() {
    log "load: load_rules_file of 1M names (loadavg $(loadavg))"
    "$BUILD_DIR/bench/rules_file_bench" load "$TMP/in/rules-1m.yaml" "$LOAD_ROUNDS"
    echo
    "$BUILD_DIR/bench/rules_file_bench" load "$TMP/in/rules-full.yaml" "$LOAD_ROUNDS"
    echo
    echo "hallpass --check (the same load in the real binary; /usr/bin/time: wall, CPU, max RSS):"
    /usr/bin/time -f 'wall %e s, user %U s, sys %S s, max RSS %M KiB' \
        "$BUILD_DIR/src/hallpass" --check -c "$TMP/in/rules-1m.yaml" 2>&1 | grep -v '^  \|^rules\|^groups\|^lists'
    /usr/bin/time -f 'wall %e s, user %U s, sys %S s, max RSS %M KiB' \
        "$BUILD_DIR/src/hallpass" --check -c "$TMP/in/rules-none.yaml" 2>&1 | tail -1 |
        sed 's/^/no rules: /'
}

step_squid_load() {
    ensure_packages squid
    log "squid-load: 1M dstdomain names (loadavg $(loadavg))"
    [ -n "${ORIGIN_PORT:-}" ] || rules_origin
    squid -v | head -1
    local r acl tag t0 t1 rss
    for r in $(seq "$SQUID_ROUNDS"); do
        for acl in 1 0; do
            tag=squid-parse-$r-$acl
            squid_conf "$tag" "$acl"
            echo "round $r, $([ "$acl" = 1 ] && echo "1M-name ACL" || echo "no ACL"):"
            # -k parse reads the whole configuration (the ACL file included), then exits.
            /usr/bin/time -f '  squid -k parse: wall %e s, user %U s, sys %S s, max RSS %M KiB' \
                timeout 300 squid -k parse -f "$SQ_CONF" 2>&1 | grep -E '^  squid|FATAL' || true
            # Start-up: from exec until the port accepts, then RSS once it answers.
            tag=squid-start-$r-$acl
            squid_conf "$tag" "$acl"
            t0=$(date +%s.%N)
            start_bg "$tag" squid -N -f "$SQ_CONF"
            wait_port "$SQ_PORT" "$START_PID" 3000 || die "squid did not start: $(tail -3 "$TMP/$tag/cache.log")"
            t1=$(date +%s.%N)
            check_fetch "$SQ_PORT"
            rss=$(vmrss_kib "$START_PID")
            printf '  squid -N start-up until it accepts: %.2f s, then RSS %d KiB\n' \
                "$(echo "$t1 - $t0" | bc)" "$rss"
            stop_pid "$START_PID"
            forget_pid "$START_PID"
        done
    done
    echo "(hallpass: see the load step; its start-up is load_rules_file plus opening the listener)"
    local tag=hp-start t0 t1
    for r in $(seq "$SQUID_ROUNDS"); do
        t0=$(date +%s.%N)
        rules_hallpass "hp-start-$r" rules-1m.yaml
        t1=$(date +%s.%N)
        check_fetch "$HP_PORT"
        printf 'hallpass start-up until "listening on" (1M names): %.2f s, then RSS %d KiB\n' \
            "$(echo "$t1 - $t0" | bc)" "$(vmrss_kib "$HP_PID")"
        stop_pid "$HP_PID"
        forget_pid "$HP_PID"
        rules_hallpass "hp-start-none-$r" none
        printf 'hallpass with no rules: RSS %d KiB\n' "$(vmrss_kib "$HP_PID")"
        stop_pid "$HP_PID"
        forget_pid "$HP_PID"
    done
}

# run_client LABEL PORT PID SECONDS [HUP_EVERY_MS]: the keep-alive load, RSS of PID sampled.
# run_client LABEL PORT PID SECONDS [HUP_EVERY_MS [RATE]]: the raw samples go to raw_file LABEL.
run_client() {
    local label=$1 port=$2 pid=$3 secs=$4 every=${5:-} rate=${6:-} args=()
    [ -z "$every" ] || args=(--hup-pid "$pid" --hup-every-ms "$every" --hup-first-ms 1000)
    [ -z "$rate" ] || args+=(--rate "$rate")
    echo "--- $label"
    timeout $((secs + 60)) "$BUILD_DIR/bench/rules_load_client" --proxy "127.0.0.1:$port" \
        --url "$URL" --conns "$CONNS" --seconds "$secs" --rss-pid "$pid" --rss-every-ms 50 \
        --raw "$(raw_file "$label")" "${args[@]}"
}
raw_file() { echo "$TMP/raw-$(tr ' /%()' '_____' <<<"$1").tsv"; }

step_reload() {
    ensure_packages nginx squid curl bc
    log "reload: ${RELOAD_SECS}s of keep-alive load, SIGHUP every ${HUP_EVERY_MS} ms (loadavg $(loadavg))"
    [ -n "${ORIGIN_PORT:-}" ] || rules_origin
    rules_hallpass hp-reload rules-1m.yaml
    check_fetch "$HP_PORT"
    echo "hallpass $(${BUILD_DIR}/src/hallpass --version 2>&1 | head -1), rules-1m.yaml, $CONNS keep-alive connections, loadavg $(loadavg)"
    run_client "hallpass, no reloads" "$HP_PORT" "$HP_PID" "$RELOAD_SECS"
    run_client "hallpass, SIGHUP every ${HUP_EVERY_MS} ms" "$HP_PORT" "$HP_PID" "$RELOAD_SECS" "$HUP_EVERY_MS"
    echo "hallpass's reload log lines:"
    { grep -c 'reload ok' "$TMP/hp-reload.err" || true; } | sed 's/^/  reloads ok: /'
    grep -c 'reload failed' "$TMP/hp-reload.err" | sed 's/^/  reloads failed: /' || true
    sed -n 's/.*reload ok in \([0-9]*\) ms.*/\1/p' "$TMP/hp-reload.err" | sort -n |
        awk '{v[NR] = $1} END {if (NR) printf "  reload time: min %d ms, median %d ms, max %d ms\n", v[1], v[int((NR + 1) / 2)], v[NR]}'
    kill -0 "$HP_PID" || die "hallpass died during the reload test"
    stop_pid "$HP_PID"
    forget_pid "$HP_PID"

    squid_conf squid-reload 1
    start_bg squid-reload squid -N -f "$SQ_CONF"
    local sq=$START_PID
    wait_port "$SQ_PORT" "$sq" 3000 || die "squid did not start: $(tail -3 "$TMP/squid-reload/cache.log")"
    check_fetch "$SQ_PORT"
    echo
    echo "squid $(squid -v | head -1 | sed 's/.*Version //'), the same 1M names as a dstdomain ACL, loadavg $(loadavg)"
    run_client "squid, no reconfigure" "$SQ_PORT" "$sq" "$RELOAD_SECS"
    run_client "squid, one SIGHUP (squid -k reconfigure) 1 s in" "$SQ_PORT" "$sq" \
        "$SQUID_RELOAD_SECS" "$SQUID_HUP_EVERY_MS"
    grep -c 'Reconfiguring Squid Cache' "$TMP/squid-reload/cache.log" |
        sed 's/^/  squid reconfigurations started (cache.log): /' || true
    stop_pid "$sq"
    forget_pid "$sq"
}

step_reload_speed() {
    ensure_packages nginx curl python3
    log "reload-speed: open-loop and closed-loop load, SIGHUP every 8 s, ${SPEED_SECS}s each (loadavg $(loadavg))"
    [ -n "${ORIGIN_PORT:-}" ] || rules_origin
    rules_hallpass hp-speed rules-1m.yaml
    check_fetch "$HP_PORT"
    echo "hallpass, rules-1m.yaml, $CONNS keep-alive connections, loadavg $(loadavg)"
    local label rps rate
    label="capacity: closed loop, no reloads"
    run_client "$label" "$HP_PORT" "$HP_PID" 10 | grep -E '^(requests|throughput|RESULT)'
    rps=$(awk -F'\t' '!/^#/ && $3 > 0 {n++} END {printf "%d", n / 10}' "$(raw_file "$label")")
    [ "$rps" -gt 0 ] || die "no responses in the capacity run"
    rate=$((rps * 6 / 10))
    echo
    label="open loop at ${rate} req/s (60 % of ${rps}), SIGHUP every 8 s"
    run_client "$label" "$HP_PORT" "$HP_PID" "$SPEED_SECS" 8000 "$rate" |
        grep -E '^(requests|throughput|latency|SIGHUP)'
    python3 "$ROOT/bench/reload_windows.py" "$(raw_file "$label")" "$TMP/hp-speed.err" \
        --seconds "$SPEED_SECS"
    echo
    label="closed loop (saturated), SIGHUP every 8 s"
    run_client "$label" "$HP_PORT" "$HP_PID" "$SPEED_SECS" 8000 |
        grep -E '^(requests|throughput|latency|SIGHUP)'
    python3 "$ROOT/bench/reload_windows.py" "$(raw_file "$label")" "$TMP/hp-speed.err" \
        --seconds "$SPEED_SECS"
    kill -0 "$HP_PID" || die "hallpass died during the reload-speed test"
    stop_pid "$HP_PID"
    forget_pid "$HP_PID"
}

step_throughput() {
    ensure_packages nginx wrk curl
    log "throughput: wrk -t1 -c50 ${WRK_SECS}s, $WRK_ROUNDS interleaved rounds (loadavg $(loadavg))"
    [ -n "${ORIGIN_PORT:-}" ] || rules_origin
    cat >"$TMP/wrk.lua" <<EOF
wrk.path = "$URL"
wrk.headers["Host"] = "127.0.0.1:$ORIGIN_PORT"
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d errors=%d\n",
        summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50),
        latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
EOF
    declare -A port pid
    local name
    for name in none 1m full; do
        case $name in
            none) rules_hallpass "hp-tp-$name" none ;;
            1m) rules_hallpass "hp-tp-$name" rules-1m.yaml ;;
            full) rules_hallpass "hp-tp-$name" rules-full.yaml ;;
        esac
        port[$name]=$HP_PORT
        pid[$name]=$HP_PID
        check_fetch "$HP_PORT"
        timeout 30 wrk -t1 -c50 -d2s -s "$TMP/wrk.lua" "http://127.0.0.1:$HP_PORT" >/dev/null
    done
    # Requests/s moves with the other tenants of this machine; the proxy's own CPU time per
    # request (all its threads, from schedstat) moves much less, so both are reported.
    local order=(none 1m full) r i line c0 c1 reqs
    : >"$TMP/tp.tsv"
    for ((r = 0; r < WRK_ROUNDS; r++)); do
        for ((i = 0; i < 3; i++)); do
            name=${order[$(((i + r) % 3))]}
            c0=$(cpu_ns "${pid[$name]}")
            line=$(timeout $((WRK_SECS + 30)) wrk -t1 -c50 -d"${WRK_SECS}s" -s "$TMP/wrk.lua" \
                "http://127.0.0.1:${port[$name]}" | grep '^RESULT')
            c1=$(cpu_ns "${pid[$name]}")
            reqs=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")
            line="$line cpu_us_per_req=$(echo "scale=2; ($c1 - $c0) / 1000 / $reqs" | bc)"
            echo "round $((r + 1)) $name: $line (loadavg $(loadavg))"
            printf '%s\t%s\t%s\n' "$name" "$(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$line")" \
                "$(sed 's/.*cpu_us_per_req=\([0-9.]*\).*/\1/' <<<"$line")" >>"$TMP/tp.tsv"
        done
    done
    awk -F'\t' '
        { v[$1] = v[$1] " " $2; c[$1] = c[$1] " " $3 }
        function sorted(s, a,   n, i, j, t) {
            n = split(s, a, " ")
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
            return n
        }
        function med(s,   a, n) { n = sorted(s, a); return a[int((n + 1) / 2)] }
        function range(s, f,   a, n) { n = sorted(s, a); return sprintf(f "-" f, a[1], a[n]) }
        function row(label, k) {
            printf "  %-40s %6.0f (%s)  %.3f   %6.1f (%s)  %.3f\n", label, med(v[k]), range(v[k], "%.0f"),
                med(v[k]) / med(v["none"]), med(c[k]), range(c[k], "%.1f"), med(c[k]) / med(c["none"])
        }
        END {
            printf "medians over the rounds (range):  req/s  (range)  vs no rules   proxy CPU us/req  (range)  vs no rules\n"
            row("no rules", "none")
            row("1M-name list, 1 rule", "1m")
            row("100 rules, 1k regexes, 1M names", "full")
        }' "$TMP/tp.tsv"
}

# User-space instructions per request through hallpass, counted by callgrind: immune to the
# other tenants of the machine, unlike req/s. One worker thread; instrumentation is switched on
# after start-up and a warm-up, for CG_SECS of keep-alive load, then off.
step_proxy_callgrind() {
    ensure_packages valgrind nginx
    log "proxy-callgrind: instructions per proxied GET /1k (loadavg $(loadavg))"
    [ -n "${ORIGIN_PORT:-}" ] || rules_origin
    local name rules conf pid port i ok ir secs=$([ "$QUICK" = 1 ] && echo 3 || echo 8)
    printf '%-34s %10s %14s %10s\n' "rules" "requests" "instructions" "per request"
    for name in none 1m full; do
        case $name in
            none) rules=rules-none.yaml ;;
            1m) rules=rules-1m.yaml ;;
            full) rules=rules-full.yaml ;;
        esac
        conf=$TMP/in/cg-$name.yaml
        { printf 'server:\n  admin: "off"\n  max_connections: 20000\n  allow_local_destinations: ["127.0.0.0/8"]\n  user: root\n'; cat "$TMP/in/$rules"; } >"$conf"
        start_bg "cg-$name" valgrind --tool=callgrind --instr-atstart=no \
            --callgrind-out-file="$TMP/cg-$name.out" "$BUILD_DIR/src/hallpass" -c "$conf" \
            --listen 127.0.0.1:0 --threads 1
        pid=$START_PID
        port=
        for i in $(seq 1800); do
            port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/cg-$name.err" | head -1)
            [ -n "$port" ] && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        [ -n "$port" ] || die "hallpass under valgrind did not start: $(tail -3 "$TMP/cg-$name.err")"
        "$BUILD_DIR/bench/rules_load_client" --proxy "127.0.0.1:$port" --url "$URL" --conns 8 \
            --seconds 3 >/dev/null
        callgrind_control -i on "$pid" >/dev/null 2>&1
        "$BUILD_DIR/bench/rules_load_client" --proxy "127.0.0.1:$port" --url "$URL" --conns 8 \
            --seconds "$secs" >"$TMP/cg-$name.client"
        callgrind_control -i off "$pid" >/dev/null 2>&1
        callgrind_control -d "$pid" >/dev/null 2>&1
        ok=$(sed -n 's/^RESULT sent=[0-9]* ok=\([0-9]*\) non2xx=0 failed=0 .*/\1/p' "$TMP/cg-$name.client")
        [ -n "$ok" ] || die "requests failed under callgrind: $(grep '^requests' "$TMP/cg-$name.client")"
        ir=$(cat "$TMP"/cg-"$name".out.* | awk '/^totals:/ {s += $2} END {printf "%.0f", s}')
        printf '%-34s %10d %14d %10d\n' "$rules" "$ok" "$ir" $((ir / ok))
        stop_pid "$pid"
        forget_pid "$pid"
    done
    echo "(user space only: hallpass and its libraries; the kernel's share of a request is not counted)"
}

# ---------------------------------------------------------------------------------------------

[ -d /work/shared/data/blocklists ] || [ -n "${HALLPASS_BLOCKLISTS:-}" ] ||
    [ -d "$ROOT/../shared/data/blocklists" ] || die "block lists not found (HALLPASS_BLOCKLISTS=DIR)"
ulimit -n 65536 2>/dev/null || true
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
ensure_packages python3 bc curl
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    meson setup "$BUILD_DIR" "$ROOT" -Dbuildtype=release >/dev/null || die "meson setup failed"
fi
ninja -C "$BUILD_DIR" -j2 src/hallpass bench/rules_decide_bench bench/rules_file_bench \
    bench/rules_load_client >/dev/null || die "build failed"

bench_setup_tmp   # nginx workers (nobody) and squid (proxy) read in here; cleanup on exit
TMP=$BENCH_TMP
[ -n "$OUT" ] || OUT=$ROOT/bench/results-rules/$(date -u +%Y%m%dT%H%M)-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
mkdir -p "$OUT"

log "writing the inputs (1M names, rules files) to $TMP/in"
"$BUILD_DIR/bench/rules_file_bench" write "$TMP/in" >&2
printf 'default: allow\n' >"$TMP/in/rules-none.yaml"
chmod -R a+rX "$TMP/in"
{
    echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(free -m | awk '/^Mem:/ {print $2}') MiB"
    echo "kernel $(uname -r); loadavg $(loadavg); $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "hallpass $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src include 2>/dev/null || echo '+local changes'), $BUILD_DIR"
    [ -z "${HALLPASS_BIN:-}" ] || echo "proxy steps run HALLPASS_BIN=$HALLPASS_BIN"
} | tee "$OUT/machine.txt" >&2

for step in "${STEPS[@]}"; do
    # Not in a pipeline: the step runs in this shell, so what it starts is in BENCH_PIDS for cleanup
    # and the origin it starts is reused by the next step.
    "step_${step//-/_}" > >(tee "$OUT/$step.txt") 2>&1
    sleep 0.2   # let tee drain before the next step's first line
done
log "results in $OUT"
