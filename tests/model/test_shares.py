"""Exact shares of any length: cascades of thousands of rules, their bounded text, and the 2**-64 grid."""

from __future__ import annotations

import decimal
import math
import pickle
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshstat import model
from meshstat.errors import ModelError
from meshstat.model import (
    MAX_EXACT_RULES,
    Backend,
    Cascade,
    DyadicShare,
    Route,
    Weighted,
    approx_decimal,
    dyadic,
    exact_sum,
    round_to_total,
    share_text,
)
from tests import reference as ref

K = st.integers(min_value=0, max_value=2**31)


@given(st.lists(K, min_size=0, max_size=40))
def test_cascade_shares_equal_the_plain_fraction_twin(ks: list[int]) -> None:
    c = Cascade(children=tuple(Backend(name=f"b{i}") for i in range(len(ks) + 1)), thresholds=tuple(ks))
    got = c.shares()
    want = ref.cascade_shares(ks)
    assert list(got) == want
    # reduced, as Fraction would have it (equality alone would not see an unreduced pair)
    assert [(x.numerator, x.denominator) for x in got] == [(x.numerator, x.denominator) for x in want]
    assert all(isinstance(x, DyadicShare) for x in got)
    assert exact_sum(got) == 1


def test_kube_proxy_cascade_of_486_endpoints_is_exact_and_sums_to_one() -> None:
    s = Cascade.kube_proxy(486).shares()
    assert len(s) == 486 and exact_sum(s) == 1
    assert s[:30] == tuple(ref.cascade_shares(list(Cascade.kube_proxy(486).thresholds))[:30])
    assert max(x.denominator.bit_length() for x in s) > 14_000  # what crashed the printing


def test_ten_thousand_rules_exact_shares_complete_and_sum_to_one() -> None:
    c = Cascade.kube_proxy(MAX_EXACT_RULES + 1)  # 10,000 statistic rules
    s = c.shares()
    assert len(s) == MAX_EXACT_RULES + 1
    assert exact_sum(s) == 1
    bound = model.kube_proxy_uniform_bound()
    assert all(abs(float(x) - 1 / (MAX_EXACT_RULES + 1)) <= bound for x in s)
    assert s[-1].denominator.bit_length() > 290_000


def test_past_the_limit_the_shares_are_on_the_2_64_grid_and_say_so() -> None:
    c = Cascade.kube_proxy(MAX_EXACT_RULES + 2)
    with pytest.raises(ModelError, match="too long for exact shares"):
        c.shares()
    shares, exact = c.expected_shares()
    assert not exact and len(shares) == MAX_EXACT_RULES + 2
    assert all((1 << 64) % x.denominator == 0 for x in shares) and exact_sum(shares) == 1
    assert all(share_text(x, exact).startswith("~") for x in shares)
    rt = Route(root=c)
    r_shares, r_exact = rt.expected_shares()
    assert not r_exact and r_shares == shares


def test_a_long_cascade_inside_a_tree_is_rounded_once_not_refused() -> None:
    inner = Cascade.kube_proxy(tuple(Backend(name=f"p{i}") for i in range(MAX_EXACT_RULES + 2)))
    rt = Route(root=Weighted(children=(inner, Backend(name="other")), weights=(1, 1)))
    masses, exact = rt.masses64()
    assert not exact and sum(masses) == 1 << 64 and len(masses) == MAX_EXACT_RULES + 3
    shares, ok = rt.expected_shares()
    assert not ok and shares[-1] == Fraction(1, 2)


def test_exact_and_feasible_routes_keep_exact_shares() -> None:
    rt = Route(root=Cascade.kube_proxy(3))
    shares, exact = rt.expected_shares()
    assert exact and shares == rt.exact_shares()


@given(st.integers(min_value=-(2**3000), max_value=2**3000), st.integers(min_value=0, max_value=3000))
def test_dyadic_share_float_is_correctly_rounded(n: int, e: int) -> None:
    x = dyadic(n | 1 if n >= 0 else -((-n) | 1), e)
    try:
        want = float(Fraction(x.numerator, x.denominator))
    except OverflowError:
        with pytest.raises(OverflowError):
            float(x)
        return
    assert float(x) == want


