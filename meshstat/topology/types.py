"""The two records every topology module shares: a node and an endpoint."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Endpoint", "TopoNode"]


@dataclass(frozen=True, slots=True)
class TopoNode:
    """A node: name, zone, region, allocatable CPU (millicores), readiness, control-plane label."""

    name: str
    zone: str | None
    region: str | None = None
    cpu_milli: int = 0
    ready: bool = True
    control_plane: bool = False
    lb_excluded: bool = False
    synthetic: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of a Service port as kube-proxy and the controller read it.

    ``ready``/``serving``/``terminating`` follow kube-proxy (``pkg/proxy/endpointslicecache.go``: unset ready
    and serving mean true, unset terminating false); ``controller_ready`` is the controller's stricter
    reading (``ready`` set and true).
    """

    ip: str
    port: int
    pod: str | None
    node: str | None
    zone: str | None
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    controller_ready: bool = True
    zone_hints: tuple[str, ...] = ()
    node_hints: tuple[str, ...] = ()
    workload: str | None = None

    def hinted(self, zone_hints: tuple[str, ...] = (), node_hints: tuple[str, ...] = ()) -> Endpoint:
        """This endpoint with the hints ``zone_hints`` and ``node_hints`` (what the controller writes): ``replace``
        without its generic walk over the fields (every endpoint of every Service of a cluster audit)."""
        return Endpoint(self.ip, self.port, self.pod, self.node, self.zone, self.ready, self.serving, self.terminating,
                        self.controller_ready, zone_hints, node_hints, self.workload)

    @property
    def key(self) -> str:
        """``"ip:port"`` as kube-proxy writes it (``[ip]:port`` for IPv6)."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    @property
    def label(self) -> str:
        """The pod name, else the address."""
        return self.pod.split("/", 1)[1] if self.pod else self.key
