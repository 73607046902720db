"""The objects that decide who a routing rule applies to, and where ambient traffic goes.

Read from the documents :mod:`meshstat.parsers.k8s` keeps but does not parse itself
(``Manifests.unparsed``):

* ``networking.istio.io`` ``Sidecar``: ``workloadSelector``, ``egress`` listeners (``port``,
  ``hosts`` as ``namespace/dnsName``) and ``outboundTrafficPolicy`` (istio/api
  ``networking/v1alpha3/sidecar.proto``);
* the mesh configuration: the ConfigMap ``istio`` (or ``istio-<revision>``) with its ``mesh``
  key, or an ``IstioOperator``'s ``spec.meshConfig``: ``outboundTrafficPolicy.mode``,
  ``rootNamespace``, ``defaultVirtualServiceExportTo``, ``defaultDestinationRuleExportTo``,
  ``defaultServiceExportTo`` (istio/api ``mesh/v1alpha1/config.proto``);
* ``gateway.networking.k8s.io`` ``Gateway`` objects of class ``istio-waypoint`` (Istio's
  waypoints: name, labels, listeners with ``allowedRoutes.namespaces``) and the
  ``istio-waypoint`` ``GatewayClass`` (its ``istio.io/waypoint-for`` label).

:func:`unmodelled_warnings` names, one line per kind, every object kind of the input that
meshstat does not model, with what that kind can change.

Pure Python (standard library and PyYAML).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meshstat.errors import ConfigParseError
from meshstat.parsers.k8s import (
    Diagnostic,
    Manifests,
    Meta,
    _Ctx,
    _list,
    _map,
    _str,
    _str_list,
    _str_map,
)

__all__ = [
    "WAYPOINT_CLASS",
    "EgressListener",
    "MeshConfig",
    "ScopeObjects",
    "SidecarResource",
    "WaypointGateway",
    "read_scope_objects",
    "unmodelled_warnings",
]

#: The GatewayClass of Istio's waypoints (istio ``pkg/config/constants``: ``WaypointGatewayClassName``).
WAYPOINT_CLASS = "istio-waypoint"
_GATEWAY_GROUP = "gateway.networking.k8s.io"
_ISTIO_GROUP = "networking.istio.io"


@dataclass(frozen=True, slots=True)
class EgressListener:
    """One ``egress`` entry of a Sidecar: an optional port and the hosts it imports."""

    port: int | None
    hosts: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class SidecarResource:
    """An Istio ``Sidecar``: which workloads it selects and which hosts their proxies know.

    ``selector`` is ``None`` for a namespace-wide Sidecar (no ``workloadSelector``); ``egress``
    empty means the Sidecar does not restrict egress (Istio then imports ``*/*``).
    """

    meta: Meta
    selector: tuple[tuple[str, str], ...] | None
    egress: tuple[EgressListener, ...]
    outbound_policy: str | None


@dataclass(frozen=True, slots=True)
class MeshConfig:
    """The parts of Istio's MeshConfig that decide visibility and unknown-destination traffic.

    Defaults are Istio's (``ALLOW_ANY``, root namespace ``istio-system``, every default
    ``exportTo`` ``*``); ``source``/``line`` say where the values came from (``None``: defaults).
    """

    outbound_policy: str = "ALLOW_ANY"
    root_namespace: str = "istio-system"
    vs_export_to: tuple[str, ...] = ("*",)
    dr_export_to: tuple[str, ...] = ("*",)
    service_export_to: tuple[str, ...] = ("*",)
    source: str | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class WaypointGateway:
    """A Gateway API ``Gateway`` as ambient sees it (a waypoint when its class is ``istio-waypoint``).

    ``hbone_from`` is ``allowedRoutes.namespaces.from`` of the HBONE listener on 15008
    (``Same`` when absent); ``hbone_selector`` its ``matchLabels``.
    """

    meta: Meta
    class_name: str
    waypoint_for: str | None
    hbone_from: str
    hbone_selector: tuple[tuple[str, str], ...]
    has_addresses: bool

    @property
    def is_waypoint_class(self) -> bool:
        return self.class_name == WAYPOINT_CLASS


@dataclass
class ScopeObjects:
    """What :func:`read_scope_objects` found, and which unparsed objects it used."""

    sidecars: list[SidecarResource] = field(default_factory=list)
    mesh_config: MeshConfig = MeshConfig()
    gateways: list[WaypointGateway] = field(default_factory=list)
    class_waypoint_for: dict[str, str] = field(default_factory=dict)
    consumed: list[Meta] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def _sidecar(ctx: _Ctx, meta: Meta, doc: Any) -> SidecarResource:
    spec = _map(ctx, doc, "spec", "Sidecar")
    ws = spec.get("workloadSelector")
    selector = _str_map(ctx, _map(ctx, spec, "workloadSelector", "Sidecar spec"), "labels",
                        "Sidecar workloadSelector") if ws is not None else None
    egress = []
    for e in _list(ctx, spec, "egress", "Sidecar spec"):
        if not isinstance(e, dict):
            raise ctx.fail("expected the egress entries of a Sidecar to be mappings", spec, "egress", e)
        port = _map(ctx, e, "port", "Sidecar egress").get("number")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise ctx.fail("expected egress port.number of a Sidecar to be an integer", e, "port", port)
        hosts = _str_list(ctx, e, "hosts", "Sidecar egress")
        for h in hosts:
            if h.count("/") != 1:
                raise ctx.fail(f"expected a Sidecar egress host as namespace/dnsName, got {h!r}", e, "hosts", h)
        egress.append(EgressListener(port, hosts, e.line))
    otp = _str(ctx, _map(ctx, spec, "outboundTrafficPolicy", "Sidecar spec"), "mode", "outboundTrafficPolicy")
    return SidecarResource(meta, selector, tuple(egress), otp.upper() if otp else None)


def _mesh_config(ctx: _Ctx, meta: Meta, mc: Any) -> MeshConfig:
    if not isinstance(mc, dict):
        raise ConfigParseError("expected the mesh configuration to be a mapping", source=meta.source, line=meta.line)

    def export(key: str) -> tuple[str, ...]:
        v = mc.get(key)
        if v is None:
            return ("*",)
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ConfigParseError(f"expected meshConfig {key} to be a list of strings", source=meta.source,
                                   line=meta.line)
        return tuple(v) or ("*",)

    otp = mc.get("outboundTrafficPolicy") or {}
    mode = str((otp.get("mode") if isinstance(otp, dict) else None) or "ALLOW_ANY").upper()
    if mode not in ("ALLOW_ANY", "REGISTRY_ONLY"):
        raise ConfigParseError(f"expected outboundTrafficPolicy.mode ALLOW_ANY or REGISTRY_ONLY, got {mode!r}",
                               source=meta.source, line=meta.line)
    return MeshConfig(mode, str(mc.get("rootNamespace") or "istio-system"), export("defaultVirtualServiceExportTo"),
                      export("defaultDestinationRuleExportTo"), export("defaultServiceExportTo"), meta.source,
                      meta.line)


def _gateway(ctx: _Ctx, meta: Meta, doc: Any) -> WaypointGateway:
    spec = _map(ctx, doc, "spec", "Gateway")
    cls = _str(ctx, spec, "gatewayClassName", "Gateway spec") or ""
    hb_from, hb_sel = "Same", ()
    for li in _list(ctx, spec, "listeners", "Gateway spec"):
        if not isinstance(li, dict):
            raise ctx.fail("expected Gateway listeners to be mappings", spec, "listeners", li)
        if str(li.get("protocol")) == "HBONE" and li.get("port") == 15008:
            ns = _map(ctx, _map(ctx, li, "allowedRoutes", "Gateway listener"), "namespaces", "allowedRoutes")
            hb_from = _str(ctx, ns, "from", "allowedRoutes.namespaces") or "Same"
            hb_sel = _str_map(ctx, _map(ctx, ns, "selector", "allowedRoutes.namespaces"), "matchLabels",
                              "namespace selector")
            break
    addresses = bool(_list(ctx, _map(ctx, doc, "status", "Gateway"), "addresses", "Gateway status"))
    return WaypointGateway(meta, cls, dict(meta.labels).get("istio.io/waypoint-for"), hb_from, hb_sel, addresses)


def read_scope_objects(manifests: Manifests) -> ScopeObjects:
    """The Sidecars, mesh configuration, waypoint Gateways and GatewayClass labels of ``manifests``.

    Raises
    ------
    ConfigParseError
        A field of the wrong type (file and line of the object).
    """
    out = ScopeObjects()
    for meta, doc in manifests.unparsed:
        group = meta.api_version.split("/")[0] if "/" in meta.api_version else ""
        ctx = _Ctx(meta.source, meta.namespace)
        if group == _ISTIO_GROUP and meta.kind == "Sidecar":
            out.sidecars.append(_sidecar(ctx, meta, doc))
        elif group == "" and meta.kind == "ConfigMap" and (meta.name == "istio" or meta.name.startswith("istio-")) \
                and "mesh" in _map(ctx, doc, "data", "ConfigMap"):
            import yaml

            text = _str(ctx, _map(ctx, doc, "data", "ConfigMap"), "mesh", "ConfigMap data")
            try:
                mc = yaml.safe_load(text or "") or {}
            except yaml.YAMLError as exc:
                raise ConfigParseError(f"ConfigMap {meta.ref} data.mesh is not valid YAML: {exc}",
                                       source=meta.source, line=meta.line) from None
            out.mesh_config = _mesh_config(ctx, meta, mc)
        elif group == "install.istio.io" and meta.kind == "IstioOperator":
            mc = _map(ctx, _map(ctx, doc, "spec", "IstioOperator"), "meshConfig", "IstioOperator spec")
            out.mesh_config = _mesh_config(ctx, meta, mc)
        elif group == _GATEWAY_GROUP and meta.kind == "Gateway":
            gw = _gateway(ctx, meta, doc)
            out.gateways.append(gw)
            if not gw.is_waypoint_class:
                continue  # an ingress Gateway: not modelled here, so it is named by unmodelled_warnings
        elif group == _GATEWAY_GROUP and meta.kind == "GatewayClass" and meta.name == WAYPOINT_CLASS:
            wf = dict(meta.labels).get("istio.io/waypoint-for")
            if wf:
                out.class_waypoint_for[meta.name] = wf
        else:
            continue
        out.consumed.append(meta)
    return out


#: What an unmodelled kind can change, for the warning that names it.
_IMPACT = {
    "ServiceAccount": "identity only; no effect on the split",
    "ConfigMap": "no effect on the split",
    "Secret": "no effect on the split",
    "Role": "no effect on the split",
    "RoleBinding": "no effect on the split",
    "ClusterRole": "no effect on the split",
    "ClusterRoleBinding": "no effect on the split",
    "PodDisruptionBudget": "no effect on the split",
    "HorizontalPodAutoscaler": "replicas may differ from spec.replicas (use --scale)",
    "NetworkPolicy": "can drop connections before any split",
    "PeerAuthentication": "mTLS mode: a STRICT server refuses plaintext clients",
    "AuthorizationPolicy": "can deny requests (403) or connections",
    "RequestAuthentication": "can reject requests (401)",
    "EnvoyFilter": "can change any Envoy setting, routes included",
    "WasmPlugin": "can change requests",
    "Telemetry": "no effect on the split",
    "Gateway": "an ingress gateway: its routes are not modelled",
    "Ingress": "an ingress: its routes are not modelled",
    "WorkloadEntry": "its endpoints are missing from the Services that select it",
    "WorkloadGroup": "its endpoints are missing from the Services that select it",
    "Endpoints": "hand-managed endpoints are not read",
    "EndpointSlice": "hand-managed endpoints are not read",
    "DaemonSet": "its pods are not expanded (neither clients nor endpoints)",
    "Job": "its pods are not expanded (neither clients nor endpoints)",
    "CronJob": "its pods are not expanded (neither clients nor endpoints)",
}


def unmodelled_warnings(manifests: Manifests, consumed: Iterable[Meta] = ()) -> list[Diagnostic]:
    """One warning per object kind in ``manifests`` that meshstat does not model, with its count.

    ``consumed`` are the unparsed objects another reader used (:func:`read_scope_objects`).
    Each warning points at the first object of its kind and says what that kind can change.
    """
    used = {(m.source, m.line) for m in consumed}
    by_kind: dict[tuple[str, str], list[Meta]] = {}
    for m in manifests.ignored:
        if (m.source, m.line) in used:
            continue
        by_kind.setdefault((m.kind, m.api_version.split("/")[0] if "/" in m.api_version else "core"), []).append(m)
    out = []
    for (kind, group), metas in by_kind.items():
        first = metas[0]
        n = len(metas)
        what = _IMPACT.get(kind, "not read")
        out.append(Diagnostic("warning", f"{n} {kind} object{'s' if n > 1 else ''} ({group}) not modelled "
                              f"(first: {first.ref}): {what}", first.source, first.line))
    return out


def superseded(manifests: Manifests) -> set[tuple[str | None, int | None]]:
    """(source, line) of the per-object "ignored ... not modelled" notes that the grouped warnings replace."""
    return {(m.source, m.line) for m in manifests.ignored}
