"""Envoy LEAST_REQUEST: exact pick probabilities for given loads, and the policy under load.

``least_request/least_request_lb.cc`` (Envoy 1.40):

* equal host weights, ``selection_method: N_CHOICES`` (default):
  ``unweightedHostPickNChoices`` samples ``choice_count`` (default 2, at least 2)
  hosts **with replacement** (``random() % n``) and keeps the first one with
  the fewest active requests (a tie keeps the earlier sample);
* ``selection_method: FULL_SCAN``: the minimum over all hosts, ties broken by
  reservoir sampling (``random() % tied == 0``). Envoy PR #29873 briefly
  switched to a full scan whenever ``choice_count >= hosts``; PR #30794 reverted
  that, so 1.40 scans only when ``FULL_SCAN`` is configured;
* unequal weights: the EDF scheduler of round robin with host weight
  ``w / (active + 1) ** active_request_bias`` (bias default 1.0), computed when
  the host is re-added after a pick.

:meth:`LeastRequest.pick_probabilities` gives the exact choice distribution for
frozen active counts (Envoy's documented examples: 3 hosts with one at 10
active requests -> 4/9, 4/9, 1/9; 2 hosts, one busy -> 1/4 to the busy one).
Under load the counts move with every arrival and completion, so
:func:`meshstat.engine.balancers.simulate_balancer` runs a discrete-event simulation
(:mod:`meshstat._kernels.least_request`) with a :class:`~meshstat.balancers.Workload`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from meshstat.balancers.hashing import endpoints_weights
from meshstat.errors import InvalidArgument

#: Largest numbers (bits) of an exact N_CHOICES pick distribution with unequal loads: ``choices * log2(hosts)``.
_MAX_EXACT_BITS = 1 << 18

__all__ = ["LeastRequest"]


@dataclass(frozen=True, eq=False, init=False)
class LeastRequest:
    """Envoy LEAST_REQUEST over ``endpoints``.

    Parameters
    ----------
    endpoints : int or sequence of str
    weights : sequence of int, optional
        Unequal weights switch to the EDF path.
    choice_count : int
        Samples per pick (>= 2, default 2).
    active_request_bias : float
        Exponent of ``(active + 1)`` in the weighted path (default 1.0).
    selection_method : {"n_choices", "full_scan"}
    """

    endpoints: tuple[str, ...]
    weights: tuple[int, ...] | None
    choice_count: int
    active_request_bias: float
    selection_method: str

    policy = "least_request"
    unit = "request"
    workers = 1

    def __init__(
        self,
        endpoints: int | Sequence[str],
        weights: Sequence[int] | None = None,
        *,
        choice_count: int = 2,
        active_request_bias: float = 1.0,
        selection_method: str = "n_choices",
    ):
        eps, ws = endpoints_weights(endpoints, weights)
        if isinstance(choice_count, bool) or not isinstance(choice_count, int) or choice_count < 2:
            raise InvalidArgument(
                f"LeastRequestLbConfigValidationError.ChoiceCount: value must be greater than or equal to 2, "
                f"got {choice_count!r}"
            )
        if choice_count > 2**32 - 1:
            raise InvalidArgument(f"choice_count is a uint32 in Envoy's LeastRequest config: at most 4294967295, "
                                  f"got {choice_count:,}")
        if not active_request_bias >= 0:
            raise InvalidArgument(f"active_request_bias must be >= 0, got {active_request_bias!r}")
        sm = selection_method.lower().replace("-", "_")
        if sm not in ("n_choices", "full_scan"):
            raise InvalidArgument(f"selection_method must be n_choices or full_scan, got {selection_method!r}")
        object.__setattr__(self, "endpoints", eps)
        object.__setattr__(self, "weights", ws)
        object.__setattr__(self, "choice_count", choice_count)
        object.__setattr__(self, "active_request_bias", float(active_request_bias))
        object.__setattr__(self, "selection_method", sm)

    @property
    def n_hosts(self) -> int:
        """Number of hosts."""
        return len(self.endpoints)

    @property
    def weighted(self) -> bool:
        """Whether Envoy uses the EDF path (host weights not all equal)."""
        return self.weights is not None and len(set(self.weights)) > 1 and self.n_hosts > 1

    def effective_weights(self, active: Sequence[int]) -> tuple[float, ...]:
        """``w / (active + 1) ** bias`` per host (``least_request_lb.cc: hostWeight``)."""
        ws = self.weights or (1,) * self.n_hosts
        b = self.active_request_bias
        out = []
        for w, a in zip(ws, active, strict=True):
            if b == 1.0:
                out.append(w / (a + 1.0))
            elif b != 0.0:
                out.append(w / (a + 1.0) ** b)
            else:
                out.append(float(w))
        return tuple(out)

    def pick_probabilities(self, active: Sequence[int] | None = None) -> tuple[Fraction, ...]:
        """Exact probability that the next pick is each host, with ``active`` frozen.

        For the EDF path this is the long-run share of the schedule with the
        effective weights (exact Fractions when the bias is 0 or 1).
        """
        act = tuple(int(a) for a in (active if active is not None else (0,) * self.n_hosts))
        if len(act) != self.n_hosts or any(a < 0 for a in act):
            raise InvalidArgument(f"active: one non-negative count per host ({self.n_hosts})")
        n = self.n_hosts
        if self.weighted:
            ws = self.weights or ()
            b = self.active_request_bias
            if b in (0.0, 1.0):
                eff = [Fraction(w, (a + 1) if b == 1.0 else 1) for w, a in zip(ws, act, strict=True)]
            else:
                eff = [Fraction(x) for x in self.effective_weights(act)]
            tot = sum(eff)
            return tuple(e / tot for e in eff)
        if self.selection_method == "full_scan":
            lo = min(act)
            tied = [i for i in range(n) if act[i] == lo]
            return tuple(Fraction(1, len(tied)) if act[i] == lo else Fraction(0) for i in range(n))
        # N_CHOICES keeps the first of the least busy hosts sampled: the least active count sampled is
        # level a with probability (N_>=a / n)**C - (N_>a / n)**C, and the first sample at that level is
        # any of its m_a hosts alike. Closed form, exact, O(hosts) for any choice_count C.
        c = self.choice_count
        levels = sorted(set(act))
        if len(levels) == 1:
            return tuple(Fraction(1, n) for _ in range(n))
        if c * n.bit_length() > _MAX_EXACT_BITS:
            raise InvalidArgument(
                f"the exact pick distribution of {c:,} choices over {n} hosts with unequal loads holds numbers "
                f"of {c * n.bit_length():,} bits (at most {_MAX_EXACT_BITS:,}); use fewer choices"
            )
        at = {a: act.count(a) for a in levels}
        by_level = {}
        for a in levels:
            ge = sum(at[x] for x in levels if x >= a)
            by_level[a] = (Fraction(ge, n) ** c - Fraction(ge - at[a], n) ** c) / at[a]
        return tuple(by_level[a] for a in act)

    def expected_shares(self) -> tuple[Fraction, ...]:
        """Shares with every host idle (sequential requests): uniform, or ``w / sum(w)`` weighted."""
        if not self.weighted:  # every candidate ties with every sample: the first pick is kept, uniform
            return (Fraction(1, self.n_hosts),) * self.n_hosts
        return self.pick_probabilities()

