"""Helpers shared by the conformance tests."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from meshstat.stats import goodness_of_fit
from tests.conftest import ALPHA

DATA = Path(__file__).resolve().parent / "data"

__all__ = ["ALPHA", "DATA", "assert_fits"]


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
