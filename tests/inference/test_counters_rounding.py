"""Counters a listing rounded (``10M``), and counts beyond what meshstat counts.

``iptables -vnL`` without ``-x`` prints a counter above 99,999 rounded; the
check must rest on every count the printed value stands for, not on the
printed value (whose rounding can swamp the sampling noise). The interval of a
printed value is tested against a twin of iptables' ``xtables_print_num``
written here from its C source (``libxtables/xtables.c``).
"""

from __future__ import annotations

import io
import itertools
import json
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from meshstat import netfilter as nf
from meshstat.cli import main
from meshstat.errors import ConfigParseError
from meshstat.inference.counters import check_counters
from meshstat.parsers.netfilter.iptables_list import MAX_COUNTER, printed_count_range
from meshstat.stats import chisquare_range, verdict_over_range
from meshstat.stats.gof import _slices
from tests.conftest import DATA

LISTINGS = DATA / "iptables" / "listings"
VNXL = LISTINGS / "kube-proxy-3ep-counters.nat.vnxL"
SAVE_C = LISTINGS / "kube-proxy-3ep-counters.nat.iptables-save-c"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def xtables_print_num(n: int) -> str:
    """iptables ``xtables_print_num`` with ``FMT_KILOMEGAGIGA`` (no ``-x``), without the padding."""
    if n <= 99999:
        return str(n)
    for suffix in "KMG":
        n = (n + 500) // 1000
        if n <= 9999:
            return f"{n}{suffix}"
    n = (n + 500) // 1000
    return f"{n}T"


def _value(text: str) -> tuple[int, bool]:
    if text[-1] in "KMGT":
        return int(text[:-1]) * 1000 ** ("KMGT".index(text[-1]) + 1), False
    return int(text), True


def test_printed_ranges_are_exactly_the_counts_printed_so() -> None:
    rng = random.Random(11)
    samples = [rng.randrange(0, 10**k) for k in (5, 6, 7, 9, 11, 13, 16, 19) for _ in range(3000)]
    samples += [99_999, 100_000, 100_499, 100_500, 9_999_499, 9_999_500, 10_499_499, 10_499_500, MAX_COUNTER]
    for n in samples:
        text = xtables_print_num(n)
        lo, hi = printed_count_range(*_value(text))
        assert lo <= n <= hi
        assert xtables_print_num(lo) == text and xtables_print_num(hi) == text
        assert lo == 0 or xtables_print_num(lo - 1) != text
        assert hi == MAX_COUNTER or xtables_print_num(hi + 1) != text


def test_ten_million_is_not_a_symmetric_rounding() -> None:
    assert printed_count_range(10_000_000, False) == (9_999_500, 10_499_499)
    assert printed_count_range(11_000_000, False) == (10_499_500, 11_499_499)
    assert printed_count_range(12_000, True) == (12_000, 12_000)


def _brute(lo: list[int], hi: list[int], p: list[float]) -> tuple[float, float]:
    vals = []
    for c in itertools.product(*[range(a, b + 1) for a, b in zip(lo, hi, strict=True)]):
        c = np.array(c, float)
        n = c.sum()
        vals.append(float(((c - n * np.array(p)) ** 2 / (n * np.array(p))).sum()))
    return min(vals), max(vals)


def test_chisquare_range_brackets_every_allowed_count_vector() -> None:
    rng = np.random.default_rng(3)
    for _ in range(150):
        k = int(rng.integers(2, 5))
        p = rng.dirichlet(np.ones(k)).tolist()
        lo = rng.integers(1, 40, size=k).tolist()
        hi = [a + int(rng.integers(0, 5)) for a in lo]
        mn, mx = _brute(lo, hi, p)
        r = chisquare_range(lo, hi, p)
        tol = 1e-9 * max(1.0, mx)
        assert r.statistic_low <= mn + tol  # the relaxation only lowers the minimum
        assert abs(r.statistic_high - mx) <= tol and r.high_exact  # vertices enumerated


def test_the_bound_past_the_enumerated_vertices_is_an_upper_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from meshstat.stats import rounded

    monkeypatch.setattr(rounded, "MAX_VERTEX_COORDS", 0)
    rng = np.random.default_rng(4)
    for _ in range(150):
        k = int(rng.integers(2, 5))
        p = rng.dirichlet(np.ones(k)).tolist()
        lo = rng.integers(1, 40, size=k).tolist()
        hi = [a + int(rng.integers(0, 5)) for a in lo]
        _, mx = _brute(lo, hi, p)
        r = chisquare_range(lo, hi, p)
        assert r.statistic_high >= mx - 1e-9 * max(1.0, mx)
        assert not r.high_exact or lo == hi


