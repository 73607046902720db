"""Envoy LEAST_REQUEST under load: a discrete-event simulation of one balancer instance.

Requests arrive as a Poisson process; each is routed at arrival by Envoy's
pick (``least_request/least_request_lb.cc``: ``unweightedHostPickNChoices``,
``unweightedHostPickFullScan``, or the EDF scheduler with weight
``w / (active + 1) ** bias`` when host weights differ), where ``active`` is the
host's requests in flight (queued or in service) at that moment. Each host
serves FIFO with ``servers[h]`` parallel servers (0 = unlimited); the latency of
a request is its completion minus its arrival.

Random stream: request ``i`` (block ``b``, offset ``o``) owns draws
``o * words + j`` of ``keys[b]``, ``words = 3 + max(choice_count, n_hosts)``:
``j = 0`` the gap to the next arrival (exponential), ``j = 1, 2`` its service
time, ``j >= 3`` the balancer's draws in the order Envoy makes them.

Service-time kinds: 0 exponential (mean ``a``), 1 constant ``a``, 2 lognormal
with mean ``a`` and log-sd ``b`` (Box-Muller on draws 1 and 2).

How it runs without an event queue, with the event simulation's results bit for
bit (``tests/reference_balancers.py: lr_simulate``, a heapq event simulation, is
the twin it is tested against):

* FIFO on ``c`` servers is the Kiefer-Wolfowitz recursion: a request starts at
  ``max(arrival, the earliest time one of the host's servers is free)`` on that
  server, so its completion is known at its arrival (the same float
  ``start + service`` the event simulation computes when it starts it);
* completions at different hosts never interact, and a pick reads the active
  counts of the hosts it samples only, so a sampled host's completions up to the
  arrival are dropped lazily, at the pick (``<=``: a completion at the arrival
  instant counts first, as in the event order). A server finishes its requests
  in order, so its pending completions are a sorted row and the finished ones a
  prefix, counted without data-dependent branches;
* the integral of the requests in flight over time is the sum of the latencies.
"""

from __future__ import annotations

import numpy as np

from meshstat._kernels._jit import jit
from meshstat._kernels.splitmix import splitmix64

U64 = np.uint64
INV53 = 1.0 / 9007199254740992.0


@jit(inline="always")
def _unit(r):  # pragma: no cover - compiled
    """(0, 1]: ``((r >> 11) + 1) * 2**-53``."""
    return (np.float64(r >> U64(11)) + 1.0) * INV53


@jit(inline="always")
def _draw(keys, block_log2, words, i, j):  # pragma: no cover - compiled
    b = i >> block_log2
    o = i - (b << block_log2)
    return splitmix64(keys[b], U64(o) * U64(words) + U64(j))


@jit(inline="always")
def _pick_mod(r, n, mask):  # pragma: no cover - compiled
    """``r % n`` as int64; ``mask = n - 1`` when ``n`` is a power of two (the same value, no division), else 0."""
    if mask:
        return np.int64(r & U64(mask))
    return np.int64(r % U64(n))


@jit(inline="always")
def pick_unweighted(active, choice_count, full_scan, keys, block_log2, words, i):  # pragma: no cover
    """Envoy's N_CHOICES (with replacement, ties keep the first) or FULL_SCAN (reservoir ties)."""
    n = active.shape[0]
    if full_scan:
        cand = 0
        tied = 1
        j = 3
        for h in range(1, n):
            if active[h] < active[cand]:
                cand = h
                tied = 1
            elif active[h] == active[cand]:
                tied += 1
                r = _draw(keys, block_log2, words, i, j)
                j += 1
                if r % U64(tied) == U64(0):
                    cand = h
        return cand
    mask = n - 1 if (n & (n - 1)) == 0 else 0
    cand = _pick_mod(_draw(keys, block_log2, words, i, 3), n, mask)
    # the kept host changes only to a strictly less busy one: once it is among the least busy of all,
    # the remaining draws cannot change it (the same pick in O(hosts) draws for any choice_count)
    amin = -1
    if choice_count > n:
        amin = active[0]
        for h in range(1, n):
            amin = min(amin, active[h])
    for c in range(1, choice_count):
        if active[cand] == amin:
            break
        s = _pick_mod(_draw(keys, block_log2, words, i, 3 + c), n, mask)
        if active[s] < active[cand]:
            cand = s
    return cand


