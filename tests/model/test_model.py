from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshstat import model
from meshstat.errors import InvalidArgument, ModelError
from meshstat.model import (
    CASCADE_ONE,
    FALL_THROUGH,
    Backend,
    Cascade,
    Route,
    Weighted,
    cascade_error_bound,
    kube_proxy_probabilities,
    kube_proxy_uniform_bound,
    probability_to_threshold,
    threshold_to_decimal,
    weights_to_cascade,
)

from tests.reference import cascade_shares, lround

# Measured on the real kernel (docs/measurements.md, M1): given -> printed -> stored k
MEASURED = [
    ("0.3", "0.29999999981", 644245094),
    ("0.33333333333", "0.33333333349", 715827883),
    ("0.3333333333", "0.33333333349", 715827883),
    ("0.33333", "0.33332999982", 715820724),
    ("0.1", "0.10000000009", 214748365),
    ("0.5", "0.50000000000", 1073741824),
    ("0.9", "0.89999999991", 1932735283),
    ("1e-9", "0.00000000093", 2),
    ("0.99999999999", "1.00000000000", 2147483648),
    ("1", "1.00000000000", 2147483648),
    ("0", "0.00000000000", 0),
    ("1e-10", "0.00000000000", 0),
    ("2.3e-10", "0.00000000000", 0),
    ("2.4e-10", "0.00000000047", 1),
    ("0.25", "0.25000000000", 536870912),
    ("0.2", "0.20000000019", 429496730),
    ("0.1666666667", "0.16666666651", 357913941),
    ("0.1428571429", "0.14285714272", 306783378),
    ("0.125", "0.12500000000", 268435456),
    ("0.1111111111", "0.11111111101", 238609294),
]


@pytest.mark.parametrize(("given_", "printed", "k"), MEASURED)
def test_probability_to_threshold_matches_the_kernel(given_: str, printed: str, k: int) -> None:
    assert probability_to_threshold(given_) == k
    assert threshold_to_decimal(k) == printed
    assert probability_to_threshold(printed) == k


@given(st.integers(min_value=0, max_value=CASCADE_ONE))
def test_saved_decimal_reparses_to_the_same_k(k: int) -> None:
    assert probability_to_threshold(threshold_to_decimal(k)) == k


@given(st.floats(min_value=0.0, max_value=1.0, allow_nan=False))
def test_threshold_is_lround(p: float) -> None:
    assert probability_to_threshold(p) == lround(p * 2**31)


@pytest.mark.parametrize("bad", ["1.1", "-0.1", "abc", "nan"])
def test_probability_out_of_range_is_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        probability_to_threshold(bad)


def test_kube_proxy_strings() -> None:
    assert kube_proxy_probabilities(1) == ()
    assert kube_proxy_probabilities(3) == ("0.3333333333", "0.5000000000")
    assert kube_proxy_probabilities(6, legacy=True) == ("0.16667", "0.20000", "0.25000", "0.33333", "0.50000")
    c = Cascade.kube_proxy(6, legacy=True)
    # the values old real dumps print (docs/measurements.md, M4)
    assert c.decimals() == ("0.16667000018", "0.20000000019", "0.25000000000", "0.33332999982", "0.50000000000")


def test_kube_proxy_three_endpoints_exact_shares() -> None:
    c = Cascade.kube_proxy(3)
    assert c.thresholds == (715827883, 1073741824)
    assert c.shares() == (
        Fraction(715827883, 2**31),
        Fraction(1431655765, 2**32),
        Fraction(1431655765, 2**32),
    )
    assert sum(c.shares()) == 1


@given(st.lists(st.integers(min_value=0, max_value=CASCADE_ONE), min_size=0, max_size=40), st.booleans())
def test_cascade_shares_sum_to_exactly_one(ks: list[int], fall_through: bool) -> None:
    kids = tuple(Backend(name=f"e{i}") for i in range(len(ks) + 1))
    c = Cascade(children=kids, thresholds=tuple(ks), fall_through=fall_through)
    shares = c.shares()
    assert sum(shares) == 1
    assert list(shares) == cascade_shares(ks)
    assert sum(c.masses64()) == 2**64
    if len(ks) <= 2:
        assert c.masses64_exact()
        assert [Fraction(m, 2**64) for m in c.masses64()] == list(shares)
    else:
        assert all(abs(Fraction(m, 2**64) - s) < Fraction(1, 2**64) for m, s in zip(c.masses64(), shares))


def test_fall_through_is_its_own_outcome() -> None:
    c = Cascade.from_probabilities(["0.5", "0.5"], fall_through=True)
    assert [b.name for b in Route(root=c).backends()] == ["b1", "b2", FALL_THROUGH]
    assert c.shares() == (Fraction(1, 2), Fraction(1, 4), Fraction(1, 4))


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30).filter(lambda w: sum(w) > 0))
def test_weights_to_cascade_within_stated_bound(ws: list[int]) -> None:
    ks = weights_to_cascade(ws)
    assert len(ks) == len(ws) - 1
    shares = cascade_shares(list(ks))
    total = sum(ws)
    first, last = cascade_error_bound(len(ws))
    for i, (s, w) in enumerate(zip(shares, ws)):
        bound = last if i == len(ws) - 1 else first
        assert abs(s - Fraction(w, total)) <= Fraction(bound)
        if w == 0:
            assert s == 0 or i == len(ws) - 1


