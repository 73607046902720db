"""Every route a rule set has for a service: one representative request per match condition.

A VirtualService (and, through :data:`RequestsFor`, any other route source such as a Gateway API
HTTPRoute) splits traffic differently per match: ``end-user: jason`` to v2, everything else to
v3. :func:`candidate_requests` builds one request that satisfies each ``match`` (exact and prefix
paths, exact/prefix/present headers, methods; a regex condition cannot be synthesised and is named
in a note) plus the default request ``GET /``; :func:`paths_per_route` computes the client paths
of each and keeps one group per distinct outcome, labelled by the first condition that gives it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from meshstat.mesh.envoy import query_params
from meshstat.mesh.layers import ClientPath
from meshstat.mesh.registry import RegisteredService, labels_subset
from meshstat.mesh.scope import host_rules
from meshstat.model import exact_sum
from meshstat.parsers.k8s import HTTPMatch
from meshstat.parsers.regex import re2_full_match

__all__ = ["DEFAULT_REQUEST", "Request", "RequestsFor", "authority", "candidate_requests", "paths_per_route",
           "request_matches"]


def authority(info: RegisteredService, port: int) -> str:
    """The ``:authority`` of a call to ``info:port`` (``reviews:9080``; a ServiceEntry's host)."""
    return f"{info.name if info.service else info.fqdn}:{port}"


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as route matching sees it: path (with query), headers (lower-case names), method."""

    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "GET"

    @classmethod
    def of(cls, path: str | None = None, headers: Mapping[str, str] | None = None,
           method: str | None = None) -> Request:
        """From command-line style values (``None``: the default)."""
        return cls(path or "/", tuple(sorted((k.lower(), v) for k, v in (headers or {}).items())),
                   (method or "GET").upper())

    @property
    def header_map(self) -> dict[str, str]:
        return dict(self.headers)

    def describe(self) -> str:
        """``GET /reviews end-user: jason``."""
        hs = " ".join(f"{k}: {v}" for k, v in self.headers)
        return f"{self.method} {self.path}" + (f" {hs}" if hs else "")


DEFAULT_REQUEST = Request()

#: ``requests_for(mesh, info, port, notes) -> [(condition, Request), ...]``: the representative requests of
#: route sources other than VirtualServices (the Gateway API routes: ``mesh.gateway_api.route_requests``);
#: a match it cannot turn into a request is named in ``notes``.
RequestsFor = Callable[[Any, RegisteredService, int, list[str]], list[tuple[str, Request]]]


def _synthesise(m: HTTPMatch, notes: list[str], where: str) -> tuple[str, Request] | None:
    conds: list[str] = []
    path = "/"
    if m.uri is not None:
        kind, val = m.uri
        if kind == "regex":
            notes.append(f"{where}: uri regex {val!r} cannot be turned into a request; give --path to see its route")
            return None
        path = val if val.startswith("/") else "/" + val
        conds.append(f"uri {kind} {val}")
    headers: dict[str, str] = {}
    for name, kind, val in m.headers:
        if kind == "regex":
            notes.append(f"{where}: header {name} regex {val!r} cannot be turned into a request; give --header")
            return None
        headers[name.lower()] = val if kind in ("exact", "prefix") else "x"
        conds.append(f"{name} {kind}" + (f" {val}" if kind != "present" else ""))
    method = "GET"
    if m.method is not None:
        kind, val = m.method
        if kind == "regex":
            notes.append(f"{where}: method regex {val!r} cannot be turned into a request; give --method")
            return None
        method = val.upper()
        conds.append(f"method {val}")
    for label, what in ((m.source_labels, "sourceLabels"), (m.source_namespace, "sourceNamespace"),
                        (m.authority, "authority"), (m.without_headers, "withoutHeaders")):
        if label:
            conds.append(f"{what} {label}")
    return (", ".join(conds) or "any request"), Request.of(path, headers, method)


def request_matches(vs_match: Any, path: str, headers: Mapping[str, str], method: str, authority: str,
                    port: int, client_labels: Mapping[str, str], client_ns: str, notes: list[str]) -> bool:
    """Whether a request (path with query, headers, method, authority, port) from a client (labels, namespace)
    meets a VirtualService ``http.match`` entry, as Envoy evaluates the route istiod writes from it; match
    fields meshstat does not evaluate are assumed to hold, with a note."""
    def sm(kind_value: tuple[str, str] | None, value: str | None, ignore_case: bool = False) -> bool:
        if kind_value is None:
            return True
        kind, pat = kind_value
        if value is None:
            return False
        if kind == "present":
            return True
        v, p = (value.lower(), pat.lower()) if ignore_case else (value, pat)
        if kind == "exact":
            return v == p
        if kind == "prefix":
            return v.startswith(p)
        # Envoy safe_regex: RE2, the whole value; ignoreUriCase does not apply to a regex (Envoy's
        # case_sensitive has no effect on safe_regex)
        return re2_full_match(pat, value)

    m = vs_match
    if not sm(m.uri, path.split("?", 1)[0], m.ignore_uri_case):
        return False
    for name, kind, val in m.headers:
        if not sm((kind, val), headers.get(name)):
            return False
    for name, kind, val in m.without_headers:
        # istiod inverts the header matcher and, unless it is a presence match, sets
        # treat_missing_header_as_empty (route.go: TranslateRouteMatch): an absent header is ""
        value = headers.get(name)
        if value is None and kind != "present":
            value = ""
        if sm((kind, val), value):
            return False
    params = query_params(path)
    for name, kind, val in m.query_params:
        if not sm((kind, val), params.get(name)):
            return False
    if not sm(m.method, method) or not sm(m.authority, authority):
        return False
    if m.port is not None and m.port != port:
        return False
    if not labels_subset(m.source_labels, client_labels):
        return False
    if m.source_namespace is not None and m.source_namespace != client_ns:
        return False
    if m.gateways and "mesh" not in m.gateways:
        return False
    if m.unsupported:
        notes.append(f"match fields {', '.join(m.unsupported)} not evaluated (assumed to hold)")
    return True


def candidate_requests(mesh: Any, info: RegisteredService, port: int,
                       notes: list[str] | None = None) -> list[tuple[str, Request]]:
    """One request per match condition of the VirtualServices for ``info`` (and ``mesh.requests_for``).

    The default request ``GET /`` comes first; duplicates are dropped.
    """
    notes = notes if notes is not None else []
    out: list[tuple[str, Request]] = [("GET / (no headers)", DEFAULT_REQUEST)]
    for vs in host_rules(mesh).virtual_services(info):
        if not any(mesh._host_matches(h, vs.meta.namespace, info) for h in vs.hosts):
            continue
        for rule in vs.http:
            for j, m in enumerate(rule.matches):
                got = _synthesise(m, notes, f"VirtualService {vs.meta.ref} http[{rule.index}].match[{j}]")
                if got is not None:
                    out.append(got)
    hook: RequestsFor | None = getattr(mesh, "requests_for", None)
    if hook is not None:
        out.extend(hook(mesh, info, port, notes))
    seen: set[Request] = set()
    uniq = []
    for cond, req in out:
        if req not in seen:
            seen.add(req)
            uniq.append((cond, req))
    return uniq


def _add_new(mesh: Any, diags: list[Any], found: list[Any]) -> None:
    """Append to ``diags`` what in ``found`` it does not hold yet (a set kept beside the list on the mesh:
    a cluster's services add to one list, and a scan of it per service would cost services squared)."""
    memo = mesh.__dict__.get("_diags_seen")
    if memo is None or memo[0] is not diags or memo[1] != len(diags):
        memo = [diags, len(diags), set(diags)]
        mesh.__dict__["_diags_seen"] = memo
    seen = memo[2]
    for d in found:
        if d not in seen:
            seen.add(d)
            diags.append(d)
    memo[1] = len(diags)


def _signature(paths: list[ClientPath]) -> tuple[Any, ...]:
    sig = []
    for p in paths:
        parts: dict[str, list[Fraction]] = {}
        for b, s in zip(p.route.backends(), p.route.expected_shares()[0], strict=True):
            parts.setdefault(b.name, []).append(s)
        sig.append((p.label, tuple(sorted((k, exact_sum(v)) for k, v in parts.items()))))
    return tuple(sig)


def paths_per_route(mesh: Any, info: RegisteredService, port: int, *, request: Request | None = None,
                    client: Any = None, envoy: Any = None, diags: list[Any] | None = None,
                    notes: list[str] | None = None) -> list[tuple[str, Request, list[ClientPath]]]:
    """The client paths of ``info:port`` per distinct route: ``[(condition, request, paths), ...]``.

    With ``request`` only that request (condition ``""``). Otherwise every candidate request;
    requests whose paths give the same shares on every path are one group (the first condition
    names it, the others are listed after it). A single group gets the condition ``""``.
    """
    diags = diags if diags is not None else []
    if request is not None:
        return [("", request, mesh.client_paths(info, port, client=client, path=request.path,
                                                 headers=request.header_map, method=request.method, envoy=envoy,
                                                 diags=diags))]
    groups: dict[tuple[Any, ...], tuple[list[str], Request, list[ClientPath]]] = {}
    candidates = candidate_requests(mesh, info, port, notes)
    for cond, req in candidates:
        scratch: list[Any] = []
        paths = mesh.client_paths(info, port, client=client, path=req.path, headers=req.header_map,
                                  method=req.method, envoy=envoy, diags=scratch)
        sig = _signature(paths) if len(candidates) > 1 else ()  # one request: nothing to group
        if sig in groups:
            groups[sig][0].append(cond)
            continue
        groups[sig] = ([cond], req, paths)
        _add_new(mesh, diags, scratch)
    if len(groups) == 1:
        (_, req, paths), = groups.values()
        return [("", req, paths)]
    return [(conds[0] + (f" (also: {'; '.join(conds[1:])})" if len(conds) > 1 else ""), req, paths)
            for conds, req, paths in groups.values()]
