"""Endpoint-balancer kernels: cycles, Envoy's EDF, nginx's smooth WRR, random picks, workloads.

Deterministic balancers (round robin, smooth WRR, IPVS rr/wrr, nft ``numgen
inc``) are a fixed cycle per balancer instance; only the phase and the
assignment of connections to instances are random. EDF (Envoy's weighted round
robin) runs in float64 exactly as ``edf_scheduler.h`` does, so that its
floating-point ties break as in Envoy: one period is stepped and then copied for
as many periods as it provably repeats bit for bit (:func:`_edf_repeats`).

Random streams (the reproducibility contract; ``draw(b, u) = splitmix64(keys[b], u)``,
item ``i`` in block ``b = i >> block_log2`` at offset ``o``):

* ``random_dest``: item ``i`` goes to ``r % m`` with draw ``o`` (Envoy RANDOM; connections
  spread over workers or clients);
* ``geometric_sizes``: connection ``i`` has ``1 + floor(log(u) / log1p(-1/mean))``
  requests, ``u = ((r >> 11) + 1) * 2**-53`` from draw ``o``;
* ``alias_pick``: item ``i`` picks an alias-table column from draw ``o``
  (:func:`meshstat._kernels.alias.alias_column`, as :mod:`meshstat._kernels.route`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from meshstat._kernels._jit import jit, pjit
from meshstat._kernels.alias import alias_column
from meshstat._kernels.splitmix import splitmix64

U64 = np.uint64


# ----------------------------------------------------------------- cycles


#: Items per parallel chunk of :func:`cycle_fill`.
CYCLE_CHUNK = 1 << 16


@pjit
def cycle_fill(cycle, phase, n, out):  # pragma: no cover - compiled
    """``out[i] = cycle[(phase + i) % len(cycle)]`` (one balancer instance).

    One modulo per chunk of ``CYCLE_CHUNK`` items; inside a chunk the position
    steps and wraps (a division per item would cost more than the store).
    """
    p = cycle.shape[0]
    ph = phase % p
    for c in prange((n + CYCLE_CHUNK - 1) // CYCLE_CHUNK):
        start = c * CYCLE_CHUNK
        stop = min(start + CYCLE_CHUNK, n)
        j = (ph + start % p) % p
        for i in range(start, stop):
            out[i] = cycle[j]
            j += 1
            if j == p:
                j = 0


@jit
def cycle_dest_workers(worker_of, cycles, offsets, lengths, phases, out):  # pragma: no cover - compiled
    """Items in order; item ``i`` is served by instance ``w = worker_of[i]``, which
    answers its ``k``-th item with ``cycles[offsets[w] + (phases[w] + k) % lengths[w]]``."""
    nw = lengths.shape[0]
    pos = np.empty(nw, dtype=np.int64)
    for w in range(nw):
        pos[w] = phases[w] % lengths[w] if lengths[w] > 0 else 0
    for i in range(worker_of.shape[0]):
        w = worker_of[i]
        j = pos[w]
        out[i] = cycles[offsets[w] + j]
        j += 1
        pos[w] = 0 if j == lengths[w] else j


@jit
def expand_by_sizes(values, sizes, out):  # pragma: no cover - compiled
    """``out`` = ``values[j]`` repeated ``sizes[j]`` times, in order."""
    p = 0
    for j in range(values.shape[0]):
        v = values[j]
        for _ in range(sizes[j]):
            out[p] = v
            p += 1


# ----------------------------------------------------------------- Envoy EDF

#: Longest period (sum of integer weights) the EDF kernels replicate; longer schedules run pick by pick.
EDF_MAX_PERIOD = 1 << 16


@jit(inline="always")
def _edf_pick(deadline, order):  # pragma: no cover - compiled
    """Index of the entry with the smallest ``(deadline, order)``."""
    k = deadline.shape[0]
    j = 0
    d = deadline[0]
    o = order[0]
    for q in range(1, k):
        dq = deadline[q]
        if dq < d or (dq == d and order[q] < o):
            j = q
            d = dq
            o = order[q]
    return j


@jit
def edf_sequence_stepwise(deadline, order, current_time, order_offset, inv_weight, n, out):  # pragma: no cover
    """:func:`edf_sequence` one ``pickAndAdd`` at a time (the plain scheduler; a cross-check)."""
    for i in range(n):
        j = _edf_pick(deadline, order)
        current_time = deadline[j]
        deadline[j] = current_time + inv_weight[j]
        order[j] = order_offset
        order_offset += 1
        out[i] = j
    return current_time, order_offset


@jit
def _edf_repeats(tv, th, deadline, inv_weight, period):  # pragma: no cover - compiled
    """How many more times the ``W`` picks just made (values ``tv``, hosts ``th``) provably repeat.

    Inside one binade ``[2**e, 2**(e+1))`` every float is a multiple of ``u = 2**(e-52)``
    and ``fl(x + 1/w) = x + D * u`` with the integer ``D = round((1/w) / u)`` (unless
    ``(1/w) / u`` ends in exactly .5: then ties-to-even depends on ``x``; refused).
    So each host's deadlines are an exact integer progression, one period moves
    host ``q``'s by ``P_q = w_q * D_q`` units, and the picks of the next periods are
    the template again as long as every consecutive pair of the template (and the
    last pick against the next period's first) keeps its order: a gap ``g`` between
    hosts ``i`` then ``j`` becomes ``g + t * (P_j - P_i)`` after ``t`` periods; an
    exact tie stays a tie only when ``P_i == P_j`` and is then broken, as in
    ``EdfScheduler``, by the order offsets, i.e. by where the two entries were added
    (their predecessors' positions). Returns 0 when nothing can be certified.
    """
    k = deadline.shape[0]
    w_tot = tv.shape[0]
    v0 = tv[0]
    if not v0 > 0.0 or not np.isfinite(v0):
        return 0
    mant, ex = math.frexp(v0)
    u = math.ldexp(1.0, ex - 53)
    if not u > 0.0 or u < 2.2250738585072014e-308:
        return 0
    top = np.float64(1 << 53)  # 2**(e+1) in units of u
    dd = np.empty(k, dtype=np.int64)
    pp = np.empty(k, dtype=np.int64)
    for q in range(k):
        x = inv_weight[q] / u
        if not x < 4503599627370496.0:  # 2**52: the increment would be as large as the time
            return 0
        fl = math.floor(x)
        f = x - fl
        if f == 0.5:
            return 0
        d = np.int64(fl) + (1 if f > 0.5 else 0)
        if d < 1:
            return 0
        dd[q] = d
        pp[q] = d * period[q]
    # the template has each host exactly period[q] times, all inside the binade
    cnt = np.zeros(k, dtype=np.int64)
    first = np.full(k, -1, dtype=np.int64)
    lastp = np.full(k, -1, dtype=np.int64)
    prev = np.empty(w_tot, dtype=np.int64)  # position of the same host's previous pick in the template, or -1
    vv = np.empty(w_tot, dtype=np.int64)
    for s in range(w_tot):
        h = th[s]
        cnt[h] += 1
        prev[s] = lastp[h]
        if first[h] < 0:
            first[h] = s
        lastp[h] = s
        y = tv[s] / u
        if not y < top:
            return 0
        vv[s] = np.int64(y)
    for q in range(k):
        if cnt[q] != period[q]:
            return 0
    big = np.int64(1) << np.int64(62)
    best = big
    # every host's next deadline (and all before it) must stay inside the binade
    for q in range(k):
        y = deadline[q] / u
        if not y < top:
            return 0
        room = (np.int64(1 << 53) - 1 - np.int64(y)) // pp[q]
        best = min(best, room)
    for s in range(w_tot):
        a = s
        if s + 1 < w_tot:
            b = s + 1
            hb = th[b]
            gb = vv[b]
            pb = prev[b] + w_tot if prev[b] >= 0 else lastp[hb]
        else:
            b = 0
            hb = th[0]
            gb = vv[0] + pp[hb]
            pb = w_tot + (prev[0] + w_tot if prev[0] >= 0 else lastp[hb])
        ha = th[a]
        if ha == hb:
            continue
        pa = prev[a] + w_tot if prev[a] >= 0 else lastp[ha]
        g = gb - vv[a]
        dp = pp[hb] - pp[ha]
        if g < 0:
            return 0
        if g == 0:
            if dp < 0:
                return 0
            if dp == 0 and not pa < pb:
                return 0
        elif dp < 0:
            best = min(best, (g - 1) // (-dp))
    return best if best < big else big


@jit
def _edf_run(deadline, order, current_time, order_offset, inv_weight, n, out, counts, write):  # pragma: no cover
    """``n`` picks of ``EdfScheduler::pickAndAdd``: one period stepped, then replicated while provably periodic."""
    k = deadline.shape[0]
    period = np.zeros(k, dtype=np.int64)
    w_tot = 0
    periodic = k > 1
    for q in range(k):
        x = 1.0 / inv_weight[q]
        w = np.int64(math.floor(x + 0.5)) if x < 1e15 else np.int64(0)
        if w < 1 or 1.0 / np.float64(w) != inv_weight[q]:
            periodic = False
        period[q] = w
        w_tot += w
    if w_tot > EDF_MAX_PERIOD:
        periodic = False
    tlen = w_tot if periodic else 1
    tv = np.empty(tlen, dtype=np.float64)
    th = np.empty(tlen, dtype=np.int64)
    i = 0
    skip = 0
    backoff = tlen
    while i < n:
        if not periodic or skip > 0 or n - i < 2 * tlen:
            m = n - i if (not periodic or n - i < 2 * tlen) else min(skip, n - i)
            for _ in range(m):
                j = _edf_pick(deadline, order)
                current_time = deadline[j]
                deadline[j] = current_time + inv_weight[j]
                order[j] = order_offset
                order_offset += 1
                if write:
                    out[i] = j
                counts[j] += 1
                i += 1
            skip = 0
            continue
        # one period, stepped: the template
        for s in range(tlen):
            j = _edf_pick(deadline, order)
            current_time = deadline[j]
            tv[s] = current_time
            th[s] = j
            deadline[j] = current_time + inv_weight[j]
            order[j] = order_offset
            order_offset += 1
            if write:
                out[i] = j
            counts[j] += 1
            i += 1
        reps = min(_edf_repeats(tv, th, deadline, inv_weight, period), (n - i) // tlen)
        if reps <= 0:
            skip = backoff
            backoff = min(2 * backoff, 64 * tlen)
            continue
        backoff = tlen
        if write:
            for r in range(reps):
                base = i + r * tlen
                for s in range(tlen):
                    out[base + s] = th[s]
        mant, ex = math.frexp(tv[0])
        u = math.ldexp(1.0, ex - 53)
        for q in range(k):
            x = inv_weight[q] / u
            fl = math.floor(x)
            d = np.int64(fl) + (1 if x - fl > 0.5 else 0)
            shift = np.float64(reps * d * period[q]) * u
            deadline[q] = deadline[q] + shift
            order[q] += reps * tlen
            counts[q] += reps * period[q]
            if q == th[tlen - 1]:
                current_time = tv[tlen - 1] + shift
        order_offset += reps * tlen
        i += reps * tlen
    return current_time, order_offset


@jit
def edf_fill(deadline, order, current_time, order_offset, inv_weight, n, out, counts):  # pragma: no cover - compiled
    """:func:`edf_sequence` that also adds the picks per host to ``counts``."""
    return _edf_run(deadline, order, current_time, order_offset, inv_weight, n, out, counts, True)


@jit
def edf_sequence(deadline, order, current_time, order_offset, inv_weight, n, out):  # pragma: no cover - compiled
    """``n`` picks of Envoy's ``EdfScheduler::pickAndAdd`` with fixed weights.

    State (modified in place): ``deadline`` float64[k], ``order`` int64[k] (the
    entries' ``order_offset_``). Pick the entry with the smallest
    ``(deadline, order)``; ``current_time = deadline``; re-add it with deadline
    ``current_time + 1 / weight`` and the next order offset. Returns
    ``(current_time, order_offset)`` after the last pick.

    Bit-exact with stepping (:func:`edf_sequence_stepwise`), but when the weights
    are integers (``inv_weight[q] == 1.0 / w_q``) one period of ``sum(w)`` picks is
    stepped and then copied for as many periods as :func:`_edf_repeats` proves it
    repeats in float64 (ties included), which is most of each binade of the clock.
    """
    counts = np.zeros(deadline.shape[0], dtype=np.int64)
    return _edf_run(deadline, order, current_time, order_offset, inv_weight, n, out, counts, True)


@jit
def edf_counts(deadline, order, current_time, order_offset, inv_weight, n, counts):  # pragma: no cover - compiled
    """:func:`edf_sequence`'s picks per host, added to ``counts``, without writing the sequence."""
    out = np.empty(1, dtype=np.int32)
    return _edf_run(deadline, order, current_time, order_offset, inv_weight, n, out, counts, False)


# ----------------------------------------------------------------- nginx smooth WRR


@jit
def swrr_sequence(weights, current, n, out):  # pragma: no cover - compiled
    """``n`` picks of nginx's smooth weighted round robin (``ngx_http_upstream_get_peer``).

    ``weights`` int64[k] (0 = down: never eligible), ``current`` int64[k] state
    (modified in place). Every eligible peer's current weight grows by its
    weight; the largest (first on ties) is picked and loses the total.
    """
    k = weights.shape[0]
    total = np.int64(0)
    for q in range(k):
        total += weights[q]
    for i in range(n):
        best = -1
        for q in range(k):
            if weights[q] > 0:
                current[q] += weights[q]
                if best < 0 or current[q] > current[best]:
                    best = q
        current[best] -= total
        out[i] = best


# ----------------------------------------------------------------- IPVS wrr


@jit
def ipvs_wrr_sequence(weights, n, out):  # pragma: no cover - compiled
    """``n`` picks of Linux ``net/netfilter/ipvs/ip_vs_wrr.c: ip_vs_wrr_schedule`` (fresh service).

    ``ip_vs_wrr_init_svc``: the cursor starts at the list head, ``di`` = gcd of
    the weights, ``mw = max weight - (di - 1)``, ``cw = mw``. The cursor walks the
    servers in order and picks the next one whose weight is ``>= cw``; every time
    it wraps past the head, ``cw`` drops by ``di`` and restarts at ``mw`` when it
    reaches 0. Weight-0 servers are never picked. Writes -1s if all are 0.
    """
    k = weights.shape[0]
    mw = np.int64(0)
    g = np.int64(0)
    for q in range(k):
        w = weights[q]
        if w > mw:
            mw = w
        if w > 0:
            a = g
            b = w
            while b:
                a, b = b, a % b
            g = a
    if mw == 0:
        for i in range(n):
            out[i] = -1
        return
    mw = mw - (g - 1)
    cl = -1  # -1 is the list head
    cw = mw
    for i in range(n):
        while True:
            cl += 1
            if cl == k:
                cl = -1
                cw -= g
                if cw <= 0:
                    cw = mw
                continue
            if weights[cl] >= cw:
                break
        out[i] = cl


# ----------------------------------------------------------------- random choices


@pjit
def random_dest(n_hosts, keys, block_log2, n, out):  # pragma: no cover - compiled
    """Item ``i`` to ``r % n_hosts`` with draw ``o`` of block ``b``.

    Envoy RANDOM (``hosts[r % n]``), and the uniform spread of connections over
    worker threads or clients; ``out`` may be any integer dtype.
    """
    m = U64(n_hosts)
    nb = keys.shape[0]
    for b in prange(nb):
        start = np.int64(b) << block_log2
        stop = min(start + (np.int64(1) << block_log2), n)
        key = keys[np.int64(b)]
        for i in range(start, stop):
            out[i] = splitmix64(key, U64(i - start)) % m


@pjit
def geometric_sizes(mean, cap, keys, block_log2, n, out):  # pragma: no cover - compiled
    """Geometric numbers of requests per connection (support 1, 2, ...; mean ``mean`` >= 1), at most ``cap``.

    A draw above ``cap`` (the requests of the whole run: no connection carries
    more) is ``cap``; the comparison is made on the float, before any
    conversion, so that a mean of ``5e17`` or ``1e300`` never overflows ``int64``.
    """
    nb = keys.shape[0]
    top = np.float64(cap - 1)
    lq = np.log1p(-1.0 / mean) if mean > 1.0 else -np.inf
    for b in prange(nb):
        start = np.int64(b) << block_log2
        stop = min(start + (np.int64(1) << block_log2), n)
        key = keys[np.int64(b)]
        for i in range(start, stop):
            r = splitmix64(key, U64(i - start))
            u = (np.float64(r >> U64(11)) + 1.0) * (1.0 / 9007199254740992.0)
            if mean <= 1.0:
                out[i] = 1
            else:
                x = np.floor(np.log(u) / lq)
                out[i] = cap if x >= top else 1 + np.int64(x)


@pjit
def alias_pick(table, bits, keys, block_log2, n, out):  # pragma: no cover - compiled
    """Alias-table column per item (same mapping as ``route.alias_dest``)."""
    nb = keys.shape[0]
    for b in prange(nb):
        start = np.int64(b) << block_log2
        stop = min(start + (np.int64(1) << block_log2), n)
        key = keys[np.int64(b)]
        for i in range(start, stop):
            out[i] = alias_column(table, bits, splitmix64(key, U64(i - start)))


@pjit
def gather(values, index, out):  # pragma: no cover - compiled
    """``out[i] = values[index[i]]``."""
    for i in prange(index.shape[0]):
        out[i] = values[index[i]]


@jit
def counts_of(dest, k, out):  # pragma: no cover - compiled
    """``out[j]`` += number of ``dest == j`` (``out`` int64[k], zeroed)."""
    for i in range(dest.shape[0]):
        out[dest[i]] += 1


# ----------------------------------------------------------------- kube-proxy -m recent affinity


@jit
def recent_affinity(
    conn_client, conn_time, choice, n_endpoints, timeout, cap, reap, out, evictions
):  # pragma: no cover - compiled
    """kube-proxy ClientIP affinity with xt_recent lists, one list per endpoint.

    Connection ``c`` from client ``conn_client[c]`` at ``conn_time[c]`` (seconds,
    non-decreasing): the ``--rcheck --seconds timeout`` rules of every endpoint
    are tried in endpoint order; the first list that holds the client with a
    last-seen time within ``timeout`` wins. Otherwise the random cascade's
    choice ``choice[c]`` is used. The chosen endpoint's chain then does
    ``--set``: refresh (or insert) the client at the tail of that list's LRU;
    inserting into a full list (``cap`` entries, ``ip_list_tot``) first removes
    its oldest entry (``net/netfilter/xt_recent.c: recent_entry_init``). With
    ``reap``, an rcheck that finds the client's entry (matching or not) also
    drops the list's least recently updated entry when it is stale and is not
    the client's (``recent_mt`` -> ``recent_entry_reap``). ``evictions[e]``
    counts removals for lack of room.

    Lists are arrays ``[n_endpoints, cap]`` of (client, last seen, stamp); the
    LRU order is the ``stamp`` (larger = more recent).
    """
    cl = np.full((n_endpoints, cap), -1, dtype=np.int64)
    seen = np.zeros((n_endpoints, cap), dtype=np.float64)
    stamp = np.zeros((n_endpoints, cap), dtype=np.int64)
    tick = np.int64(0)
    for c in range(conn_client.shape[0]):
        who = conn_client[c]
        now = conn_time[c]
        chosen = -1
        for e in range(n_endpoints):
            hit = -1
            for s in range(cap):
                if cl[e, s] == who:
                    hit = s
                    break
            if hit >= 0 and now - seen[e, hit] <= timeout:
                chosen = e
            if reap and hit >= 0:
                old = -1
                for s in range(cap):
                    if cl[e, s] >= 0 and (old < 0 or stamp[e, s] < stamp[e, old]):
                        old = s
                if old >= 0 and old != hit and now - seen[e, old] > timeout:
                    cl[e, old] = -1
            if chosen >= 0:
                break
        if chosen < 0:
            chosen = choice[c]
        # --set in the endpoint chain
        e = chosen
        slot = -1
        free = -1
        old = -1
        for s in range(cap):
            if cl[e, s] == who:
                slot = s
            elif cl[e, s] < 0:
                if free < 0:
                    free = s
            elif old < 0 or stamp[e, s] < stamp[e, old]:
                old = s
        if slot < 0:
            if free >= 0:
                slot = free
            else:
                slot = old
                evictions[e] += 1
            cl[e, slot] = who
        seen[e, slot] = now
        tick += 1
        stamp[e, slot] = tick
        out[c] = chosen


@jit
def set_affinity(conn_client, conn_time, choice, n_endpoints, timeout, size, out, refused):  # pragma: no cover
    """kube-proxy nftables ClientIP affinity: one dynamic set per endpoint with a timeout.

    ``ip saddr @affinity-<ep> goto endpoint`` for every endpoint in order, then the
    random ``numgen`` choice; the endpoint chain does ``update @set { ip saddr }``
    (refreshes the element's timeout). A full set (``size`` live elements) refuses
    new elements (``refused[e]`` counts them); expired elements do not count.
    """
    n_clients = 0
    for c in range(conn_client.shape[0]):
        if conn_client[c] + 1 > n_clients:
            n_clients = conn_client[c] + 1
    expires = np.full((n_endpoints, n_clients), -np.inf, dtype=np.float64)
    live = np.zeros(n_endpoints, dtype=np.int64)
    for c in range(conn_client.shape[0]):
        who = conn_client[c]
        now = conn_time[c]
        chosen = -1
        for e in range(n_endpoints):
            if expires[e, who] > now:
                chosen = e
                break
        if chosen < 0:
            chosen = choice[c]
        e = chosen
        if expires[e, who] > now:
            expires[e, who] = now + timeout
        else:
            # count live elements lazily (exact, O(clients)) only when the set might be full
            if live[e] >= size:
                cnt = 0
                for q in range(n_clients):
                    if expires[e, q] > now:
                        cnt += 1
                live[e] = cnt
            if live[e] < size:
                expires[e, who] = now + timeout
                live[e] += 1
            else:
                refused[e] += 1
        out[c] = chosen


# ----------------------------------------------------------------- connection-level routing


@pjit
def connection_counts(
    group_table, group_bits, req_tables, req_bits, group_offset, conn_sizes, conn_keys, req_keys, block_log2, out
):  # pragma: no cover - compiled
    """Per-backend request counts of many replicates of a connection-level route.

    Replicate ``r`` (``prange``): connection ``c`` picks its group (the outcome of
    the stages that decide per connection) with draw ``c`` of ``conn_keys[r]``
    (alias table ``group_table``); each of its ``conn_sizes[r, c]`` requests
    picks a backend inside the group with the next draw of ``req_keys[r]``
    (request ``j`` of the replicate, counted over all its connections; alias
    table ``req_tables[g]``), backend index ``group_offset[g] + column``.
    ``conn_sizes`` int64[R, m] (0-padded), ``out`` int64[R, k] (zeroed).
    """
    reps = conn_sizes.shape[0]
    m = conn_sizes.shape[1]
    for r in prange(reps):
        j = np.int64(0)
        for c in range(m):
            s = conn_sizes[r, c]
            if s == 0:
                continue
            b = c >> block_log2
            g = alias_column(group_table, group_bits, splitmix64(conn_keys[r, b], U64(c - (b << block_log2))))
            base = group_offset[g]
            if req_bits[g] == 0:
                out[r, base] += s
                j += s
                continue
            for _ in range(s):
                bb = j >> block_log2
                r_j = splitmix64(req_keys[r, bb], U64(j - (bb << block_log2)))
                col = alias_column(req_tables[g], req_bits[g], r_j)
                out[r, base + col] += 1
                j += 1