def test_dyadic_reduces_and_keeps_fraction_semantics() -> None:
    assert dyadic(12, 4) == Fraction(3, 4) and dyadic(12, 4).denominator == 4
    assert dyadic(0, 50) == 0 and dyadic(1 << 40, 40) == 1
    x = dyadic(3, 200)
    assert pickle.loads(pickle.dumps(x)) == x and type(pickle.loads(pickle.dumps(x))) is DyadicShare
    assert type(x * 2) is Fraction and x * 2 == Fraction(3, 1 << 199)
    with pytest.raises(ValueError, match="exponent"):
        dyadic(1, -1)


def test_share_text_is_bounded_and_marks_what_is_not_exact() -> None:
    assert share_text(Fraction(9, 10)) == "9/10"
    assert share_text(Fraction(1)) == "1"
    assert share_text(Fraction(1, 4), exact=False) == "~1/4"
    assert share_text(None) is None
    huge = Cascade.kube_proxy(4000).shares()[-1]
    text = share_text(huge)
    assert text.startswith("~0.000249999") and len(text) <= 30
    assert str(huge) == text  # str() of a long share is its bounded text, never 93,000 digits
    assert len(repr(huge)) < 100


@given(st.integers(min_value=1, max_value=2**400), st.integers(min_value=1, max_value=2**400))
def test_approx_decimal_agrees_with_decimal_arithmetic(n: int, d: int) -> None:
    ctx = decimal.Context(prec=60, Emin=decimal.MIN_EMIN, Emax=decimal.MAX_EMAX)
    exact = ctx.divide(decimal.Decimal(n), decimal.Decimal(d))
    got = decimal.Decimal(approx_decimal(Fraction(n, d)))
    assert abs(got - exact) <= abs(exact) * decimal.Decimal("1e-16")


def test_approx_decimal_of_values_no_float_holds() -> None:
    assert approx_decimal(Fraction(1, 3 << 200_000)) == "3.3399960180206246e-60207"
    assert approx_decimal(Fraction(-(10**25))) == "-1e25"


def test_exact_sum_equals_fraction_sum() -> None:
    rng = random.Random(5)
    vals = [dyadic(rng.getrandbits(300), rng.randrange(0, 400)) for _ in range(200)]
    vals += [Fraction(rng.randrange(1, 100), rng.randrange(1, 100)) for _ in range(20)]
    assert exact_sum(vals) == sum(vals, Fraction(0))
    assert exact_sum([]) == 0


def test_duplicate_backend_names_are_found_in_linear_time() -> None:
    n = 200_000
    leaves = tuple(Backend(name=f"b{i}") for i in range(n))
    rt = Route(root=Weighted(children=leaves, weights=(1,) * n))
    assert len(rt.backends()) == n
    with pytest.raises(ModelError, match=r"repeated: \['b7'\]"):
        Route(root=Weighted(children=(*leaves[:10], Backend(name="b7")), weights=(1,) * 11))


def test_model_exports_the_share_helpers() -> None:
    for name in ("share_text", "dyadic", "exact_sum", "approx_decimal", "as_share", "DyadicShare"):
        assert hasattr(model, name)


# --------------------------------------------------------------------------- largest-remainder rounding


def _round_to_total_by_fractions(shares: list[Fraction], total: int) -> tuple[int, ...]:
    """The rounding worked out with Fractions, as the definition reads (the reference for the integer one)."""
    scaled = [s * total for s in shares]
    floors = [math.floor(x) for x in scaled]
    order = sorted(range(len(scaled)), key=lambda i: scaled[i] - floors[i], reverse=True)
    for i in order[: total - sum(floors)]:
        floors[i] += 1
    return tuple(floors)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=8), st.lists(st.integers(1, 12), min_size=8, max_size=8),
       st.sampled_from([1, 7, 100, 2**32, 2**64]))
def test_round_to_total_is_largest_remainder(weights: list[int], dens: list[int], total: int) -> None:
    """Shares of any denominators (a sum of 1), ties included: the same integers as the Fraction arithmetic."""
    raw = [Fraction(w, d) for w, d in zip(weights, dens)]
    if sum(raw) == 0:
        raw = [Fraction(1)] * len(raw)
    shares = [x / sum(raw) for x in raw]
    got = round_to_total(shares, total)
    assert got == _round_to_total_by_fractions(shares, total) and sum(got) == total


def test_round_to_total_breaks_ties_in_order() -> None:
    assert round_to_total([Fraction(1, 3)] * 3, 2**64) == ((2**64) // 3 + 1, (2**64) // 3, (2**64) // 3)
    assert round_to_total([Fraction(1, 4), Fraction(3, 4)], 10) == (3, 7)  # 2.5 and 7.5: the first goes up
