"""check_split: exact binomial / multinomial tests, likelihood ratios, verdicts, observed files."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy import stats as ss

from meshstat import inference as inf
from meshstat.report import inference as rep
from meshstat.errors import ConfigParseError, InvalidArgument


def test_istio_9268_five_of_ten_is_not_noise() -> None:
    r = inf.check_split([5, 5], [90, 10], alternatives=[(50, 50)])
    assert r.method == "exact binomial"
    # outcomes no more likely than 5 of 10 at p = 0.1 are exactly X >= 5
    assert r.pvalue == pytest.approx(ss.binom.sf(4, 10, 0.1), rel=1e-12)
    assert not r.consistent
    assert r.summary().startswith("not noise: 5 of 10 at 10% has p = 0.0016 (exact binomial)")
    # likelihood ratio 50/50 vs 90/10 (binomial coefficients cancel)
    lr = ss.binom.pmf(5, 10, 0.5) / ss.binom.pmf(5, 10, 0.1)
    assert r.alternatives[0].lr == pytest.approx(lr, rel=1e-12)
    assert "favour 50/50 over 90/10 by 165:1" in r.summary()


def test_consistent_verdict_and_lr_against_alternative() -> None:
    r = inf.check_split([88, 12], [90, 10], alternatives=[(50, 50)])
    assert r.consistent
    assert r.pvalue == pytest.approx(ss.binomtest(88, 100, 0.9).pvalue, rel=1e-10)
    assert r.summary().startswith("consistent with 90/10")
    assert r.alternatives[0].log10_lr < 0
    assert "favour 90/10 over 50/50" in r.summary()


@pytest.mark.parametrize("seed", [0, 1])
def test_binomial_pvalue_matches_scipy_binomtest(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n = int(rng.integers(1, 3000))
        p = float(rng.choice([0.5, 0.1, 0.9, 0.01, rng.random()]))
        k = int(rng.binomial(n, min(max(p + rng.normal(0, 0.05), 0.0), 1.0)))
        want = ss.binomtest(k, n, p).pvalue
        # scipy underflows below ~1e-290; compare above that
        assert inf.binomial_pvalue(k, n, p) == pytest.approx(want, rel=1e-9, abs=1e-280)


def _brute_multinomial_pvalue(obs: list[int], p: list[float]) -> float:
    n, k = sum(obs), len(obs)
    comps = np.array([c for c in itertools.product(range(n + 1), repeat=k - 1) if sum(c) <= n])
    comps = np.c_[comps, n - comps.sum(axis=1)]
    pmf = ss.multinomial.pmf(comps, n, p)
    return float(pmf[pmf <= ss.multinomial.pmf(obs, n, p) * (1 + 1e-7)].sum())


@pytest.mark.parametrize(
    ("obs", "w"),
    [
        ([12, 9, 4], [1, 1, 1]),
        ([10, 3, 2, 0], [5, 3, 1, 1]),
        ([2, 7, 1], [7, 2, 1]),
        ([70, 50, 30], [5, 3, 2]),
        ([9, 14, 8, 9], [1, 2, 3, 4]),
        ([3, 1, 0, 2, 5], [1, 1, 1, 1, 1]),
    ],
)
def test_exact_multinomial_matches_enumeration(obs: list[int], w: list[int]) -> None:
    r = inf.check_split(obs, w)
    assert r.method == "exact multinomial"
    p = [x / sum(w) for x in w]
    assert r.pvalue == pytest.approx(_brute_multinomial_pvalue(obs, p), rel=1e-9)


def test_large_n_falls_back_to_chi_square_with_a_note() -> None:
    obs = [60, 10, 7, 3, 6, 4, 10]
    r = inf.check_split(obs, [1] * 7)
    assert r.method == "chi-square"
    assert r.pvalue == pytest.approx(ss.chisquare(obs).pvalue, rel=1e-9)
    assert r.gtest_pvalue == pytest.approx(ss.power_divergence(obs, lambda_="log-likelihood").pvalue, rel=1e-9)
    assert any("chi-square approximation" in n for n in r.notes)
    # a lower exact_limit forces the fallback at small n too; a higher one keeps it exact
    assert inf.check_split([12, 9, 4], [1, 1, 1], exact_limit=10).method == "chi-square"


def test_zero_weight_backend_with_traffic_is_impossible() -> None:
    r = inf.check_split([50, 40, 3], [60, 40, 0], alternatives=[(50, 40, 10)])
    assert r.method == "impossible" and r.pvalue == 0.0
    assert r.summary().startswith("impossible under 60/40/0: b3 has weight 0 but got 3 of 93")
    assert r.alternatives[0].log10_lr == float("inf")


def test_names_and_two_positive_of_three() -> None:
    r = inf.check_split([70, 30, 0], [70, 30, 0], names=["v1", "v2", "v3"])
    assert r.method == "exact binomial" and r.pvalue == pytest.approx(1.0)
    assert r.names == ("v1", "v2", "v3")
    frame = rep.frame(r)
    assert frame["backend"].to_list() == ["v1", "v2", "v3"]
    assert frame["observed"].to_list() == [70, 30, 0]
    assert rep.check_tests_frame(r)["test"].to_list()[:3] == ["exact binomial", "chi-square", "G-test"]


@pytest.mark.parametrize(
    ("obs", "w", "msg"),
    [
        ([5, 5, 1], [90, 10], "observed has 3 entries but weights has 2"),
        ([0, 0], [90, 10], "sum to 0"),
        ([5, -1], [90, 10], "non-negative integers"),
        ([5, 1.5], [90, 10], "non-negative integers"),
        ([5, 5], ["99.5", "0.5"], "fractional.*199,1"),
        ([5, 5], [0, 0], "greater than 0"),
    ],
)
def test_bad_input(obs: list, w: list, msg: str) -> None:
    with pytest.raises(InvalidArgument, match=msg):
        inf.check_split(obs, w)


def test_alternative_length_mismatch() -> None:
    with pytest.raises(InvalidArgument, match="alternative 1/1/1 has 3 weights"):
        inf.check_split([5, 5], [90, 10], alternatives=[(1, 1, 1)])


def test_read_observed_csv_and_json(tmp_path) -> None:  # noqa: ANN001
    f = tmp_path / "obs.csv"
    f.write_text("# counts from curl\nbackend,count\nv1,95\nv2, 5\n")
    assert inf.read_observed(str(f)) == (["v1", "v2"], [95, 5])
    g = tmp_path / "obs.json"
    g.write_text(json.dumps({"v1": 95, "v2": 5}, indent=1))
    assert inf.read_observed(str(g)) == (["v1", "v2"], [95, 5])
    h = tmp_path / "list.json"
    h.write_text(json.dumps([{"backend": "a", "count": 3}, ["b", 4]]))
    assert inf.read_observed(str(h)) == (["a", "b"], [3, 4])


@pytest.mark.parametrize(
    ("name", "text", "line", "what"),
    [
        ("bad.csv", "backend,count\nv1,95\nv2,five\n", 3, "non-negative integer count"),
        ("bad2.csv", "v1,95\nv2,5,7\n", 2, "two comma-separated fields"),
        ("dup.csv", "v1,95\nv1,5\n", 2, "appears twice"),
        ("empty.csv", "# nothing\n", 1, "at least one"),
        ("bad.json", '{\n "v1": 95,\n "v2": -5\n}\n', 3, "non-negative integer"),
        ("broken.json", '{\n "v1": 95,\n "v2" 5\n}\n', 3, "invalid JSON"),
    ],
)
def test_read_observed_errors_name_file_and_line(tmp_path, name: str, text: str, line: int, what: str) -> None:  # noqa: ANN001
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(ConfigParseError, match=what) as ei:
        inf.read_observed(str(f))
    assert ei.value.line == line
    assert str(ei.value).startswith(f"{f}:{line}")
