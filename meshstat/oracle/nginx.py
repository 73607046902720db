"""nginx oracle: run a real nginx on 127.0.0.1 and record which upstream served each request.

:class:`NginxOracle` writes a configuration with its own prefix, pid file,
logs and temp directories (nothing of the system nginx is touched)::

    worker_processes 1;                      # one round-robin state
    http {
        upstream meshstat_up { server 127.0.0.1:P1 weight=5; server 127.0.0.1:P2; ... }
        server { listen 127.0.0.1:FRONT; location / { proxy_pass http://meshstat_up; } }
        server { listen 127.0.0.1:P1; return 200 "<name1>"; }    # one per upstream server
    }

The upstream servers are extra ``server`` blocks of the same nginx answering
with their own name, so the body of every response names the peer nginx
picked. nginx talks HTTP/1.0 to upstreams without ``keepalive`` and picks a
peer for every request (``ngx_http_upstream_get_round_robin_peer``), so the
request sequence is nginx's pick sequence. ``proxy_next_upstream off`` keeps a
failed pick from being retried on another peer.

The nginx binary is looked up on ``PATH`` and in ``/usr/sbin`` (Debian package
``nginx-light`` or ``nginx``). Root is not needed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from meshstat.oracle import OracleError, require_binary, stop_process_group
from meshstat.oracle._http import KeepAliveClient, free_ports, wait_for_port
from meshstat.parsers.nginx import Upstream, UpstreamServer

__all__ = ["NginxOracle", "NginxRun", "nginx_binary"]


def nginx_binary() -> str:
    """Path of the nginx binary (raises :class:`~meshstat.oracle.OracleUnavailable`)."""
    return require_binary("nginx", package="nginx-light")


@dataclass
class NginxRun:
    """Responses in order: ``sequence[j]`` is the index of the server (in the upstream) that answered."""

    sequence: list[int]
    names: list[str]
    errors: int
    elapsed: float

    def sequence_names(self) -> list[str]:
        """Server names in request order."""
        return [self.names[i] for i in self.sequence]

    def counts(self) -> list[int]:
        """Requests per server."""
        out = [0] * len(self.names)
        for i in self.sequence:
            out[i] += 1
        return out


class NginxOracle:
    """A private nginx with one upstream of loopback backends.

    Parameters
    ----------
    servers : sequence of UpstreamServer or (weight, flags) pairs
        The upstream's ``server`` lines; their addresses are replaced by free
        loopback ports. Plain ints are weights.
    names : sequence of str, optional
        Name each backend answers with (default ``s1, s2, ...``).
    balancer : str, optional
        Extra balancing directive (``least_conn``...); default round robin.
    """

    def __init__(
        self,
        servers: Sequence[UpstreamServer | int],
        *,
        names: Sequence[str] | None = None,
        balancer: str | None = None,
    ) -> None:
        self.binary = nginx_binary()
        self.servers = [
            s if isinstance(s, UpstreamServer) else UpstreamServer("", weight=int(s)) for s in servers
        ]
        if not self.servers:
            raise ValueError("at least one upstream server")
        self.names = list(names) if names is not None else [f"s{i + 1}" for i in range(len(self.servers))]
        if len(self.names) != len(self.servers) or len(set(self.names)) != len(self.names):
            raise ValueError("one unique name per server")
        if any(not n.replace("-", "").replace("_", "").isalnum() for n in self.names):
            raise ValueError("names must be alphanumeric (with - or _)")
        self.balancer = balancer
        self._dir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        ports = free_ports(len(self.servers) + 1)
        self.port = ports[0]
        self.backend_ports = ports[1:]

    @classmethod
    def from_upstream(cls, upstream: Upstream) -> NginxOracle:
        """Same weights and flags as a parsed upstream (addresses replaced by loopback ports)."""
        names = [f"s{i + 1}" for i in range(len(upstream.servers))]
        bal = None if upstream.balancer == "round_robin" else upstream.balancer
        return cls(list(upstream.servers), names=names, balancer=bal)

    def config(self, prefix: str) -> str:
        """The nginx.conf text for ``prefix``."""
        lines = []
        for s, port in zip(self.servers, self.backend_ports, strict=True):
            flags = f" weight={s.weight}" + (" backup" if s.backup else "") + (" down" if s.down else "")
            lines.append(f"        server 127.0.0.1:{port}{flags};")
        upstream = "\n".join(lines)
        bal = f"        {self.balancer};\n" if self.balancer else ""
        backends = "\n".join(
            f"    server {{ listen 127.0.0.1:{port}; access_log off; "
            f'location / {{ default_type text/plain; return 200 "{name}"; }} }}'
            for name, port in zip(self.names, self.backend_ports, strict=True)
        )
        p = prefix
        return f"""# generated by meshstat.oracle.nginx
worker_processes 1;
daemon off;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {p}/tmp/client;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    keepalive_requests 100000;
    upstream meshstat_up {{
{bal}{upstream}
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://meshstat_up;
            proxy_next_upstream off;
        }}
    }}
{backends}
}}
"""

    def start(self, timeout: float = 15.0) -> None:
        """Write the prefix and start nginx in the foreground of a child process."""
        self._dir = tempfile.mkdtemp(prefix="meshstat-nginx-")
        os.chmod(self._dir, 0o755)
        Path(self._dir, "tmp").mkdir()
        conf = Path(self._dir, "nginx.conf")
        conf.write_text(self.config(self._dir), encoding="utf-8")
        argv = [self.binary, "-p", self._dir, "-c", str(conf), "-e", f"{self._dir}/error.log"]
        test = subprocess.run([*argv, "-t", "-q"], capture_output=True, text=True, timeout=30, check=False)
        if test.returncode != 0:
            raise OracleError(f"nginx -t refused the generated config: {test.stderr.strip()[:300]}")
        self._proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      start_new_session=True)
        ports = [self.port, *self.backend_ports]
        for port in ports:
            if not wait_for_port("127.0.0.1", port, timeout, alive=lambda: self._proc.poll() is None):
                err = self._errors()
                self.stop()
                raise OracleError(f"nginx did not listen on 127.0.0.1:{port}: {err}")

    def _errors(self) -> str:
        if self._dir is None:
            return ""
        try:
            return Path(self._dir, "error.log").read_text(errors="replace").strip()[-300:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop nginx (SIGQUIT, then SIGKILL) and remove the prefix."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process_group(proc, signal.SIGQUIT, timeout=5)
            if proc.stderr is not None:
                proc.stderr.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> NginxOracle:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests(self, n: int, *, deadline: float = 120.0) -> NginxRun:
        """Send ``n`` sequential requests (bounded by ``deadline`` seconds); record who answered."""
        if not 0 < n <= 1_000_000:
            raise ValueError("n must be in 1..1,000,000")
        index = {name.encode(): i for i, name in enumerate(self.names)}
        seq: list[int] = []
        errors = 0
        start = time.monotonic()
        with KeepAliveClient("127.0.0.1", self.port) as c:
            for _ in range(n):
                if time.monotonic() - start > deadline:
                    break
                try:
                    status, body = c.get("/")
                except OSError:
                    errors += 1
                    if errors > 100:
                        break
                    continue
                i = index.get(body) if status == 200 else None
                if i is None:
                    errors += 1
                else:
                    seq.append(i)
        return NginxRun(sequence=seq, names=list(self.names), errors=errors, elapsed=time.monotonic() - start)
