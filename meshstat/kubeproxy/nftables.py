"""kube-proxy's nftables mode: its services read from an ``nft list ruleset`` dump.

Layout of kubernetes ``pkg/proxy/nftables/proxier.go``: ``service-HASH-ns/name/proto/port``
chains (``local-``, ``external-`` alike) reached through map elements, each
splitting by ``numgen random mod N`` over ``endpoint-`` chains; the split is a
:class:`meshstat.netfilter.Numgen` stage.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from meshstat import model
from meshstat.errors import ConfigParseError, InvalidArgument
from meshstat.kubeproxy.service import EndpointInfo, ServiceInfo, kube_nft_chain_hash
from meshstat.netfilter.numgen import Numgen
from meshstat.parsers.netfilter import Chain, NftElement, NftSet, Ruleset, Table, Target, flat_targets

__all__: list[str] = []

_CHAIN_RE = re.compile(r"^(service|local|external|endpoint|firewall)-([A-Z2-7]{8})-(.*)$")


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
    """The numgen split of a service chain: (Numgen stage, [(address, endpoint chain, slots)], affinity s)."""
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
                covered = sum(hi - lo + 1 for rs_ in per.values() for lo, hi in rs_)
                children = [model.Backend(name=a, address=a if ":" in a else None,
                                          provenance=model.Provenance(source, r.line)) for a in per]  # fmt: skip
                slot_list = [tuple(v) for v in per.values()]
                if covered < modulus:
                    used = {s for v in per.values() for lo, hi in v for s in range(lo, hi + 1)}
                    rest = [s for s in range(offset, offset + modulus) if s not in used]
                    children.append(model.Backend(name=model.FALL_THROUGH))
                    slot_list.append(tuple((s, s) for s in rest))
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


def _nft_services(rs: Ruleset, family: str) -> list[Any]:
    """kube-proxy services of an nftables-mode dump (``pkg/proxy/nftables/proxier.go`` layout)."""
    out = []
    found_table = False
    for (fam, _tname), t in rs.tables.items():
        if fam != family:
            continue
        bases: dict[str, dict[str, str]] = {}
        for name in t.chains:
            m = _CHAIN_RE.match(name)
            if m and m.group(1) in ("service", "local", "external"):
                bases.setdefault(m.group(3), {})[m.group(1)] = name
                bases[m.group(3)]["hash"] = m.group(2)
        if bases:
            found_table = True
        # dispatch: map elements pointing at service/local/external chains
        targets: dict[str, list[tuple[NftSet, NftElement]]] = {}
        for s in t.sets.values():
            for el in s.elements:
                if isinstance(el.data, tuple) and el.data and el.data[0] in ("goto", "jump"):
                    targets.setdefault(el.data[1], []).append((s, el))
        for base, names in bases.items():
            parts = _split_base(base)
            if parts is None:
                continue
            ns, svc, proto, portname = parts
            name = f"{ns}/{svc}" + (f":{portname}" if portname else "")
            hash_ok = kube_nft_chain_hash(base) == names["hash"]
            cluster_ip = port = None
            internal = None
            ext_ips: list[str] = []
            node_ports: list[int] = []
            line = None
            for kind in ("service", "local"):
                for s, el in targets.get(names.get(kind, ""), []):
                    if len(el.key) == 3 and el.key[0][0] == "addr":
                        cluster_ip = el.key[0][1].text.split("/")[0]
                        port = _element_port(el, 2, rs.source)
                        internal = "Cluster" if kind == "service" else "Local"
                        line = el.line
            for s, el in targets.get(names.get("external", ""), []):
                if len(el.key) == 3 and el.key[0][0] == "addr":
                    ext_ips.append(f"{el.key[0][1].text.split('/')[0]}:{_element_port(el, 2, rs.source)}")
                elif len(el.key) == 2:
                    node_ports.append(_element_port(el, 1, rs.source))
            external = None
            ext = t.chains.get(names.get("external", ""))
            if ext is not None:
                external = "Local" if any(
                    (tg.kind in ("goto", "jump") and tg.value == names.get("local"))
                    or (r.comment or "").startswith("short-circuit pod traffic")
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
            out.append(
                ServiceInfo(
                    name=name, protocol=proto, cluster_ip=cluster_ip, port=port,
                    cluster_chain=names.get("service"), local_chain=names.get("local"),
                    endpoints=infos["service"][1], local_endpoints=infos["local"][1],
                    affinity_timeout=affinity, internal_policy=internal or "Cluster",
                    external_policy=external, external_ips=tuple(ext_ips), node_ports=tuple(sorted(node_ports)),
                    hash_ok=hash_ok, dialect="nft", source=rs.source, line=line,
                    stage=infos["service"][0], local_stage=infos["local"][0],
                )  # fmt: skip
            )
        # services without endpoints: no-endpoint map elements with a comment naming them
        known = {i.name for i in out}
        for s in t.sets.values():
            if s.name != "no-endpoint-services":
                continue
            for el in s.elements:
                if el.comment and el.comment not in known and el.data and el.data[0] in ("goto", "jump", "drop", "reject"):
                    proto = el.key[1][1] if len(el.key) == 3 else "?"
                    out.append(
                        ServiceInfo(
                            name=el.comment, protocol=proto,
                            cluster_ip=el.key[0][1].text.split("/")[0] if el.key[0][0] == "addr" else None,
                            port=_element_port(el, 2, rs.source) if len(el.key) == 3 else None,
                            cluster_chain=None,
                            local_chain=None, endpoints=(), rejected=True, dialect="nft", source=rs.source,
                            line=el.line,
                        )  # fmt: skip
                    )
                    known.add(el.comment)
    if not found_table and not out:
        fams = sorted({f for f, _ in rs.tables})
        if not rs.tables:
            raise _no_kube(rs, "the ruleset has no tables")
        raise _no_kube(rs, f"no kube-proxy service chains (service-HASH-ns/name/proto/port) in families {fams}")
    return out


def _no_kube(rs: Ruleset, why: str) -> Exception:
    return InvalidArgument(f"{rs.source}: {why}")
