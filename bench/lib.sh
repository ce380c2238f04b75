# Shared by bench/run and bench/profile: a temp dir, the nginx origin (HTTP and TLS), the proxies
# under test (hallpass, Squid, tinyproxy), their RSS, and the cleanup of every process started.
# Sourced, not run. Everything listens on 127.0.0.1; every wait has a deadline.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(dirname "$BENCH_DIR")

BENCH_PIDS=()   # every long-running process we started, stopped in reverse order on exit
BENCH_KEEP_TMP=${BENCH_KEEP_TMP:-0}

log() { printf '[%s %s] %s\n' "${BENCH_LOG_TAG:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ensure_packages PKG...: apt-get only when something is missing.
ensure_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Debian may have started (or may later start) its own squid/tinyproxy/nginx: they would take CPU
# from the measurement. We do not stop processes we did not start; we say so loudly.
warn_foreign_daemons() {
    local others
    others=$(pgrep -a -x 'squid|tinyproxy|nginx|hallpass' || true)
    if [ -n "$others" ]; then
        log "warning: these were already running and may steal CPU from the measurement:"
        printf '%s\n' "$others" | sed 's/^/    /' >&2
    fi
}

bench_setup_tmp() {
    BENCH_TMP=$(mktemp -d /tmp/hallpass-bench.XXXXXX)
    # nginx workers (nobody), squid (proxy) and tinyproxy (nobody) read and write in here.
    chmod 755 "$BENCH_TMP"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# stop_pid PID: TERM its process group (squid may fork helpers), then KILL after 5 s.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ($(ps -o comm= -p "$pid" 2>/dev/null)) ignored SIGTERM for 5 s: killing it"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
    local i
    for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${BENCH_PIDS[$i]}"
    done
    if [ -n "${BENCH_TMP:-}" ] && [ "$BENCH_KEEP_TMP" = 0 ]; then
        rm -rf "$BENCH_TMP"
    elif [ -n "${BENCH_TMP:-}" ]; then
        log "kept $BENCH_TMP"
    fi
}

# start_bg NAME CMD...: run CMD in its own session (so its group can be stopped as one), output
# in $BENCH_TMP/NAME.out and .err. Sets START_PID. setsid does not fork here: a background job of
# a non-interactive shell is not a group leader, so $! is the daemon itself.
start_bg() {
    local name=$1
    shift
    setsid "$@" >"$BENCH_TMP/$name.out" 2>"$BENCH_TMP/$name.err" </dev/null &
    START_PID=$!
    BENCH_PIDS+=("$START_PID")
}

# forget_pid PID: after stop_pid, so cleanup does not wait on it again.
forget_pid() {
    local pid=$1 i keep=()
    for i in "${BENCH_PIDS[@]}"; do [ "$i" = "$pid" ] || keep+=("$i"); done
    BENCH_PIDS=("${keep[@]}")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID [TENTHS]: until something accepts on 127.0.0.1:PORT (default 10 s), or PID
# died.
wait_port() {
    local port=$1 pid=$2 tenths=${3:-100} i
    for ((i = 0; i < tenths; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

alive() { kill -0 "$1" 2>/dev/null; }

# rss_kib PID: VmRSS of PID and all its descendants (Squid may run helpers), in KiB.
rss_kib() {
    local pid=$1 total=0 p rss
    local queue=("$pid")
    while [ ${#queue[@]} -gt 0 ]; do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${rss:-0}))
        # shellcheck disable=SC2207
        queue+=($(pgrep -P "$p" || true))
    done
    echo "$total"
}

fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# cpu_ticks PID: utime + stime of PID (all its threads) and its descendants, in clock ticks
# (CLK_TCK per second). The command name may hold spaces: fields are counted after its ")".
cpu_ticks() {
    local pid=$1 total=0 p t
    local queue=("$pid")
    while [ ${#queue[@]} -gt 0 ]; do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true)
        total=$((total + ${t:-0}))
        # shellcheck disable=SC2207
        queue+=($(pgrep -P "$p" || true))
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------
# Origin: one nginx worker, access_log off, /1k and /big over HTTP, the same files over TLS.

# make_origin_files BIG_MIB: /1k and /big (random bytes from /dev/urandom: real data, not a
# sparse file, so nothing along the path can shortcut on zeros), a self-signed P-256 cert.
make_origin_files() {
    local big_mib=$1
    mkdir -p "$BENCH_TMP/www" "$BENCH_TMP/nginx-tmp"
    head -c 1024 /dev/urandom >"$BENCH_TMP/www/1k"
    head -c "$((big_mib * 1024 * 1024))" /dev/urandom >"$BENCH_TMP/www/big"
    chmod 755 "$BENCH_TMP/www"
    chmod 644 "$BENCH_TMP/www/1k" "$BENCH_TMP/www/big"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=127.0.0.1 -keyout "$BENCH_TMP/origin.key" -out "$BENCH_TMP/origin.crt" \
        2>/dev/null
    BIG_BYTES=$((big_mib * 1024 * 1024))
}

start_origin() {
    ORIGIN_PORT=$(free_port)
    TLS_PORT=$(free_port)
    cat >"$BENCH_TMP/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $BENCH_TMP/nginx.pid;
error_log $BENCH_TMP/nginx.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    # wrk's 50 connections stay open for the whole run, straight or behind a proxy's pool.
    keepalive_requests 1000000;
    # Idle CONNECT tunnels reach nginx as TCP connections that never start their TLS handshake.
    client_header_timeout 300s;
    client_body_temp_path $BENCH_TMP/nginx-tmp/body;
    proxy_temp_path $BENCH_TMP/nginx-tmp/proxy;
    fastcgi_temp_path $BENCH_TMP/nginx-tmp/fastcgi;
    uwsgi_temp_path $BENCH_TMP/nginx-tmp/uwsgi;
    scgi_temp_path $BENCH_TMP/nginx-tmp/scgi;
    server {
        listen 127.0.0.1:$ORIGIN_PORT;
        root $BENCH_TMP/www;
        # Its "accepts" counter shows how many upstream connections a proxy opened.
        location = /nginx-status { stub_status; }
    }
    server {
        listen 127.0.0.1:$TLS_PORT ssl;
        ssl_certificate $BENCH_TMP/origin.crt;
        ssl_certificate_key $BENCH_TMP/origin.key;
        root $BENCH_TMP/www;
    }
}
EOF
    start_bg nginx nginx -c "$BENCH_TMP/nginx.conf"
    NGINX_PID=$START_PID
    wait_port "$ORIGIN_PORT" "$NGINX_PID" && wait_port "$TLS_PORT" "$NGINX_PID" ||
        die "nginx did not start: $(tail -5 "$BENCH_TMP/nginx.err" "$BENCH_TMP/nginx.log" 2>/dev/null)"
    ORIGIN_URL_1K="http://127.0.0.1:$ORIGIN_PORT/1k"
}

# origin_accepts: connections nginx has accepted so far (HTTP and TLS), this query's included.
origin_accepts() {
    curl -s --noproxy '*' --max-time 5 "http://127.0.0.1:$ORIGIN_PORT/nginx-status" |
        awk 'NR == 3 {print $1}'
}

# tcp_counters: "RETRANS LISTENDROPS TIMEOUTS", system-wide since boot (other sessions' traffic
# included). A retransmission on loopback costs at least the 200 ms minimum RTO: it explains a
# p99 far above the median.
tcp_counters() {
    nstat -asz 2>/dev/null | awk '
        $1 == "TcpRetransSegs" {r = $2} $1 == "TcpExtListenDrops" {d = $2}
        $1 == "TcpExtTCPTimeouts" {t = $2}
        END {print r + 0, d + 0, t + 0}'
}

# ---------------------------------------------------------------------------------------------
# Proxies. Each start_<name> TAG sets PROXY_PID and PROXY_PORT; TAG names its files.

HALLPASS_BIN=${HALLPASS_BIN:-}

build_hallpass() {
    if [ -n "$HALLPASS_BIN" ]; then
        [ -x "$HALLPASS_BIN" ] || die "HALLPASS_BIN=$HALLPASS_BIN is not executable"
        return 0
    fi
    local dir="$ROOT_DIR/build-bench"
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$ROOT_DIR" -Dbuildtype=release >/dev/null ||
            die "meson setup failed (see above)"
    fi
    ninja -C "$dir" src/hallpass >/dev/null || die "building hallpass failed"
    HALLPASS_BIN="$dir/src/hallpass"
}

# start_hallpass TAG [WRAPPER...]: the release build, one worker per core, default settings
# except the CONNECT port of our TLS origin and room for the idle-connection test: all 1,000
# idle clients come from 127.0.0.1, so the per-client cap (default 512) is raised like
# tinyproxy's MaxClients.
start_hallpass() {
    local tag=$1 i
    shift
    cat >"$BENCH_TMP/$tag.yaml" <<EOF
server:
  admin: "off"  # several instances run at once; the default admin port would clash
  # TLS inside a tunnel, and plain HTTP inside one (the proxy's own cost, without TLS's).
  connect_ports: [$TLS_PORT, $ORIGIN_PORT]
  # Every request is logged, as in production.
  access_log: {path: $BENCH_TMP/$tag-access.log, format: squid}
  max_connections: 20000
  max_connections_per_client: 20000
  # The origins run on this host, which hallpass refuses to reach by default.
  allow_local_destinations: ["127.0.0.0/8"]
  # Started as root, hallpass would become nobody, who cannot read the temp dir's files.
  user: root
EOF
    start_bg "$tag" "$@" "$HALLPASS_BIN" -c "$BENCH_TMP/$tag.yaml" --listen 127.0.0.1:0 \
        --threads "$(nproc)"
    PROXY_PID=$START_PID
    PROXY_PORT=
    for i in $(seq 300); do
        PROXY_PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
            "$BENCH_TMP/$tag.err" | head -1)
        [ -n "$PROXY_PORT" ] && break
        alive "$PROXY_PID" || break
        sleep 0.1
    done
    [ -n "$PROXY_PORT" ] || die "hallpass did not start: $(tail -5 "$BENCH_TMP/$tag.err")"
}

# Squid: no cache (cache deny all, no cache_dir), access_log none (hallpass has no access log
# yet, so neither side writes one), pinger off (an ICMP helper process we do not need).
start_squid() {
    local tag=$1
    PROXY_PORT=$(free_port)
    mkdir -p "$BENCH_TMP/$tag"
    chmod 777 "$BENCH_TMP/$tag"   # squid drops to user "proxy"
    cat >"$BENCH_TMP/$tag/squid.conf" <<EOF
http_port 127.0.0.1:$PROXY_PORT
http_access allow localhost
http_access deny all
cache deny all
access_log none
cache_log $BENCH_TMP/$tag/cache.log
pid_filename $BENCH_TMP/$tag/squid.pid
coredump_dir $BENCH_TMP/$tag
netdb_filename none
pinger_enable off
visible_hostname hallpass-bench
max_filedescriptors 16384
shutdown_lifetime 1 second
EOF
    start_bg "$tag" squid -N -f "$BENCH_TMP/$tag/squid.conf"
    PROXY_PID=$START_PID
    wait_port "$PROXY_PORT" "$PROXY_PID" ||
        die "squid did not start: $(tail -5 "$BENCH_TMP/$tag.err" "$BENCH_TMP/$tag/cache.log")"
}

# tinyproxy: Debian's default settings (LogLevel Info, which writes several lines per request)
# or quiet (LogLevel Critical). MaxClients raised from Debian's 100 so 1,000 idle clients fit.
start_tinyproxy() {
    local tag=$1 level=$2
    PROXY_PORT=$(free_port)
    mkdir -p "$BENCH_TMP/$tag"
    chmod 777 "$BENCH_TMP/$tag"   # tinyproxy drops to nobody
    cat >"$BENCH_TMP/$tag/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port $PROXY_PORT
Listen 127.0.0.1
Timeout 600
LogFile "$BENCH_TMP/$tag/tinyproxy.log"
LogLevel $level
PidFile "$BENCH_TMP/$tag/tinyproxy.pid"
MaxClients 2048
Allow 127.0.0.1
ViaProxyName "tinyproxy"
ConnectPort $TLS_PORT
ConnectPort $ORIGIN_PORT
EOF
    start_bg "$tag" tinyproxy -d -c "$BENCH_TMP/$tag/tinyproxy.conf"
    PROXY_PID=$START_PID
    wait_port "$PROXY_PORT" "$PROXY_PID" ||
        die "tinyproxy did not start: $(tail -5 "$BENCH_TMP/$tag.err")"
}

# HAProxy, the reference for raw relay cost: 2 threads, no logging. Three frontends: HTTP mode as
# a reverse proxy to nginx with "http-reuse always" (PROXY_PORT: wrk's absolute-form requests and
# the plain download go here), and TCP mode with splice(2) both ways to nginx's plain port
# (HAPROXY_TCP_PORT: the plain download through a blind relay, to compare with a CONNECT tunnel
# carrying plain HTTP) and to its TLS port (HAPROXY_TLS_PORT: the TLS download).
start_haproxy() {
    local tag=$1
    PROXY_PORT=$(free_port)
    HAPROXY_TCP_PORT=$(free_port)
    HAPROXY_TLS_PORT=$(free_port)
    mkdir -p "$BENCH_TMP/$tag"
    cat >"$BENCH_TMP/$tag/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 5000
defaults
    timeout connect 10s
    timeout client 600s
    timeout server 600s
frontend http_in
    mode http
    bind 127.0.0.1:$PROXY_PORT
    default_backend nginx_http
backend nginx_http
    mode http
    http-reuse always
    server origin 127.0.0.1:$ORIGIN_PORT
frontend tcp_in
    mode tcp
    bind 127.0.0.1:$HAPROXY_TCP_PORT
    option splice-request
    option splice-response
    default_backend nginx_tcp
backend nginx_tcp
    mode tcp
    option splice-request
    option splice-response
    server origin 127.0.0.1:$ORIGIN_PORT
frontend tls_in
    mode tcp
    bind 127.0.0.1:$HAPROXY_TLS_PORT
    option splice-request
    option splice-response
    default_backend nginx_tls
backend nginx_tls
    mode tcp
    option splice-request
    option splice-response
    server origin 127.0.0.1:$TLS_PORT
EOF
    start_bg "$tag" haproxy -db -f "$BENCH_TMP/$tag/haproxy.cfg"
    PROXY_PID=$START_PID
    wait_port "$PROXY_PORT" "$PROXY_PID" && wait_port "$HAPROXY_TCP_PORT" "$PROXY_PID" ||
        die "haproxy did not start: $(tail -5 "$BENCH_TMP/$tag.err")"
}

# start_proxy NAME TAG: NAME is one of hallpass squid tinyproxy tinyproxy_quiet haproxy.
start_proxy() {
    case $1 in
        hallpass) start_hallpass "$2" ;;
        haproxy) start_haproxy "$2" ;;
        squid) start_squid "$2" ;;
        tinyproxy) start_tinyproxy "$2" Info ;;
        tinyproxy_quiet) start_tinyproxy "$2" Critical ;;
        *) die "unknown proxy $1" ;;
    esac
}

# fetch_check PROXYPORT [haproxy]: one /1k through the proxy, plain and through a CONNECT
# tunnel (for HAProxy, which is no forward proxy: through its HTTP and TCP frontends).
fetch_check() {
    local port=$1 plain tunnel
    if [ "${2:-}" = haproxy ]; then
        plain=$(curl -s -o /dev/null -w '%{http_code}:%{size_download}' --max-time 10 \
            -x "http://127.0.0.1:$port" "$ORIGIN_URL_1K" || true)
        tunnel=$(curl -s -o /dev/null -w '%{http_code}:%{size_download}' --max-time 10 \
            --noproxy '*' "http://127.0.0.1:$HAPROXY_TCP_PORT/1k" || true)
        [ "$plain" = "200:1024" ] && [ "$tunnel" = "200:1024" ] && return 0
        log "check through haproxy failed: http $plain, tcp $tunnel (want 200:1024)"
        return 1
    fi
    plain=$(curl -s -o /dev/null -w '%{http_code}:%{size_download}' --max-time 10 \
        -x "http://127.0.0.1:$port" "$ORIGIN_URL_1K" || true)
    tunnel=$(curl -s -k -o /dev/null -w '%{http_code}:%{size_download}' --max-time 10 \
        -x "http://127.0.0.1:$port" "https://127.0.0.1:$TLS_PORT/1k" || true)
    [ "$plain" = "200:1024" ] && [ "$tunnel" = "200:1024" ] && return 0
    log "check through port $port failed: plain $plain, tunnel $tunnel (want 200:1024)"
    return 1
}