@jit
def picks_static(active, choice_count, full_scan, keys, block_log2, n, out):  # pragma: no cover - compiled
    """``n`` independent unweighted picks against frozen active counts (same draws as the simulation)."""
    words = 3 + max(choice_count, active.shape[0])
    for i in range(n):
        out[i] = pick_unweighted(active, choice_count, full_scan, keys, block_log2, words, i)


@jit(inline="always")
def service_time(kind, a, b, key, o):  # pragma: no cover - compiled
    """Service time of the request whose draws start at ``o`` of stream ``key`` (its draws 1 and 2)."""
    if kind == 1:
        return a
    r1 = splitmix64(key, o + U64(1))
    if kind == 0:
        return -a * np.log(_unit(r1))
    r2 = splitmix64(key, o + U64(2))
    z = np.sqrt(-2.0 * np.log(_unit(r1))) * np.cos(2.0 * np.pi * _unit(r2))
    mu = np.log(a) - 0.5 * b * b
    return np.exp(mu + b * z)


#: Pending completions a server's row is examined by at once (one row look almost always suffices).
WIN = 2


@jit(inline="always")
def _settle(ring, head, pend, s0, s1, t):  # pragma: no cover - compiled
    """Drop the completions at or before ``t`` of slots ``s0 .. s1 - 1``; return how many remain.

    Row ``q`` holds its pending completions sorted in ``ring[q, head[q] : head[q] + pend[q]]``
    and ``+inf`` after them, so the finished ones are a prefix, counted ``WIN`` at a
    time without data-dependent branches.
    """
    left = 0
    for q in range(s0, s1):
        p0 = head[q]
        p = p0
        while True:
            d = 0
            for w in range(WIN):
                d += ring[q, p + w] <= t
            p += d
            if d < WIN:
                break
        head[q] = p
        c = pend[q] - (p - p0)
        pend[q] = c
        left += c
    return left


@jit
def _make_room(ring, head, pend):  # pragma: no cover - compiled
    """Move every row's pending completions to its start (``+inf`` after them); widen the rows when
    one is more than half full."""
    s = ring.shape[0]
    cap = ring.shape[1]
    most = 0
    for q in range(s):
        most = max(most, pend[q])
    width = cap if 2 * (most + 2 * WIN) <= cap else 2 * cap
    out = np.full((s, width), np.inf, dtype=np.float64)
    for q in range(s):
        p = head[q]
        for j in range(pend[q]):
            out[q, j] = ring[q, p + j]
        head[q] = 0
    return out


