"""Regex matching on behalf of Envoy/Istio is linear: ``(a+)+b`` costs what a plain pattern costs.

Goal (issue "Bounded and safe on every input"): Istio's ``regex: "(a+)+b"`` against a header of
'a's, which took 18 s for 30 characters with Python's backtracking ``re``, finishes in time
linear in the value. Measured as ratios against a baseline in the same run:

* ``(a+)+b`` against 10,000 'a's versus the linear pattern ``a*`` against the same value:
  at most 20 times (RE2 runs both as a DFA; backtracking would not finish);
* ``(a+)+b`` against 1,000,000 'a's versus 100,000 'a's: at most 30 times (linear: about 10; RE2
  picks its engine by the size of the text, so both sizes are where it runs its DFA).

Both through :func:`meshstat.mesh.envoy.route_static_match`, the path every route match takes.
"""

from __future__ import annotations

import os

import pytest

from meshstat.mesh.envoy import route_static_match

SLACK = float(os.environ.get("MESHSTAT_BENCH_SLACK", "2"))
TIMES: dict[str, float] = {}


def _match(regex: str, value: str) -> bool:
    m = {"prefix": "/", "headers": [{"name": "x-user", "string_match": {"safe_regex": {"regex": regex}}}]}
    return route_static_match(m, "/", {"x-user": value}, [])


@pytest.mark.parametrize(("name", "regex", "n", "expected"), [
    ("plain-10k", "a*", 10_000, True),
    ("evil-10k", "(a+)+b", 10_000, False),
    ("evil-100k", "(a+)+b", 100_000, False),
    ("evil-1m", "(a+)+b", 1_000_000, False),
])
def test_bench_regex(benchmark, name: str, regex: str, n: int, expected: bool) -> None:  # type: ignore[no-untyped-def]
    value = "a" * n
    got = benchmark.pedantic(lambda: _match(regex, value), rounds=20, iterations=5, warmup_rounds=2)
    assert got is expected
    TIMES[name] = float(benchmark.stats.stats.median)


def test_zz_regex_ratios() -> None:
    evil_vs_plain = TIMES["evil-10k"] / TIMES["plain-10k"]
    growth = TIMES["evil-1m"] / TIMES["evil-100k"]
    print(f"\nregex: (a+)+b / a* on 10k = {evil_vs_plain:.2f}; (a+)+b 1M / 100k = {growth:.2f}")
    assert evil_vs_plain < 20 * SLACK, f"(a+)+b costs {evil_vs_plain:.1f} times a* on the same 10,000 'a's"
    assert growth < 30 * SLACK, f"(a+)+b grows {growth:.1f} times from 100,000 to 1,000,000 'a's (linear: ~10)"
