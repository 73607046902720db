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
* the ``gateway.networking.k8s.io`` ``Gateway`` objects (Istio's waypoints are those of class
  ``istio-waypoint``) and the ``istio-waypoint`` ``GatewayClass``'s ``istio.io/waypoint-for``
  label, both as :mod:`meshstat.parsers.gateway_api` read them (one reading of each object).

:func:`unmodelled_warnings` names, one line per kind, every object kind of the input that
meshstat does not model, with what that kind can change.

Pure Python (standard library and PyYAML).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meshstat.errors import ConfigParseError
from meshstat.parsers.fields import (
    ManifestContext,
    field_list,
    field_map,
    field_str,
    field_str_list,
    field_str_map,
)
from meshstat.parsers.gateway_api import WAYPOINT_CLASS, Gateway, gateway_objects
from meshstat.parsers.k8s import Diagnostic, Manifests, Meta
from meshstat.records import record

__all__ = [
    "EgressListener",
    "MeshConfig",
    "ScopeObjects",
    "SidecarResource",
    "read_scope_objects",
    "unmodelled_warnings",
]

_ISTIO_GROUP = "networking.istio.io"


@record
class EgressListener:
    """One ``egress`` entry of a Sidecar: an optional port and the hosts it imports."""

    port: int | None
    hosts: tuple[str, ...]
    line: int


@record
class SidecarResource:
    """An Istio ``Sidecar``: which workloads it selects and which hosts their proxies know.

    ``selector`` is ``None`` for a namespace-wide Sidecar (no ``workloadSelector``); ``egress``
    empty means the Sidecar does not restrict egress (Istio then imports ``*/*``).
    """

    meta: Meta
    selector: tuple[tuple[str, str], ...] | None
    egress: tuple[EgressListener, ...]
    outbound_policy: str | None


@record
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


@dataclass
class ScopeObjects:
    """What :func:`read_scope_objects` found, and which unparsed objects it used."""

    sidecars: list[SidecarResource] = field(default_factory=list)
    mesh_config: MeshConfig = MeshConfig()
    #: every Gateway API ``Gateway`` (:class:`meshstat.parsers.gateway_api.Gateway`), waypoints included
    gateways: list[Gateway] = field(default_factory=list)
    class_waypoint_for: dict[str, str] = field(default_factory=dict)
    consumed: list[Meta] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _by_ns: tuple[int, dict[str, list[SidecarResource]]] | None = field(default=None, init=False, repr=False,
                                                                          compare=False)

    def sidecars_in(self, namespace: str) -> list[SidecarResource]:
        """The Sidecar resources of ``namespace``, in file order (indexed once: a cluster asks per workload)."""
        got = self._by_ns
        if got is None or got[0] != len(self.sidecars):
            index: dict[str, list[SidecarResource]] = {}
            for s in self.sidecars:
                index.setdefault(s.meta.namespace, []).append(s)
            got = (len(self.sidecars), index)
            self._by_ns = got
        return got[1].get(namespace, [])


def _sidecar(ctx: ManifestContext, meta: Meta, doc: Any) -> SidecarResource:
    spec = field_map(ctx, doc, "spec", "Sidecar")
    ws = spec.get("workloadSelector")
    selector = field_str_map(ctx, field_map(ctx, spec, "workloadSelector", "Sidecar spec"), "labels",
                        "Sidecar workloadSelector") if ws is not None else None
    egress = []
    for e in field_list(ctx, spec, "egress", "Sidecar spec"):
        if not isinstance(e, dict):
            raise ctx.fail("expected the egress entries of a Sidecar to be mappings", spec, "egress", e)
        port = field_map(ctx, e, "port", "Sidecar egress").get("number")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise ctx.fail("expected egress port.number of a Sidecar to be an integer", e, "port", port)
        hosts = field_str_list(ctx, e, "hosts", "Sidecar egress")
        for h in hosts:
            if h.count("/") != 1:
                raise ctx.fail(f"expected a Sidecar egress host as namespace/dnsName, got {h!r}", e, "hosts", h)
        egress.append(EgressListener(port, hosts, e.line))
    otp = field_str(ctx, field_map(ctx, spec, "outboundTrafficPolicy", "Sidecar spec"), "mode", "outboundTrafficPolicy")
    return SidecarResource(meta, selector, tuple(egress), otp.upper() if otp else None)


def _mesh_config(ctx: ManifestContext, meta: Meta, mc: Any) -> MeshConfig:
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
        ctx = ManifestContext(meta.source, meta.namespace)
        if group == _ISTIO_GROUP and meta.kind == "Sidecar":
            out.sidecars.append(_sidecar(ctx, meta, doc))
        elif group == "" and meta.kind == "ConfigMap" and (meta.name == "istio" or meta.name.startswith("istio-")) \
                and "mesh" in field_map(ctx, doc, "data", "ConfigMap"):
            import yaml

            text = field_str(ctx, field_map(ctx, doc, "data", "ConfigMap"), "mesh", "ConfigMap data")
            try:
                mc = yaml.safe_load(text or "") or {}
            except yaml.YAMLError as exc:
                raise ConfigParseError(f"ConfigMap {meta.ref} data.mesh is not valid YAML: {exc}",
                                       source=meta.source, line=meta.line) from None
            out.mesh_config = _mesh_config(ctx, meta, mc)
        elif group == "install.istio.io" and meta.kind == "IstioOperator":
            mc = field_map(ctx, field_map(ctx, doc, "spec", "IstioOperator"), "meshConfig", "IstioOperator spec")
            out.mesh_config = _mesh_config(ctx, meta, mc)
        else:
            continue
        out.consumed.append(meta)
    gw_objs = gateway_objects(manifests)
    out.gateways = list(gw_objs.gateways)
    for gc in gw_objs.classes:
        wf = dict(gc.meta.labels).get("istio.io/waypoint-for")
        if gc.meta.name == WAYPOINT_CLASS and wf:
            out.class_waypoint_for[gc.meta.name] = wf
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
    "UDPRoute": "its routes are not modelled",
    "BackendTLSPolicy": "TLS to the backends; no effect on the split",
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
