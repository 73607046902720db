"""Finding kube-proxy services in a dump, whichever mode (iptables or nftables) wrote it.

:func:`services` lists them, :func:`find_service` finds one by name (through
kube-proxy's chain hash first, then the comments) or by cluster IP and port,
:func:`load_service_route` reads a dump and returns one service as a
:class:`meshstat.model.Route`: the kube-proxy cascade with the stored
thresholds (:class:`meshstat.model.Cascade`) or the nft numgen split
(:class:`meshstat.netfilter.Numgen`).
"""

from __future__ import annotations

import gc
from typing import Any

from meshstat import model
from meshstat.errors import InvalidArgument
from meshstat.inputs import ascii_digits
from meshstat.kubeproxy.iptables import IptablesServices
from meshstat.kubeproxy.nftables import nft_services
from meshstat.kubeproxy.service import ServiceInfo, family_of, kube_chain_hash, service_route
from meshstat.netfilter.reader import load
from meshstat.parsers.netfilter.ruleset import FREEZE_RULES, Ruleset

__all__ = ["find_service", "load_service_route", "service_notes", "services"]


def _service_index(rs: Ruleset, family: str | None = None) -> dict[str, Any]:
    """Name -> ServiceInfo and (ip, port, proto) -> ServiceInfo for every service (built once)."""
    fam = family_of(rs, family)
    key = f"services:{fam}"
    idx = rs.cache.get(key)
    if idx is not None:
        return idx
    notes: list[str] = []
    if rs.dialect == "nft":
        infos, notes = nft_services(rs, fam)
    else:
        reader = IptablesServices(rs, fam)
        # Reading every service builds the matches of nearly every rule (the parser
        # builds them on first access): pause the cyclic collector as the parser does,
        # or its full collections rescan the new objects again and again (twice the
        # time for 10,000 services).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            infos = [reader.info(s) for s in reader.suffixes()]
            known = {i.name for i in infos}
            # present in a state other than "routed": only filter rules name them (no endpoints, no
            # local endpoints), or a partial sync jumps to chains it does not define
            infos += [i for i in reader.rejected() if i.name not in known]
            known |= {i.name for i in infos}
            infos += [i for i in reader.partial() if i.name not in known]
            if rs.rule_count > FREEZE_RULES:
                gc.freeze()  # acyclic, freed by reference counting (see parse_iptables)
        finally:
            if gc_was_enabled:
                gc.enable()
    infos.sort(key=lambda i: (i.name, i.protocol))
    by_name: dict[str, list[ServiceInfo]] = {}
    by_addr: dict[tuple[str, int, str], ServiceInfo] = {}
    for i in infos:
        by_name.setdefault(i.name, []).append(i)
        if "/" in i.name and ":" in i.name:  # "ns/svc" finds a service whose only port is named
            by_name.setdefault(i.name.split(":", 1)[0], []).append(i)
        if i.cluster_ip is not None and i.port is not None:
            by_addr[(i.cluster_ip, i.port, i.protocol)] = i
        for ext in i.external_ips:  # an external or load-balancer IP:port finds its service too
            ip, _, port = ext.rpartition(":")
            if ascii_digits(port):
                by_addr.setdefault((ip.strip("[]"), int(port), i.protocol), i)
    idx = {"list": infos, "name": by_name, "addr": by_addr, "notes": notes}
    rs.cache[key] = idx
    return idx


def services(ruleset: Ruleset, *, family: str | None = None) -> list[ServiceInfo]:
    """All kube-proxy services of a dump, sorted by name.

    Raises
    ------
    InvalidArgument
        When the dump has no nat table (iptables) or no kube-proxy table (nft).
    """
    return list(_service_index(ruleset, family)["list"])


def service_notes(ruleset: Ruleset, *, family: str | None = None) -> list[str]:
    """What reading the services of a dump left out and why (e.g. kube-proxy's stale nft chains)."""
    return list(_service_index(ruleset, family)["notes"])


