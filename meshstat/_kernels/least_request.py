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
def service_time(kind, a, b, keys, block_log2, words, i):  # pragma: no cover - compiled
    """Service time of request ``i`` (draws 1 and 2 of its slot)."""
    if kind == 1:
        return a
    r1 = _draw(keys, block_log2, words, i, 1)
    if kind == 0:
        return -a * np.log(_unit(r1))
    r2 = _draw(keys, block_log2, words, i, 2)
    z = np.sqrt(-2.0 * np.log(_unit(r1))) * np.cos(2.0 * np.pi * _unit(r2))
    mu = np.log(a) - 0.5 * b * b
    return np.exp(mu + b * z)


@jit(inline="always")
def pick_unweighted(active, choice_count, full_scan, keys, block_log2, words, i):  # pragma: no cover
    """Envoy's N_CHOICES (with replacement, ties keep the first) or FULL_SCAN (reservoir ties)."""
    n = active.shape[0]
    nn = U64(n)
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
    cand = np.int64(_draw(keys, block_log2, words, i, 3) % nn)
    for c in range(1, choice_count):
        s = np.int64(_draw(keys, block_log2, words, i, 3 + c) % nn)
        if active[s] < active[cand]:
            cand = s
    return cand


@jit(inline="always")
def pick_edf(deadline, order, state, weights, bias, active):  # pragma: no cover - compiled
    """EdfScheduler::pickAndAdd with weight ``w / (active + 1) ** bias`` at re-add.

    ``state[0]`` = current_time, ``state[1]`` = order offset (as float64 holding an integer).
    """
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
    state[0] = d
    a = np.float64(active[j])
    if bias == 1.0:
        w = weights[j] / (a + 1.0)
    elif bias != 0.0:
        w = weights[j] / ((a + 1.0) ** bias)
    else:
        w = weights[j]
    deadline[j] = d + 1.0 / w
    order[j] = np.int64(state[1])
    state[1] += 1.0
    return j


@jit
def picks_static(active, choice_count, full_scan, keys, block_log2, n, out):  # pragma: no cover - compiled
    """``n`` independent unweighted picks against frozen active counts (same draws as the simulation)."""
    words = 3 + max(choice_count, active.shape[0])
    for i in range(n):
        out[i] = pick_unweighted(active, choice_count, full_scan, keys, block_log2, words, i)


@jit(inline="always")
def _heap_push(ht, hr, size, t, r):  # pragma: no cover - compiled
    """Binary min-heap on (time, request), sifting a hole up."""
    p = size
    while p > 0:
        q = (p - 1) >> 1
        tq = ht[q]
        if tq < t or (tq == t and hr[q] < r):
            break
        ht[p] = tq
        hr[p] = hr[q]
        p = q
    ht[p] = t
    hr[p] = r
    return size + 1


@jit(inline="always")
def _heap_pop(ht, hr, size):  # pragma: no cover - compiled
    """Remove the root: move the last entry into a hole sifted down from the root."""
    size -= 1
    t = ht[size]
    r = hr[size]
    p = 0
    while True:
        c = 2 * p + 1
        if c >= size:
            break
        c2 = c + 1
        if c2 < size and (ht[c2] < ht[c] or (ht[c2] == ht[c] and hr[c2] < hr[c])):
            c = c2
        if t < ht[c] or (t == ht[c] and r < hr[c]):
            break
        ht[p] = ht[c]
        hr[p] = hr[c]
        p = c
    ht[p] = t
    hr[p] = r
    return size


@jit
def simulate_lr(
    weighted, weights, bias, choice_count, full_scan, deadline, order, edf_state,
    rate, svc_kind, svc_a, svc_b, servers,
    keys, block_log2, n, dest, latency, heap_t, heap_r, qnext, area, max_active,
):  # pragma: no cover - compiled
    """Run ``n`` requests; fills ``dest``, ``latency`` (seconds), per-host ``area``
    (integral of in-flight requests over time) and ``max_active``. Returns the
    time of the last completion.

    ``heap_t``/``heap_r`` (float64/int64, capacity >= requests in service at
    once) hold service completions; ``qnext`` int64[n] links each host's FIFO.
    """
    k = weights.shape[0]
    words = 3 + max(choice_count, k)
    active = np.zeros(k, dtype=np.int64)
    busy = np.zeros(k, dtype=np.int64)
    qhead = np.full(k, -1, dtype=np.int64)
    qtail = np.full(k, -1, dtype=np.int64)
    size = 0
    now = 0.0
    last = 0.0
    since = np.zeros(k, dtype=np.float64)  # time of the last change of active[h]
    inv_rate = 1.0 / rate
    t_next = -np.log(_unit(_draw(keys, block_log2, words, 0, 0))) * inv_rate if n > 0 else np.inf
    i = 0
    while i < n or size > 0:
        # the next event: a completion (first on ties) or the next arrival
        if size > 0 and (i >= n or heap_t[0] <= t_next):
            t = heap_t[0]
            r = heap_r[0]
            size = _heap_pop(heap_t, heap_r, size)
            last = t
            now = t
            h = dest[r]
            area[h] += active[h] * (t - since[h])
            since[h] = t
            latency[r] = t - latency[r]
            active[h] -= 1
            busy[h] -= 1
            q = qhead[h]
            if q >= 0:
                qhead[h] = qnext[q]
                if qhead[h] < 0:
                    qtail[h] = -1
                s = service_time(svc_kind, svc_a[h], svc_b[h], keys, block_log2, words, q)
                busy[h] += 1
                size = _heap_push(heap_t, heap_r, size, now + s, q)
            continue
        t = t_next
        last = t
        now = t
        if weighted:
            h = pick_edf(deadline, order, edf_state, weights, bias, active)
        else:
            h = pick_unweighted(active, choice_count, full_scan, keys, block_log2, words, i)
        dest[i] = h
        latency[i] = now  # arrival time, replaced by the latency at completion
        area[h] += active[h] * (t - since[h])
        since[h] = t
        active[h] += 1
        if active[h] > max_active[h]:
            max_active[h] = active[h]
        if servers[h] == 0 or busy[h] < servers[h]:
            s = service_time(svc_kind, svc_a[h], svc_b[h], keys, block_log2, words, i)
            busy[h] += 1
            size = _heap_push(heap_t, heap_r, size, now + s, i)
        else:
            qnext[i] = -1
            if qtail[h] >= 0:
                qnext[qtail[h]] = i
            else:
                qhead[h] = i
            qtail[h] = i
        i += 1
        if i < n:
            t_next = now - np.log(_unit(_draw(keys, block_log2, words, i, 0))) * inv_rate
    for h in range(k):
        area[h] += active[h] * (last - since[h])
    return last


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
