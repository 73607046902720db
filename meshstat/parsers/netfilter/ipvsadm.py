"""``ipvsadm -ln`` output (the IPVS table kube-proxy's IPVS mode programs) -> virtual servers.

Format: ``PROTO VIP:PORT SCHEDULER [persistent T]`` lines, each followed by
``-> RIP:PORT FORWARD WEIGHT ACTIVE INACTIVE`` lines (ipvsadm's ``list_service``
and ``print_service_entry`` in ``ipvsadm.c``). This module knows nothing of
kube-proxy: :mod:`meshstat.kubeproxy.ipvs` turns the servers into services.
Pure Python, standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshstat.errors import ConfigParseError

__all__ = ["RealServer", "VirtualServer", "parse_ipvsadm_servers"]


@dataclass(frozen=True, slots=True)
class RealServer:
    """One ``-> RIP:PORT FORWARD WEIGHT ACTIVE INACTIVE`` line: address, weight, line number."""

    address: str
    weight: int
    line: int


@dataclass(frozen=True, slots=True)
class VirtualServer:
    """One ``PROTO VIP:PORT SCHEDULER [persistent T]`` line and the real servers under it.

    ``protocol`` is lower case, ``address`` the ``VIP:PORT`` as printed,
    ``persistent`` the persistence timeout in seconds (None: not persistent).
    """

    protocol: str
    address: str
    scheduler: str
    persistent: int | None
    line: int
    real_servers: tuple[RealServer, ...] = ()


def _decimal(text: str, max_digits: int) -> bool:
    """ASCII digits only (``str.isdigit`` also takes ``'²'``), at most ``max_digits`` of them."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def parse_ipvsadm_servers(text: str, source: str = "<input>") -> list[VirtualServer]:
    """Virtual servers of ``ipvsadm -ln`` output, each with its real servers.

    Format: ``PROTO VIP:PORT SCHEDULER [persistent T]`` lines, each followed by
    ``-> RIP:PORT FORWARD WEIGHT ACTIVE INACTIVE`` lines; ``persistent``
    without a number is ipvsadm's default of 360 s.

    Raises
    ------
    ConfigParseError
        For a line that is neither a header, a virtual service nor a real server.
    """
    out: list[VirtualServer] = []
    cur: dict[str, Any] | None = None

    def flush() -> None:
        if cur is None:
            return
        out.append(
            VirtualServer(cur["proto"], cur["vip"], cur["sched"], cur["persist"], cur["line"], tuple(cur["eps"]))
        )

    any_line = False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        any_line = True
        parts = line.split()
        if line.startswith(("IP Virtual Server", "Prot LocalAddress", "-> RemoteAddress")):
            continue
        if parts[0] in ("TCP", "UDP", "SCTP") and len(parts) >= 3:
            vip_host, colon, vip_port = parts[1].rpartition(":")
            if not (colon and vip_host and _decimal(vip_port, 5) and int(vip_port) <= 65535):
                raise ConfigParseError(
                    "expected the virtual service as VIP:PORT (ipvsadm -ln)", source=source, line=n,
                    snippet=line,
                )
            flush()
            persist = None
            if "persistent" in parts:
                i = parts.index("persistent")
                persist = int(parts[i + 1]) if i + 1 < len(parts) and _decimal(parts[i + 1], 10) else 360
            cur = {"proto": parts[0].lower(), "vip": parts[1], "sched": parts[2], "persist": persist, "eps": [],
                   "line": n}  # fmt: skip
            continue
        if parts[0] == "->" and cur is not None and len(parts) >= 4 and _decimal(parts[3], 10):
            cur["eps"].append(RealServer(parts[1], int(parts[3]), n))
            continue
        raise ConfigParseError(
            "expected 'PROTO VIP:PORT SCHEDULER' or '-> RIP:PORT FORWARD WEIGHT ...' (ipvsadm -ln)",
            source=source, line=n, snippet=line,
        )
    if not any_line:
        raise ConfigParseError("empty input: expected ipvsadm -ln output", source=source)
    flush()
    return out
