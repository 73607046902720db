"""Following a call through an Envoy configuration, and the Route of its split.

:func:`resolve_call` follows an outbound call to ``host:port`` through the structures
:mod:`meshstat.parsers.envoy` reads, the way Envoy does, and returns plain data
(:class:`Resolution`); :func:`envoy_dump_route` turns it into a :class:`meshstat.model.Route`:

1. listener: an exact ``address:port`` listener before ``0.0.0.0:port``; the
   ``use_original_dst`` listener (Istio's ``virtualOutbound`` on 15001) hands the connection
   over to it (``source/common/listener_manager/listener_impl.cc``; Istio's capture
   redirects every outbound TCP connection to 15001);
2. filter chain: destination port, destination IP, server name, transport protocol and
   application protocol, most specific first, else ``default_filter_chain``
   (``filter_chain_manager_impl.cc: FilterChainManagerImpl::findFilterChain``);
3. ``http_connection_manager`` with an inline ``route_config`` or ``rds.route_config_name``;
   or ``tcp_proxy`` (cluster or weighted clusters, chosen per connection);
4. virtual host by the ``:authority``: exact domain, then the longest ``*`` suffix
   wildcard, then the longest prefix wildcard, then ``*``
   (``source/common/router/config_impl.cc: RouteMatcher::findVirtualHost``);
5. routes in order: the first whose match holds (prefix, path, safe_regex,
   path_separated_prefix, headers, query parameters); every ``safe_regex`` is RE2, matched
   against the whole value (:mod:`meshstat.parsers.regex`). Routes with ``runtime_fraction``
   are kept as *candidates* with their fraction, since Envoy evaluates the fraction with
   the same per-request random value that then picks the weighted cluster
   (``RouteEntryImplBase::evaluateRuntimeMatch``); :func:`meshstat.mesh.correlated_weights`
   counts the resulting shares exactly.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshstat.inputs import ascii_digits
from meshstat.mesh.endpoints import correlated_weights, endpoint_stage, zone_aware_context
from meshstat.mesh.registry import EP
from meshstat.model import Backend, Node, Provenance, Route, Weighted
from meshstat.parsers.envoy import (
    DEFAULT_PANIC_THRESHOLD,
    HTTP_CONNECTION_MANAGER,
    TCP_PROXY,
    Endpoint,
    EnvoyConfig,
    filter_chains,
    socket_address,
    type_of,
)
from meshstat.parsers.regex import re2_full_match

__all__ = [
    "Resolution",
    "ResolutionStep",
    "RouteCandidate",
    "envoy_dump_route",
    "find_virtual_host",
    "query_params",
    "resolve_call",
    "route_static_match",
    "select_filter_chain",
    "select_listener",
]


@dataclass(frozen=True, slots=True)
class ResolutionStep:
    """One decision on the way of a call: which element matched, and why."""

    layer: str
    choice: str
    detail: str
    where: str = ""


@dataclass(frozen=True, slots=True)
class RouteCandidate:
    """A route whose static conditions matched; ``fraction`` is its runtime_fraction, if any.

    ``action`` is ``("cluster", name)``, ``("weighted", [(name, weight), ...], options)``,
    ``("direct_response", status)``, ``("redirect", "")`` or ``("unsupported", what)``.
    """

    index: int
    name: str
    fraction: tuple[int, int] | None
    action: tuple[Any, ...]
    where: str


@dataclass
class Resolution:
    """Where an outbound call goes, as far as configuration decides it (no randomness yet).

    Attributes
    ----------
    protocol : {"http", "tcp"}
        Which proxy handled it (``http_connection_manager`` or ``tcp_proxy``).
    candidates : list of RouteCandidate
        Routes that can serve the request, in order; all but possibly the last carry a
        ``runtime_fraction`` (they share the request's random value with weighted clusters).
    tcp_clusters : list of (name, weight)
        For ``tcp_proxy``: the cluster(s) chosen per connection.
    steps : list of ResolutionStep
        The trace (listener, filter chain, route configuration, virtual host, route).
    notes : list of str
        Caveats (things assumed or not modelled).
    warnings : list of str
        What the input lacks for this call (clusters or endpoints not in it, files ignored),
        naming the files; the outcome of such a part is marked unknown, never a guessed 503.
    """

    host: str
    port: int
    protocol: str = "http"
    candidates: list[RouteCandidate] = field(default_factory=list)
    tcp_clusters: list[tuple[str, int]] = field(default_factory=list)
    steps: list[ResolutionStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failure: str | None = None
    warnings: list[str] = field(default_factory=list)


def _listener_addr(li: Mapping[str, Any]) -> tuple[str, int | None]:
    return socket_address(li.get("address"))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def select_listener(
    cfg: EnvoyConfig, dst_ip: str | None, port: int, res: Resolution
) -> dict[str, Any] | None:
    """The listener Envoy hands an outbound connection to ``dst_ip:port`` to."""
    on_port = [li for li in cfg.listeners if _listener_addr(li)[1] == port and not _bind_only_original(li)]
    orig = [li for li in cfg.listeners if _uses_original_dst(li)]
    if orig:
        o = orig[0]
        a, p = _listener_addr(o)
        res.steps.append(
            ResolutionStep(
                "listener",
                str(o["name"]),
                f"{a}:{p} use_original_dst: the capture redirects the connection here and Envoy hands it "
                "to the listener of the original destination",
                cfg.where("listener", str(o["name"])),
            )
        )
    exact = [li for li in on_port if dst_ip is not None and _listener_addr(li)[0] == dst_ip]
    wild = [li for li in on_port if _listener_addr(li)[0] in ("0.0.0.0", "::")]
    chosen: dict[str, Any] | None = None
    how = ""
    if exact:
        chosen, how = exact[0], f"exact address {dst_ip}:{port}"
    elif wild:
        chosen, how = wild[0], f"wildcard {_listener_addr(wild[0])[0]}:{port} (no listener on the exact address)"
    elif on_port and dst_ip is None and len(on_port) == 1:
        chosen = on_port[0]
        how = f"the only listener on port {port} (destination address not known; assumed {_listener_addr(chosen)[0]})"
        res.notes.append(f"assumed the call reaches listener {chosen['name']} (destination IP not given)")
    elif on_port and dst_ip is None:
        chosen = on_port[0]
        how = f"first of {len(on_port)} listeners on port {port} (destination address not known)"
        res.notes.append(f"several listeners on port {port}; give the destination address to choose")
    elif orig:
        chosen, how = orig[0], "no listener for the original destination: the use_original_dst listener's own chains"
        for idle, why in cfg.inactive_listeners:
            if _listener_addr(idle)[1] == port:
                res.notes.append(f"listener {idle.get('name')} on port {port} is {why} in the input: until "
                                 f"it is active, Envoy keeps the connection on {o['name']}")
    if chosen is None:
        return None
    res.steps.append(ResolutionStep("listener", str(chosen["name"]), how,
                                    cfg.where("listener", str(chosen["name"]))))
    return chosen


def _uses_original_dst(li: Mapping[str, Any]) -> bool:
    v = li.get("use_original_dst")
    if isinstance(v, dict):
        v = v.get("value")
    return bool(v)


def _bind_only_original(li: Mapping[str, Any]) -> bool:
    return _uses_original_dst(li)


def _chain_criteria(fc: Mapping[str, Any]) -> dict[str, Any]:
    return fc.get("filter_chain_match") or {}


def select_filter_chain(
    li: Mapping[str, Any], dst_ip: str | None, port: int, protocol: str, res: Resolution
) -> dict[str, Any] | None:
    """Envoy's filter chain match, most specific first at each level (FilterChainManagerImpl)."""
    chains = filter_chains(li)
    app = ["http/1.1"] if protocol == "http" else []
    cands = list(chains)

    def level(pred_specific: Any, is_wild: Any) -> None:
        nonlocal cands
        spec = [c for c in cands if not is_wild(_chain_criteria(c)) and pred_specific(_chain_criteria(c))]
        cands = spec if spec else [c for c in cands if is_wild(_chain_criteria(c))]

    def port_ok(m: Mapping[str, Any]) -> bool:
        v = m.get("destination_port")
        v = v.get("value") if isinstance(v, dict) else v
        return int(v) == port

    level(port_ok, lambda m: m.get("destination_port") is None)

    def ip_ok(m: Mapping[str, Any]) -> bool:
        if dst_ip is None:
            return False
        try:
            ip = ipaddress.ip_address(dst_ip)
        except ValueError:
            return False
        for pr in m.get("prefix_ranges") or []:
            net = ipaddress.ip_network(f"{pr.get('address_prefix')}/{int((pr.get('prefix_len') or {}).get('value', 32) if isinstance(pr.get('prefix_len'), dict) else (pr.get('prefix_len') or 32))}", strict=False)
            if ip in net:
                return True
        return False

    level(ip_ok, lambda m: not m.get("prefix_ranges"))
    level(lambda m: False, lambda m: not m.get("server_names"))
    level(lambda m: m.get("transport_protocol") == "raw_buffer", lambda m: not m.get("transport_protocol"))
    level(lambda m: any(a in (m.get("application_protocols") or []) for a in app),
          lambda m: not m.get("application_protocols"))
    if cands:
        chosen = cands[0]
        crit = _chain_criteria(chosen)
        desc = ", ".join(f"{k}={v}" for k, v in crit.items()) or "no criteria"
        res.steps.append(ResolutionStep("filter chain", str(chosen.get("name") or f"#{chains.index(chosen)}"),
                                        desc))
        return chosen
    dfc = li.get("default_filter_chain")
    if isinstance(dfc, dict):
        res.steps.append(ResolutionStep("filter chain", str(dfc.get("name") or "default_filter_chain"),
                                        "no chain matched"))
        return dfc
    return None


def _network_filter(fc: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for f in fc.get("filters") or []:
        tc = f.get("typed_config") or {}
        t = type_of(tc)
        if f.get("name") == HTTP_CONNECTION_MANAGER or t == "HttpConnectionManager":
            return "http", tc
        if f.get("name") == TCP_PROXY or t == "TcpProxy":
            return "tcp", tc
    return None


def find_virtual_host(rc: Mapping[str, Any], authority: str, *, strip_port: bool = False) -> tuple[dict[str, Any] | None, str]:
    """Envoy's virtual host lookup (``RouteMatcher::findVirtualHost``).

    Exact domain first, then suffix wildcards (``*.foo.com``, ``*-bar.foo.com``) longest
    first, then prefix wildcards (``foo.*``) longest first, then ``*``. The wildcard must
    match at least one character. Matching is case-insensitive on the whole ``:authority``,
    port included, unless ``ignore_port_in_host_matching`` (or the HCM ``strip_any_host_port``)
    strips it.
    """
    host = authority.lower()
    if strip_port or rc.get("ignore_port_in_host_matching"):
        if not host.startswith("[") and host.count(":") == 1:
            host = host.split(":", 1)[0]
    exact: dict[str, dict[str, Any]] = {}
    suffix: list[tuple[str, dict[str, Any]]] = []
    prefix: list[tuple[str, dict[str, Any]]] = []
    default = None
    for vh in rc.get("virtual_hosts") or []:
        for d in vh.get("domains") or []:
            d = str(d).lower()
            if d == "*":
                default = default or vh
            elif d.startswith("*"):
                suffix.append((d[1:], vh))
            elif d.endswith("*"):
                prefix.append((d[:-1], vh))
            else:
                exact.setdefault(d, vh)
    if host in exact:
        return exact[host], f"exact domain {host!r}"
    for s, vh in sorted(suffix, key=lambda x: -len(x[0])):
        if len(host) > len(s) and host.endswith(s):
            return vh, f"suffix wildcard '*{s}'"
    for p, vh in sorted(prefix, key=lambda x: -len(x[0])):
        if len(host) > len(p) and host.startswith(p):
            return vh, f"prefix wildcard '{p}*'"
    if default is not None:
        return default, "default '*'"
    return None, "no domain matched"


_DENOMS = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}


def _string_matcher(m: Mapping[str, Any], value: str | None) -> bool:
    if value is None:
        return False
    ic = bool(m.get("ignore_case"))
    v = value.lower() if ic else value
    for key in ("exact", "prefix", "suffix", "contains"):
        if key in m:
            pat = str(m[key]).lower() if ic else str(m[key])
            return {
                "exact": v == pat,
                "prefix": v.startswith(pat),
                "suffix": v.endswith(pat),
                "contains": pat in v,
            }[key]
    if "safe_regex" in m:
        return re2_full_match(str(m["safe_regex"].get("regex", "")), value)
    return False


def _header_matches(hm: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
    name = str(hm.get("name", "")).lower()
    value = headers.get(name)
    if value is None and hm.get("treat_missing_header_as_empty"):
        value = ""
    if "present_match" in hm:
        ok = (value is not None) == bool(hm["present_match"])
    elif "exact_match" in hm:
        ok = value == str(hm["exact_match"])
    elif "prefix_match" in hm:
        ok = value is not None and value.startswith(str(hm["prefix_match"]))
    elif "suffix_match" in hm:
        ok = value is not None and value.endswith(str(hm["suffix_match"]))
    elif "contains_match" in hm:
        ok = value is not None and str(hm["contains_match"]) in value
    elif "safe_regex_match" in hm:
        ok = value is not None and re2_full_match(str(hm["safe_regex_match"].get("regex", "")), value)
    elif "string_match" in hm:
        ok = _string_matcher(hm["string_match"], value)
    elif "range_match" in hm:
        r = hm["range_match"]
        try:
            ok = value is not None and int(r.get("start", 0)) <= int(value) < int(r.get("end", 0))
        except ValueError:
            ok = False
    else:
        ok = value is not None
    return ok != bool(hm.get("invert_match"))


def query_params(path: str) -> dict[str, str]:
    """The query parameters of a request path, first value of each name, not URL-decoded.

    As Envoy reads them for a route's ``query_parameters`` (``RouteEntryImplBase::matchRoute``
    parses the ``:path`` with ``Http::Utility::QueryParamsMulti::parseQueryString`` and each
    matcher looks at the first value of its name); a name without ``=`` has the value ``""``.
    """
    qs = path.split("?", 1)[1] if "?" in path else ""
    params: dict[str, str] = {}
    for kv in qs.split("&"):
        if kv:
            k, _, v = kv.partition("=")
            params.setdefault(k, v)
    return params


def route_static_match(match: Mapping[str, Any], path: str, headers: Mapping[str, str], notes: list[str]) -> bool:
    """Whether a ``RouteMatch`` holds for ``path`` and ``headers``, runtime_fraction aside."""
    cs = match.get("case_sensitive")
    if isinstance(cs, dict):
        cs = cs.get("value")
    case = cs is None or bool(cs)
    full = path
    bare = path.split("?", 1)[0]
    p, fp = (bare, full) if case else (bare.lower(), full.lower())

    def c(x: Any) -> str:
        return str(x) if case else str(x).lower()

    if "prefix" in match:
        ok = fp.startswith(c(match["prefix"]))
    elif "path" in match:
        ok = p == c(match["path"])
    elif "safe_regex" in match:
        ok = re2_full_match(str(match["safe_regex"].get("regex", "")), bare)
    elif "path_separated_prefix" in match:
        pre = c(match["path_separated_prefix"])
        ok = p == pre or p.startswith(pre + "/")
    elif "connect_matcher" in match:
        ok = headers.get(":method") == "CONNECT"
    elif "path_match_policy" in match:
        notes.append("a route uses path_match_policy (URI templates): not evaluated, treated as not matching")
        return False
    else:
        ok = True
    if not ok:
        return False
    for hm in match.get("headers") or []:
        if not _header_matches(hm, headers):
            return False
    params = query_params(full)
    for qm in match.get("query_parameters") or []:
        name = str(qm.get("name", ""))
        if "present_match" in qm:
            if (name in params) != bool(qm["present_match"]):
                return False
        elif "string_match" in qm:
            if not _string_matcher(qm["string_match"], params.get(name)):
                return False
        elif name not in params:
            return False
    if "grpc" in match and "application/grpc" not in headers.get("content-type", ""):
        return False
    for key in ("tls_context", "dynamic_metadata", "filter_state", "cel_matcher"):
        if key in match:
            notes.append(f"route match field {key} not evaluated (assumed to hold)")
    return True


def _fraction(match: Mapping[str, Any]) -> tuple[int, int] | None:
    rf = match.get("runtime_fraction")
    if not isinstance(rf, dict):
        return None
    dv = rf.get("default_value") or {}
    num = int(dv.get("numerator") or 0)
    den = _DENOMS.get(str(dv.get("denominator") or "HUNDRED"), 100)
    return min(num, den), den


def _route_action(route: Mapping[str, Any]) -> tuple[Any, ...]:
    ra = route.get("route")
    if isinstance(ra, dict):
        if "weighted_clusters" in ra:
            wc = ra["weighted_clusters"] or {}
            items = []
            for c in wc.get("clusters") or []:
                w = c.get("weight")
                if isinstance(w, dict):
                    w = w.get("value")
                items.append((str(c.get("name")), int(w or 0)))
            opts = {
                k: wc[k]
                for k in ("header_name", "use_hash_policy", "runtime_key_prefix", "total_weight")
                if wc.get(k) not in (None, False, "")
            }
            hp = ra.get("hash_policy") or []
            if hp:
                opts["hash_policy"] = hp
            return ("weighted", items, opts)
        if "cluster" in ra:
            return ("cluster", str(ra["cluster"]))
        if "cluster_header" in ra:
            return ("unsupported", f"cluster_header {ra['cluster_header']}")
        if "cluster_specifier_plugin" in ra or "inline_cluster_specifier_plugin" in ra:
            return ("unsupported", "cluster_specifier_plugin")
    if isinstance(route.get("direct_response"), dict):
        return ("direct_response", int(route["direct_response"].get("status", 0)))
    if isinstance(route.get("redirect"), dict):
        return ("redirect", "")
    return ("unsupported", "route without action")


def resolve_call(
    cfg: EnvoyConfig,
    host: str,
    port: int,
    *,
    path: str = "/",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    method: str = "GET",
    address: str | None = None,
    authority: str | None = None,
    protocol: str = "http",
) -> Resolution:
    """Follow an outbound call to ``host:port`` through listeners, filter chains and routes.

    Parameters
    ----------
    cfg : EnvoyConfig
        Parsed configuration.
    host : str
        The name (or IP) the client calls, e.g. ``bill-service`` or
        ``bill-service.istio-demo.svc.cluster.local``.
    port : int
        Destination port.
    path : str
        Request path, with query string if any.
    headers : mapping or iterable of (name, value)
        Request headers (names are case-insensitive).
    method : str
        HTTP method.
    address : str, optional
        The destination IP the connection is made to (the Service's ClusterIP). Default:
        ``host`` when it is an IP.
    authority : str, optional
        The ``Host``/``:authority`` header; default ``host`` plus ``:port`` unless the port is 80
        (what curl sends).
    protocol : {"http", "tcp"}
        What the client speaks (HTTP is detected by Envoy's http_inspector).
    """
    res = Resolution(host=host, port=port)
    hdrs = {str(k).lower(): str(v) for k, v in (headers.items() if isinstance(headers, Mapping) else headers)}
    dst_ip = address or (host if _is_ip(host) else None)
    if authority is None:
        authority = host if port == 80 else f"{host}:{port}"
    hdrs.setdefault(":authority", authority)
    hdrs.setdefault("host", authority)
    hdrs.setdefault(":path", path)
    hdrs.setdefault(":method", method.upper())
    res.warnings.extend(cfg.warnings)
    if not cfg.listeners and not cfg.inactive_listeners:
        held = "; ".join(f"{inv.source}: {inv.form}, {inv.contents()}" for inv in cfg.inputs)
        res.failure = (f"no listeners in the input ({held}); give a config_dump or istioctl proxy-config "
                       "listener output")
        return res
    li = select_listener(cfg, dst_ip, port, res)
    if li is None:
        idle = [(x, why) for x, why in cfg.inactive_listeners if _listener_addr(x)[1] == port]
        if idle:
            x, why = idle[0]
            res.failure = (f"listener {x.get('name')} on port {port} is {why} in the input: Envoy does not "
                           "accept connections on it (yet)")
        else:
            res.failure = f"no listener accepts {dst_ip or host}:{port} (connection refused or not captured)"
        return res
    if li.get("filter_chain_matcher"):
        res.notes.append(f"listener {li['name']} picks its filter chain with filter_chain_matcher, which "
                         "meshstat does not evaluate: filter_chain_match criteria used")
    fc = select_filter_chain(li, dst_ip, port, protocol, res)
    if fc is None:
        res.failure = f"no filter chain of listener {li['name']} matches"
        return res
    nf = _network_filter(fc)
    if nf is None:
        res.failure = f"filter chain of {li['name']} has neither http_connection_manager nor tcp_proxy"
        return res
    kind, tc = nf
    if kind == "tcp":
        res.protocol = "tcp"
        wc = tc.get("weighted_clusters")
        if isinstance(wc, dict):
            for c in wc.get("clusters") or []:
                res.tcp_clusters.append((str(c.get("name")), int(c.get("weight") or 0)))
            detail = ", ".join(f"{n}={w}" for n, w in res.tcp_clusters)
            res.steps.append(ResolutionStep("tcp_proxy", "weighted_clusters",
                                            f"{detail}; one pick per connection"))
        else:
            res.tcp_clusters.append((str(tc.get("cluster")), 1))
            res.steps.append(ResolutionStep("tcp_proxy", str(tc.get("cluster")), "single cluster"))
        if protocol == "http":
            res.notes.append("the matching filter chain is tcp_proxy: requests follow their connection")
        return res
    if "route_config" not in tc and "rds" not in tc:
        what = "scoped_routes" if "scoped_routes" in tc else "neither route_config nor rds"
        res.failure = f"the http_connection_manager of {li['name']} has {what}: its routes are not modelled"
        return res
    if "route_config" in tc:
        rc = tc["route_config"]
        rc_name = str(rc.get("name", ""))
        res.steps.append(ResolutionStep("route configuration", rc_name,
                                        "inline in the http_connection_manager", cfg.where("route", rc_name)))
    else:
        rc_name = str(((tc.get("rds") or {}).get("route_config_name")) or "")
        rc = cfg.route_configs.get(rc_name)
        if rc is None:
            state = cfg.inactive.get(("route", rc_name))
            if state is not None:
                res.failure = f"RDS route configuration {rc_name!r} {state} in the input"
            else:
                res.failure = (f"RDS route configuration {rc_name!r} not in the input (add istioctl "
                               "proxy-config route output)")
            res.steps.append(ResolutionStep("route configuration", rc_name, f"RDS: {state or 'missing'}"))
            return res
        res.steps.append(ResolutionStep("route configuration", rc_name, "RDS", cfg.where("route", rc_name)))
    strip = bool(tc.get("strip_any_host_port"))
    vh, why = find_virtual_host(rc, hdrs[":authority"], strip_port=strip)
    if vh is None:
        res.failure = f"404 NR: no virtual host for :authority {hdrs[':authority']!r}"
        res.steps.append(ResolutionStep("virtual host", "-", why))
        return res
    res.steps.append(ResolutionStep("virtual host", str(vh.get("name", "")),
                                    f"{why} for :authority {hdrs[':authority']!r}"))
    for i, r in enumerate(vh.get("routes") or []):
        match = r.get("match") or {}
        if not route_static_match(match, path, hdrs, res.notes):
            continue
        frac = _fraction(match)
        name = str(r.get("name") or f"routes[{i}]")
        cand = RouteCandidate(i, name, frac, _route_action(r), json.dumps(match, sort_keys=True))
        res.candidates.append(cand)
        detail = f"match {json.dumps(match, sort_keys=True)}"
        if frac is not None:
            detail += f"; runtime_fraction {frac[0]}/{frac[1]} (same random value as the cluster pick)"
        res.steps.append(ResolutionStep("route", name, detail))
        if frac is None:
            break
    if not res.candidates:
        res.failure = "404 NR: no route matched"
    return res


# --------------------------------------------------------------------------- envoy dump -> route


def envoy_dump_route(
    cfg: EnvoyConfig,
    host: str,
    port: int,
    *,
    path: str = "/",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    address: str | None = None,
    authority: str | None = None,
    protocol: str = "http",
    namer: Callable[[Endpoint, str], Backend] | None = None,
    name: str = "envoy",
) -> tuple[Route, Resolution]:
    """Resolve a call through an Envoy config and build the :class:`Route` of its split.

    Returns
    -------
    route : Route
        Weighted clusters (or the runtime_fraction-correlated combination) over cluster
        stages over endpoints; failures (404 NR, 503 NC) are leaves of their own.
    resolution : Resolution
        The trace (listener, filter chain, route configuration, virtual host, route).
    """
    res = resolve_call(cfg, host, port, path=path, headers=headers, address=address,
                       authority=authority, protocol=protocol)
    notes: list[str] = list(res.notes)
    used: set[str] = set()
    hdrs = {str(k).lower(): str(v) for k, v in (headers.items() if isinstance(headers, Mapping) else headers)}

    unknown_clusters: list[str] = []
    unknown_endpoints: list[str] = []
    zone_aware = zone_aware_context(cfg, notes)

    def cluster_node(cname: str, unit: str) -> Node:
        cl = cfg.clusters.get(cname)
        if cl is None and cname not in cfg.assignments and cname not in cfg.host_statuses:
            state = cfg.inactive.get(("cluster", cname))
            if state is not None:  # in the dump, but not one Envoy routes to
                notes.append(f"cluster {cname} is {state}: Envoy answers 503 NC until it is active")
                return Backend(name=f"503 NC cluster {state.split(' (')[0]} ({cname})",
                               labels=(("outcome", "503"),))
            if not cfg.clusters_complete:  # the input does not hold every cluster: Envoy may have it
                unknown_clusters.append(cname)
                return Backend(name=f"cluster unknown (not in the input): {cname}",
                               labels=(("outcome", "unknown"),))
            return Backend(name=f"503 NC cluster not found ({cname})", labels=(("outcome", "503"),))
        if cl is not None and cl.type == "ORIGINAL_DST":
            return Backend(name=f"{cname} (original destination {address or host}:{port})",
                           address=f"{address or host}:{port}", labels=(("outcome", "passthrough"),))
        if not cfg.has_endpoints_for(cname):
            unknown_endpoints.append(cname)
            return Backend(name=f"endpoints unknown (not in the input): {cname}",
                           labels=(("outcome", "unknown"),))
        eps, factor, origin = cfg.endpoints_of(cname)
        policy = cl.lb_policy if cl is not None else "ROUND_ROBIN"
        out_eps = []
        for e in eps:
            if namer is not None:
                b = namer(e, cname)
            else:
                health = () if e.health == "HEALTHY" else (("health", e.raw_health),)
                b = Backend(name=e.key, address=e.key, labels=e.labels + health)
            if b.name in used:
                b = Backend(name=f"{cname}/{b.name}", address=b.address, labels=b.labels, provenance=b.provenance)
            used.add(b.name)
            out_eps.append(EP(backend=b, weight=e.weight, health=e.health, priority=e.priority, locality=e.locality,
                              locality_weight=e.locality_weight))
        prov = None
        if cl is not None and cl.source:
            prov = Provenance(cl.source, cl.line)
        shown = (" (the cluster is not in the input: assumed)" if cl is None
                 else "" if cl.lb_policy_explicit else " (default)")
        notes.append(f"{cname}: lb_policy {policy}{shown}, {len(out_eps)} endpoint(s) from {origin}; "
                     "endpoint LB modelled by its long-run share")
        return endpoint_stage(cname, out_eps, policy=policy, unit=unit, overprovisioning=factor,
                              panic_threshold=cl.panic_threshold if cl else DEFAULT_PANIC_THRESHOLD,
                              locality_weighted=bool(cl and cl.locality_weighted), notes=notes, provenance=prov,
                              zone_aware=zone_aware and zone_aware.for_cluster(cl))

    root: Node
    if res.failure is not None:
        root = Backend(name=res.failure.split(":")[0] if res.failure.startswith("404") else res.failure,
                       labels=(("outcome", "error"),))
    elif res.protocol == "tcp":
        if len(res.tcp_clusters) == 1:
            root = cluster_node(res.tcp_clusters[0][0], "connection")
        else:
            kids = [cluster_node(n, "connection") for n, w in res.tcp_clusters]
            root = Weighted(children=tuple(kids), weights=tuple(w for _, w in res.tcp_clusters), unit="connection",
                            name="tcp_proxy weighted_clusters (per connection)")
    else:
        cands = res.candidates
        conditional = any(c.fraction is not None for c in cands)
        if not conditional:
            c = cands[0]
            root = _action_node(c.action, cluster_node, hdrs, notes)
        else:
            items = []
            for c in cands:
                if c.action[0] == "cluster":
                    items.append((c.fraction, [(c.action[1], 1)]))
                elif c.action[0] == "weighted":
                    ws = [(n, w) for n, w in c.action[1]]
                    if c.action[2].get("header_name") or c.action[2].get("use_hash_policy"):
                        notes.append(f"route {c.name}: weighted clusters keyed by a header: the correlation "
                                     "is computed for requests without that header")
                    items.append((c.fraction, ws))
                else:
                    items.append((c.fraction, [(f"{c.action[0]} {c.action[1]}".strip(), 1)]))
            cluster_names = {c.action[1] for c in cands if c.action[0] == "cluster"}
            cluster_names |= {x for c in cands if c.action[0] == "weighted" for x, _ in c.action[1]}
            masses = correlated_weights(items)
            g = 0
            for _, m in masses:
                g = math.gcd(g, m)
            kids, ws = [], []
            for outcome, m in masses:
                if outcome in cluster_names:
                    kids.append(cluster_node(outcome, "request"))
                else:
                    kids.append(Backend(name=outcome, labels=(("outcome", "error"),)))
                ws.append(m // g if g else m)
            total = sum(m for _, m in masses)
            notes.append(
                "runtime_fraction routes and weighted clusters use the same per-request random value R "
                f"(docs/measurements.md, M10): shares counted exactly over R mod {total}"
            )
            root = Weighted(children=tuple(kids), weights=tuple(ws), unit="request",
                            name=f"runtime_fraction + weighted clusters (one R mod {total})")
    if unknown_clusters:
        names = ", ".join(dict.fromkeys(unknown_clusters))
        res.warnings.append(
            f"the input does not hold Envoy's clusters ({cfg.lacking('clusters')}): {names} shown as "
            "'cluster unknown (not in the input)', not 503 NC (Envoy forwards to a cluster it has); "
            "add istioctl proxy-config cluster POD -o json or the whole config_dump")
    if unknown_endpoints:
        names = ", ".join(dict.fromkeys(unknown_endpoints))
        res.warnings.append(
            f"the input does not hold the endpoints of EDS clusters ({cfg.lacking('endpoints')}): {names} "
            "shown as 'endpoints unknown (not in the input)', not 503 no_healthy_upstream; add istioctl "
            "proxy-config endpoint POD -o json or a config_dump taken with ?include_eds")
    route = Route(root=root, name=name, notes=tuple(dict.fromkeys(notes)))
    return route, res


def _action_node(action: tuple[Any, ...], cluster_node: Callable[[str, str], Node], hdrs: Mapping[str, str],
                 notes: list[str]) -> Node:
    kind = action[0]
    if kind == "cluster":
        return cluster_node(action[1], "request")
    if kind == "weighted":
        items, opts = action[1], action[2]
        if opts.get("runtime_key_prefix"):
            notes.append(f"weighted clusters have runtime_key_prefix {opts['runtime_key_prefix']!r}: "
                         "runtime overrides would change the weights; configured weights used")
        if opts.get("total_weight"):
            notes.append("total_weight is deprecated and ignored by Envoy (weights are relative)")
        hn = opts.get("header_name")
        if hn:
            val = hdrs.get(str(hn).lower())
            if val is not None and ascii_digits(val) and int(val) < 2**64:
                W = sum(w for _, w in items)
                v = int(val) % W
                acc = 0
                for n, w in items:
                    if acc <= v < acc + w:
                        notes.append(f"header {hn}: {val} -> {v} mod {W}: always {n}")
                        return cluster_node(n, "request")
                    acc += w
            notes.append(f"weighted clusters read the random value from header {hn!r}; absent or invalid here, "
                         "so Envoy falls back to its random value")
        if opts.get("use_hash_policy"):
            notes.append("use_hash_policy: each hash key always gets the same cluster (xxHash64 of the key mod total "
                         "weight); over many keys, or without the key, the split is the weights")
        kids = [cluster_node(n, "request") for n, _ in items]
        return Weighted(children=tuple(kids), weights=tuple(w for _, w in items), unit="request",
                        name="weighted clusters " + "/".join(str(w) for _, w in items))
    if kind == "direct_response":
        return Backend(name=f"direct_response {action[1]}", labels=(("outcome", "direct"),))
    if kind == "redirect":
        return Backend(name="redirect", labels=(("outcome", "redirect"),))
    notes.append(f"route action not modelled: {action[1]}")
    return Backend(name=f"not modelled: {action[1]}", labels=(("outcome", "error"),))