def find_service(ruleset: Ruleset, service: str, *, family: str | None = None) -> ServiceInfo:
    """One service by ``"ns/name[:port]"``, ``"ns/name:port/proto"`` or ``"IP:PORT[/proto]"``.

    A name is found through kube-proxy's chain hash first (no index needed, works
    without comments), then through the comments. A service with several ports
    needs the port name.

    Raises
    ------
    InvalidArgument
        When the service is not in the dump (the message lists close names) or
        the name is ambiguous.
    """
    want = service.strip()
    proto_hint = None
    if want.count("/") == 2 or (want.count("/") == 1 and "." in want.split("/")[0] and want.split("/")[-1].isalpha()):
        head, _, p = want.rpartition("/")
        if p.lower() in ("tcp", "udp", "sctp"):
            want, proto_hint = head, p.lower()
    fam = family_of(ruleset, family)
    # ip:port
    if "/" not in want:
        ip, _, port = want.rpartition(":")
        ip = ip.strip("[]")
        if not ascii_digits(port):
            raise InvalidArgument(f"expected a service as ns/name[:port] or IP:PORT, got {service!r}")
        idx = _service_index(ruleset, fam)
        for proto in ([proto_hint] if proto_hint else ["tcp", "udp", "sctp"]):
            hit = idx["addr"].get((ip, int(port), proto))
            if hit is not None:
                return hit
        by_np = sorted({i.name for i in idx["list"] if int(port) in i.node_ports})
        hint = (
            f"; port {port} is the node port of {', '.join(by_np)} (on any of the node's addresses): name it"
            if by_np else ""
        )
        raise InvalidArgument(f"{ruleset.source}: no service with cluster IP or external IP {want} in the dump{hint}")
    nat = ruleset.tables.get((fam, "nat")) if ruleset.dialect == "iptables" else None
    if nat is not None:
        reader = IptablesServices(ruleset, fam)
        for proto in ([proto_hint] if proto_hint else ["tcp", "udp", "sctp"]):
            suffix = kube_chain_hash(want, proto)
            if "KUBE-SVC-" + suffix in nat.chains or "KUBE-SVL-" + suffix in nat.chains:
                return reader.info(suffix, hint_name=want, hint_proto=proto)
    idx = _service_index(ruleset, fam)
    hits = [i for i in idx["name"].get(want, []) if proto_hint is None or i.protocol == proto_hint]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        choices = ", ".join(sorted(f"{h.name}/{h.protocol}" for h in hits))
        raise InvalidArgument(f"{service!r} is ambiguous in {ruleset.source}: give the port name ({choices})")
    names = sorted({i.name for i in idx["list"]})
    close = [n for n in names if want.split(":")[0] in n][:5] or names[:5]
    more = f"; services include {', '.join(close)}" if close else "; the dump has no kube-proxy services"
    raise InvalidArgument(f"{ruleset.source}: service {service!r} is not in the dump{more}")


def load_service_route(
    source: str | Ruleset,
    service: str,
    *,
    dialect: str | None = None,
    chain: str = "cluster",
) -> model.Route:
    """The routing model of one kube-proxy service in a dump.

    Parameters
    ----------
    source : str or Ruleset
        A path, ``"-"`` (standard input), or a parsed ruleset.
    service : str
        ``"ns/name[:port]"`` (port *name*, as kube-proxy's comments show it) or
        ``"CLUSTER_IP:PORT"``.
    dialect : {"iptables", "nft"}, optional
        Default: sniffed.
    chain : {"cluster", "local"}
        The ``KUBE-SVC`` (cluster policy) or ``KUBE-SVL`` (local policy) chain.

    Returns
    -------
    meshstat.model.Route
        Root :class:`meshstat.model.Cascade` (iptables: the stored thresholds,
        children ``Backend(name="ip:port", address="ip:port")`` in rule order)
        or :class:`Numgen` (nft). Session affinity and traffic policy are in
        ``Route.notes``.
    """
    rs = load(source, dialect)
    return service_route(find_service(rs, service), chain=chain)
