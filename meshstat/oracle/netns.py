"""Netfilter oracle: real iptables / nftables rules in throw-away network namespaces.

A :class:`NetnsLab` is two network namespaces joined by a veth pair:

* the **client** namespace (``ms-<pid>-<n>-c``, ``198.18.0.1/30``, default route
  through the backend side): the place a pod or a node process connects from;
* the **backend** namespace (``ms-<pid>-<n>-b``, ``198.18.0.2/30``): plays the
  node and its pods. Rules loaded there see the client's connections in
  ``nat PREROUTING``, like kube-proxy's ``KUBE-SERVICES`` jump on a node; pod
  and service addresses are added to its loopback device, so a DNATed
  connection is delivered to a listener there and a connection that no rule
  rewrote reaches the service address itself (the fall-through outcome).

Rules can also be loaded into the client namespace (Istio's sidecar capture
rules live in the pod's own namespace). Addresses inside the namespaces are
invisible outside them: ``198.18.0.0/15`` is the RFC 2544 benchmarking block,
and the ``10.x`` service and pod addresses exist only in these namespaces.

Many clients: ``connect(..., source_addresses=[...])`` binds connection ``j``
to ``source_addresses[j % len]``; the addresses (``/32`` on the client's
loopback, inside ``198.18.0.0/15`` outside the veth ``/30``) are added first,
with routes back to them through the veth in the backend namespace. This is
what source-keyed state needs (kube-proxy's ``-m recent`` session affinity,
whose lists :meth:`NetnsLab.recent_list` reads from ``/proc/net/xt_recent``).

Counting: :mod:`meshstat.oracle._backend` listens on every backend address and
answers each request line with its own name; :mod:`meshstat.oracle._client`
opens ``N`` sequential TCP connections (``R`` request lines each) from the client
namespace and records which name answered each. NAT rules run on the first
packet of a connection only (conntrack), so the choice is per connection.

Clean-up: namespaces (with their veth ends) and the helper processes are removed
when the lab is closed, on exceptions, on Ctrl-C and on SIGTERM/SIGHUP (turned
into :class:`KeyboardInterrupt` while a lab is open). A lab left behind by a
killed run (``kill -9``) is removed by the next lab: :func:`cleanup_leftovers`
deletes namespaces named ``ms-<pid>-<n>-[cb]`` whose ``<pid>`` is no longer a
running process, after killing the processes inside them.

Besides the standard library, this module uses only meshstat's pure-Python
kube-proxy chain-name hash (:func:`meshstat.kubeproxy.kube_chain_hash`) and
numgen slot sizes (:func:`meshstat.model.numgen_range_count`): no numpy,
no scipy.

What is shared with meshstat and what is not, on purpose: the rule
generators (:func:`kube_proxy_ruleset`, :func:`nft_numgen_ruleset`) and the
finders (:func:`find_kube_service`, :func:`find_nft_numgen`) work on the text
alone, independently of :mod:`meshstat.kubeproxy` and :mod:`meshstat.parsers`
(:func:`kube_proxy_ruleset` and :func:`find_kube_service` are deliberate second
implementations of :func:`meshstat.kubeproxy.kube_proxy_iptables_save` and
:func:`meshstat.kubeproxy.find_service`), so that a mistake there cannot hide
in a conformance run; the chain-name hash (which the kernel never checks) and
the expected numgen shares (the very claim a conformance run tests) come from
meshstat.

Why this module is long: the lab's life cycle (namespaces, listeners, the
client, clean-up on exceptions and signals) and the text generators and finders
whose addresses it serves and counts are one harness; the finders are kept
beside the lab on purpose, apart from meshstat's parsers.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from meshstat.errors import ConfigParseError
from meshstat.kubeproxy import kube_chain_hash
from meshstat.model import numgen_range_count, numgen_slot_counts
from meshstat.oracle import OracleError, require_binary, require_root

__all__ = [
    "CLIENT_ADDRESS",
    "CLIENT_SOURCE_RANGE",
    "NAMESPACE_PREFIX",
    "ClientRun",
    "KubeService",
    "NetnsLab",
    "RecentEntry",
    "cleanup_leftovers",
    "find_kube_service",
    "kube_proxy_chain_name",
    "kube_proxy_ruleset",
    "nft_numgen_ruleset",
    "numgen_slot_shares",
    "xt_recent_ip_list_tot",
]

#: Every namespace the harness creates is named ``ms-<pid>-<n>-c`` / ``ms-<pid>-<n>-b``.
NAMESPACE_PREFIX = "ms-"
_NS_RE = re.compile(r"^ms-(\d+)-(\d+)-[cb]$")
#: Client side of the veth pair (RFC 2544 benchmarking block).
CLIENT_ADDRESS = "198.18.0.1"
BACKEND_LINK_ADDRESS = "198.18.0.2"
#: Extra client source addresses (``connect(source_addresses=...)``) must lie in this block ...
CLIENT_SOURCE_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
#: ... outside the veth link network.
_LINK_NETWORK = ipaddress.IPv4Network("198.18.0.0/30")
_XT_RECENT_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_HERE = Path(__file__).resolve().parent
_BACKEND_SCRIPT = _HERE / "_backend.py"
_CLIENT_SCRIPT = _HERE / "_client.py"
_counter = itertools.count(1)
_open_labs: set[NetnsLab] = set()
_lock = threading.Lock()


# --------------------------------------------------------------------------- processes


def _run(argv: Sequence[str], *, input: str | None = None, timeout: float = 60.0) -> str:
    """Run a command; return stdout; raise :class:`OracleError` with its stderr on failure."""
    try:
        proc = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise OracleError(f"{shlex.join(argv)}: timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        detail = "; ".join(msg[:3]) if msg else f"exit status {proc.returncode}"
        raise OracleError(f"{shlex.join(argv[:5])}{' ...' if len(argv) > 5 else ''}: {detail}")
    return proc.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    out = _run([require_binary("ip", package="iproute2"), "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_namespace_processes(ip: str, ns: str) -> None:
    try:
        pids = _run([ip, "netns", "pids", ns]).split()
    except OracleError:
        return
    for p in pids:
        try:
            os.kill(int(p), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _delete_namespace(ip: str, ns: str) -> None:
    _kill_namespace_processes(ip, ns)
    subprocess.run([ip, "netns", "del", ns], capture_output=True, check=False, timeout=30)


def cleanup_leftovers() -> list[str]:
    """Remove namespaces a crashed harness run left behind; return their names.

    Only names of the harness's own form ``ms-<pid>-<n>-c|b`` are considered,
    and only those whose ``<pid>`` is not a running process (a concurrent run
    keeps its labs). Processes inside them (the harness's listeners) are killed
    first, since a namespace lives on while a process is inside it.
    """
    ip = require_binary("ip", package="iproute2")
    removed = []
    for ns in list_namespaces():
        m = _NS_RE.match(ns)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            _delete_namespace(ip, ns)
            removed.append(ns)
    return removed


@contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt (main thread only) so ``finally`` runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------- results


@dataclass
class ClientRun:
    """What the connection client saw.

    Attributes
    ----------
    names : list of str
        Backend names in order of first appearance.
    sequence : list of int
        For every completed connection, the index in ``names`` of the backend
        that answered it.
    requests_per_connection : int
        Request lines sent on each connection.
    mixed : int
        Connections whose requests were answered by more than one backend.
    errors : int
        Connections that failed (refused, reset, timed out).
    elapsed : float
        Seconds the client spent.
    timed_out : bool
        The client stopped at its deadline before ``n`` connections.
    uid : int or None
        Owner of the client sockets.
    sources : list of str
        With ``connect(source_addresses=...)``: the source address of every
        completed connection (aligned with ``sequence``); empty otherwise.
    error_kinds : dict
        Failed connections by how they failed, only the kinds that occurred:
        ``"refused"`` (a RST or an ICMP port unreachable: what a REJECT or nft
        ``reject`` sends), ``"timeout"`` (no answer: a DROP), ``"unreachable"``
        (ICMP host or network unreachable), ``"other"``.
    """

    names: list[str]
    sequence: list[int]
    requests_per_connection: int = 1
    mixed: int = 0
    errors: int = 0
    elapsed: float = 0.0
    timed_out: bool = False
    uid: int | None = None
    sources: list[str] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Completed connections."""
        return len(self.sequence)

    def counts(self) -> dict[str, int]:
        """Connections per backend name."""
        out = dict.fromkeys(self.names, 0)
        for i in self.sequence:
            out[self.names[i]] += 1
        return out

    def sequence_names(self) -> list[str]:
        """Backend name of every connection, in order."""
        return [self.names[i] for i in self.sequence]


@dataclass(frozen=True)
class RecentEntry:
    """One line of ``/proc/net/xt_recent/<list>`` (``net/netfilter/xt_recent.c: recent_seq_show``).

    Attributes
    ----------
    address : str
        The remembered source address (``src=``).
    ttl : int
        TTL of the last packet seen (``ttl:``).
    last_seen : int
        Jiffies of the last ``--set``/``--update`` (``last_seen:``).
    oldest : int
        Index in ``stamps`` of the oldest remembered packet (``oldest_pkt:``).
    stamps : tuple of int
        Jiffies of the remembered packets, in the kernel's ring-buffer order
        (at most ``ip_pkt_list_tot``).
    """

    address: str
    ttl: int
    last_seen: int
    oldest: int
    stamps: tuple[int, ...]


_RECENT_LINE_RE = re.compile(r"src=(\S+) ttl: (\d+) last_seen: (\d+) oldest_pkt: (\d+)((?:,? \d+)*),?\s*$")


def _parse_recent(text: str, name: str) -> list[RecentEntry]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        # "src=%pI4 ttl: %u last_seen: %lu oldest_pkt: %u" then " %lu" / ", %lu" per stamp
        m = _RECENT_LINE_RE.match(line.strip())
        if not m:
            raise OracleError(f"/proc/net/xt_recent/{name}: unexpected line {line.strip()[:120]!r}")
        stamps = tuple(int(x) for x in m.group(5).replace(",", " ").split())
        out.append(RecentEntry(address=m.group(1), ttl=int(m.group(2)), last_seen=int(m.group(3)),
                               oldest=int(m.group(4)), stamps=stamps))
    return out


def xt_recent_ip_list_tot() -> int:
    """The kernel's ``xt_recent`` ``ip_list_tot`` (entries per list; default 100).

    Read from ``/sys/module/xt_recent/parameters/ip_list_tot``; the module is
    loaded by the first ``-m recent`` rule, so call this after loading one.

    Raises
    ------
    OracleError
        When the module parameter cannot be read.
    """
    path = Path("/sys/module/xt_recent/parameters/ip_list_tot")
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise OracleError(f"cannot read {path} (is the xt_recent module loaded?): {exc}") from None


@dataclass
class _Server:
    proc: subprocess.Popen[str]
    listen: dict[str, str]
    report: dict[str, dict[str, int]] = field(default_factory=dict)


# --------------------------------------------------------------------------- the lab


class NetnsLab:
    """Two network namespaces joined by a veth pair, with rules, listeners and a client.

    Use as a context manager; everything is removed on exit::

        with NetnsLab() as lab:
            lab.load_iptables(kube_proxy_ruleset(...))
            lab.serve({"b1": "10.244.1.1:8080", "b2": "10.244.1.2:8080"})
            run = lab.connect("10.96.0.10:80", 20_000)
            run.counts()

    Parameters
    ----------
    iptables : {"default", "nft", "legacy"}
        Which ``iptables-restore`` to use: the system default, ``iptables-nft-restore``
        or ``iptables-legacy-restore``.
    """

    def __init__(self, *, iptables: str = "default") -> None:
        require_root()
        self.ip = require_binary("ip", package="iproute2")
        restore = {
            "default": "iptables-restore",
            "nft": "iptables-nft-restore",
            "legacy": "iptables-legacy-restore",
        }
        if iptables not in restore:
            raise ValueError(f"iptables must be one of {sorted(restore)}, got {iptables!r}")
        self._restore_name = restore[iptables]
        self.number = next(_counter)
        base = f"{NAMESPACE_PREFIX}{os.getpid()}-{self.number}"
        self.client = base + "-c"
        self.backend = base + "-b"
        self._if_client = f"ms{os.getpid()}x{self.number}c"[:15]
        self._if_backend = f"ms{os.getpid()}x{self.number}b"[:15]
        self._servers: list[_Server] = []
        self._addresses: dict[str, set[str]] = {"client": set(), "backend": set()}
        self._routed_sources: set[ipaddress.IPv4Address] = set()
        self._created: list[str] = []
        self._closed = False
        self._signals: Any = None

    # ----------------------------------------------------------------- life cycle

    def __enter__(self) -> NetnsLab:
        self._signals = _signals_as_interrupt()
        self._signals.__enter__()
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __hash__(self) -> int:
        return id(self)

    def open(self) -> None:
        """Create the namespaces and the veth pair (removes old leftovers first)."""
        cleanup_leftovers()
        with _lock:
            _open_labs.add(self)
        ip = self.ip
        for ns in (self.client, self.backend):
            _run([ip, "netns", "add", ns])
            self._created.append(ns)
        _run([ip, "link", "add", self._if_client, "netns", self.client, "type", "veth",
              "peer", "name", self._if_backend, "netns", self.backend])
        batch_c = (
            f"link set lo up\naddr add {CLIENT_ADDRESS}/30 dev {self._if_client}\n"
            f"link set {self._if_client} up\nroute add default via {BACKEND_LINK_ADDRESS}\n"
        )
        batch_b = (
            f"link set lo up\naddr add {BACKEND_LINK_ADDRESS}/30 dev {self._if_backend}\n"
            f"link set {self._if_backend} up\n"
        )
        _run([ip, "-n", self.client, "-batch", "-"], input=batch_c)
        _run([ip, "-n", self.backend, "-batch", "-"], input=batch_b)
        # many short connections: a wide port range on the client side
        self.exec("client", ["sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535"])

    def close(self) -> None:
        """Stop the listeners and delete the namespaces (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            for srv in self._servers:
                _stop_server(srv, timeout=3.0)
            self._servers.clear()
            for ns in self._created:
                _delete_namespace(self.ip, ns)
            self._created.clear()
        finally:
            with _lock:
                _open_labs.discard(self)
            if self._signals is not None:
                self._signals.__exit__(None, None, None)
                self._signals = None

    def namespace(self, side: str) -> str:
        """The namespace name of ``side`` (``"client"`` or ``"backend"``)."""
        if side == "client":
            return self.client
        if side == "backend":
            return self.backend
        raise ValueError(f"side must be 'client' or 'backend', got {side!r}")

    # ----------------------------------------------------------------- configuration

    def exec(self, side: str, argv: Sequence[str], *, input: str | None = None, timeout: float = 60.0) -> str:
        """Run ``argv`` inside the namespace of ``side``; return its stdout."""
        return _run([self.ip, "netns", "exec", self.namespace(side), *argv], input=input, timeout=timeout)

    def add_addresses(self, addresses: Sequence[str], side: str = "backend") -> None:
        """Add ``/32`` addresses to the loopback device of ``side`` (pods, service IPs)."""
        new = [a for a in dict.fromkeys(addresses) if a not in self._addresses[side]]
        if not new:
            return
        batch = "".join(f"addr add {a}/32 dev lo\n" for a in new)
        _run([self.ip, "-n", self.namespace(side), "-batch", "-"], input=batch)
        self._addresses[side].update(new)

    def add_client_sources(self, addresses: Sequence[str]) -> None:
        """Make ``addresses`` usable as client source addresses.

        Each is added as a ``/32`` on the client's loopback, and the backend
        namespace gets a route to it through the veth (the collapsed networks,
        ``via 198.18.0.1``), so the answers come back. The addresses must be
        IPv4 inside :data:`CLIENT_SOURCE_RANGE` (``198.18.0.0/15``) and outside
        the veth's ``198.18.0.0/30``; nothing outside the lab's namespaces changes.
        """
        parsed = []
        for a in dict.fromkeys(addresses):
            try:
                ip = ipaddress.IPv4Address(a)
            except ValueError:
                raise ValueError(f"source address {a!r} is not an IPv4 address") from None
            if ip not in CLIENT_SOURCE_RANGE or ip in _LINK_NETWORK:
                raise ValueError(
                    f"source address {a} must be inside {CLIENT_SOURCE_RANGE} "
                    f"and outside the link {_LINK_NETWORK}"
                )
            parsed.append(ip)
        parsed = [ip for ip in parsed if ip not in self._routed_sources]
        if not parsed:
            return
        self.add_addresses([str(ip) for ip in parsed], side="client")
        nets = ipaddress.collapse_addresses(ipaddress.IPv4Network(ip) for ip in parsed)
        batch = "".join(f"route replace {n} via {CLIENT_ADDRESS} dev {self._if_backend}\n" for n in nets)
        _run([self.ip, "-n", self.backend, "-batch", "-"], input=batch)
        self._routed_sources.update(parsed)

    def recent_list(self, name: str, side: str = "backend") -> list[RecentEntry]:
        """The entries of the ``xt_recent`` list ``name`` in ``side`` (``/proc/net/xt_recent/<name>``).

        The lists are per network namespace: they live where the ``-m recent``
        rules were loaded (kube-proxy's rules: the backend side). Lines come in
        the kernel's hash-table order, not in LRU order.

        Raises
        ------
        OracleError
            When the list does not exist (no rule names it in that namespace).
        """
        if not _XT_RECENT_NAME_RE.match(name):
            raise ValueError(f"not an xt_recent list name: {name!r}")
        text = self.exec(side, ["cat", f"/proc/net/xt_recent/{name}"])
        return _parse_recent(text, name)

    def load_iptables(self, text: str, side: str = "backend", *, noflush: bool = False) -> None:
        """Load an ``iptables-save`` / ``iptables-restore`` text into ``side``.

        ``nfacct`` objects the rules name (``-m nfacct --nfacct-name X``, kube-proxy
        writes two) are created first, as the kernel refuses the rule otherwise.
        """
        names = sorted(set(re.findall(r"--nfacct-name\s+(\S+)", text)))
        if names:
            nfacct = require_binary("nfacct", package="nfacct")
            for name in names:
                try:
                    self.exec(side, [nfacct, "add", name.strip("\"'")])
                except OracleError as exc:
                    if "exist" not in str(exc).lower():
                        raise
        restore = require_binary(self._restore_name, package="iptables")
        argv = [restore] + (["--noflush"] if noflush else [])
        try:
            self.exec(side, argv, input=text)
        except OracleError as exc:
            raise OracleError(f"{self._restore_name} refused the rules: {exc}") from None

    def load_nft(self, text: str, side: str = "backend") -> None:
        """Load an nftables ruleset (``nft -f -``) into ``side``."""
        nft = require_binary("nft", package="nftables")
        try:
            self.exec(side, [nft, "-f", "-"], input=text)
        except OracleError as exc:
            raise OracleError(f"nft refused the ruleset: {exc}") from None

    def ensure_jump(self, chain: str, target: str, side: str = "backend", table: str = "nat") -> bool:
        """Insert ``-A chain -j target`` at the top of ``chain`` unless it jumps there already; True if added.

        Any rule of ``chain`` whose target is ``target`` counts (kube-proxy's carries a
        comment): a second jump would send a packet that returns from ``target``
        through it again.
        """
        ipt = require_binary("iptables", package="iptables")
        if self._restore_name == "iptables-legacy-restore":
            ipt = require_binary("iptables-legacy", package="iptables")
        listed = self.exec(side, [ipt, "-t", table, "-S", chain])
        if any(line.split()[-2:] == ["-j", target] for line in listed.splitlines() if line.startswith("-A ")):
            return False
        self.exec(side, [ipt, "-t", table, "-I", chain, "1", "-j", target])
        return True

    def no_icmp_rate_limit(self, side: str = "backend") -> None:
        """Let every REJECT of ``side`` answer: lift the kernel's ICMP rate limit in its namespace.

        A REJECT (iptables) or ``reject`` (nft) answers a TCP SYN with an ICMP
        port unreachable, which the kernel rate-limits per peer and per host
        (``net.ipv4.icmp_ratelimit``, ``icmp_msgs_per_sec``, for the types in
        ``icmp_ratemask``; ``net/ipv4/icmp.c: icmpv4_xrlim_allow``): some
        rejected connections of a burst would time out as if dropped. Both
        limits are switched off for every type, in this namespace only.
        """
        self.exec(side, ["sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0", "net.ipv4.icmp_ratemask=0"])

    # ----------------------------------------------------------------- traffic

    def serve(self, listen: Mapping[str, str], side: str = "backend", *, max_seconds: float = 900.0) -> None:
        """Start listeners ``{name: "ip:port"}`` in ``side`` (addresses are added to ``lo``).

        Returns once every socket listens. Loopback addresses (``127.x``) and
        ``0.0.0.0`` are not added.
        """
        if not listen:
            raise ValueError("serve() needs at least one listener")
        hosts = [addr.rpartition(":")[0] for addr in listen.values()]
        self.add_addresses([h for h in hosts if not h.startswith("127.") and h != "0.0.0.0"], side)
        argv = [self.ip, "netns", "exec", self.namespace(side), sys.executable, "-I", "-S",
                str(_BACKEND_SCRIPT), "--max-seconds", str(max_seconds)]
        argv += [f"{name}={addr}" for name, addr in listen.items()]
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )
        srv = _Server(proc=proc, listen=dict(listen))
        self._servers.append(srv)
        line = _readline(proc, timeout=15.0)
        if line.strip() != "READY":
            err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
            raise OracleError(f"listeners did not start in {side}: {(err or line).strip()[:300]}")

    def stop_servers(self) -> list[dict[str, dict[str, int]]]:
        """Stop all listeners; return each one's ``{"connections": ..., "requests": ...}`` counts."""
        out = []
        for srv in self._servers:
            _stop_server(srv, timeout=10.0)
            out.append(srv.report)
        self._servers.clear()
        return out

    def connect(
        self,
        target: str,
        n: int,
        *,
        requests_per_connection: int = 1,
        uid: int | None = None,
        side: str = "client",
        deadline: float = 240.0,
        timeout: float = 2.0,
        source_addresses: Sequence[str] | None = None,
        max_errors: int = 100,
    ) -> ClientRun:
        """Open ``n`` sequential TCP connections to ``target`` from ``side``.

        Parameters
        ----------
        target : str
            ``"ip:port"`` (a service address that the rules rewrite).
        n : int
            Connections (bounded: at most 10,000,000).
        requests_per_connection : int
            Request lines on each kept-alive connection.
        uid : int, optional
            Open the sockets as this user (``-m owner`` rules).
        side : str
            Namespace to connect from.
        deadline : float
            The client stops after this many seconds (``ClientRun.timed_out``).
        timeout : float
            Per-connection socket timeout.
        source_addresses : sequence of str, optional
            Client only: connection ``j`` binds to ``source_addresses[j %
            len(source_addresses)]`` (so ``[a] * 50 + [b] * 50`` with ``n=100``
            gives two clients of 50 connections each). The addresses are set up
            with :meth:`add_client_sources` first. ``ClientRun.sources`` then
            holds the source of every completed connection.
        max_errors : int
            The client stops after this many failed connections.
        """
        if not 0 < n <= 10_000_000:
            raise ValueError(f"n must be in 1..10,000,000, got {n}")
        if requests_per_connection < 1:
            raise ValueError("requests_per_connection must be >= 1")
        argv = [sys.executable, "-I", "-S", str(_CLIENT_SCRIPT), "--target", target, "-n", str(n),
                "-r", str(requests_per_connection), "--deadline", str(deadline), "--timeout", str(timeout),
                "--max-errors", str(int(max_errors))]
        if uid is not None:
            argv += ["--uid", str(int(uid))]
        stdin = None
        sources: list[str] = []
        if source_addresses is not None:
            if side != "client":
                raise ValueError("source_addresses are set up on the client side only")
            sources = [str(a) for a in source_addresses]
            if not sources:
                raise ValueError("source_addresses is empty")
            self.add_client_sources(sources)
            argv.append("--sources-stdin")
            stdin = json.dumps(sources)
        out = self.exec(side, argv, input=stdin, timeout=deadline + 60.0)
        data = json.loads(out.strip().splitlines()[-1])
        return ClientRun(
            names=data["names"], sequence=data["seq"], requests_per_connection=requests_per_connection,
            mixed=data["mixed"], errors=data["errors"], elapsed=data["elapsed"],
            timed_out=data["timed_out"], uid=uid, sources=[sources[i] for i in data.get("src", [])],
            error_kinds=dict(data.get("error_kinds", {})),
        )


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    r, _, _ = select.select([proc.stdout], [], [], timeout)
    if not r:
        return ""
    return proc.stdout.readline()


def _stop_server(srv: _Server, timeout: float) -> None:
    proc = srv.proc
    if proc.poll() is None:
        try:
            assert proc.stdin is not None
            proc.stdin.close()
        except OSError:
            pass
        line = _readline(proc, timeout)
        if line.strip().startswith("{"):
            srv.report = json.loads(line)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    for f in (proc.stdout, proc.stderr, proc.stdin):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass


# --------------------------------------------------------------------------- rule generators


def kube_proxy_chain_name(prefix: str, service_port: str, protocol: str = "tcp", endpoint: str = "") -> str:
    """kube-proxy's chain name: ``prefix + base32(sha256(svcPortName + proto + endpoint))[:16]``.

    Source: kubernetes ``pkg/proxy/iptables/proxier.go: portProtoHash``,
    ``servicePortChainName``, ``servicePortEndpointChainName``. The hash is
    :func:`meshstat.kubeproxy.kube_chain_hash`: the kernel never checks chain
    names, so a second implementation here would test nothing a conformance run
    can see (and :func:`kube_proxy_ruleset`'s output is compared line by line
    with kube-proxy's own expected rules, which checks the hash against the real
    thing).
    """
    return prefix + kube_chain_hash(service_port, protocol, endpoint)


def kube_proxy_ruleset(
    cluster_ip: str,
    port: int,
    endpoints: Sequence[str],
    *,
    probabilities: Sequence[str] | None = None,
    service: str = "default/svc:http",
    fall_through: bool = False,
    pod_cidr: str = "10.244.0.0/16",
    affinity_timeout: int | None = None,
) -> str:
    """An ``iptables-restore`` nat table shaped like kube-proxy's for one TCP service.

    ``KUBE-SERVICES`` (jumped to from PREROUTING and OUTPUT) sends
    ``cluster_ip:port`` to ``KUBE-SVC-*``, which holds the masquerade rule and
    the statistic cascade to one ``KUBE-SEP-*`` chain per endpoint, each a
    ``DNAT --to-destination``; layout of kubernetes ``pkg/proxy/iptables/proxier.go:
    syncProxyRules`` / ``writeServiceToEndpointRules``.

    Parameters
    ----------
    cluster_ip, port : str, int
        The service address.
    endpoints : sequence of str
        ``"ip:port"`` in cascade order (kube-proxy sorts them as strings; the
        caller decides).
    probabilities : sequence of str, optional
        ``--probability`` text per statistic rule. Default: kube-proxy's
        ``"%0.10f" % (1 / (n - i))`` for the first ``n - 1`` endpoints; with
        ``fall_through``, one per endpoint is required.
    service : str
        ``"ns/name:portName"`` for comments and chain hashes.
    fall_through : bool
        Every endpoint rule carries a statistic match (no unconditional last
        rule); unmatched connections leave the chain unchanged.
    pod_cidr : str
        Source range exempted from the masquerade mark.
    affinity_timeout : int, optional
        ``sessionAffinity: ClientIP`` with ``timeoutSeconds``: kube-proxy's
        rules in its written form (kubernetes ``pkg/proxy/iptables/proxier.go:
        writeServiceToEndpointRules`` and the endpoint-chain part of
        ``syncProxyRules``): after the masquerade rule and before the cascade,
        one ``-m comment --comment "<svc> -> <ip:port>" -m recent --name
        KUBE-SEP-Y --rcheck --seconds <timeout> --reap -j KUBE-SEP-Y`` per
        endpoint, in endpoint order; in every ``KUBE-SEP-Y``, ``-m recent --name
        KUBE-SEP-Y --set`` on the DNAT rule. The xt_recent list of an endpoint is
        named after its chain.

    Notes
    -----
    Deliberately independent of :func:`meshstat.kubeproxy.kube_proxy_iptables_save`
    (which prints the normalised ``iptables-save`` form, its probabilities
    computed through meshstat's own :func:`meshstat.model.probability_to_threshold`):
    this generator writes what kube-proxy itself writes, Go's ``%0.10f``
    probability texts included, so that ``iptables-restore`` (libxt_statistic)
    turns them into the kernel's thresholds and a conformance run compares the
    kernel with meshstat's model rather than meshstat with itself.
    """
    n = len(endpoints)
    if n < 1:
        raise ValueError("at least one endpoint")
    if affinity_timeout is not None and (
        isinstance(affinity_timeout, bool) or not isinstance(affinity_timeout, int) or affinity_timeout < 1
    ):
        raise ValueError(f"affinity_timeout must be a positive integer (seconds), got {affinity_timeout!r}")
    if probabilities is None:
        if fall_through:
            raise ValueError("a fall-through cascade needs explicit probabilities, one per endpoint")
        probabilities = [f"{1.0 / (n - i):.10f}" for i in range(n - 1)]
    want = n if fall_through else n - 1
    if len(probabilities) != want:
        raise ValueError(f"{want} probabilities expected for {n} endpoints, got {len(probabilities)}")
    svc_chain = kube_proxy_chain_name("KUBE-SVC-", service)
    seps = [kube_proxy_chain_name("KUBE-SEP-", service, "tcp", ep) for ep in endpoints]
    svc_comment = f'"{service} cluster IP"'
    lines = [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":INPUT ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
        f":{svc_chain} - [0:0]",
        *[f":{s} - [0:0]" for s in seps],
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
        f"-A KUBE-SERVICES -m comment --comment {svc_comment} -m tcp -p tcp -d {cluster_ip} --dport {port} "
        f"-j {svc_chain}",
        f"-A {svc_chain} -m comment --comment {svc_comment} -m tcp -p tcp -d {cluster_ip} --dport {port} "
        f"! -s {pod_cidr} -j KUBE-MARK-MASQ",
    ]
    if affinity_timeout is not None:
        for ep, sep in zip(endpoints, seps, strict=True):
            lines.append(
                f'-A {svc_chain} -m comment --comment "{service} -> {ep}" -m recent --name {sep} '
                f"--rcheck --seconds {affinity_timeout} --reap -j {sep}"
            )
    recent_set = " -m recent --name {sep} --set" if affinity_timeout is not None else ""
    for i, (ep, sep) in enumerate(zip(endpoints, seps, strict=True)):
        stat = ""
        if i < len(probabilities):
            stat = f" -m statistic --mode random --probability {probabilities[i]}"
        lines.append(f'-A {svc_chain} -m comment --comment "{service} -> {ep}"{stat} -j {sep}')
    for ep, sep in zip(endpoints, seps, strict=True):
        ip = ep.rpartition(":")[0]
        lines.append(f"-A {sep} -m comment --comment {service} -s {ip} -j KUBE-MARK-MASQ")
        lines.append(
            f"-A {sep} -m comment --comment {service}{recent_set.format(sep=sep)} -m tcp -p tcp "
            f"-j DNAT --to-destination {ep}"
        )
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def nft_numgen_ruleset(
    address: str,
    port: int,
    endpoints: Sequence[str],
    slots: Sequence[int],
    *,
    table: str = "meshstat",
) -> str:
    """An nftables ruleset: ``numgen random mod N vmap`` over per-endpoint DNAT chains.

    The shape kube-proxy's nftables mode writes (``pkg/proxy/nftables/proxier.go``:
    one ``goto`` per slot), generalised to a weighted slot map: ``slots[s]`` is
    the endpoint index slot ``s`` goes to, so ``[0, 0, 0, 1]`` sends 3/4 to the
    first endpoint. Endpoint chains come first because ``nft -f`` refuses a
    ``goto`` to a chain defined later in the same file.
    """
    if not slots or any(not 0 <= s < len(endpoints) for s in slots):
        raise ValueError("every slot must name an endpoint index")
    parts = [f"table ip {table} {{"]
    for i, ep in enumerate(endpoints):
        parts.append(f"\tchain ep{i} {{\n\t\tmeta l4proto tcp dnat to {ep}\n\t}}")
    entries = []
    start = 0
    for s in range(1, len(slots) + 1):
        if s == len(slots) or slots[s] != slots[start]:
            key = f"{start}" if s - 1 == start else f"{start}-{s - 1}"
            entries.append(f"{key} : goto ep{slots[start]}")
            start = s
    parts.append(
        "\tchain prerouting {\n\t\ttype nat hook prerouting priority -100; policy accept;\n"
        f"\t\tip daddr {address} tcp dport {port} "
        f"numgen random mod {len(slots)} vmap {{ {', '.join(entries)} }}\n"
        "\t}"
    )
    parts.append("}")
    return "\n".join(parts) + "\n"


def numgen_slot_shares(modulus: int, ranges: Sequence[tuple[int, int]] | None = None) -> tuple[Fraction, ...]:
    """Exact probability of each slot of ``numgen random mod N``, or of each slot range.

    The kernel draws ``r = get_random_u32()`` and returns
    ``reciprocal_scale(r, N) = floor(r * N / 2**32)`` (linux
    ``net/netfilter/nft_numgen.c: nft_ng_random_gen``), so slot ``s`` gets the
    ``r`` in ``[ceil(s 2**32 / N), ceil((s+1) 2**32 / N))``. With ``ranges``
    (inclusive ``(lo, hi)`` pairs) the share of every range is returned, in
    closed form whatever the modulus; without, one share per slot (small
    moduli only). The counts are meshstat's own
    (:func:`meshstat.model.numgen_range_count`, the ones
    :class:`meshstat.netfilter.Numgen` uses), so a conformance run compares the
    kernel with meshstat's model, not with a copy of it.
    """
    if modulus < 1:
        raise ValueError("modulus must be >= 1")
    two32 = 1 << 32
    if ranges is None:
        return tuple(Fraction(c, two32) for c in numgen_slot_counts(modulus))
    return tuple(Fraction(numgen_range_count(modulus, lo, hi), two32) for lo, hi in ranges)


# --------------------------------------------------------------------------- iptables-save discovery


@dataclass(frozen=True)
class KubeService:
    """One kube-proxy service port found in an ``iptables-save`` text.

    Attributes
    ----------
    service : str
        ``ns/name[:port]`` as in the rule comment.
    cluster_ip : str
    port : int
    protocol : str
    chain : str
        The ``KUBE-SVC-*`` (or ``KUBE-SVL-*``) chain.
    endpoints : tuple of (str, str, str or None, int)
        ``(sep_chain, "ip:port", probability text or None, line)`` in cascade order.
    """

    service: str
    cluster_ip: str
    port: int
    protocol: str
    chain: str
    endpoints: tuple[tuple[str, str, str | None, int], ...]

    @property
    def fall_through(self) -> bool:
        """The last endpoint rule carries a statistic match too."""
        return bool(self.endpoints) and self.endpoints[-1][2] is not None


def find_kube_service(text: str, service: str, *, source: str = "<input>") -> KubeService:
    """Find ``service`` (``ns/name`` or ``ns/name:portName``) in an iptables-save nat table.

    Reads the ``KUBE-SERVICES`` rule commented ``"<service> cluster IP"``, the
    statistic cascade in its ``KUBE-SVC-*`` chain (affinity ``-m recent`` and
    ``KUBE-MARK-MASQ`` rules are skipped) and the ``DNAT --to-destination`` of
    every ``KUBE-SEP-*`` chain. Used by ``meshstat validate`` to know which
    addresses to listen on.

    A second reader on purpose, independent of :func:`meshstat.kubeproxy.find_service`
    and :mod:`meshstat.parsers`: ``validate`` takes the model's shares from
    :func:`meshstat.kubeproxy.load_service_route` and the addresses to count
    from here, so where the lab listens and what it counts come from the text the
    kernel gets, not from meshstat's reading of it, and meshstat's predicted
    shares are then tested against what the kernel did.

    Raises
    ------
    ConfigParseError
        When the service, its chain or an endpoint's DNAT target is missing.
    """
    rules: dict[str, list[tuple[int, str]]] = {}
    in_nat = False
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("*"):
            in_nat = line.replace(" ", "") == "*nat"
        elif in_nat and line.startswith("-A "):
            parts = line.split(None, 2)
            if len(parts) >= 2:
                rules.setdefault(parts[1], []).append((no, line))
    if not rules:
        raise ConfigParseError(
            "expected an iptables-save nat table (*nat with -A rules)", source=source, line=1
        )
    want = service.strip()
    found = None
    for no, line in rules.get("KUBE-SERVICES", []):
        m = re.search(r'--comment "?([^"]+?) cluster IP"?(\s|$)', line)
        if m and m.group(1) == want:
            found = (no, line)
            break
    if found is None:
        known = sorted(
            {m.group(1) for _, ln in rules.get("KUBE-SERVICES", [])
             if (m := re.search(r'--comment "?([^"]+?) cluster IP"?(\s|$)', ln))}
        )
        hint = f"; services in the file: {', '.join(known[:8])}" if known else ""
        raise ConfigParseError(
            f"no KUBE-SERVICES rule for service {want!r} (cluster IP){hint}", source=source
        )
    no, line = found
    d = re.search(r"\s-d\s+(\d+\.\d+\.\d+\.\d+)(?:/32)?\s", line + " ")
    dport = re.search(r"--dport\s+(\d+)", line)
    proto = re.search(r"\s-p\s+(\w+)", line)
    jump = re.search(r"\s-j\s+(KUBE-SV[CL]-\S+)", line)
    if not (d and dport and jump):
        raise ConfigParseError(
            "expected '-d <clusterIP> ... --dport <port> -j KUBE-SVC-...' in the service rule",
            source=source, line=no, snippet=line,
        )
    chain = jump.group(1)
    eps: list[tuple[str, str, str | None, int]] = []
    for rno, rule in rules.get(chain, []):
        j = re.search(r"\s-j\s+(KUBE-SEP-\S+)", rule)
        if not j or " -m recent" in rule:
            continue
        p = re.search(r"--probability\s+(\S+)", rule)
        sep = j.group(1)
        dest = None
        for _sno, srule in rules.get(sep, []):
            t = re.search(r"--to-destination\s+(\S+)", srule)
            if t:
                dest = t.group(1)
        if dest is None:
            raise ConfigParseError(
                f"chain {sep} has no 'DNAT --to-destination ip:port' rule",
                source=source, line=rno, snippet=rule,
            )
        eps.append((sep, dest, p.group(1) if p else None, rno))
    if not eps:
        raise ConfigParseError(
            f"chain {chain} has no endpoint rules (-j KUBE-SEP-...)", source=source, line=no
        )
    for _sep, _dest, prob, rno in eps[:-1]:
        if prob is None:
            raise ConfigParseError(
                "an unconditional endpoint rule before the last one: later endpoints are unreachable",
                source=source, line=rno,
            )
    return KubeService(
        service=want, cluster_ip=d.group(1), port=int(dport.group(1)),
        protocol=(proto.group(1).lower() if proto else "tcp"), chain=chain, endpoints=tuple(eps),
    )


def open_labs() -> int:
    """Number of labs open in this process (for tests of the clean-up)."""
    with _lock:
        return len(_open_labs)



# --------------------------------------------------------------------------- nft discovery


@dataclass(frozen=True)
class NftNumgen:
    """A ``numgen random mod N vmap`` split found in an nftables text.

    Attributes
    ----------
    chain : str
        Chain holding the ``numgen`` rule.
    modulus : int
    slots : tuple of (int, int, str)
        The map's slot ranges ``(lo, hi, target chain)``, covering ``0..N-1``.
    destinations : dict
        ``target chain -> "ip:port"`` of its ``dnat to``.
    line : int
    """

    chain: str
    modulus: int
    slots: tuple[tuple[int, int, str], ...]
    destinations: dict[str, str]
    line: int

    def shares(self) -> dict[str, Fraction]:
        """Exact share of every destination ``"ip:port"`` (ranges summed, :func:`numgen_slot_shares`)."""
        per_range = numgen_slot_shares(self.modulus, [(lo, hi) for lo, hi, _c in self.slots])
        out: dict[str, Fraction] = {}
        for (_lo, _hi, chain), s in zip(self.slots, per_range, strict=True):
            dest = self.destinations[chain]
            out[dest] = out.get(dest, Fraction(0)) + s
        return out


def _nft_chains(text: str) -> dict[str, list[tuple[int, str]]]:
    """Rules per chain, from ``nft list`` blocks or ``add rule FAMILY TABLE CHAIN ...`` lines."""
    chains: dict[str, list[tuple[int, str]]] = {}
    current: str | None = None
    depth = 0
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        m = re.match(r"add rule \S+ \S+ (\S+) (.*)$", line)
        if m:
            chains.setdefault(m.group(1), []).append((no, m.group(2)))
            continue
        m = re.match(r"chain (\S+) \{", line)
        if m and current is None:
            current, depth = m.group(1), 1
            chains.setdefault(current, [])
            continue
        if current is not None:
            depth += line.count("{") - line.count("}")
            if depth <= 0:
                current = None
            elif line and not line.startswith(("type ", "#")):
                chains[current].append((no, line))
    return chains


def find_nft_numgen(
    text: str, *, address: str | None = None, chain: str | None = None, source: str = "<input>"
) -> NftNumgen:
    """Find the ``numgen random mod N vmap { slot : goto chain, ... }`` that splits a service.

    The rule is chosen by ``chain``; else by ``address`` (``ip:port``) through a
    kube-proxy ``service-ips`` element ``ip . tcp . port : goto CHAIN``; else
    the only ``numgen`` rule of the text. Every target chain must hold a
    ``dnat to ip:port``. Independent of :mod:`meshstat.parsers.netfilter.nft` and
    :mod:`meshstat.kubeproxy` on purpose (as :func:`find_kube_service`).
    """
    chains = _nft_chains(text)
    if chain is None and address is not None:
        ip, _, port = address.rpartition(":")
        m = re.search(rf"(?<![\d.]){re.escape(ip)} \. tcp \. {re.escape(port)} : goto (\S+?)[,\s}}]", text)
        if m:
            chain = m.group(1)
    found = []
    for name, rules in chains.items():
        if chain is not None and name != chain:
            continue
        for no, rule in rules:
            m = re.search(r"numgen random mod (\d+) vmap \{([^}]*)\}", rule)
            if m:
                found.append((name, no, int(m.group(1)), m.group(2)))
    if not found:
        what = f" in chain {chain}" if chain else ""
        raise ConfigParseError(f"expected a 'numgen random mod N vmap {{ ... }}' rule{what}", source=source)
    if len(found) > 1:
        names = ", ".join(sorted({f[0] for f in found})[:6])
        raise ConfigParseError(
            f"{len(found)} numgen rules ({names}); name one with --chain or --address", source=source
        )
    name, no, modulus, body = found[0]
    ranges: list[tuple[int, int, str]] = []
    for entry in body.split(","):
        m = re.match(r"\s*(\d+)(?:\s*-\s*(\d+))?\s*:\s*(?:goto|jump)\s+(\S+)\s*$", entry)
        if not m:
            raise ConfigParseError("expected 'slot[-slot] : goto CHAIN' in the vmap", source=source, line=no,
                                   snippet=entry.strip())
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi >= modulus or lo > hi:
            raise ConfigParseError(f"vmap slot {lo}-{hi} outside 0..{modulus - 1}", source=source, line=no)
        ranges.append((lo, hi, m.group(3)))
    ranges.sort()
    nxt = 0
    for lo, hi, _c in ranges:  # ranges, never slot by slot: a modulus may be 4294967295
        if lo < nxt:
            raise ConfigParseError(f"vmap slot {lo} is mapped twice", source=source, line=no)
        if lo > nxt:
            raise ConfigParseError(f"vmap has no entry for slots {nxt}-{lo - 1} (those packets are not split)",
                                   source=source, line=no)
        nxt = hi + 1
    if nxt < modulus:
        raise ConfigParseError(f"vmap has no entry for slots {nxt}-{modulus - 1} (those packets are not split)",
                               source=source, line=no)
    slots = [c for _lo, _hi, c in ranges]
    dests: dict[str, str] = {}
    for target in set(slots):
        for _tno, rule in chains.get(target, []):  # type: ignore[arg-type]
            m = re.search(r"dnat (?:ip )?to (\d+\.\d+\.\d+\.\d+:\d+)", rule)
            if m:
                dests[target] = m.group(1)  # type: ignore[index]
        if target not in dests:
            raise ConfigParseError(f"chain {target} has no 'dnat to ip:port'", source=source, line=no)
    return NftNumgen(chain=name, modulus=modulus, slots=tuple(ranges), destinations=dests, line=no)
