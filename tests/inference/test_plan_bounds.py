"""Plans for small tolerances: bounded searches that give the same answers as the full scans.

``plan --tolerance 1e-4`` used to scan every n up to twice the answer in one
array (1e-6: 4.4 TiB). The window search must find the same first and
sustained n as a full scan, answer 1e-4 with bounded work, and refuse what
would need more than :data:`meshstat.inference.plan.MAX_SCAN_EVALUATIONS`.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from meshstat.errors import InvalidArgument
from meshstat.inference import plan as plan_mod
from meshstat.inference import plan_tolerance
from meshstat.stats.distributions import binom_interval_prob, bounds, multinomial_box_probability


def test_window_search_equals_the_full_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    full = plan_tolerance([1, 1], "5e-3")  # n about 38,000: scanned from n = 1
    assert not any("exact values were computed" in x for x in full.notes)
    monkeypatch.setattr(plan_mod, "_FULL_SCAN_LIMIT", 1000)
    windowed = plan_tolerance([1, 1], "5e-3")
    assert any("exact values were computed for n from" in x for x in windowed.notes)
    assert (windowed.n, windowed.n_sustained) == (full.n, full.n_sustained)
    assert windowed.probability == full.probability


def test_tolerance_1e_4_is_answered_exactly_within_the_budget() -> None:
    r = plan_tolerance([1, 1], "1e-4")
    t, p = Fraction(1, 10**4), Fraction(1, 2)

    def prob(n: int) -> float:
        a, b = bounds(np.array([n]), p, t)
        return float(binom_interval_prob(a, b, np.array([n]), 0.5)[0])

    assert prob(r.n) >= 0.95 > prob(r.n - 1)
    assert r.n_sustained is not None and r.n <= r.n_sustained
    assert abs(r.n - 96_036_471) < 4 * math.isqrt(96_036_471)  # near the normal approximation


def test_tolerance_1e_6_is_refused_up_front_with_the_approximation() -> None:
    with pytest.raises(InvalidArgument, match=r"near n = 960,364,705,174 \(normal approximation\)"):
        plan_tolerance([1, 1], "1e-6")


def _linear_joint(shares: list[Fraction], t: Fraction, lower: int, target: float) -> int:
    n = lower
    while True:
        lows, highs = zip(*(bounds(n, s, t) for s in shares), strict=True)
        if multinomial_box_probability(n, shares, lows, highs) >= target:
            return n
        n += 1


def test_joint_search_equals_the_linear_scan() -> None:
    r = plan_tolerance([1, 1, 1], "5e-2")
    shares = [Fraction(1, 3)] * 3
    lower = int(
        next(x for x in r.notes if "no n below" in x).split("no n below ")[1].split()[0].replace(",", "")
    )
    assert r.n == _linear_joint(shares, Fraction(1, 20), lower, 0.95)


def test_joint_tolerance_too_fine_is_refused_with_bounded_work() -> None:
    with pytest.raises(
        InvalidArgument, match="joint tolerance plan needs more exact multinomial evaluations"
    ):
        plan_tolerance([1, 1, 1], "1e-3")
