#!/usr/bin/env python3
"""Hold many idle client connections open on a proxy, for bench/run's RSS-per-connection numbers.

  tunnel: send "CONNECT HOST:PORT", read the 200 head, then send nothing more.
  head:   send the first lines of an absolute-form GET without the blank line that ends the head.

Opens --count connections one after another, waits --settle seconds, checks which ones the proxy
has already closed or answered, prints one "READY ..." line and then holds everything open until
it is killed (SIGTERM; the kernel closes the sockets). Loopback only; every wait has a timeout.
"""
import argparse
import select
import signal
import socket
import sys
import time


def open_tunnel(port, target, timeout):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in head:
        if time.monotonic() > deadline:
            raise TimeoutError("no CONNECT answer")
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the CONNECT answer")
        head += chunk
    status = head.split(b"\r\n", 1)[0]
    if b" 200" not in status:
        raise ConnectionError("CONNECT answered " + status.decode(errors="replace"))
    return s


def open_head(port, url, timeout):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    # No final CRLF: the proxy must keep this half-sent head until its head timeout.
    s.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\n".encode())
    return s


def count_answered(socks):
    """Sockets that are readable now: the proxy closed them or sent something (an error page)."""
    poller = select.poll()  # not select(): these descriptors go past FD_SETSIZE
    for s in socks:
        poller.register(s, select.POLLIN)
    return len(poller.poll(0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True, help="the proxy's port on 127.0.0.1")
    ap.add_argument("--mode", choices=["tunnel", "head"], required=True)
    ap.add_argument("--target", required=True, help="tunnel: HOST:PORT; head: absolute URL")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    socks, failed, first_error = [], 0, ""
    started = time.monotonic()
    for _ in range(args.count):
        try:
            if args.mode == "tunnel":
                socks.append(open_tunnel(args.port, args.target, args.timeout))
            else:
                socks.append(open_head(args.port, args.target, args.timeout))
        except (OSError, TimeoutError, ConnectionError) as e:
            failed += 1
            first_error = first_error or str(e).replace(" ", "_")
    open_s = time.monotonic() - started
    time.sleep(args.settle)
    answered = count_answered(socks)
    print(f"READY opened={len(socks)} failed={failed} answered_or_closed={answered} "
          f"open_s={open_s:.2f} first_error={first_error or '-'}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
