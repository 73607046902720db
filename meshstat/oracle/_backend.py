"""Backend listeners for the netfilter oracle: one process, many listening sockets.

Run inside a network namespace (``ip netns exec NS python -m meshstat.oracle._backend
name=ip:port ...``). Every accepted TCP connection is answered with the
listener's name, once per request line it receives (``"\\n"``-terminated), so a
client learns which backend got its connection, and with several request lines
on one kept-alive connection, which backend got each request.

Protocol with the harness: the process prints ``READY`` on stdout once every
socket listens; it stops when its standard input reaches end of file (or after
``--max-seconds``), and then prints one JSON line
``{"connections": {name: n}, "requests": {name: n}}``.

Only standard-library modules are used, so start-up is fast.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import sys
import time


def _parse_listen(spec: str) -> tuple[str, str, int]:
    name, _, addr = spec.partition("=")
    host, _, port = addr.rpartition(":")
    if not name or not host or not (port.isascii() and port.isdigit()):  # ascii_digits; a script: stdlib only
        raise SystemExit(f"_backend: expected name=ip:port, got {spec!r}")
    return name, host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    """Listen, answer, and report counts (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="meshstat.oracle._backend")
    ap.add_argument("listen", nargs="+", help="name=ip:port")
    ap.add_argument("--max-seconds", type=float, default=600.0)
    args = ap.parse_args(argv)

    sel = selectors.DefaultSelector()
    conns: dict[str, int] = {}
    reqs: dict[str, int] = {}
    for spec in args.listen:
        name, host, port = _parse_listen(spec)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(4096)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("listen", name))
        conns[name] = 0
        reqs[name] = 0
    stdin_fd = sys.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    sel.register(stdin_fd, selectors.EVENT_READ, ("stdin", None))
    sys.stdout.write("READY\n")
    sys.stdout.flush()

    deadline = time.monotonic() + args.max_seconds
    running = True
    while running and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            kind, name = key.data
            if kind == "stdin":
                try:
                    data = os.read(stdin_fd, 4096)
                except BlockingIOError:
                    continue
                if not data:
                    running = False
            elif kind == "listen":
                lsock = key.fileobj
                while True:
                    try:
                        c, _ = lsock.accept()  # type: ignore[union-attr]
                    except (BlockingIOError, InterruptedError):
                        break
                    c.setblocking(False)
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conns[name] += 1
                    sel.register(c, selectors.EVENT_READ, ("conn", name))
            else:
                c = key.fileobj
                try:
                    data = c.recv(65536)  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(c)
                    c.close()  # type: ignore[union-attr]
                    continue
                k = data.count(b"\n")
                if k:
                    reqs[name] += k
                    try:
                        c.send((name + "\n").encode() * k)  # type: ignore[union-attr]
                    except OSError:
                        sel.unregister(c)
                        c.close()  # type: ignore[union-attr]
    sys.stdout.write(json.dumps({"connections": conns, "requests": reqs}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
