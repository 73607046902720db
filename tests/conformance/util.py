"""Helpers shared by the conformance tests."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from meshstat.stats import goodness_of_fit

DATA = Path(__file__).resolve().parent / "data"

#: The chance that one run of the whole conformance suite fails a correct model by chance. The kernel's and
#: Envoy's random choices cannot be seeded, so every chance test here can fail; one run holds 41 of them
#: (records with an alpha in $MESHSTAT_CONFORMANCE_REPORT), and at 1e-3 each a correct model failed about one
#: CI run in 25. The budget is split evenly over at most MAX_CHANCE_TESTS tests (Bonferroni).
SUITE_ALPHA = 1e-3
#: Most chance tests (records with an ``alpha``) one run may hold; conftest fails the run when there are more.
MAX_CHANCE_TESTS = 100
#: Per-test level: a correct model fails one chance test with probability ALPHA, the run with at most SUITE_ALPHA.
ALPHA = SUITE_ALPHA / MAX_CHANCE_TESTS

__all__ = ["ALPHA", "DATA", "MAX_CHANCE_TESTS", "SUITE_ALPHA", "assert_fits"]


def assert_fits(record, name: str, names: Sequence[str], counts: Sequence[int],  # noqa: ANN001
                shares: Sequence[Fraction], **extra: object) -> None:
    """Chi-square test of ``counts`` against exact ``shares`` at level ALPHA; record counts and p-value."""
    res = goodness_of_fit(counts, shares)
    impossible = sum(int(c) for c, s in zip(counts, shares, strict=True) if s == 0)
    record(case=name, n=int(sum(counts)), backends=list(names), counts=[int(c) for c in counts],
           expected=[float(s) for s in shares], chi2=res.statistic, dof=res.dof, pvalue=res.pvalue,
           alpha=ALPHA, **extra)
    assert impossible == 0, f"{name}: {impossible} observations where the model gives probability 0"
    assert res.pvalue >= ALPHA, (
        f"{name}: counts {list(counts)} do not fit shares {[float(s) for s in shares]} "
        f"(chi2 {res.statistic:.2f}, dof {res.dof}, p {res.pvalue:.3g} < {ALPHA})"
    )
