"""The routing model (IR): stages, backends and their exact distributions.

A :class:`Route` is a tree of :class:`Stage` nodes ending in :class:`Backend`
leaves. Every stage here decides independently for each unit it sees (a new
connection or a request), so the share of every leaf is the product of the
stage shares on its path, and that product is exact (:class:`fractions.Fraction`).

Two stage policies are modelled bit-exactly:

``Cascade``
    iptables ``-m statistic --mode random --probability p`` rules in order, first
    match wins (kube-proxy's ``KUBE-SVC-*`` chains). ``iptables`` stores
    ``k = lround(p * 2**31)`` (``extensions/libxt_statistic.c: statistic_parse``)
    and the kernel matches when ``(get_random_u32() & 0x7FFFFFFF) < k``
    (``net/netfilter/xt_statistic.c: statistic_mt``), so a rule matches with
    probability exactly ``k / 2**31``.
``Weighted``
    Envoy weighted clusters: integer weights, ``R % total_weight`` over the
    cumulative intervals in config order, ``R`` a uniform 64-bit value
    (``source/common/router/weighted_cluster_specifier.cc:
    WeightedClusterSpecifierPlugin::pickWeightedCluster``).

This module is pure Python (standard library only); numbers that the kernels
need are produced here as Python integers and turned into arrays by
:mod:`meshstat.compiler`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, Union

from meshstat.errors import InvalidArgument, ModelError
from meshstat.model.shares import DyadicShare, coprime_fraction, dyadic
from meshstat.model.thresholds import (
    CASCADE_ONE,
    decimal_fraction,
    kube_proxy_probabilities,
    probability_to_threshold,
    round_to_total,
    scale_fractional_weights,
    threshold_to_decimal,
)

__all__ = [
    "ENVOY_MAX_TOTAL_WEIGHT",
    "FALL_THROUGH",
    "MAX_EXACT_RULES",
    "Backend",
    "Cascade",
    "Node",
    "Provenance",
    "Route",
    "Stage",
    "Unit",
    "Weighted",
]

#: Envoy rejects weighted clusters whose weights sum above ``uint32`` max.
ENVOY_MAX_TOTAL_WEIGHT = (1 << 32) - 1
#: Name of the extra outcome of a cascade whose last rule is not unconditional.
FALL_THROUGH = "(fall-through)"

_TWO64 = 1 << 64
#: Cascades with more statistic rules than this are not expanded into exact
#: Fractions: the shares of ``m`` rules hold about ``31 m**2`` bits together
#: (10,000 rules: 390 MB, built in a fraction of a second); longer cascades are
#: reported on the kernels' ``2**-64`` grid (:meth:`Stage.expected_shares`).
MAX_EXACT_RULES = 10_000

Unit = Literal["connection", "request"]


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where an element of the model came from.

    Parameters
    ----------
    source : str
        File name, or a short label such as ``"--weights"``.
    line : int, optional
        1-based line in ``source``.
    """

    source: str
    line: int | None = None

    def __str__(self) -> str:
        return self.source if self.line is None else f"{self.source}:{self.line}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Backend:
    """A leaf of a route: a pod, an endpoint, a cluster, or a fall-through.

    Parameters
    ----------
    name : str
        Label shown in reports; unique within a route.
    address : str, optional
        ``"ip:port"`` where the traffic ends up, if known.
    labels : tuple of (str, str)
        Kubernetes-style labels (``("version", "v1")``).
    provenance : Provenance, optional
        File and line that defined it.
    """

    name: str
    address: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    provenance: Provenance | None = None


