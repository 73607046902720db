"""Observed packet counters of a kube-proxy cascade against its exact random split.

:func:`check_counters` reads the packet counters of an ``iptables -t nat -vnL``
listing (read by :mod:`meshstat.parsers.netfilter.iptables_list`, which
:func:`meshstat.netfilter.load` recognises) or of ``iptables-save -c`` for a
service's cascade: connections per endpoint against the exact split, with
p-values from :mod:`meshstat.inference` and :mod:`meshstat.stats`.

Rounded counters
----------------
A listing without ``-x`` prints counts above 99,999 rounded (``10M``): each
stands for an interval of counts
(:func:`meshstat.parsers.netfilter.iptables_list.printed_count_range`, from
iptables' ``xtables_print_num``). At such counts the rounding is far larger
than the sampling noise, so the printed values are not tested as if exact:
the verdict rests on the chi-square p-value over every count vector the
listing allows (:func:`meshstat.stats.chisquare_range`). It is
*inconsistent* only when even the most favourable counts are, *consistent*
only when even the least favourable are, and *undecidable at this rounding*
otherwise (then the only answer is a listing with ``-x``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from meshstat import model, stats
from meshstat.errors import InvalidArgument
from meshstat.kubeproxy.iptables import first_match
from meshstat.kubeproxy.lookup import find_service
from meshstat.kubeproxy.service import family_of
from meshstat.parsers.netfilter import SAVE_COUNTERS_KEY, Counters, ListingInfo, Rule, Ruleset, listing_info
from meshstat.stats.rounded import MAX_VERTEX_COORDS

__all__ = ["CounterCheck", "CounterRow", "check_counters"]


@dataclass(frozen=True, slots=True)
class CounterRow:
    """One endpoint of a :class:`CounterCheck`.

    Attributes
    ----------
    endpoint : str
        ``ip:port`` (from the ``KUBE-SEP`` chain's DNAT, or its name when the
        listing does not show that chain); ``"(fall-through)"`` for the
        connections no rule of a fall-through cascade took.
    chain : str or None
        The ``KUBE-SEP`` chain the rule jumps to.
    line : int or None
        The rule's line in the listing.
    observed : int
        The rule's packet counter: in the nat table, connections (conntrack
        runs the nat chains for the first packet of a connection only).
    share : Fraction
        The exact share of the cascade (``k / 2**31`` products).
    expected : float
        ``n * share``.
    pvalue : float
        Two-sided exact binomial p-value of ``observed`` out of ``n`` at ``share``.
    reached : int
        Connections that reached this rule: those the earlier cascade rules did not take.
    rule_probability : Fraction or None
        ``k / 2**31`` of the rule's statistic match (None: the unconditional last rule).
    step_pvalue : float or None
        Two-sided exact binomial p-value of ``observed`` out of ``reached`` at
        ``rule_probability``: the rule's own draw, tested on the connections it saw.
    exact : bool
        False when the listing rounded the counter (``12K``: no ``-x``).
    observed_low, observed_high : int
        The counts the printed counter stands for (both ``observed`` when exact).
    """

    endpoint: str
    chain: str | None
    line: int | None
    observed: int
    share: Fraction
    expected: float
    pvalue: float
    reached: int
    rule_probability: Fraction | None
    step_pvalue: float | None
    exact: bool = True
    observed_low: int | None = None
    observed_high: int | None = None


@dataclass(frozen=True)
class CounterCheck:
    """Observed per-endpoint connections (listing counters) against a service's exact cascade.

    Attributes
    ----------
    service, chain, source : str
        The service (``ns/name:port``), its ``KUBE-SVC``/``KUBE-SVL`` chain and the listing's file.
    unit : str
        ``"connections"`` (nat table) or ``"packets"``.
    rows : tuple of CounterRow
    n : int
        Connections counted by the cascade (affinity hits excluded).
    pvalue, method : float, str
        The headline test: exact binomial (two endpoints), exact multinomial
        (where enumerable), else chi-square; ``"impossible"`` when an endpoint
        with share 0 was chosen. The same choice as :func:`meshstat.inference.check_split`.
    chisquare_statistic, chisquare_pvalue, gtest_statistic, gtest_pvalue, dof
        Pearson's X^2 and the G-test (:func:`meshstat.stats.goodness_of_fit`).
    affinity_hits : int
        Connections sent by ``-m recent --rcheck`` session-affinity rules (not random draws).
    entered : int or None
        Connections that entered the chain (the counters of the rules jumping
        to it, when all are in the listing).
    approximate : bool
        Some counter was rounded (``K``/``M``/``G``: a listing without ``-x``).
    alpha : float
    notes, warnings : tuple of str
    pvalue_range : (float, float) or None
        With rounded counters: the chi-square p-value of the least and of the
        most favourable counts the listing allows (``pvalue`` is then the
        latter, ``method`` ``"chi-square over the rounding"``); None when every
        counter is exact.
    shares_exact : bool
        False where the cascade is longer than :data:`meshstat.model.MAX_EXACT_RULES`
        rules and the shares are on the ``2**-64`` grid.
    """

    service: str
    chain: str
    source: str
    unit: str
    rows: tuple[CounterRow, ...]
    n: int
    pvalue: float
    method: str
    chisquare_statistic: float
    chisquare_pvalue: float
    gtest_statistic: float
    gtest_pvalue: float
    dof: int
    affinity_hits: int = 0
    entered: int | None = None
    approximate: bool = False
    alpha: float = 0.05
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    pvalue_range: tuple[float, float] | None = None
    shares_exact: bool = True

    @property
    def verdict(self) -> str:
        """``"consistent"``, ``"inconsistent"``, ``"impossible"`` or, with rounded
        counters only, ``"undecidable"`` (see the module docstring)."""
        if self.method == "impossible":
            return "impossible"
        if self.pvalue_range is not None:
            low, high = self.pvalue_range
            if low >= self.alpha:
                return "consistent"
            return "inconsistent" if high < self.alpha else "undecidable"
        return "consistent" if self.pvalue >= self.alpha else "inconsistent"

    @property
    def consistent(self) -> bool:
        """Whether the counts are consistent with the random split at level ``alpha``
        (with rounded counters: every count the listing allows is)."""
        return self.verdict == "consistent"

    def summary(self) -> str:
        """One line: the counts, the p-value and the verdict."""
        counts = ", ".join(f"{r.endpoint} {_shown(r)}/{float(r.share):.4g}" for r in self.rows)
        head = f"{self.service}: {self.n:,} {self.unit} counted in {self.chain} (observed/share: {counts}); "
        split = f"the random split at alpha {self.alpha:g}"
        if self.pvalue_range is None or self.method == "impossible":
            verdict = "consistent with" if self.consistent else "NOT consistent with"
            return f"{head}p = {_fmt(self.pvalue)} ({self.method}): {verdict} {split}"
        low, high = self.pvalue_range
        p = f"p from {_fmt(low)} to {_fmt(high)} (chi-square) over the counts the rounded listing allows"
        v = self.verdict
        if v == "consistent":
            return f"{head}{p}: consistent with {split} for every count the listing allows"
        if v == "inconsistent":
            return f"{head}{p}: NOT consistent with {split}, even for the most favourable counts"
        return (
            f"{head}{p}: undecidable at this rounding (some counts the listing allows are consistent with "
            f"{split}, others not): list with iptables -t nat -vnxL"
        )


def _fmt(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.2e}"


def _shown(r: CounterRow) -> str:
    if r.exact or r.observed_low is None or r.observed_high is None:
        return f"{r.observed:,}"
    return f"{r.observed_low:,}..{r.observed_high:,}"


def check_counters(
    ruleset: Ruleset,
    service: str,
    *,
    chain: str = "cluster",
    alpha: float = 0.05,
    exact_limit: int | None = None,
) -> CounterCheck:
    """Are the packet counters of a service's cascade consistent with its exact random split?

    Parameters
    ----------
    ruleset : Ruleset
        From an ``iptables -t nat -vnL`` (better ``-vnxL``) listing
        (:func:`meshstat.parsers.netfilter.iptables_list.parse_iptables_list`, or
        :func:`load` of such a file).
    service : str
        ``"ns/name[:port]"`` or ``"CLUSTER_IP:PORT"`` (as :func:`find_service`).
    chain : {"cluster", "local"}
        The ``KUBE-SVC`` or ``KUBE-SVL`` chain.
    alpha : float
        Level of the verdict.
    exact_limit : int, optional
        Largest number of outcome slices the exact multinomial test enumerates
        (default :data:`meshstat.stats.EXACT_MULTINOMIAL_LIMIT`).

    Returns
    -------
    CounterCheck

    Notes
    -----
    Rule ``i`` of a kube-proxy cascade sees the connections that the rules
    before it did not take, and its packet counter counts the ones it took: in
    the nat table these are connections, not packets (the nat chains run for
    the first packet of a connection only). So the counters of the jump rules
    are the connections each endpoint got, their sum ``n`` the connections that
    reached the random draws (``-m recent`` affinity hits are counted
    separately: they are not draws), and the split is multinomial with the
    exact shares of the stored thresholds. The headline test is the one
    :func:`meshstat.inference.check_split` uses; per endpoint, the marginal
    exact binomial test and the test of each rule's own draw on the
    connections that reached it are given too (the multinomial factors into
    these conditional binomials).

    Raises
    ------
    InvalidArgument
        When the ruleset has no counters, the service is not in it, or nothing was counted.
    """

    linfo = listing_info(ruleset)
    saved = ruleset.cache.get(SAVE_COUNTERS_KEY)
    if (linfo is None or not linfo.counters) and saved:
        # iptables-save -c: exact [packets:bytes] before every rule, no "(N references)"
        linfo = ListingInfo(counters={r: Counters(p, b) for r, (p, b) in saved.items()})
    if linfo is None or not linfo.counters:
        raise InvalidArgument(
            f"{ruleset.source}: no packet counters: expected a listing printed with -v "
            "(iptables -t nat -vnxL) or iptables-save -c"
        )
    if chain not in ("cluster", "local"):
        raise InvalidArgument(f"chain must be 'cluster' or 'local', got {chain!r}")
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise InvalidArgument(f"alpha must be in (0, 1), got {alpha!r}")
    info = find_service(ruleset, service)
    eps = info.endpoints if chain == "cluster" else info.local_endpoints
    stage = info.stage if chain == "cluster" else info.local_stage
    chain_name = info.cluster_chain if chain == "cluster" else info.local_chain
    if not eps or stage is None or chain_name is None:
        raise InvalidArgument(
            f"{ruleset.source}: service {info.name} has no {chain} endpoints in the listing"
        )
    if not isinstance(stage, model.Cascade):
        why = next((n for n in info.notes if "not kube-proxy's cascade" in n), "")
        raise InvalidArgument(
            f"{ruleset.source}: the counters check reads kube-proxy's statistic cascade; {why or chain_name}"
        )
    fam = family_of(ruleset, None)
    table = ruleset.tables[(fam, "nat")]
    ch = table.chains[chain_name]
    by_line = {r.line: r for r in ch.rules}

    def count(rule: Rule) -> tuple[int, bool]:
        c = linfo.counters.get(rule)
        if c is None:
            raise InvalidArgument(f"{rule.source}:{rule.line}: this rule has no counters in the listing")
        return c.packets, c.exact

    def count_range(rule: Rule) -> tuple[int, int]:
        c = linfo.counters[rule]
        return c.packets_range() if isinstance(c, Counters) else (c.packets, c.packets)

    exact_all = True
    affinity = 0
    for r in ch.rules:
        rec = first_match(r, "recent")
        if (
            r.target.kind in ("jump", "goto")
            and rec is not None
            and rec.value["command"] in ("rcheck", "update")
        ):
            c, ex = count(r)
            affinity += c
            exact_all &= ex
    entered = None
    refs = table.referrers.get(chain_name, [])
    # every rule jumping here must be in the listing, as many as its "(N references)" says
    declared = linfo.references.get((fam, "nat", chain_name))
    if refs and all(r in linfo.counters for r in refs) and (declared is None or declared == len(refs)):
        entered = sum(linfo.counters[r].packets for r in refs)
        exact_all &= all(linfo.counters[r].exact for r in refs)
    shares_t, shares_exact = stage.expected_shares()
    shares = list(shares_t)
    obs: list[int] = []
    ranges: list[tuple[int, int]] = []
    rows_in: list[tuple[str, str | None, int | None, int, int | None, bool]] = []
    for e in eps:
        r = by_line.get(e.line) if e.line is not None else None
        if r is None:
            raise InvalidArgument(
                f"{ruleset.source}: the rule of endpoint {e.address} is not in chain {chain_name}"
            )
        c, ex = count(r)
        exact_all &= ex
        obs.append(c)
        ranges.append(count_range(r))
        rows_in.append((e.address, e.chain, e.line, c, e.threshold, ex))
    notes: list[str] = []
    if stage.fall_through:
        if entered is None:
            raise InvalidArgument(
                f"{ruleset.source}: chain {chain_name} can fall through (no unconditional last rule) and the "
                "rules jumping to it are not all in the listing: the fall-through connections cannot be "
                "counted"
            )
        rest = entered - affinity - sum(obs)
        if rest < 0:
            why = (
                "counters zeroed or rules replaced between them?"
                if exact_all
                else "the listing rounds counters (K, M, G): print it with -x"
            )
            raise InvalidArgument(
                f"{ruleset.source}: the counters of chain {chain_name} exceed those of the rules jumping "
                f"to it ({why})"
            )
        if not exact_all:
            raise InvalidArgument(
                f"{ruleset.source}: chain {chain_name} can fall through and the listing rounds counters "
                "(K, M, G): the fall-through connections cannot be counted; print it with -x"
            )
        obs.append(rest)
        ranges.append((rest, rest))
        rows_in.append((model.FALL_THROUGH, None, None, rest, None, exact_all))
    n = sum(obs)
    if n == 0:
        raise InvalidArgument(
            f"{ruleset.source}: the counters of {chain_name} are all 0: no connection to {info.name} "
            "was counted yet"
        )
    try:
        stats.check_count_total(sum(hi for _, hi in ranges), f"the counters of {chain_name}")
    except InvalidArgument as err:
        bad = InvalidArgument(f"{ruleset.source}: {err}")
        bad.source = ruleset.source  # about the file: bad input (exit 3)
        raise bad from None
    rows: list[CounterRow] = []
    reached = n
    for (addr, sep, line, c, k, ex), share, (c_lo, c_hi) in zip(rows_in, shares, ranges, strict=True):
        q = Fraction(k, 1 << 31) if k is not None else None
        step = stats.binomial_pvalue(c, reached, float(q)) if q is not None and reached > 0 else None
        rows.append(
            CounterRow(
                addr,
                sep,
                line,
                c,
                share,
                n * float(share),
                stats.binomial_pvalue(c, n, float(share)),
                reached,
                q,
                step,
                ex,
                c_lo,
                c_hi,
            )
        )
        reached -= c
    limit = stats.EXACT_MULTINOMIAL_LIMIT if exact_limit is None else int(exact_limit)
    head = stats.headline_test(obs, shares, limit, notes, unit="endpoints")
    pvalue_range = None
    if not exact_all:
        span = stats.chisquare_range([lo for lo, _ in ranges], [hi for _, hi in ranges], shares)
        pvalue_range = (span.pvalue_low, span.pvalue_high)
        if head.method != "impossible":
            head = head._replace(pvalue=span.pvalue_high, method="chi-square over the rounding")
        if not span.high_exact:
            notes.append(
                f"over {MAX_VERTEX_COORDS} rounded counters: the smallest p-value is a lower "
                "bound (the least favourable counts are bounded, not enumerated)"
            )
    unit = "connections" if table.name == "nat" else "packets"
    notes.append(
        "nat rules run for the first packet of each connection only (conntrack), so each jump rule's packet "
        "counter is the number of connections sent to that endpoint"
    )
    notes.append(
        "counters accumulate from the time the chain was last written (kube-proxy rewrites a service's "
        "chains "
        "when its endpoints change), or zeroed (iptables -Z)"
    )
    if affinity:
        notes.append(
            f"{affinity:,} connections went by session affinity (-m recent) and are not part of the split"
        )
    if entered is not None and not stage.fall_through and entered != affinity + sum(obs):
        notes.append(
            f"the rules jumping to {chain_name} counted {entered:,} connections, the chain's rules "
            f"{affinity + sum(obs):,}: counters zeroed or rules replaced in between?"
        )
    if not exact_all:
        notes.append(
            "some counters were rounded by the listing (K/M/G: iptables -L without -x): each stands for an "
            "interval of counts (observed_low..observed_high), and the verdict holds over all of them; the "
            "per-endpoint p-values are at the printed values. List with iptables -t nat -vnxL for exact "
            "counts"
        )
    return CounterCheck(
        service=info.name,
        chain=chain_name,
        source=ruleset.source,
        unit=unit,
        rows=tuple(rows),
        n=n,
        **head._asdict(),
        affinity_hits=affinity,
        entered=entered,
        approximate=not exact_all,
        alpha=alpha,
        notes=tuple(notes),
        warnings=tuple(str(w) for w in ruleset.warnings),
        pvalue_range=pvalue_range,
        shares_exact=shares_exact,
    )