@pytest.mark.parametrize("n", [2, 3, 5, 10, 100, 1000, 4096, 10_000, 44_988, 44_989, 50_000, 100_000])
def test_kube_proxy_cascade_is_uniform_within_its_bound(n: int) -> None:
    c = Cascade.kube_proxy(n)
    bits = 256
    nums, err = c.fixed_point_shares(bits=bits)
    bound = kube_proxy_uniform_bound()
    one_over_n = Fraction(1, n)
    worst = max(abs(Fraction(x, 2**bits) - one_over_n) for x in nums) + Fraction(err, 2**bits)
    assert worst <= Fraction(bound)
    if n >= 44_989:
        # stored integers start to coincide (docs/measurements.md, M3)
        assert len(set(c.thresholds)) < len(c.thresholds)
    else:
        assert len(set(c.thresholds)) == len(c.thresholds)


def test_legacy_cascade_bound_holds_and_is_worse() -> None:
    c = Cascade.kube_proxy(1000, legacy=True)
    nums, err = c.fixed_point_shares(bits=200)
    worst = max(abs(Fraction(x, 2**200) - Fraction(1, 1000)) for x in nums)
    assert worst <= Fraction(kube_proxy_uniform_bound(legacy=True))
    assert worst > Fraction(kube_proxy_uniform_bound())  # old format is visibly coarser


def test_fixed_point_agrees_with_exact() -> None:
    c = Cascade.kube_proxy(50)
    nums, err = c.fixed_point_shares(bits=128)
    for x, s in zip(nums, c.shares()):
        assert abs(Fraction(x, 2**128) - s) <= Fraction(err, 2**128)


def test_weighted_validation() -> None:
    w = Weighted.from_weights([90, 10, 0])
    assert w.shares() == (Fraction(9, 10), Fraction(1, 10), Fraction(0))
    assert w.masses64()[2] == 0
    assert sum(w.masses64()) == 2**64
    with pytest.raises(ModelError, match="greater than 0"):
        Weighted.from_weights([0, 0])
    with pytest.raises(ModelError, match="exceeds 4294967295"):
        Weighted.from_weights([2**32 - 1, 1])
    Weighted.from_weights([2**32 - 2, 1])  # exactly the maximum is fine
    with pytest.raises(InvalidArgument, match=r"995|199,1"):
        Weighted.from_weights(["99.5", "0.5"])
    with pytest.raises(InvalidArgument, match=">= 0"):
        Weighted.from_weights(["-1", "5"])


@given(st.lists(st.integers(min_value=0, max_value=2**20), min_size=1, max_size=20).filter(lambda w: sum(w) > 0))
def test_envoy_masses_are_the_modulo_mechanism(ws: list[int]) -> None:
    w = Weighted.from_weights(ws)
    masses = w.masses64()
    assert sum(masses) == 2**64
    total = sum(ws)
    q, s = divmod(2**64, total)
    begin = 0
    for wi, m in zip(ws, masses):
        # count residues v in [begin, begin+wi): each occurs q or q+1 times
        assert m == sum(q + (1 if v < s else 0) for v in range(begin, begin + wi)) if wi <= 64 else True
        assert abs(Fraction(m, 2**64) - Fraction(wi, total)) < Fraction(total, 2**64)
        begin += wi


def test_route_tree_shares_multiply() -> None:
    v1 = Cascade.kube_proxy([Backend(name="v1-a"), Backend(name="v1-b")])
    v2 = Backend(name="v2")
    r = Route(root=Weighted(children=(v1, v2), weights=(90, 10)))
    assert r.exact_shares() == (Fraction(45, 100), Fraction(45, 100), Fraction(1, 10))
    masses, exact = r.masses64()
    assert sum(masses) == 2**64
    assert not exact  # 45/100 is not a multiple of 2**-64


def test_duplicate_backend_names_refused() -> None:
    with pytest.raises(ModelError, match="unique"):
        Route(root=Weighted(children=(Backend(name="a"), Backend(name="a")), weights=(1, 1)))


def test_cascade_shape_checked() -> None:
    with pytest.raises(ModelError, match="outcomes"):
        Cascade(children=(Backend(name="a"),), thresholds=(5,))
    with pytest.raises(ModelError, match=r"\[0, 2\*\*31\]"):
        Cascade(children=(Backend(name="a"), Backend(name="b")), thresholds=(2**31 + 1,))


def test_describe() -> None:
    assert Route(root=Cascade.kube_proxy(2)).describe() == "cascade[0.50000000000](b1 | b2)"
    assert model.Route(root=Weighted.from_weights([90, 10])).describe() == "weighted[90,10](b1 | b2)"
