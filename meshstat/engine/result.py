"""Result objects (scipy style: fields plus methods; tables come from :mod:`meshstat.report`)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from meshstat import stats
from meshstat.errors import InvalidArgument
from meshstat.model import Route

__all__ = ["SimulationResult"]


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """What :func:`meshstat.simulate` returns.

    Attributes
    ----------
    route : Route
        The route that was simulated.
    n : int
        Requests (or connections, for connection-level stages) routed.
    mode : str
        ``"per_request"`` (numba kernels on the exact distribution), ``"faithful"``
        (the real mechanism, rule by rule) or ``"exact"`` (multinomial counts, O(k)).
    counts : int64[k]
        Requests per backend, in ``route.backends()`` order.
    exact : tuple of Fraction
        Exact share of every backend (see ``shares_exact``).
    seed_entropy : int
        Pass it back as ``rng`` to replay this run.
    block_size : int
        Requests per block (part of the reproducibility contract).
    elapsed : float
        Seconds spent routing (kernel time; excludes numba's one-off load).
    destinations : uint8/uint16/uint32[n] or None
        Backend index of every request, when asked for and kept in memory.
    destinations_path : str or None
        The Parquet file the destinations were streamed to (column ``backend``,
        one row per request), when they were not kept in memory.
    window : int or None
        Requests per window, when asked for.
    window_counts : int64[n_windows, k] or None
        Counts per window; the last row may be a partial window (see ``window_sizes``).
    window_sizes : int64[n_windows] or None
        Requests in each window.
    masses_exact : bool
        Whether the sampled distribution equals ``exact`` bit for bit (False when a
        long cascade was rounded to multiples of ``2**-64``).
    notes : tuple of str
        Remarks for the user (mode choices, rounding).
    shares_exact : bool
        Whether ``exact`` holds the exact shares. False where a cascade is longer
        than :data:`meshstat.model.MAX_EXACT_RULES` rules: ``exact`` then holds
        its shares on the kernels' ``2**-64`` grid
        (:meth:`meshstat.model.Route.expected_shares`), and reports mark them ``~``.
    """

    route: Route
    n: int
    mode: str
    counts: np.ndarray
    exact: tuple[Fraction, ...]
    seed_entropy: int
    block_size: int
    elapsed: float
    destinations: np.ndarray | None = None
    destinations_path: str | None = None
    window: int | None = None
    window_counts: np.ndarray | None = None
    window_sizes: np.ndarray | None = None
    masses_exact: bool = True
    notes: tuple[str, ...] = ()
    shares_exact: bool = True

    @property
    def backends(self) -> tuple[str, ...]:
        """Backend names in count order."""
        return tuple(b.name for b in self.route.backends())

    @property
    def expected(self) -> np.ndarray:
        """Exact shares as float64."""
        return np.array([float(x) for x in self.exact], dtype=np.float64)

    def proportions(self) -> np.ndarray:
        """Observed share of every backend."""
        return self.counts / float(self.n)

    def deviations(self) -> np.ndarray:
        """Observed minus exact share."""
        return self.proportions() - self.expected

    def z_scores(self) -> np.ndarray:
        """Standardised deviation of every backend's count."""
        return stats.z_scores(self.counts, self.exact)

    def proportion_ci(self, confidence_level: float = 0.95, *, method: str = "wilson") -> stats.ConfidenceInterval:
        """Interval for every backend's share (``"wilson"`` or ``"exact"`` Clopper-Pearson)."""
        return stats.proportion_ci(self.counts, self.n, confidence_level=confidence_level, method=method)

    def goodness_of_fit(self, *, method: str = "chisquare") -> stats.GofResult:
        """Chi-square (or ``"g-test"``) of the counts against the exact shares."""
        return stats.goodness_of_fit(self.counts, self.exact, method=method)

    def window_band(self, confidence_level: float = 0.95) -> stats.WindowBand:
        """Band of per-window counts and the largest window deviation (complete windows only)."""
        if self.window_counts is None or self.window is None:
            raise InvalidArgument("this result has no windows: simulate(..., window=W)")
        full = self.window_counts[self.window_sizes == self.window]
        return stats.window_band(full, self.window, self.exact, confidence_level=confidence_level)

    @property
    def rate(self) -> float:
        """Requests per second routed."""
        return self.n / self.elapsed if self.elapsed > 0 else float("inf")
