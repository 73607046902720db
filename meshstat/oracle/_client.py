"""Connection client for the netfilter oracle: N TCP connections, R requests each.

Run inside the client network namespace (``ip netns exec NS python -m
meshstat.oracle._client --target ip:port -n N [-r R] [--uid U]``). Each
connection sends ``R`` request lines and reads one answer line per request
(the name of the backend listener that accepted it, see
:mod:`meshstat.oracle._backend`), then closes with an RST (``SO_LINGER 0``) so
that neither side keeps a ``TIME_WAIT`` socket. Connections are sequential: the
random choice of every new connection is made by the kernel's NAT rules.

With ``--uid``, the process drops to that user (and group) after start-up,
before opening any socket: the sockets then carry that owner, which is what
``-m owner --uid-owner`` matches (Istio's UID 1337 exemption).

With ``--sources-stdin``, a JSON list of local source addresses is read from
standard input and connection ``j`` is bound to ``sources[j % len(sources)]``
before it connects (many clients from one process: ``-m recent`` affinity
lists key on the source address).

Output: one JSON line ``{"names": [...], "seq": [i, ...], "mixed": m,
"errors": e, "error_kinds": {...}, "elapsed": s, "timed_out": bool}``
(``error_kinds`` counts the failed connections by how they failed, only the
kinds that occurred: ``refused`` (a RST or an ICMP port unreachable: a REJECT),
``timeout`` (no answer: a DROP), ``unreachable`` (ICMP host or network
unreachable), ``other``): ``seq[j]`` is the index in
``names`` of the backend that answered connection ``j``'s first request;
``mixed`` counts connections whose requests were answered by more than one name.
With ``--sources-stdin`` it also has ``"src": [i, ...]``: the index in the
source list of every completed connection (aligned with ``seq``).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import struct
import sys
import time

_LINGER_RST = struct.pack("ii", 1, 0)


def _read_lines(s: socket.socket, want: int, buf: bytearray) -> list[bytes]:
    while buf.count(b"\n") < want:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before all answers arrived")
        buf += chunk
    lines = bytes(buf).split(b"\n")
    del buf[:]
    return lines[:want]


def _kind(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return "other"


def main(argv: list[str] | None = None) -> int:
    """Open the connections and print the JSON summary (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="meshstat.oracle._client")
    ap.add_argument("--target", required=True, help="ip:port to connect to")
    ap.add_argument("-n", type=int, required=True, help="connections")
    ap.add_argument("-r", type=int, default=1, help="requests per connection (kept alive)")
    ap.add_argument("--uid", type=int, help="drop to this uid/gid before opening sockets")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-connection socket timeout (s)")
    ap.add_argument("--deadline", type=float, default=300.0, help="stop after this many seconds")
    ap.add_argument("--max-errors", type=int, default=100, help="stop after this many failed connections")
    ap.add_argument("--sources-stdin", action="store_true",
                    help="read a JSON list of source addresses from stdin; "
                    "connection j binds to sources[j % len]")
    args = ap.parse_args(argv)
    sources: list[str] = []
    if args.sources_stdin:
        sources = [str(a) for a in json.loads(sys.stdin.read())]
        if not sources:
            ap.error("--sources-stdin: empty source list")

    host, _, port_s = args.target.rpartition(":")
    addr = (host.strip("[]"), int(port_s))
    fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    if args.uid is not None:
        os.setgroups([])
        os.setgid(args.uid)
        os.setuid(args.uid)

    names: list[str] = []
    index: dict[bytes, int] = {}
    seq: list[int] = []
    src_seq: list[int] = []
    mixed = errors = 0
    kinds = {"refused": 0, "timeout": 0, "unreachable": 0, "other": 0}
    request = b"x\n" * args.r
    start = time.monotonic()
    stop_at = start + args.deadline
    timed_out = False
    buf = bytearray()
    for j in range(args.n):
        if time.monotonic() > stop_at:
            timed_out = True
            break
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(args.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        si = j % len(sources) if sources else -1
        try:
            if sources:
                s.bind((sources[si], 0))
            s.connect(addr)
            s.sendall(request)
            del buf[:]
            lines = _read_lines(s, args.r, buf)
        except OSError as exc:
            errors += 1
            kinds[_kind(exc)] += 1
            s.close()
            if errors >= args.max_errors:
                sys.stderr.write(f"_client: too many failed connections, last: {exc}\n")
                break
            continue
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        s.close()
        first = lines[0]
        i = index.get(first)
        if i is None:
            i = index[first] = len(names)
            names.append(first.decode(errors="replace"))
        if args.r > 1 and any(x != first for x in lines):
            mixed += 1
        seq.append(i)
        if sources:
            src_seq.append(si)
    out: dict[str, object] = {
        "names": names,
        "seq": seq,
        "mixed": mixed,
        "errors": errors,
        "error_kinds": {k: v for k, v in kinds.items() if v},
        "elapsed": time.monotonic() - start,
        "timed_out": timed_out,
    }
    if sources:
        out["src"] = src_seq
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
