"""A minimal, fast HTTP/1.1 keep-alive client for the Envoy and nginx oracles.

``http.client`` costs about 0.3 ms of Python per request; this client sends a
fixed request and parses only the status line, ``Content-Length`` and
``Connection``, which is all the oracles need (their upstreams answer with short
bodies naming themselves). It reconnects when the server closes the connection
(nginx closes after ``keepalive_requests``). Loopback only: the oracles pass
``127.0.0.1``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping

__all__ = ["KeepAliveClient", "free_ports", "wait_for_port"]


class KeepAliveClient:
    """Sequential GET requests over one kept-alive TCP connection.

    Parameters
    ----------
    host, port : str, int
        Where to connect (``127.0.0.1``).
    timeout : float
        Socket timeout per operation, seconds.
    """

    def __init__(self, host: str, port: int, *, timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self.connections = 0

    def _connect(self) -> socket.socket:
        s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = s
        self._buf = b""
        self.connections += 1
        return s

    def close(self) -> None:
        """Close the connection."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> KeepAliveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str = "/", headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        """Send ``GET path`` and return ``(status, body)``; one retry on a fresh connection."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        req = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{extra}\r\n".encode()
        for attempt in (0, 1):
            fresh = self._sock is None
            s = self._sock or self._connect()
            try:
                s.sendall(req)
                return self._read_response(s)
            except (ConnectionError, _Closed):
                self.close()
                if attempt or fresh:
                    raise
        raise ConnectionError("unreachable")  # pragma: no cover

    def _read_response(self, s: socket.socket) -> tuple[int, bytes]:
        buf = self._buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = s.recv(65536)
            if not chunk:
                raise _Closed
            buf += chunk
        head = buf[:end].decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        length = 0
        close = False
        for h in head[1:]:
            k, _, v = h.partition(":")
            k = k.strip().lower()
            if k == "content-length":
                length = int(v)
            elif k == "connection" and v.strip().lower() == "close":
                close = True
            elif k == "transfer-encoding":
                raise ConnectionError("chunked responses are not supported by the oracle client")
        start = end + 4
        while len(buf) < start + length:
            chunk = s.recv(65536)
            if not chunk:
                raise _Closed
            buf += chunk
        body = buf[start : start + length]
        self._buf = buf[start + length :]
        if close:
            self.close()
        return status, body


class _Closed(Exception):
    pass


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports that were free on ``host`` a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for_port(host: str, port: int, timeout: float, alive: object = None) -> bool:
    """Poll until ``host:port`` accepts a TCP connection; False after ``timeout`` s.

    ``alive`` may be a callable returning False when the server process died.
    """
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        if callable(alive) and not alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
