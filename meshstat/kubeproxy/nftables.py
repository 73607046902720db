"""kube-proxy's nftables mode: its services read from an ``nft list ruleset`` dump or its transactions.

Layout of kubernetes ``pkg/proxy/nftables/proxier.go`` (``syncProxyRules``,
``writeServiceToEndpointRules``): ``service-HASH-ns/name/proto/port`` chains
(``local-``, ``external-``, ``firewall-`` alike) reached through elements of
the ``service-ips`` and ``service-nodeports`` verdict maps, each splitting by
``numgen random mod N`` over ``endpoint-`` chains; the split is a
:class:`meshstat.netfilter.Numgen` stage.

Two states kube-proxy leaves in a live table are read for what they are:

* **Stale chains.** When a service is deleted or loses all its endpoints,
  kube-proxy deletes its map elements and *flushes* its chains in the same
  transaction, and deletes the chains only in a later sync, about a second on
  (``staleChains``: with kernels before 6.2 the kernel notices a chain is no
  longer referenced by a deleted map element only a little later). A flushed,
  unreferenced service chain is therefore no service: it is skipped, and the
  number skipped is given as a note.
* **Services without endpoints** have no chain at all: their addresses are
  elements of ``no-endpoint-services`` (``IP . proto . port``) and
  ``no-endpoint-nodeports`` (``proto . port``), commented with the service
  port's name, whose verdict is ``goto reject-chain`` (no endpoints anywhere:
  rejected) or ``drop`` (``internalTrafficPolicy``/``externalTrafficPolicy:
  Local`` without an endpoint on this node). They are listed as rejected (or
  dropped) services with their cluster IP, external IPs and node ports.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from meshstat import model
from meshstat.errors import ConfigParseError, InvalidArgument
from meshstat.kubeproxy.service import EndpointInfo, ServiceInfo, kube_nft_chain_hash
from meshstat.model.numgen import Numgen, numgen_gaps
from meshstat.parsers.netfilter import Chain, NftElement, NftSet, Ruleset, Table, Target, flat_targets

__all__: list[str] = []

_CHAIN_RE = re.compile(r"^(service|local|external|endpoint|firewall)-([A-Z2-7]{8})-(.*)$")
_SERVICE_KINDS = ("service", "local", "external", "firewall")
_NO_ENDPOINT_MAPS = ("no-endpoint-services", "no-endpoint-nodeports")


def _split_base(base: str) -> tuple[str, str, str, str] | None:
    """``"ns/svc/tcp/p80"`` -> (ns, svc, proto, port name)."""
    parts = base.split("/")
    if len(parts) != 4:
        return None
    return parts[0], parts[1], parts[2], parts[3]


def _endpoint_addr(t: Table, chain_name: str) -> str | None:
    ch = t.chains.get(chain_name)
    if ch is None:
        return None
    for r in ch.rules:
        for tg in flat_targets(r.target):
            if tg.kind == "dnat":
                addr, ports, text = tg.value
                if addr and ports:
                    return f"[{addr}]:{ports[0]}" if ":" in addr else f"{addr}:{ports[0]}"
                return text
    return None


def _chain_split(t: Table, ch: Chain, source: str) -> tuple[Any, list[tuple[str, str | None, tuple]], int | None]:
    """The numgen split of a service chain: (Numgen stage, [(address, endpoint chain, slots)], affinity s).

    Slot ranges stay ranges (the slots a map leaves out become the ranges of a
    fall-through outcome): nothing here is enumerated slot by slot.
    """
    affinity = None
    for r in ch.rules:
        for m in r.matches:
            if m.kind == "set" and m.value[1].startswith("affinity-"):
                s = t.sets.get(m.value[1])
                if s is not None and s.timeout is not None:
                    affinity = s.timeout
        for tg in flat_targets(r.target):
            if tg.kind in ("numgen", "dnat_map"):
                mode, modulus, offset, slots = tg.value
                per: dict[str, list[tuple[int, int]]] = {}
                chains: dict[str, str | None] = {}
                for lo, hi, pl in slots:
                    if pl.kind in ("goto", "jump"):
                        addr = _endpoint_addr(t, pl.value) or pl.value
                        chains.setdefault(addr, pl.value)
                    else:
                        addr = pl.value[2]
                        chains.setdefault(addr, None)
                    per.setdefault(addr, []).append((lo, hi))
                children = [model.Backend(name=a, address=a if ":" in a else None,
                                          provenance=model.Provenance(source, r.line)) for a in per]  # fmt: skip
                slot_list = [tuple(v) for v in per.values()]
                gaps = numgen_gaps(modulus, (x for v in per.values() for x in v), offset)
                if gaps:
                    children.append(model.Backend(name=model.FALL_THROUGH))
                    slot_list.append(tuple(gaps))
                if mode != "random":
                    return None, [(a, chains[a], tuple(v)) for a, v in per.items()], affinity
                stage = Numgen(children=tuple(children), modulus=modulus, offset=offset, slots=tuple(slot_list),
                               name=ch.name, provenance=model.Provenance(source, r.line))  # fmt: skip
                return stage, [(a, chains[a], tuple(v)) for a, v in per.items()], affinity
            if tg.kind == "dnat" and tg.value[0]:  # newer single-endpoint form: plain dnat
                addr = _endpoint_addr_from_target(tg)
                stage = Numgen(children=(model.Backend(name=addr, address=addr),), modulus=1, slots=(((0, 0),),),
                               name=ch.name, provenance=model.Provenance(source, r.line))  # fmt: skip
                return stage, [(addr, None, ((0, 0),))], affinity
    return None, [], affinity


def _element_port(el: NftElement, i: int, source: str) -> int:
    """The port number in component ``i`` of a kube-proxy map element (``ADDR . PROTO . PORT``)."""
    kind, value = el.key[i]
    if kind == "range" and value[0] == value[1] and 0 <= value[0] <= 65535:
        return int(value[0])
    raise ConfigParseError(
        f"expected a port number as component {i + 1} of the map element", source=source, line=el.line
    )


def _endpoint_addr_from_target(tg: Target) -> str:
    addr, ports, text = tg.value
    return f"{addr}:{ports[0]}" if ports else text


def _element_addr(el: NftElement) -> str | None:
    return el.key[0][1].text.split("/")[0] if el.key and el.key[0][0] == "addr" else None


def _element_proto(el: NftElement, i: int) -> str:
    kind, value = el.key[i]
    if kind == "str":
        return str(value)
    if kind == "range":
        return {6: "tcp", 17: "udp", 132: "sctp"}.get(value[0], str(value[0]))
    return "?"


def _verdict_effect(t: Table, data: Any) -> str | None:
    """``"reject"``, ``"drop"`` or ``None`` for a map element's verdict (following one goto/jump).

    kube-proxy writes ``goto reject-chain`` (a chain holding ``reject``) for a
    service with no endpoints and ``drop`` for one without local endpoints.
    """
    if not (isinstance(data, tuple) and data):
        return None
    verdict, arg = data[0], data[1] if len(data) > 1 else None
    if verdict in ("reject", "drop"):
        return verdict
    if verdict in ("goto", "jump") and arg in t.chains:
        for r in t.chains[arg].rules:
            if r.matches:
                continue
            for tg in flat_targets(r.target):
                if tg.kind in ("reject", "drop"):
                    return tg.kind
    return None


def _map_targets(t: Table) -> dict[str, list[tuple[NftSet, NftElement]]]:
    """Chain name -> the named-map elements whose verdict goes or jumps to it."""
    targets: dict[str, list[tuple[NftSet, NftElement]]] = {}
    for s in t.sets.values():
        for el in s.elements:
            if isinstance(el.data, tuple) and el.data and el.data[0] in ("goto", "jump"):
                targets.setdefault(el.data[1], []).append((s, el))
    return targets


def nft_services(rs: Ruleset, family: str) -> tuple[list[ServiceInfo], list[str]]:
    """kube-proxy services of an nftables-mode dump (``pkg/proxy/nftables/proxier.go`` layout), and notes."""
    out: list[ServiceInfo] = []
    notes: list[str] = []
    found_table = False
    for (fam, tname), t in rs.tables.items():
        if fam != family:
            continue
        targets = _map_targets(t)
        bases: dict[str, dict[str, str]] = {}
        stale: list[str] = []
        stale_endpoints = 0
        for name, ch in t.chains.items():
            m = _CHAIN_RE.match(name)
            if not m:
                continue
            found_table = True
            if not ch.rules and name not in targets and not t.referrers.get(name):
                # flushed and unreferenced: kube-proxy's stale chain, deleted at a later sync
                if m.group(1) == "endpoint":
                    stale_endpoints += 1
                else:
                    stale.append(name)
                continue
            if m.group(1) in _SERVICE_KINDS:
                bases.setdefault(m.group(3), {})[m.group(1)] = name
                bases[m.group(3)]["hash"] = m.group(2)
        if stale or stale_endpoints:
            shown = ", ".join(stale[:3]) + (", ..." if len(stale) > 3 else "")
            notes.append(
                f"table {fam} {tname}: skipped {len(stale)} stale service chain{'s' if len(stale) != 1 else ''}"
                + (f" ({shown})" if stale else "")
                + f" and {stale_endpoints} stale endpoint chain{'s' if stale_endpoints != 1 else ''}: flushed "
                "and referenced by nothing, as kube-proxy leaves the chains of a deleted or emptied service "
                "until a later sync deletes them"
            )
        for base, names in bases.items():
            if not any(k in names for k in ("service", "local", "external")):
                continue  # a firewall chain alone carries no endpoints
            info = _chain_service(rs, t, base, names, targets)
            if info is not None:
                out.append(info)
        out.extend(_no_endpoint_services(rs, t, out))
    if not found_table and not out:
        fams = sorted({f for f, _ in rs.tables})
        if not rs.tables:
            raise _no_kube(rs, "the ruleset has no tables")
        raise _no_kube(rs, f"no kube-proxy service chains (service-HASH-ns/name/proto/port) in families {fams}")
    return out, notes


def _chain_service(
    rs: Ruleset, t: Table, base: str, names: dict[str, str], targets: dict[str, list[tuple[NftSet, NftElement]]]
) -> ServiceInfo | None:
    parts = _split_base(base)
    if parts is None:
        return None
    ns, svc, proto, portname = parts
    name = f"{ns}/{svc}" + (f":{portname}" if portname else "")
    hash_ok = kube_nft_chain_hash(base) == names["hash"]
    cluster_ip = port = None
    internal = None
    ext_ips: list[str] = []
    node_ports: list[int] = []
    line = None
    for kind in ("service", "local"):
        for _s, el in targets.get(names.get(kind, ""), []):
            if len(el.key) == 3 and el.key[0][0] == "addr":
                cluster_ip = _element_addr(el)
                port = _element_port(el, 2, rs.source)
                internal = "Cluster" if kind == "service" else "Local"
                line = el.line
    for _s, el in targets.get(names.get("external", ""), []):
        if len(el.key) == 3 and el.key[0][0] == "addr":
            ext_ips.append(f"{_element_addr(el)}:{_element_port(el, 2, rs.source)}")
        elif len(el.key) == 2:
            node_ports.append(_element_port(el, 1, rs.source))
    state = None
    if cluster_ip is None:
        # internalTrafficPolicy Local without local endpoints: the cluster IP is in no-endpoint-services (drop)
        for el in _no_endpoint_elements(t, name, proto):
            if len(el.key) == 3 and _is_cluster_ip(t, el):
                cluster_ip, port, line = _element_addr(el), _element_port(el, 2, rs.source), el.line
                internal = "Local"
                state = _STATE_OF_EFFECT.get(_verdict_effect(t, el.data) or "")
                break
    ext_effects = {
        _verdict_effect(t, el.data)
        for m, el in _no_endpoint_external(t, name, proto)
        if not (m == "no-endpoint-services" and _element_addr(el) == cluster_ip)
    } - {None}
    external = None
    ext = t.chains.get(names.get("external", ""))
    if ext is not None:
        local_chain = names.get("local")
        external = "Local" if any(
            (tg.kind in ("goto", "jump") and local_chain is not None and tg.value == local_chain)
            or (r.comment or "").startswith("short-circuit")
            or any(m.kind == "fib" and m.value[0] == "src" for m in r.matches)
            for r in ext.rules for tg in flat_targets(r.target)
        ) else "Cluster"
    infos = {}
    affinity = None
    for kind in ("service", "local"):
        ch = t.chains.get(names.get(kind, ""))
        if ch is None:
            infos[kind] = (None, ())
            continue
        stage, eps, aff = _chain_split(t, ch, rs.source)
        affinity = affinity if affinity is not None else aff
        shares = stage.shares() if stage is not None else [Fraction(0)] * len(eps)
        ep_infos = []
        for (addr, chain, slots), share in zip(eps, shares, strict=False):
            h = None
            if chain is not None:
                cm = _CHAIN_RE.match(chain)
                if cm:
                    h = kube_nft_chain_hash(cm.group(3)) == cm.group(2)
            ep_infos.append(EndpointInfo(addr, chain, share, None, slots, None, h))
        infos[kind] = (stage, tuple(ep_infos))
    return ServiceInfo(
        name=name, protocol=proto, cluster_ip=cluster_ip, port=port,
        cluster_chain=names.get("service"), local_chain=names.get("local"),
        endpoints=infos["service"][1], local_endpoints=infos["local"][1],
        affinity_timeout=affinity, internal_policy=internal or "Cluster",
        external_policy=external, external_ips=tuple(ext_ips), node_ports=tuple(sorted(node_ports)),
        hash_ok=hash_ok, dialect="nft", source=rs.source, line=line, state=state,
        external_state=_external_state(ext_effects, bool(ext_ips or node_ports)),
        stage=infos["service"][0], local_stage=infos["local"][0],
    )  # fmt: skip


_STATE_OF_EFFECT = {"drop": "dropped", "reject": "rejected"}


def _external_state(effects: set[str | None], routed: bool) -> str | None:
    """:attr:`ServiceInfo.external_state` from the verdicts of a service's external no-endpoint elements."""
    if effects:
        return "rejected" if "reject" in effects else "dropped"
    return "routed" if routed else None


