#!/usr/bin/env python3
"""Soak load for bench/soak: a mixed load against a running hallpass, minute by minute.

    soak.py PROXY_PORT ORIGIN_PORT TLS_PORT RESET_PORT HALLPASS_PID ACCESS_LOG MINUTES

Workers loop over: keep-alive requests (several per connection), Connection: close requests,
CONNECT tunnels that open, carry a few bytes and close, slow readers of a large file, blocked
requests (403 expected), requests to an origin that resets (502 expected) and names that do not
resolve (502 expected). The main thread sends SIGHUP every 5 s and, once a minute, renames the
access log and sends SIGUSR1 (logrotate's way). Each minute it prints one TSV row: minute,
VmRSS KiB, open descriptors, allowed requests, failed allowed requests, other requests,
unexpected answers to the others.
"""
import os
import random
import signal
import socket
import sys
import threading
import time

proxy, origin, tls, reset_port, pid = (int(a) for a in sys.argv[1:6])
access_log, minutes = sys.argv[6], float(sys.argv[7])
stop = threading.Event()
lock = threading.Lock()
counts = {"allowed": 0, "failed": 0, "other": 0, "unexpected": 0}
failures = []


def count(key, n=1, note=None):
    with lock:
        counts[key] += n
        if note and len(failures) < 20:
            failures.append(note)


def connect(rcvbuf=0):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(15)
    s.connect(("127.0.0.1", proxy))
    return s


def read_response(f):
    """Status and body length of one response on file object f (Content-Length framing)."""
    line = f.readline()
    if not line:
        raise ConnectionError("closed before the status line")
    status = int(line.split()[1])
    length = 0
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    remaining = length
    while remaining:
        chunk = f.read(min(remaining, 65536))
        if not chunk:
            raise ConnectionError("body cut short")
        remaining -= len(chunk)
    return status


def get(host, port, path, keep=True):
    conn = "" if keep else "Connection: close\r\n"
    return (f"GET http://{host}:{port}{path} HTTP/1.1\r\nHost: {host}:{port}\r\n{conn}\r\n").encode()


def exchange(requests, expected, allowed):
    """One connection, the requests in turn; each answer must have the expected status."""
    try:
        with connect() as s, s.makefile("rb") as f:
            for req in requests:
                s.sendall(req)
                status = read_response(f)
                ok = status == expected
                count("allowed" if allowed else "other")
                if not ok:
                    count("failed" if allowed else "unexpected", note=f"{req[:60]!r}: {status}")
    except (OSError, ValueError, IndexError) as e:
        count("allowed" if allowed else "other")
        count("failed" if allowed else "unexpected", note=f"{requests[0][:60]!r}: {e}")


def tunnel():
    try:
        with connect() as s, s.makefile("rb") as f:
            s.sendall(f"CONNECT 127.0.0.1:{tls} HTTP/1.1\r\nHost: 127.0.0.1:{tls}\r\n\r\n".encode())
            status = int(f.readline().split()[1])
            while f.readline() not in (b"\r\n", b""):
                pass
            count("allowed")
            if status != 200:
                count("failed", note=f"CONNECT: {status}")
                return
            time.sleep(random.uniform(0.05, 0.5))
    except (OSError, ValueError, IndexError) as e:
        count("allowed")
        count("failed", note=f"CONNECT: {e}")


def slow_reader():
    """Reads the first MiB of /big slowly (backpressure), then closes: allowed, not counted failed
    unless the answer is not 200."""
    try:
        with connect(rcvbuf=8192) as s:
            s.sendall(get("127.0.0.1", origin, "/big"))
            head = s.recv(4096)
            count("allowed")
            if not head.startswith(b"HTTP/1.1 200"):
                count("failed", note=f"slow reader: {head[:40]!r}")
                return
            got = len(head)
            while got < (1 << 20) and not stop.is_set():
                data = s.recv(16384)
                if not data:
                    break
                got += len(data)
                time.sleep(0.01)
    except OSError as e:
        count("allowed")
        count("failed", note=f"slow reader: {e}")


def worker(seed):
    rnd = random.Random(seed)
    n = 0
    while not stop.is_set():
        n += 1
        pick = rnd.random()
        if pick < 0.35:
            exchange([get("127.0.0.1", origin, "/1k")] * rnd.randint(2, 20), 200, True)
        elif pick < 0.55:
            exchange([get("127.0.0.1", origin, "/1k", keep=False)], 200, True)
        elif pick < 0.70:
            tunnel()
        elif pick < 0.75:
            slow_reader()
        elif pick < 0.85:
            exchange([get("blocked.test", 80, "/ad.js")] * rnd.randint(1, 5), 403, False)
        elif pick < 0.93:
            exchange([get("127.0.0.1", reset_port, "/")], 502, False)
        else:
            exchange([get(f"nosuch{seed}-{n}.invalid", 80, "/")], 502, False)


def proc(field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(12)]
for t in threads:
    t.start()
print("minute\trss_kib\tfds\tallowed\tfailed\tother\tunexpected", flush=True)
start = time.monotonic()
minute = 0
last = dict(counts)
next_hup = start + 5
while minute < minutes:
    now = time.monotonic()
    if now >= next_hup:
        os.kill(pid, signal.SIGHUP)
        next_hup += 5
    if now - start >= (minute + 1) * 60:
        minute += 1
        if os.path.exists(access_log):
            os.replace(access_log, access_log + ".1")
        os.kill(pid, signal.SIGUSR1)
        with lock:
            row = {k: counts[k] - last[k] for k in counts}
            last = dict(counts)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        print(f"{minute}\t{proc('VmRSS')}\t{fds}\t{row['allowed']}\t{row['failed']}\t"
              f"{row['other']}\t{row['unexpected']}", flush=True)
    time.sleep(0.2)
stop.set()
for t in threads:
    t.join(timeout=20)
for note in failures:
    print("# failure:", note, flush=True)
