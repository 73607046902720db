"""kube-proxy's IPVS mode: its virtual services read from ``ipvsadm -ln``.

:func:`meshstat.parsers.netfilter.ipvsadm.parse_ipvsadm_servers` reads the text into plain
:class:`VirtualServer` / :class:`RealServer` structures, :func:`ipvs_services` turns those
into :class:`ServiceInfo`; :func:`parse_ipvsadm` does both.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from meshstat.kubeproxy.service import EndpointInfo, ServiceInfo
from meshstat.parsers.netfilter.ipvsadm import VirtualServer, parse_ipvsadm_servers

__all__ = ["ipvs_services", "parse_ipvsadm"]


# --------------------------------------------------------------------------- kube-proxy services


def ipvs_services(servers: Iterable[VirtualServer], source: str = "<input>") -> list[ServiceInfo]:
    """The virtual servers as :class:`ServiceInfo`: shares are weight over total weight."""
    out: list[ServiceInfo] = []
    for vs in servers:
        total = sum(rs.weight for rs in vs.real_servers) or 1
        eps = tuple(
            EndpointInfo(rs.address, None, Fraction(rs.weight, total), None, (), rs.line, None)
            for rs in vs.real_servers
        )
        out.append(
            ServiceInfo(
                name=vs.address, protocol=vs.protocol, cluster_ip=vs.address.rsplit(":", 1)[0].strip("[]"),
                port=int(vs.address.rsplit(":", 1)[1]), cluster_chain=None, local_chain=None, endpoints=eps,
                affinity_timeout=vs.persistent, internal_policy=f"IPVS {vs.scheduler}", dialect="ipvs",
                source=source, line=vs.line,
            )  # fmt: skip
        )
    return out


def parse_ipvsadm(text: str, source: str = "<input>") -> list[ServiceInfo]:
    """Virtual services of ``ipvsadm -ln`` output (kube-proxy IPVS mode), as :class:`ServiceInfo`.

    Format: ``PROTO VIP:PORT SCHEDULER [persistent T]`` lines, each followed by
    ``-> RIP:PORT FORWARD WEIGHT ACTIVE INACTIVE`` lines (kubernetes
    ``pkg/proxy/ipvs/README.md``). An endpoint's ``share`` is its weight over the
    total: the long-run share of ``rr``/``wrr`` (a deterministic rotation, not an
    i.i.d. choice, so no route is built from it). ``persistent T`` is ClientIP
    affinity with timeout ``T``.

    Raises
    ------
    ConfigParseError
        For a line that is neither a header, a virtual service nor a real server.
    """
    return ipvs_services(parse_ipvsadm_servers(text, source), source)
