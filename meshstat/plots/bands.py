"""PNG of :func:`meshstat.inference.bands`: each backend's share distribution and its central bands.

One panel per backend with a positive weight: the exact binomial distribution
of the observed share (bars, or a line for large samples), the nested central
bands (shaded, widest lightest), the configured share, the ``±within`` limits
when given, and the simulated shares (step histogram) when a simulation ran.
matplotlib (Agg backend) is imported inside the function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshstat.plots import check_picture_path, save_figure

if TYPE_CHECKING:
    from meshstat.inference import BandsResult

__all__ = ["plot_bands"]


def plot_bands(result: BandsResult, path: str | None = None) -> Any:
    """Draw the bands of ``result``; write a picture to ``path`` if given; return the Figure.

    The picture's type is the suffix of ``path`` (:func:`meshstat.plots.picture_format`).
    """
    if path is not None:
        check_picture_path(path)
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy import special

    pos = [i for i, s in enumerate(result.shares) if s > 0]
    n = result.requests
    fig, axes = plt.subplots(len(pos), 1, figsize=(10.0, 2.4 * len(pos) + 0.6), squeeze=False)
    order = sorted(range(len(result.levels)), key=lambda li: -result.levels[li])
    shades = np.linspace(0.18, 0.45, len(order))
    for ax, i in zip(axes[:, 0], pos, strict=True):
        p = result.shares[i]
        sd = max(np.sqrt(n * p * (1 - p)), 1.0)
        lo_k = int(max(0, np.floor(n * p - 5 * sd)))
        hi_k = int(min(n, np.ceil(n * p + 5 * sd)))
        k = np.arange(lo_k, hi_k + 1)
        pmf = np.exp(
            special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)
            + special.xlogy(k, p) + special.xlog1py(n - k, -p)
        )
        x = k / n
        for shade, li in zip(shades, order, strict=True):
            lo, hi = result.low[li][i] / n, result.high[li][i] / n
            ax.axvspan(lo - 0.5 / n, hi + 0.5 / n, color="tab:blue", alpha=float(shade),
                       label=f"{result.levels[li]:.0%} band {result.low[li][i]}-{result.high[li][i]}")
        if len(k) <= 400:
            ax.bar(x, pmf, width=0.8 / n, color="0.25", label="exact P(count)")
        else:
            ax.plot(x, pmf, color="0.25", lw=1.2, label="exact P(count)")
        if result.sim_counts is not None:
            counts = np.asarray(result.sim_counts)[:, i]
            edges = np.arange(lo_k, hi_k + 2) - 0.5
            hist, _ = np.histogram(counts, bins=edges)
            ax.stairs(hist / max(len(counts), 1), edges / n, color="tab:orange", lw=1.0,
                      label=f"simulated ({len(counts):,} samples)")
        ax.axvline(p, color="tab:red", lw=1.2, label=f"configured {p:.4g}")
        if result.within is not None:
            for v in (p - result.within, p + result.within):
                ax.axvline(v, color="tab:red", lw=1.0, ls="--")
        ax.set_title(f"{result.names[i]}: share of {n:,} requests", fontsize=10)
        ax.set_xlabel("observed share")
        ax.set_ylabel("probability")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.suptitle(f"bands at {'/'.join(map(str, result.weights))}", fontsize=11)
    fig.tight_layout()
    if path is not None:
        try:
            save_figure(fig, path, dpi=110)
        finally:
            plt.close(fig)
    return fig