Node = Union["Stage", Backend]


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """Base of all stages: an i.i.d. choice among ``children``.

    Subclasses define :meth:`shares` (exact per-child probabilities) and
    :meth:`masses64` (the same distribution as integers summing to ``2**64``,
    what a kernel fed one uniform 64-bit word per decision samples).
    """

    children: tuple[Node, ...]
    unit: Unit = "request"
    name: str | None = None
    provenance: Provenance | None = None

    @property
    def policy(self) -> str:
        """Short policy name (``"cascade"``, ``"weighted"``)."""
        raise NotImplementedError

    def shares(self) -> tuple[Fraction, ...]:
        """Exact probability of each child."""
        raise NotImplementedError

    def masses64(self) -> tuple[int, ...]:
        """Per-child probability mass in units of ``2**-64`` (sums to ``2**64``)."""
        return round_to_total([Fraction(s) for s in self.shares()], _TWO64)

    def masses64_exact(self) -> bool:
        """Whether :meth:`masses64` equals the exact distribution (no rounding)."""
        return True

    def exact_feasible(self) -> bool:
        """Whether :meth:`shares` can be computed (every stage but a cascade of over
        :data:`MAX_EXACT_RULES` rules)."""
        return True

    def expected_shares(self) -> tuple[tuple[Fraction, ...], bool]:
        """``(shares, exact)``: the exact shares, or where they are not feasible the
        :meth:`masses64` on the ``2**-64`` grid with ``exact`` False.

        The one definition of "exact or rounded to the kernels' grid" that every
        report marks (``~``, :func:`meshstat.model.share_text`).
        """
        if self.exact_feasible():
            return tuple(self.shares()), True
        return tuple(dyadic(m, 64) for m in self.masses64()), False


def _check_children(children: Sequence[Node], what: str) -> None:
    if not children:
        raise ModelError(f"{what} needs at least one outcome")
    for c in children:
        if not isinstance(c, Stage | Backend):
            raise ModelError(f"{what} children must be Stage or Backend, got {type(c).__name__}")


#: The most endpoints of one kube-proxy cascade: Kubernetes' documented scalability limit of
#: 150,000 pods in a cluster ("Considerations for large clusters"), so no Service has more.
MAX_KUBE_PROXY_ENDPOINTS = 150_000