def test_share_zero_outcomes_make_counts_impossible_or_least_favourable() -> None:
    r = chisquare_range([0, 5, 5], [0, 9, 9], [Fraction(0), Fraction(1, 2), Fraction(1, 2)])
    assert not r.impossible and r.pvalue_high == pytest.approx(1.0)
    r = chisquare_range([1, 5, 5], [3, 9, 9], [0, 0.5, 0.5])
    assert r.impossible and verdict_over_range(r, 0.05) == "impossible"
    r = chisquare_range([0, 5, 5], [3, 9, 9], [0, 0.5, 0.5])
    assert not r.impossible and r.pvalue_low == 0.0


def _listing(tmp_path: Path, counts: tuple[str, str, str]) -> str:
    """The measured 3-endpoint listing (``-vnxL``) with its jump counters replaced as ``-vnL`` prints them."""
    text = VNXL.read_text().replace("# iptables -t nat -vnxL", "# iptables -t nat -vnL")
    new_of = dict(zip(("999", "964", "1037"), counts, strict=True))
    lines = text.splitlines()
    for i, line in enumerate(lines):
        toks = line.split()
        if toks and toks[0] in new_of:  # the jump rules and their KUBE-SEP DNAT rules
            lines[i] = line.replace(toks[0], new_of[toks[0]], 1)
    f = tmp_path / "listing.vnL"
    f.write_text("\n".join(lines) + "\n")
    return str(f)


@pytest.mark.parametrize(
    ("counts", "verdict"),
    [
        (("10M", "10M", "11M"), "undecidable"),  # 500,000 of rounding against 3,162 of noise
        (("10M", "20M", "10M"), "inconsistent"),  # no count the listing allows is a uniform split
        (("3333K", "3334K", "3333K"), "consistent"),  # 1,000 of rounding against about 1,500 of noise
    ],
)
def test_rounded_counters_verdict_holds_over_the_intervals(
    tmp_path: Path, counts: tuple[str, ...], verdict: str
) -> None:
    res = check_counters(nf.load(_listing(tmp_path, counts)), "default/web:http")
    assert res.approximate and res.pvalue_range is not None
    assert [r.observed for r in res.rows] == [_value(c)[0] for c in counts]
    want = [printed_count_range(*_value(c)) for c in counts]
    assert [(r.observed_low, r.observed_high) for r in res.rows] == want
    assert res.verdict == verdict
    assert res.consistent == (verdict == "consistent")
    low, high = res.pvalue_range
    assert low <= high and res.pvalue == high
    if verdict == "undecidable":
        assert low < res.alpha <= high and "undecidable at this rounding" in res.summary()


def test_cli_check_of_a_rounded_listing_says_undecidable(tmp_path: Path) -> None:
    listing = _listing(tmp_path, ("10M", "10M", "11M"))
    rc, out, err = run("check", "--iptables", listing, "--service", "default/web:http", "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["verdict"] == "undecidable" and doc["consistent"] is False
    assert doc["headline_p_value_range"][0] < 0.05 <= doc["headline_p_value_range"][1]
    assert doc["backends"][0]["observed_low"] == 9_999_500


def test_exact_counters_keep_the_exact_test() -> None:
    res = check_counters(nf.load(str(VNXL)), "default/web:http")
    assert res.pvalue_range is None and res.method == "exact multinomial" and res.verdict == "consistent"


def test_counters_beyond_int64_are_refused_in_one_line(tmp_path: Path) -> None:
    m = str(2**64 - 1)
    text = SAVE_C.read_text()
    for old in ("[999:59940]", "[964:57840]", "[1037:62220]"):
        text = text.replace(old, f"[{m}:{m}]")
    f = tmp_path / "c64.save"
    f.write_text(text)
    rc, out, err = run("check", "--iptables", str(f), "--service", "default/web:http")
    assert rc == 3 and out == "" and err.count("\n") == 1
    assert "more than 2**63-1" in err and "c64.save" in err
    with pytest.raises(ConfigParseError, match="below 2\\*\\*64"):
        nf.load("c65.save", text=text.replace(m, str(2**64), 1))


def test_check_observed_beyond_int64_is_refused_in_one_line() -> None:
    rc, out, err = run("check", "--observed", "99999999999999999999999,1", "--weights", "1,1")
    assert rc == 2 and out == "" and err.count("\n") == 1 and "2**63-1" in err
    rc, out, err = run("check", "--observed", f"{2**63 - 2},1", "--weights", "1,1", "--format", "json")
    assert rc == 0, err
    assert json.loads(out)["verdict"] == "inconsistent"


def test_outcome_slices_of_huge_counts_are_bounded() -> None:
    assert _slices(10, 3, 10**6) == 11
    assert _slices(2**63, 10_000, 10**6) > 10**6  # no binomial coefficient of millions of digits