@jit
def simulate_lr(
    weighted, weights, bias, choice_count, full_scan, deadline, order, edf_state,
    rate, svc_kind, svc_a, svc_b, servers,
    keys, block_log2, n, dest, latency, area, max_active,
):  # pragma: no cover - compiled
    """Run ``n`` requests; fills ``dest``, ``latency`` (seconds), per-host ``area``
    (integral of in-flight requests over time: the sum of its latencies) and
    ``max_active``. Returns the time of the last event (the last completion).

    ``deadline``, ``order`` and ``edf_state`` (``[current_time, order_offset]``) are
    the EDF scheduler of the weighted path, updated in place.
    """
    k = weights.shape[0]
    words = 3 + max(choice_count, k)
    mask = k - 1 if (k & (k - 1)) == 0 else 0
    # one row per server (FIFO: its completions come in order) and one per unlimited host (kept sorted)
    s_lo = np.zeros(k + 1, dtype=np.int64)
    for h in range(k):
        s_lo[h + 1] = s_lo[h] + (servers[h] if servers[h] > 0 else 1)
    ns = s_lo[k]
    free_t = np.zeros(ns, dtype=np.float64)  # when each server is next free
    ring = np.full((ns, 64), np.inf, dtype=np.float64)
    head = np.zeros(ns, dtype=np.int64)
    pend = np.zeros(ns, dtype=np.int64)
    last = 0.0
    inv_rate = 1.0 / rate
    t = 0.0
    for i in range(n):
        b = i >> block_log2
        key = keys[b]
        o = U64(i - (b << block_log2)) * U64(words)
        t = t - np.log(_unit(splitmix64(key, o))) * inv_rate
        if weighted:
            # EdfScheduler::pickAndAdd: the earliest (deadline, order offset), re-added with its new weight
            h = 0
            d = deadline[0]
            od = order[0]
            for q in range(1, k):
                dq = deadline[q]
                if dq < d or (dq == d and order[q] < od):
                    h = q
                    d = dq
                    od = order[q]
            edf_state[0] = d
            ah = _settle(ring, head, pend, s_lo[h], s_lo[h + 1], t)
            a = np.float64(ah)
            if bias == 1.0:
                w = weights[h] / (a + 1.0)
            elif bias != 0.0:
                w = weights[h] / ((a + 1.0) ** bias)
            else:
                w = weights[h]
            deadline[h] = d + 1.0 / w
            order[h] = np.int64(edf_state[1])
            edf_state[1] += 1.0
        elif full_scan:
            h = 0
            ah = _settle(ring, head, pend, s_lo[0], s_lo[1], t)
            tied = 1
            j = 3
            for q in range(1, k):
                aq = _settle(ring, head, pend, s_lo[q], s_lo[q + 1], t)
                if aq < ah:
                    h = q
                    ah = aq
                    tied = 1
                elif aq == ah:
                    tied += 1
                    r = splitmix64(key, o + U64(j))
                    j += 1
                    if r % U64(tied) == U64(0):
                        h = q
        else:
            h = _pick_mod(splitmix64(key, o + U64(3)), k, mask)
            ah = _settle(ring, head, pend, s_lo[h], s_lo[h + 1], t)
            # as pick_unweighted: with more choices than hosts, stop once the kept host is among the least
            # busy of all (settling a host early changes nothing: its count at t is what it is)
            amin = -1
            if choice_count > k:
                amin = ah
                for q in range(k):
                    amin = min(amin, _settle(ring, head, pend, s_lo[q], s_lo[q + 1], t))
            for c in range(1, choice_count):
                if ah == amin:
                    break
                s = _pick_mod(splitmix64(key, o + U64(3 + c)), k, mask)
                a_s = _settle(ring, head, pend, s_lo[s], s_lo[s + 1], t)
                better = a_s < ah
                h = s if better else h
                ah = a_s if better else ah
        # FIFO on servers[h] servers: start when the first of them is free (at once if one is)
        sv = service_time(svc_kind, svc_a[h], svc_b[h], key, o)
        qb = s_lo[h]
        if servers[h] == 0:
            done = t + sv
        else:
            fb = free_t[qb]
            for q in range(qb + 1, s_lo[h + 1]):
                fq = free_t[q]
                better = fq < fb
                qb = q if better else qb
                fb = fq if better else fb
            done = (t if fb <= t else fb) + sv
            free_t[qb] = done
        dest[i] = h
        lat = done - t
        latency[i] = lat
        area[h] += lat
        last = done if done > last else last
        mx = max_active[h]
        max_active[h] = ah + 1 if ah + 1 > mx else mx
        # into the row of its server: appended (a server finishes in order), sorted in for unlimited hosts
        if head[qb] + pend[qb] + WIN >= ring.shape[1]:
            ring = _make_room(ring, head, pend)
        p = head[qb] + pend[qb]
        while p > head[qb] and ring[qb, p - 1] > done:
            ring[qb, p] = ring[qb, p - 1]
            p -= 1
        ring[qb, p] = done
        pend[qb] += 1
    return last if last > t else t


@jit
def group_by(dest, k, values, out, bounds):  # pragma: no cover - compiled
    """Stable counting sort: ``values`` grouped by ``dest`` into ``out``; ``bounds`` int64[k + 1]."""
    counts = np.zeros(k + 1, dtype=np.int64)
    for i in range(dest.shape[0]):
        counts[dest[i] + 1] += 1
    for h in range(k):
        counts[h + 1] += counts[h]
    for h in range(k + 1):
        bounds[h] = counts[h]
    for i in range(dest.shape[0]):
        h = dest[i]
        out[counts[h]] = values[i]
        counts[h] += 1
