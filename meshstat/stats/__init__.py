"""Statistics on per-backend counts: intervals, binomial tails and p-values, goodness of fit, window bands.

Everything special (normal and beta quantiles, chi-square and binomial tail
probabilities) comes from :mod:`scipy.special`, imported on first use: it costs
a third of ``import scipy.stats`` and the CLI pays it only when a table is
printed. All functions take numpy arrays and are vectorised over backends.

Modules: :mod:`~meshstat.stats.intervals` (Wilson, Clopper-Pearson),
:mod:`~meshstat.stats.binomial` (cdf and survival for any ``n``, quantiles,
the one binomial p-value :func:`binomial_pvalue`),
:mod:`~meshstat.stats.gof` (chi-square, G-test, the exact multinomial test and
the choice of the headline test), :mod:`~meshstat.stats.windows` (per-window
bands), :mod:`~meshstat.stats.rounded` (the range of the chi-square test over
counts known only to intervals: rounded counters), :mod:`~meshstat.stats.distributions` (exact box, tolerance and
first-hit probabilities, binomial test power).

References: Wilson (1927) score interval; Clopper & Pearson (1934) exact
interval via beta quantiles (as ``scipy.stats.binomtest(...).proportion_ci``);
Pearson's chi-square and the G-test (likelihood ratio) for goodness of fit.
"""

from __future__ import annotations

from meshstat.stats.binomial import bdtr, bdtrc, binomial_pvalue, binomial_two_sided_tail
from meshstat.stats.distributions import (
    binomial_test_power,
    multinomial_box_probability,
    prob_all_at_least,
    tolerance_probability,
)
from meshstat.stats.gof import (
    EXACT_MULTINOMIAL_LIMIT,
    MAX_COUNT,
    GofResult,
    Headline,
    check_count_total,
    goodness_of_fit,
    headline_test,
    z_scores,
)
from meshstat.stats.intervals import (
    ConfidenceInterval,
    clopper_pearson_interval,
    proportion_ci,
    wilson_interval,
)
from meshstat.stats.rounded import ChisquareRange, chisquare_range, verdict_over_range
from meshstat.stats.windows import WindowBand, window_band

__all__ = [
    "EXACT_MULTINOMIAL_LIMIT",
    "MAX_COUNT",
    "ChisquareRange",
    "ConfidenceInterval",
    "GofResult",
    "Headline",
    "WindowBand",
    "bdtr",
    "bdtrc",
    "binomial_pvalue",
    "binomial_test_power",
    "binomial_two_sided_tail",
    "check_count_total",
    "chisquare_range",
    "clopper_pearson_interval",
    "goodness_of_fit",
    "headline_test",
    "multinomial_box_probability",
    "prob_all_at_least",
    "proportion_ci",
    "tolerance_probability",
    "verdict_over_range",
    "wilson_interval",
    "window_band",
    "z_scores",
]