def _no_endpoint_external(t: Table, name: str, proto: str) -> list[tuple[str, NftElement]]:
    """A service's elements in both no-endpoint maps (addresses with their port, node ports)."""
    out = []
    for map_name in _NO_ENDPOINT_MAPS:
        s = t.sets.get(map_name)
        if s is None:
            continue
        i, n = (1, 3) if map_name == "no-endpoint-services" else (0, 2)
        out += [(map_name, el) for el in s.elements
                if el.comment == name and len(el.key) == n and _element_proto(el, i) == proto]  # fmt: skip
    return out


def _no_endpoint_elements(t: Table, name: str, proto: str | None = None) -> list[NftElement]:
    s = t.sets.get("no-endpoint-services")
    if s is None:
        return []
    return [el for el in s.elements if el.comment == name and (proto is None or _element_proto(el, 1) == proto)]


def _is_cluster_ip(t: Table, el: NftElement) -> bool:
    """Whether a no-endpoint element's address is a cluster IP (``cluster-ips`` set; without it: assumed)."""
    ips = t.sets.get("cluster-ips")
    if ips is None or not ips.elements:
        return True
    c = el.key[0][1]
    return ips.contains_addr(c.version, c.network)


def _no_endpoint_services(rs: Ruleset, t: Table, known: list[ServiceInfo]) -> list[ServiceInfo]:
    """Services that have no chain: only ``no-endpoint-services`` / ``no-endpoint-nodeports`` elements."""
    have = {(i.name, i.protocol) for i in known}
    groups: dict[tuple[str, str], list[tuple[str, NftElement]]] = {}
    for map_name in _NO_ENDPOINT_MAPS:
        s = t.sets.get(map_name)
        if s is None:
            continue
        for el in s.elements:
            if not el.comment or _verdict_effect(t, el.data) is None:
                continue
            proto = _element_proto(el, 1 if map_name == "no-endpoint-services" else 0) if len(el.key) >= 2 else "?"
            groups.setdefault((el.comment, proto), []).append((map_name, el))
    out = []
    for (name, proto), els in groups.items():
        if (name, proto) in have:
            continue
        addr_els = sorted((el for m, el in els if m == "no-endpoint-services" and len(el.key) == 3),
                          key=lambda e: e.line)  # fmt: skip
        cluster = next((el for el in addr_els if _is_cluster_ip(t, el)), None)
        effects = {_verdict_effect(t, el.data) for _m, el in els}
        node_ports = sorted(_element_port(el, 1, rs.source) for m, el in els if m == "no-endpoint-nodeports"
                            and len(el.key) == 2)  # fmt: skip
        ext_ips = [f"{_element_addr(el)}:{_element_port(el, 2, rs.source)}" for el in addr_els if el is not cluster]
        rejected = "reject" in effects
        first = cluster or (addr_els[0] if addr_els else els[0][1])
        out.append(
            ServiceInfo(
                name=name, protocol=proto,
                cluster_ip=_element_addr(cluster) if cluster is not None else None,
                port=_element_port(cluster, 2, rs.source) if cluster is not None else None,
                cluster_chain=None, local_chain=None, endpoints=(),
                internal_policy="Cluster" if rejected else "Local",
                external_ips=tuple(ext_ips), node_ports=tuple(node_ports),
                rejected=rejected, state="rejected" if rejected else "dropped",
                external_state=_external_state({_verdict_effect(t, el.data) for _m, el in els
                                                if el is not cluster} - {None}, False),
                dialect="nft", source=rs.source, line=first.line,
            )  # fmt: skip
        )
    return out


def _no_kube(rs: Ruleset, why: str) -> Exception:
    return InvalidArgument(f"{rs.source}: {why}")
