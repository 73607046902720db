"""PNG pictures of results (matplotlib, Agg backend, imported on first use).

``plot_shares`` draws expected vs observed shares per backend with 95% Wilson
intervals, one panel per route; ``plot_windows`` draws the share of each window
over the run with the band it stays in by chance. Area-specific plots live in
sibling modules (``meshstat.plots.bands``). Every picture is written by
:func:`save_figure`: the file type comes from the name's suffix
(:data:`PICTURE_FORMATS`; a name without one, or with another, is refused
before anything is drawn), and the file is written through
:class:`meshstat.outputs.OutputFile` (a regular file created or replaced whole).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from meshstat.errors import InvalidArgument
from meshstat.outputs import OutputFile, check_output_path

if TYPE_CHECKING:
    from meshstat.engine.result import SimulationResult

__all__ = ["PICTURE_FORMATS", "picture_format", "plot_shares", "plot_windows", "pyplot", "save_figure"]

#: File types a picture may have (the name's suffix): those matplotlib's Agg canvas writes with the
#: libraries meshstat depends on (matplotlib and its Pillow); ``pgf`` (it needs LaTeX) and the raw
#: pixel buffers are left out.
PICTURE_FORMATS = ("png", "svg", "svgz", "pdf", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")


def picture_format(path: str | os.PathLike[str], *, what: str = "picture") -> str:
    """The file type of a picture named ``path`` (its suffix, lower case), or a one-line refusal.

    matplotlib would add ``.png`` to a name without a suffix (writing a file
    the user did not name) and fails on an unknown suffix after the picture is
    drawn; both are refused here, before any work.

    Raises
    ------
    InvalidArgument
        ``--plot NAME: the name has no picture type: end it with .png, .svg or .pdf``.
    """
    p = os.fspath(path)
    suffix = os.path.splitext(os.path.basename(p))[1]
    if not suffix or suffix == ".":
        raise InvalidArgument(
            f"{what} {p}: the name has no picture type: end it with .png, .svg or .pdf "
            f"(one of {', '.join(PICTURE_FORMATS)})"
        )
    fmt = suffix[1:].lower()
    if fmt not in PICTURE_FORMATS:
        raise InvalidArgument(
            f"{what} {p}: {suffix} is not a picture type meshstat writes "
            f"(use one of {', '.join(PICTURE_FORMATS)})"
        )
    return fmt


def check_picture_path(path: str | os.PathLike[str], *, what: str = "picture") -> str:
    """:func:`picture_format` and :func:`meshstat.outputs.check_output_path` of ``path``; returns the type."""
    fmt = picture_format(path, what=what)
    check_output_path(path, what=what)
    return fmt


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int, what: str = "picture") -> None:
    """Write ``fig`` to ``path`` in the type its suffix names, as a regular file created or replaced whole."""
    fmt = check_picture_path(path, what=what)
    with OutputFile(path, what=what) as fh:
        fig.savefig(fh, format=fmt, dpi=dpi)


def pyplot() -> Any:
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_shares(results: Sequence[SimulationResult], path: str | None = None) -> Any:
    """Expected vs observed share per backend, one panel per route; returns the Figure.

    The observed share is a dot with its 95% Wilson interval; at large n the
    interval is narrower than the dot, so each panel also shows the deviation
    in units of its standard error (z) next to the dot.
    """
    if path is not None:
        check_picture_path(path)
    plt = pyplot()
    k = len(results)
    fig, axes = plt.subplots(1, k, figsize=(max(5.0, 4.2 * k), 4.2), squeeze=False, constrained_layout=True)
    for ax, r in zip(axes[0], results, strict=True):
        names = list(r.backends)
        x = np.arange(len(names))
        exp = r.expected
        obs = r.proportions()
        ci = r.proportion_ci(0.95)
        ax.bar(x, exp, width=0.6, color="#c6dbef", edgecolor="#3182bd", label="expected (exact)")
        ax.errorbar(
            x, obs, yerr=[obs - ci.low, ci.high - obs], fmt="o", color="#e6550d", capsize=6, label="observed, 95% CI"
        )
        for xi, (o, z) in enumerate(zip(obs, r.z_scores(), strict=True)):
            ax.annotate(
                f"{o:.4f}\nz={z:+.2f}",
                (xi, o),
                textcoords="offset points",
                xytext=(12, 4),
                fontsize=8,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
            )
        ax.set_xticks(x, names, rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
        ax.set_ylim(0, max(exp.max(), obs.max()) * 1.2 + 0.05)
        unit = getattr(r.route.root, "unit", "request")
        ax.set_ylabel(f"share of {unit}s")
        ax.set_xlabel("backend")
        gof = r.goodness_of_fit()
        ax.set_title(f"{r.route.name}: n = {r.n:,}\nchi-square p = {gof.pvalue:.3g}", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle("meshstat: expected vs observed split", fontsize=11)
    if path is not None:
        try:
            save_figure(fig, path, dpi=120)
        finally:
            plt.close(fig)
    return fig


def plot_windows(result: SimulationResult, path: str | None = None, *, backend: int | None = None) -> Any:
    """Share of one backend per window over the run, with its 95% band; returns the Figure.

    ``backend`` defaults to the one with the smallest positive expected share
    (the canary, in a 90/10 split).
    """
    if path is not None:
        check_picture_path(path)
    plt = pyplot()
    if result.window_counts is None or result.window is None or result.window_sizes is None:
        raise ValueError("result has no windows: simulate(..., window=W)")
    exp = result.expected
    if backend is None:
        pos = np.where(exp > 0)[0]
        backend = int(pos[np.argmin(exp[pos])])
    full = result.window_sizes == result.window
    share = result.window_counts[full, backend] / result.window
    band = result.window_band(0.95)
    w = result.window
    fig, ax = plt.subplots(figsize=(8, 4), constrained_layout=True)
    idx = np.arange(share.size)
    ax.plot(idx, share, lw=0.8, color="#3182bd", label=f"share per window of {w:,} requests")
    ax.axhline(exp[backend], color="black", lw=1, label=f"expected {exp[backend]:.4g}")
    ax.axhspan(band.low[backend] / w, band.high[backend] / w, color="#fdae6b", alpha=0.35, label="95% band, one window")
    ax.axhline(band.sim_low[backend] / w, color="#e6550d", lw=0.8, ls="--", label="95% band, all windows")
    ax.axhline(band.sim_high[backend] / w, color="#e6550d", lw=0.8, ls="--")
    ax.set_xlabel("window (time order)")
    ax.set_ylabel(f"share of {result.backends[backend]}")
    ax.set_title(
        f"{result.route.name}: {result.backends[backend]} per window, {share.size:,} windows of {w:,} requests",
        fontsize=10,
    )
    fig.legend(loc="outside lower center", ncols=3, fontsize=8)
    if path is not None:
        try:
            save_figure(fig, path, dpi=120)
        finally:
            plt.close(fig)
    return fig
