-- wrk script for bench/run: sends GET for BENCH_URL (env) and prints one parseable line.
-- Against a proxy, BENCH_URL is the absolute-form target (http://127.0.0.1:ORIGIN/1k) and the
-- request line becomes "GET http://127.0.0.1:ORIGIN/1k HTTP/1.1"; straight to nginx it is "/1k".
-- BENCH_HOST sets Host to the origin's authority (RFC 9112 §3.2: Host matches the target),
-- BENCH_CLOSE=1 adds "Connection: close".

wrk.path = os.getenv("BENCH_URL") or "/"
local host = os.getenv("BENCH_HOST")
if host and host ~= "" then
    wrk.headers["Host"] = host
end
if os.getenv("BENCH_CLOSE") == "1" then
    wrk.headers["Connection"] = "close"
end

-- One line, key=value, read by bench/run. Latencies are microseconds. errors_status counts
-- responses with status > 399 (wrk's own definition), so a proxy answering 5xx shows up here.
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d " ..
        "errors_connect=%d errors_read=%d errors_write=%d errors_status=%d errors_timeout=%d\n",
        summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.status, e.timeout))
end
