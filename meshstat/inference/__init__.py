"""The statistics questions users ask about a configured split.

Four questions, each a function returning a frozen result object (scipy style:
fields plus ``.summary()``, the one-line plain-language answer; tables come from
:func:`meshstat.report.inference.frame`, pictures from :mod:`meshstat.plots`):

:func:`check_split` (:mod:`~meshstat.inference.check`)
    Is an observed split (``5, 5``) consistent with the configured one (``90/10``)?
    Exact binomial test for two backends, exact multinomial test (enumeration)
    where feasible, chi-square / G-test otherwise; likelihood ratios against
    alternatives the user names ("the rule is not in effect": ``50/50``).
:func:`plan_tolerance`, :func:`plan_min_hits`, :func:`plan_detect` (:mod:`~meshstat.inference.plan`)
    How many requests until the observed shares are within a tolerance, until
    every backend got at least ``m`` requests, or until a skewed split can be
    told from the configured one?
:func:`bands` (:mod:`~meshstat.inference.bands`)
    Where does each backend's observed share fall by chance in ``n`` requests
    (or a window of ``W`` requests, or ``T`` seconds at ``Q`` requests/s)?
    Exact binomial bands, checked by simulation through :func:`meshstat.engine.simulate`.
:func:`canary` (:mod:`~meshstat.inference.canary`)
    A canary rollout's traffic per interval: expected canary requests, the
    chance of none, and the error-rate increase a two-proportion test can see.

Also :func:`acceptance_probability` (:mod:`~meshstat.inference.acceptance`, how
often a fixed-tolerance check passes) and :func:`read_observed`
(:mod:`~meshstat.inference.observed`, counts from a CSV or JSON file). The
distributions and tests themselves are in :mod:`meshstat.stats`.

Observed traffic as the real systems record it (Envoy's admin counters, Istio's
``istio_requests_total`` in a scrape or a Prometheus query):
:func:`read_traffic` (:mod:`~meshstat.inference.observed_traffic`: the series of
one service and caller, differenced), :func:`split_from_weights` /
:func:`split_from_route` (:mod:`~meshstat.inference.observed_split`), and
:func:`check_observed` / :func:`check_ramp` (:mod:`~meshstat.inference.observed_check`:
:func:`check_split` over the period and each window of a range, a canary ramp's
first detecting step).

Conventions
-----------
* Weights are integers, as in Envoy (validated by
  :meth:`meshstat.model.Weighted.from_weights`); the configured share is
  ``w / sum(w)`` exactly.
* "Within ``±x``" is inclusive: ``|share - p| <= x``; "outside" is ``> x``.
  Boundaries are computed with exact rationals (``Fraction(str(x))``), so
  ``15 * (0.5 - 0.1) = 6`` is a boundary, not ``5.999...``.
* Planners return the **first** ``n`` that meets the target by exact
  computation (every smaller ``n`` fails), together with, where the exact
  probability is not monotone in ``n`` (lattice effects of the binomial), the
  smallest ``n_sustained`` from which every ``n`` up to ``checked_to`` meets it.
  :func:`plan_min_hits` is monotone (one more request never lowers a count), so
  the two coincide there.

numpy and scipy are imported inside the functions that need them.

The submodules ``bands`` and ``canary`` have the names of their functions: the
attribute ``meshstat.inference.bands`` is the function, while
``from meshstat.inference.bands import BandsResult`` imports from the module.
"""

from __future__ import annotations

from meshstat.inference._text import format_duration, parse_duration
from meshstat.inference.acceptance import AcceptanceResult, acceptance_probability, tolerance_probability
from meshstat.inference.bands import BandsResult, bands
from meshstat.inference.canary import CanaryResult, CanaryStep, canary
from meshstat.inference.check import Alternative, CheckResult, check_split
from meshstat.inference.observed import read_observed
from meshstat.inference.observed_check import ObservedCheck, check_observed, check_ramp
from meshstat.inference.observed_split import split_from_route, split_from_weights
from meshstat.inference.observed_traffic import ObservedTraffic, read_traffic
from meshstat.inference.plan import (
    PlanResult,
    PlanRow,
    plan_detect,
    plan_min_hits,
    plan_tolerance,
    prob_all_at_least,
)
from meshstat.stats.binomial import binomial_pvalue
from meshstat.stats.distributions import binomial_test_power, multinomial_box_probability

__all__ = [
    "AcceptanceResult",
    "Alternative",
    "BandsResult",
    "CanaryResult",
    "CanaryStep",
    "CheckResult",
    "ObservedCheck",
    "ObservedTraffic",
    "PlanResult",
    "PlanRow",
    "acceptance_probability",
    "bands",
    "binomial_pvalue",
    "binomial_test_power",
    "canary",
    "check_observed",
    "check_ramp",
    "check_split",
    "format_duration",
    "multinomial_box_probability",
    "parse_duration",
    "plan_detect",
    "plan_min_hits",
    "plan_tolerance",
    "prob_all_at_least",
    "read_observed",
    "read_traffic",
    "split_from_route",
    "split_from_weights",
    "tolerance_probability",
]