def check_kube_proxy_endpoints(n: int) -> None:
    """Refuse a kube-proxy cascade over more than :data:`MAX_KUBE_PROXY_ENDPOINTS` endpoints."""
    if n > MAX_KUBE_PROXY_ENDPOINTS:
        raise InvalidArgument(
            f"{n:,} kube-proxy endpoints: at most {MAX_KUBE_PROXY_ENDPOINTS:,} (Kubernetes' limit of pods in a "
            "cluster)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Cascade(Stage):
    """iptables ``-m statistic --mode random`` rules in order, first match wins.

    ``thresholds[i]`` is the kernel's stored integer ``k`` of rule ``i``
    (``0 <= k <= 2**31``). ``children`` has one more entry than ``thresholds``:
    the last child is what happens when no statistic rule matched, either an
    unconditional last rule (kube-proxy's layout) or, with
    ``fall_through=True``, "the packet continues after the cascade", an outcome
    of its own.

    See Also
    --------
    Cascade.from_probabilities, Cascade.kube_proxy
    """

    thresholds: tuple[int, ...] = ()
    fall_through: bool = False

    def __post_init__(self) -> None:
        _check_children(self.children, "a cascade")
        if len(self.children) != len(self.thresholds) + 1:
            raise ModelError(
                f"a cascade with {len(self.thresholds)} statistic rules has "
                f"{len(self.thresholds) + 1} outcomes, got {len(self.children)} children"
            )
        for k in self.thresholds:
            if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= CASCADE_ONE:
                raise ModelError(f"cascade threshold must be an integer in [0, 2**31], got {k!r}")

    @property
    def policy(self) -> str:  # noqa: D102
        return "cascade"

    @classmethod
    def from_probabilities(
        cls,
        probabilities: Iterable[float | str],
        children: Sequence[Node] | None = None,
        *,
        fall_through: bool = False,
        unit: Unit = "connection",
        name: str | None = None,
        provenance: Provenance | None = None,
    ) -> Cascade:
        """Build a cascade from ``--probability`` values as written or printed.

        Parameters
        ----------
        probabilities : iterable of float or str
            One value per statistic rule, e.g. ``["0.3333333333", "0.5"]``
            (what kube-proxy writes) or ``["0.33333333349", "0.50000000000"]``
            (what ``iptables-save`` prints back); both give the same ``k``.
        children : sequence of Stage or Backend, optional
            ``len(probabilities) + 1`` outcomes; default backends ``b1, b2, ...``
            (and :data:`FALL_THROUGH` as the last one with ``fall_through``).
        fall_through : bool
            The last outcome is "no rule matched" rather than an unconditional rule.
        unit, name, provenance
            See :class:`Stage`.
        """
        ks = tuple(probability_to_threshold(p) for p in probabilities)
        if children is None:
            children = _default_backends(len(ks) + 1, fall_through=fall_through)
        return cls(
            children=tuple(children),
            thresholds=ks,
            fall_through=fall_through,
            unit=unit,
            name=name,
            provenance=provenance,
        )

    @classmethod
    def kube_proxy(
        cls,
        endpoints: int | Sequence[Node],
        *,
        legacy: bool = False,
        name: str | None = None,
        provenance: Provenance | None = None,
    ) -> Cascade:
        """The cascade kube-proxy (iptables mode) writes for ``n`` endpoints.

        Rule ``i < n - 1`` carries ``--probability`` ``"%0.10f" % (1 / (n - i))``
        (``"%0.5f"`` with ``legacy=True``, kube-proxy before v1.17, PR #83599);
        the last rule is an unconditional jump. Source: kubernetes/kubernetes
        ``pkg/proxy/iptables/proxier.go: writeServiceToEndpointRules`` and
        ``computeProbability``.

        Parameters
        ----------
        endpoints : int or sequence of Stage or Backend
            The endpoint count (default backends ``b1..bn``) or the endpoints
            themselves, already in kube-proxy's order (``"ip:port"`` string sort).
        legacy : bool
            Use the pre-1.17 ``%0.5f`` format.
        name, provenance
            See :class:`Stage`.
        """
        check_kube_proxy_endpoints(endpoints if isinstance(endpoints, int) else len(endpoints))
        if isinstance(endpoints, int):
            if endpoints < 1:
                raise InvalidArgument(f"kube-proxy needs at least 1 endpoint, got {endpoints}")
            children: tuple[Node, ...] = _default_backends(endpoints)
        else:
            children = tuple(endpoints)
        probs = kube_proxy_probabilities(len(children), legacy=legacy)
        return cls.from_probabilities(
            probs, children, unit="connection", name=name, provenance=provenance
        )

    def rule_probabilities(self) -> tuple[Fraction, ...]:
        """Exact match probability ``k / 2**31`` of each statistic rule."""
        return tuple(Fraction(k, CASCADE_ONE) for k in self.thresholds)

    def shares(self) -> tuple[Fraction, ...]:
        """Exact first-match probability of every outcome.

        ``P_i = k_i/2**31 * prod_{j<i} (1 - k_j/2**31)``; the last outcome gets
        the remaining mass. The result sums to exactly 1.

        The products ``prod (2**31 - k_j)`` accumulate in one integer over the
        common power-of-two denominator, and each share is reduced by a shift
        (:func:`meshstat.model.shares.dyadic`), never by a gcd: all the shares
        of ``m`` rules cost time and memory ``O(m**2)`` bits (10,000 rules: a
        fraction of a second), not the cubic time of generic
        :class:`~fractions.Fraction` arithmetic.

        Raises
        ------
        ModelError
            With more than :data:`MAX_EXACT_RULES` statistic rules (their exact
            shares would hold ``31 m**2`` bits); :meth:`expected_shares` gives
            them on the ``2**-64`` grid, :meth:`fixed_point_shares` to any precision.
        """
        m = len(self.thresholds)
        if m > MAX_EXACT_RULES:
            raise ModelError(
                f"a cascade of {m:,} statistic rules is too long for exact shares (at most "
                f"{MAX_EXACT_RULES:,} rules: the shares of m rules hold 31*m**2 bits); "
                "its shares are given on the 2**-64 grid instead"
            )
        out: list[Fraction] = []
        # remaining mass after j rules = odd * 2**(twos - 31 j), odd an odd integer (or 0)
        odd, twos = 1, 0
        for j, k in enumerate(self.thresholds):
            out.append(_dyadic_share(odd, twos, k, 31 * (j + 1)))
            f = CASCADE_ONE - k
            if f == 0 or odd == 0:
                odd = 0
            else:
                t = (f & -f).bit_length() - 1
                odd *= f >> t
                twos += t
        out.append(_dyadic_share(odd, twos, 1, 31 * m))
        return tuple(out)

    def exact_feasible(self) -> bool:  # noqa: D102
        return len(self.thresholds) <= MAX_EXACT_RULES

    def fixed_point_shares(self, bits: int = 192) -> tuple[tuple[int, ...], int]:
        """Shares in fixed point with ``bits`` fractional bits, for any length.

        Returns
        -------
        numerators : tuple of int
            ``floor``-rounded ``P_i * 2**bits`` (computed with truncation at
            every step).
        error : int
            Upper bound (in units of ``2**-bits``) on ``|P_i * 2**bits - numerators[i]|``
            for every ``i``: each of the ``m`` steps truncates by less than one unit.
        """
        one = 1 << bits
        rem = one
        out: list[int] = []
        for k in self.thresholds:
            out.append((rem * k) >> 31)
            rem = (rem * (CASCADE_ONE - k)) >> 31
        out.append(rem)
        return tuple(out), len(self.thresholds) + 1

    def masses64(self) -> tuple[int, ...]:
        """Shares as integers summing to ``2**64`` (exact when at most 2 rules)."""
        m = len(self.thresholds)
        if m <= 2:
            # denominators 2**31 and 2**62 divide 2**64: exact
            return tuple(int(s * _TWO64) for s in self.shares())
        if m <= 64:
            return round_to_total(list(self.shares()), _TWO64)
        nums, _ = self.fixed_point_shares(bits=64 + 64)
        return round_to_total([Fraction(x, 1 << 128) for x in nums], _TWO64)

    def masses64_exact(self) -> bool:  # noqa: D102
        return len(self.thresholds) <= 2

    def decimals(self) -> tuple[str, ...]:
        """``--probability`` as ``iptables-save`` prints it (``%.11f`` of ``k/2**31``)."""
        return tuple(threshold_to_decimal(k) for k in self.thresholds)


@dataclass(frozen=True, slots=True, kw_only=True)
class Weighted(Stage):
    """Envoy weighted clusters: integer weights, ``R % total`` over cumulative intervals.

    A weight of 0 is allowed and never chosen; a total of 0 or above
    ``2**32 - 1`` is rejected with Envoy's own messages (``--mode validate``
    of Envoy 1.40: "Sum of weights in the weighted_cluster must be greater
    than 0." / "... exceeds 4294967295").
    """

    weights: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_children(self.children, "weighted clusters")
        if len(self.weights) != len(self.children):
            raise ModelError(
                f"{len(self.weights)} weights for {len(self.children)} weighted clusters"
            )
        for w in self.weights:
            _check_weight(w)
        total = sum(self.weights)
        if total == 0:
            raise ModelError("Sum of weights in the weighted_cluster must be greater than 0.")
        if total > ENVOY_MAX_TOTAL_WEIGHT:
            raise ModelError(
                f"The sum of weights of all weighted clusters ({total}) exceeds 4294967295"
            )

    @property
    def policy(self) -> str:  # noqa: D102
        return "weighted"

    @classmethod
    def from_weights(
        cls,
        weights: Iterable[int | float | str],
        children: Sequence[Node] | None = None,
        *,
        unit: Unit = "request",
        name: str | None = None,
        provenance: Provenance | None = None,
    ) -> Weighted:
        """Build weighted clusters from integer weights (``[90, 10]``).

        Fractional weights are refused with a hint to scale them, since Envoy's
        weight is a ``uint32`` (``99.5, 0.5`` -> use ``995, 5``).
        """
        raw = list(weights)
        ws = tuple(_as_weight(w, all_weights=raw) for w in raw)
        if children is None:
            children = _default_backends(len(ws))
        return cls(children=tuple(children), weights=ws, unit=unit, name=name, provenance=provenance)

    @property
    def total(self) -> int:
        """Sum of the weights (Envoy's ``total_cluster_weight``)."""
        return sum(self.weights)

    def shares(self) -> tuple[Fraction, ...]:
        """``w_i / total``: the configured split.

        Envoy's mechanism (``R % total`` for uniform 64-bit ``R``) deviates from
        it by less than ``total / 2**64`` per cluster (``2**64 mod total`` residues
        get one extra value); :meth:`masses64` is that mechanism exactly.
        """
        t = self.total
        return tuple(Fraction(w, t) for w in self.weights)

    def masses64(self) -> tuple[int, ...]:
        """Exact probability mass (in ``2**-64``) of Envoy's ``R % total`` pick."""
        t = self.total
        q, s = divmod(_TWO64, t)
        out = []
        begin = 0
        for w in self.weights:
            end = begin + w
            # residues v in [begin, end) occur q+1 times if v < s, else q times
            extra = max(0, min(end, s) - begin)
            out.append(w * q + extra)
            begin = end
        return tuple(out)

    def masses64_exact(self) -> bool:  # noqa: D102
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """A named routing question: a tree of stages with backend leaves.

    Parameters
    ----------
    root : Stage or Backend
        The first decision (or a single backend).
    name : str
        Label in reports (``"kube-proxy"``, ``"envoy"``).
    provenance : Provenance, optional
        Where the route was read from.
    """

    root: Node
    name: str = "route"
    provenance: Provenance | None = None
    notes: tuple[str, ...] = field(default=())
    #: answers of the walks below, kept: a route is immutable, and a cluster's reports ask each many times
    _memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        dup: set[str] = set()
        for b in self.backends():
            (dup if b.name in seen else seen).add(b.name)
        if dup:
            raise ModelError(f"backend names must be unique in a route, repeated: {sorted(dup)}")

    def renamed(self, name: str, notes: tuple[str, ...]) -> Route:
        """The same root and provenance under another name and notes, sharing the walks already done."""
        out = Route(root=self.root, name=name, provenance=self.provenance, notes=notes)
        object.__setattr__(out, "_memo", self._memo)  # every entry is the root's
        return out

    def backends(self) -> tuple[Backend, ...]:
        """Leaves in depth-first order (the order of every count array)."""
        got = self._memo.get("backends")
        if got is None:
            out: list[Backend] = []
            _collect(self.root, out)
            got = self._memo["backends"] = tuple(out)
        return got

    def stages(self) -> tuple[Stage, ...]:
        """All stages, depth first."""
        out: list[Stage] = []

        def walk(node: Node) -> None:
            if isinstance(node, Stage):
                out.append(node)
                for c in node.children:
                    walk(c)

        walk(self.root)
        return tuple(out)

    def exact_feasible(self) -> bool:
        """Whether :meth:`exact_shares` can be computed (no cascade over :data:`MAX_EXACT_RULES` rules)."""
        return all(s.exact_feasible() for s in self.stages())

    def expected_shares(self) -> tuple[tuple[Fraction, ...], bool]:
        """``(shares, exact)`` of every backend: :meth:`exact_shares`, or where a
        cascade is too long for them the :meth:`masses64` on the ``2**-64`` grid
        (what the kernels sample) with ``exact`` False; see :meth:`Stage.expected_shares`.
        """
        got = self._memo.get("expected")
        if got is None:
            if self.exact_feasible():
                got = self.exact_shares(), True
            else:
                masses, _ = self.masses64()
                got = tuple(dyadic(m, 64) for m in masses), False
            self._memo["expected"] = got
        return got

    def exact_shares(self) -> tuple[Fraction, ...]:
        """Exact probability of every backend, as Fractions summing to 1.

        Raises
        ------
        ModelError
            When a cascade has more than :data:`MAX_EXACT_RULES` rules (see
            :meth:`expected_shares`).
        """
        got = self._memo.get("exact")
        if got is None:
            got = self._memo["exact"] = self._exact_shares()
        return got

    def _exact_shares(self) -> tuple[Fraction, ...]:
        root = self.root
        if isinstance(root, Backend):
            return (Fraction(1),)
        if all(isinstance(c, Backend) for c in root.children):
            return tuple(root.shares())
        out: list[Fraction] = []

        def walk(node: Node, p: Fraction) -> None:
            if isinstance(node, Backend):
                out.append(p)
                return
            for c, s in zip(node.children, node.shares(), strict=True):
                walk(c, p * s)

        walk(self.root, Fraction(1))
        return tuple(out)

    def masses64(self) -> tuple[tuple[int, ...], bool]:
        """Backend masses in units of ``2**-64`` (sum ``2**64``) and whether exact.

        A single stage returns its own :meth:`Stage.masses64`; a deeper tree
        multiplies exact shares and rounds once (largest remainder), which is
        off by less than ``2**-64`` per backend. Where a cascade is too long for
        exact shares its own :meth:`Stage.masses64` stand in for them (the
        result is then off by less than ``2**-63`` per backend, and not exact).
        """
        got = self._memo.get("masses")
        if got is None:
            got = self._memo["masses"] = self._masses64()
        return got

    def _masses64(self) -> tuple[tuple[int, ...], bool]:
        root = self.root
        if isinstance(root, Backend):
            return (_TWO64,), True
        if all(isinstance(c, Backend) for c in root.children):
            return root.masses64(), root.masses64_exact()
        if not self.exact_feasible():
            out: list[Fraction] = []

            def walk(node: Node, p: Fraction) -> None:
                if isinstance(node, Backend):
                    out.append(p)
                    return
                for c, s in zip(node.children, node.expected_shares()[0], strict=True):
                    walk(c, p * s)

            walk(root, Fraction(1))
            return round_to_total(out, _TWO64), False
        shares = self.exact_shares()
        masses = round_to_total(list(shares), _TWO64)
        exact = all(Fraction(m, _TWO64) == s for m, s in zip(masses, shares, strict=True))
        return masses, exact

    def describe(self) -> str:
        """One-line human summary (``"cascade 0.50000000000 -> b1|b2"``)."""
        return _describe(self.root)


# --------------------------------------------------------------------------- helpers


def _dyadic_share(odd: int, twos: int, k: int, exponent: int) -> Fraction:
    """``odd * 2**twos * k / 2**exponent`` in lowest terms: the trailing zeros come from small integers."""
    if odd == 0 or k == 0:
        return coprime_fraction(0, 1, DyadicShare)
    t = (k & -k).bit_length() - 1
    return coprime_fraction(odd * (k >> t), 1 << (exponent - twos - t), DyadicShare)


def _default_backends(n: int, *, fall_through: bool = False) -> tuple[Backend, ...]:
    out = [Backend(name=f"b{i + 1}") for i in range(n)]
    if fall_through:
        out[-1] = Backend(name=FALL_THROUGH)
    return tuple(out)


def _check_weight(w: object) -> None:
    if not isinstance(w, int) or isinstance(w, bool):
        raise ModelError(f"weights must be integers, got {w!r}")
    if w < 0:
        raise ModelError(f"weights must be >= 0, got {w}")


def _as_weight(w: int | float | str, *, all_weights: Sequence[int | float | str] = ()) -> int:
    """Parse one weight; refuse fractions with a hint to scale all weights."""
    if isinstance(w, bool):
        raise InvalidArgument(f"weight must be an integer, got {w!r}")
    if isinstance(w, int):
        value = Fraction(w)
    else:
        try:
            value = decimal_fraction(str(w).strip())
        except (ValueError, ZeroDivisionError):
            raise InvalidArgument(f"weight must be a non-negative integer, got {_shown(w)}") from None
    if value < 0:
        raise InvalidArgument(f"weight must be >= 0, got {_shown(w)}")
    if value > ENVOY_MAX_TOTAL_WEIGHT:
        raise InvalidArgument(
            f"weight must be at most {ENVOY_MAX_TOTAL_WEIGHT} (Envoy weights are uint32), got {_shown(w)}"
        )
    if value.denominator != 1:
        try:
            scaled = ",".join(map(str, scale_fractional_weights([str(x) for x in all_weights])))
            hint = f"use {scaled}" if all_weights else "e.g. 99.5,0.5 -> 995,5"
        except (ValueError, ZeroDivisionError):
            hint = "e.g. 99.5,0.5 -> 995,5"
        raise InvalidArgument(
            f"weight {w} is fractional; Envoy weights are integers (uint32): "
            f"scale all weights by the same factor ({hint})"
        )
    return int(value)


def _shown(w: object) -> str:
    """A user's value for a message: ``repr``, shortened (an int of 5000 digits is not printed)."""
    if isinstance(w, int) and not -(10**30) < w < 10**30:
        return f"an integer of {len(str(abs(w))) if abs(w) < 10**4000 else 'over 4000'} digits"
    text = repr(w)
    return text if len(text) <= 60 else text[:57] + "..."


def _collect(node: Node, out: list[Backend]) -> None:
    if isinstance(node, Backend):
        out.append(node)
    else:
        for c in node.children:
            _collect(c, out)


def _describe(node: Node) -> str:
    if isinstance(node, Backend):
        return node.name
    inner = " | ".join(_describe(c) for c in node.children)
    if isinstance(node, Cascade):
        probs = ",".join(node.decimals()) or "-"
        tail = " (fall-through)" if node.fall_through else ""
        return f"cascade[{probs}]{tail}({inner})"
    if isinstance(node, Weighted):
        return f"weighted[{','.join(map(str, node.weights))}]({inner})"
    return f"{node.policy}({inner})"
