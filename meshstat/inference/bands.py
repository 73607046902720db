"""Where does each backend's observed share fall by chance in ``n`` requests?

Or in a window of ``W`` requests, or ``T`` seconds at ``Q`` requests/s.
:func:`bands` returns a :class:`BandsResult`: exact binomial bands, checked by
simulation through :func:`meshstat.engine.simulate`. Table:
:func:`meshstat.report.inference.frame`; picture: :func:`meshstat.plots.bands.plot_bands`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from meshstat import model
from meshstat.engine import simulate as run_sim
from meshstat.errors import InvalidArgument
from meshstat.inference._text import (
    _as_fraction,
    _as_prob,
    _as_qps,
    _fmt_pct,
    _fmt_split,
    _split,
    format_duration,
    parse_duration,
)
from meshstat.stats.binomial import binom_quantile
from meshstat.stats.distributions import (
    binom_interval_prob,
    binom_outside_prob,
    bounds,
    tolerance_probability,
)
from meshstat.stats.gof import format_p

__all__ = ["BandsResult", "bands"]


@dataclass(frozen=True)
class BandsResult:
    """Outcome of :func:`bands`: where each backend's observed share falls by chance.

    Attributes
    ----------
    requests : int
        Requests per sample (n, the window, or seconds x qps).
    levels : tuple of float
        Central band levels.
    low, high : tuple of tuple of int
        ``low[l][i]``, ``high[l][i]``: central band of backend i's count at
        ``levels[l]`` (exact binomial quantiles at ``(1 -+ level) / 2``).
    coverage : tuple of tuple of float
        Exact probability of each band (at least its level: counts are discrete).
    within : float or None
        Tolerance x of "P(share outside ±x)".
    p_below, p_above : tuple of float or None
        Exact ``P(share < p - x)`` and ``P(share > p + x)`` per backend.
    p_outside_any : float or None
        P(some backend outside ±x), exact (multinomial).
    sim_windows, sim_seed : int or None
        Simulated samples and the seed that replays them.
    sim_coverage : tuple of tuple of float or None
        Share of simulated samples inside each band.
    sim_p_outside : tuple of float or None
        Share of simulated samples outside ±x per backend.
    sim_agrees : bool or None
        Whether every simulated frequency is inside its 1 - 1e-3 binomial band
        around the exact probability (Bonferroni over all cells).
    """

    names: tuple[str, ...]
    weights: tuple[int, ...]
    shares: tuple[float, ...]
    requests: int
    seconds: float | None
    qps: float | None
    levels: tuple[float, ...]
    low: tuple[tuple[int, ...], ...]
    high: tuple[tuple[int, ...], ...]
    coverage: tuple[tuple[float, ...], ...]
    within: float | None = None
    p_below: tuple[float, ...] | None = None
    p_above: tuple[float, ...] | None = None
    p_outside_any: float | None = None
    sim_windows: int | None = None
    sim_seed: int | None = None
    sim_mode: str | None = None
    sim_coverage: tuple[tuple[float, ...], ...] | None = None
    sim_p_outside: tuple[float, ...] | None = None
    sim_p_outside_any: float | None = None
    sim_agrees: bool | None = None
    sim_counts: Any = field(default=None, repr=False, compare=False)
    notes: tuple[str, ...] = ()

    @property
    def p_outside(self) -> tuple[float, ...] | None:
        """Exact ``P(|share - p| > x)`` per backend."""
        if self.p_below is None or self.p_above is None:
            return None
        return tuple(a + b for a, b in zip(self.p_below, self.p_above, strict=True))

    def summary(self) -> str:
        """One line about the smallest backend (the canary, usually)."""
        pos = [i for i, s in enumerate(self.shares) if s > 0]
        i = min(pos, key=lambda j: (self.shares[j], j))
        lvl = 0.95 if 0.95 in self.levels else self.levels[len(self.levels) // 2]
        li = self.levels.index(lvl)
        lo, hi = self.low[li][i], self.high[li][i]
        size = f"{self.requests:,} requests"
        if self.seconds is not None and self.qps is not None:
            size += f" ({format_duration(self.seconds)} at {self.qps:g} req/s)"
        text = (
            f"at {_fmt_split(self.weights)} with {size}, {self.names[i]} gets {lo}-{hi} "
            f"({_fmt_pct(lo / self.requests)}-{_fmt_pct(hi / self.requests)}) in {_fmt_pct(lvl)} of samples"
        )
        if self.within is not None and self.p_outside is not None:
            text += (
                f"; its share falls outside {_fmt_pct(self.shares[i])} ± {_fmt_pct(self.within)} with probability "
                f"{format_p(self.p_outside[i])}"
            )
            if self.sim_p_outside is not None:
                text += f" (simulated {format_p(self.sim_p_outside[i])})"
        if self.sim_windows is not None:
            verdict = "agrees" if self.sim_agrees else "DISAGREES"
            text += f"; simulation of {self.sim_windows:,} samples (seed {self.sim_seed}) {verdict} with exact"
        return text


def bands(
    weights: Sequence[int | str],
    n: int | None = None,
    window: int | None = None,
    seconds: float | str | None = None,
    qps: float | None = None,
    levels: Sequence[float] = (0.9, 0.95, 0.99),
    within: float | str | None = None,
    simulate: bool = True,
    rng: int | None = None,
    *,
    names: Sequence[str] | None = None,
    sim_windows: int = 10_000,
    sim_mode: str = "auto",
) -> BandsResult:
    """Central bands of each backend's observed share in one sample, exact and simulated.

    Parameters
    ----------
    weights : sequence of int
        Configured weights.
    n, window : int
        Requests per sample (give one; a window of W requests is a sample of W).
    seconds, qps : float
        Or a sample of ``seconds`` at ``qps`` requests/s (``round(seconds * qps)`` requests).
    levels : sequence of float
        Central band levels.
    within : float, optional
        Also ``P(|share - p| > within)`` per backend and for any backend.
    simulate : bool
        Check the exact numbers by routing ``sim_windows`` windows of this size
        through :func:`meshstat.engine.simulate` (the core engine).
    rng : int, optional
        Seed of the simulation (printed so that it can be replayed).
    sim_windows : int
        Simulated samples (reduced so that at most 1e9 requests are simulated).
    sim_mode : str
        ``mode`` passed to :func:`meshstat.engine.simulate`.
    """
    import numpy as np

    labels, ws, shares = _split(weights, names)
    qps = _as_qps(qps)
    given = [x for x in (n, window, seconds) if x is not None]
    if len(given) != 1:
        raise InvalidArgument("give exactly one of n, window, or seconds (with qps)")
    secs: float | None = None
    if seconds is not None:
        if qps is None:
            raise InvalidArgument("seconds needs qps (requests per second)")
        secs = parse_duration(seconds)
        req = round(secs * qps)
        if req < 1:
            raise InvalidArgument(f"{secs:g} s at {qps:g} req/s is less than one request")
    else:
        raw = n if n is not None else window
        if isinstance(raw, bool) or not isinstance(raw, int | np.integer) or int(raw) < 1:
            raise InvalidArgument(f"n / window must be a positive integer, got {raw!r}")
        req = int(raw)
        if qps is not None:
            secs = req / qps
    lv = tuple(_as_prob(x, "level") for x in levels)
    if not lv:
        raise InvalidArgument("give at least one band level")
    notes: list[str] = []
    if seconds is not None and abs(secs * qps - req) > 1e-9:  # type: ignore[operator]
        notes.append(f"{secs:g} s at {qps:g} req/s is {secs * qps:g} requests; rounded to {req}")  # type: ignore[operator]
    fs = [float(s) for s in shares]
    lows, highs, covs = [], [], []
    for level in lv:
        a = (1.0 - level) / 2.0
        lo_row, hi_row, cov_row = [], [], []
        for p in fs:
            lo_c, hi_c = binom_quantile(a, req, p), binom_quantile(1.0 - a, req, p)
            lo_row.append(lo_c)
            hi_row.append(hi_c)
            cov_row.append(float(binom_interval_prob(lo_c, hi_c, req, p)) if 0 < p < 1 else 1.0)
        lows.append(tuple(lo_row))
        highs.append(tuple(hi_row))
        covs.append(tuple(cov_row))
    wx = None
    p_below = p_above = None
    p_any = None
    bnds: list[tuple[int, int]] = []
    if within is not None:
        t = _as_fraction(within, "within")
        wx = float(t)
        bnds = [bounds(req, p, t) for p in shares]
        below, above = [], []
        for (a_, b_), p in zip(bnds, fs, strict=True):
            pb, pa = binom_outside_prob(a_, b_, req, p)
            below.append(float(pb))
            above.append(float(pa))
        p_below, p_above = tuple(below), tuple(above)
        p_any = 1.0 - tolerance_probability(ws, req, t)
    sim_cov = sim_out = None
    sim_any = None
    agrees = None
    sim_n = seed = None
    counts = None
    mode_used = None
    if simulate:
        sim_n = int(sim_windows)
        if sim_n < 1:
            raise InvalidArgument(f"sim_windows must be positive, got {sim_windows}")
        if req * sim_n > 10**9:
            sim_n = max(1, 10**9 // req)
            notes.append(f"simulation limited to {sim_n:,} samples (1e9 requests)")
        children = tuple(model.Backend(name=x) for x in labels)
        route = model.Route(root=model.Weighted.from_weights(list(ws), children), name="bands")
        res = run_sim(route, req * sim_n, rng=rng, window=req, mode=sim_mode)
        seed = int(res.seed_entropy)
        mode_used = res.mode
        counts = np.asarray(res.window_counts, dtype=np.int64)[:sim_n]
        sim_cov_l = []
        cells: list[tuple[int, float]] = []
        for li in range(len(lv)):
            lo_a = np.asarray(lows[li])
            hi_a = np.asarray(highs[li])
            inside = (counts >= lo_a[None, :]) & (counts <= hi_a[None, :])
            freq = inside.sum(axis=0)
            sim_cov_l.append(tuple(float(x) / sim_n for x in freq))
            cells += [(int(freq[i]), covs[li][i]) for i in range(len(fs)) if 0 < fs[i] < 1]
        sim_cov = tuple(sim_cov_l)
        if within is not None:
            a_arr = np.asarray([b[0] for b in bnds])
            b_arr = np.asarray([b[1] for b in bnds])
            outside = (counts < a_arr[None, :]) | (counts > b_arr[None, :])
            sim_out = tuple(float(x) / sim_n for x in outside.sum(axis=0))
            sim_any = float(np.any(outside, axis=1).mean())
            cells += [(int(round(x * sim_n)), float(pb + pa)) for x, pb, pa in zip(sim_out, p_below, p_above, strict=True)]  # type: ignore[arg-type]
            cells.append((int(round(sim_any * sim_n)), float(p_any)))  # type: ignore[arg-type]
        # every simulated frequency within its central 1 - 1e-3 / cells binomial band
        level_each = 1e-3 / max(len(cells), 1)
        agrees = True
        for k_obs, p_exact in cells:
            if p_exact <= 0.0 or p_exact >= 1.0:
                if (p_exact <= 0.0 and k_obs > 0) or (p_exact >= 1.0 and k_obs < sim_n):
                    agrees = False
                continue
            a = level_each / 2
            lo_k, hi_k = binom_quantile(a, sim_n, p_exact), binom_quantile(1.0 - a, sim_n, p_exact)
            if not lo_k <= k_obs <= hi_k:
                agrees = False
        if not agrees:
            notes.append("the simulated frequencies disagree with the exact probabilities (p < 1e-3)")
    return BandsResult(
        names=labels,
        weights=ws,
        shares=tuple(fs),
        requests=req,
        seconds=secs,
        qps=qps,
        levels=lv,
        low=tuple(lows),
        high=tuple(highs),
        coverage=tuple(covs),
        within=wx,
        p_below=p_below,
        p_above=p_above,
        p_outside_any=p_any,
        sim_windows=sim_n,
        sim_seed=seed,
        sim_mode=mode_used,
        sim_coverage=sim_cov,
        sim_p_outside=sim_out,
        sim_p_outside_any=sim_any,
        sim_agrees=agrees,
        sim_counts=counts,
        notes=tuple(notes),
    )

