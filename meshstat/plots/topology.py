"""Per-pod load of a Service in each scenario (:class:`meshstat.topology.TopologyComparison`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from meshstat.plots import pyplot

__all__ = ["plot_pod_load"]


def plot_pod_load(cmp: Any, scenarios: list[str] | None = None, path: str | None = None) -> Any:
    """Grouped bars: each pod's share (or requests per second) per scenario, pods coloured by zone order.

    A dashed line marks the mean per pod of each scenario's first bar group; returns the Figure.
    """
    plt = pyplot()
    splits = [s for s in cmp.splits if scenarios is None or s.scenario in scenarios]
    pods: dict[str, Any] = {}
    for s in splits:
        for p in s.pods:
            pods.setdefault(p.key, p)
    keys = list(pods)
    x = np.arange(len(keys))
    width = 0.8 / max(len(splits), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(keys) + 2), 4.2), constrained_layout=True)
    rps = splits[0].rps if splits else None
    for i, s in enumerate(splits):
        vals = [float(s.internal.get(k, 0)) * (rps or 1) for k in keys]
        ax.bar(x + (i - (len(splits) - 1) / 2) * width, vals, width, label=s.scenario)
    if splits:
        mean = (rps or 1) * sum(float(v) for v in splits[0].internal.values()) / max(len(splits[0].pods), 1)
        ax.axhline(mean, ls="--", color="grey", lw=1, label="mean per pod")
    ax.set_xticks(x, [f"{pods[k].label}\n{pods[k].zone}" for k in keys], fontsize=7, rotation=20)
    ax.set_ylabel("requests per second" if rps else "share of connections")
    ax.set_title(f"{cmp.cluster.service.port_ref}: load per pod")
    ax.legend(fontsize=8)
    if path:
        fig.savefig(path, dpi=110)
    return fig
