"""Pure-Python twins of the balancer kernels (the stumpy naive.py role).

Written independently of the kernels, as plainly as possible, on the same
counter-based random stream (``tests.reference.splitmix64``); the tests compare
kernels with them exactly.
"""

from __future__ import annotations

import bisect
import heapq
import math
import struct
from collections import OrderedDict

from tests.reference import MASK64, splitmix64

P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                      0x27D4EB2F165667C5)


def rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & MASK64


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 straight from the specification (lanes read with struct)."""

    def rnd(acc: int, lane: int) -> int:
        return rotl((acc + lane * P2) & MASK64, 31) * P1 & MASK64

    n = len(data)
    i = 0
    if n >= 32:
        acc = [(seed + P1 + P2) & MASK64, (seed + P2) & MASK64, seed & MASK64, (seed - P1) & MASK64]
        while n - i >= 32:
            lanes = struct.unpack_from("<4Q", data, i)
            acc = [rnd(a, x) for a, x in zip(acc, lanes)]
            i += 32
        h = (rotl(acc[0], 1) + rotl(acc[1], 7) + rotl(acc[2], 12) + rotl(acc[3], 18)) & MASK64
        for a in acc:
            h = ((h ^ rnd(0, a)) * P1 + P4) & MASK64
    else:
        h = (seed + P5) & MASK64
    h = (h + n) & MASK64
    while n - i >= 8:
        (lane,) = struct.unpack_from("<Q", data, i)
        h = (rotl(h ^ rnd(0, lane), 27) * P1 + P4) & MASK64
        i += 8
    if n - i >= 4:
        (lane,) = struct.unpack_from("<I", data, i)
        h = (rotl(h ^ (lane * P1 & MASK64), 23) * P2 + P3) & MASK64
        i += 4
    while i < n:
        h = rotl(h ^ (data[i] * P5 & MASK64), 11) * P1 & MASK64
        i += 1
    h = (h ^ (h >> 33)) * P2 & MASK64
    h = (h ^ (h >> 29)) * P3 & MASK64
    return h ^ (h >> 32)


def xx(s: str, seed: int = 0) -> int:
    return xxh64(s.encode(), seed)


def numbered_text(literals, fields, x: int) -> str:
    """The text ``xxh64_numbered`` hashes for index ``x``: literals around ``(x // div) % mod + add`` fields."""
    out = literals[0]
    for (div, mod, add), lit in zip(fields, literals[1:]):
        v = x // div
        if mod:
            v %= mod
        out += str(v + add) + lit
    return out


def ring(hosts, weights=None, min_ring=1024, max_ring=8 * 1024 * 1024):
    """Envoy's ring (docs/measurements.md, M13): returns (sorted hashes, host index per point)."""
    w = weights or [1] * len(hosts)
    tot = sum(w)
    norm = [x * 1.0 / tot for x in w]
    mn = min(norm)
    scale = min(math.ceil(mn * min_ring) / mn, float(max_ring))
    ents = []
    cur = target = 0.0
    for idx, (h, nw) in enumerate(zip(hosts, norm)):
        target += scale * nw
        i = 0
        while cur < target:
            ents.append((xx(f"{h}_{i}"), idx))
            i += 1
            cur += 1
    ents.sort(key=lambda e: e[0])
    return [e[0] for e in ents], [e[1] for e in ents]


def ring_pick(hashes: list[int], hosts: list[int], hv: int) -> int:
    return hosts[bisect.bisect_left(hashes, hv) % len(hashes)]


def maglev(hosts, weights=None, m=65537):
    """Envoy's Maglev table (docs/measurements.md, M13): host index per table slot."""
    w = weights or [1] * len(hosts)
    tot = sum(w)
    ents = sorted((h, x * 1.0 / tot, i) for i, (h, x) in enumerate(zip(hosts, w)))
    mx = max(x for _, x, _ in ents)
    b = [dict(i=i, off=xx(h, 0) % m, skip=xx(h, 1) % (m - 1) + 1, w=x, tw=0.0, nxt=0) for h, x, i in ents]
    table = [None] * m
    filled = 0
    it = 1
    while filled < m:
        for e in b:
            if filled >= m:
                break
            if it * e["w"] < e["tw"]:
                continue
            e["tw"] += mx
            c = (e["off"] + e["skip"] * e["nxt"]) % m
            while table[c] is not None:
                e["nxt"] += 1
                c = (e["off"] + e["skip"] * e["nxt"]) % m
            table[c] = e["i"]
            e["nxt"] += 1
            filled += 1
        it += 1
    return table


def draw(keys: list[int], block_log2: int, i: int, words: int = 1, j: int = 0) -> int:
    b = i >> block_log2
    o = i - (b << block_log2)
    return splitmix64(keys[b], o * words + j)


def edf_envoy(state, weights, n):
    """EdfScheduler with a real priority queue (heapq of (deadline, order_offset, entry))."""
    deadline, order, current, offset = state
    q = [(d, o, i) for i, (d, o) in enumerate(zip(deadline, order))]
    heapq.heapify(q)
    out = []
    for _ in range(n):
        d, _, i = heapq.heappop(q)
        current = d
        heapq.heappush(q, (current + 1.0 / weights[i], offset, i))
        offset += 1
        out.append(i)
    return out


def smooth_wrr(weights: list[int], n: int, *, down: list[bool] | None = None) -> list[int]:
    """nginx ngx_http_upstream_get_peer: every peer not down gains its weight, the largest
    current weight (first on ties) is picked and loses the sum of those weights."""
    down = list(down) if down is not None else [False] * len(weights)
    current = [0] * len(weights)
    out = []
    for _ in range(n):
        best = None
        total = 0
        for i, w in enumerate(weights):
            if down[i]:
                continue
            current[i] += w
            total += w
            if best is None or current[i] > current[best]:
                best = i
        if best is None:
            raise ValueError("every peer is down")
        current[best] -= total
        out.append(best)
    return out


def upstream_sequence(upstream, n: int) -> list[int]:
    """Indices into ``upstream.servers`` of nginx's first ``n`` picks: the primary servers,
    else (every primary down) the backup servers, each group its own smooth WRR."""
    active = upstream.active()
    if not active:
        raise ValueError("every server is down")
    group = upstream.primary() if not upstream.servers[active[0]].backup else upstream.backup()
    weights = [upstream.servers[i].weight for i in group]
    down = [upstream.servers[i].down for i in group]
    return [group[k] for k in smooth_wrr(weights, n, down=down)]


def ipvs_wrr(weights: list[int], n: int) -> list[int]:
    """ip_vs_wrr.c: cursor over the list (None = head), cw stepped down by gcd from max - (gcd - 1)."""
    g = 0
    for w in weights:
        g = math.gcd(g, w)
    mw = max(weights) - (g - 1)
    cw = mw
    cl = None
    out = []
    for _ in range(n):
        while True:
            cl = 0 if cl is None else cl + 1
            if cl == len(weights):
                cl = None
                cw -= g
                if cw <= 0:
                    cw = mw
                continue
            if weights[cl] >= cw:
                break
        out.append(cl)
    return out


def unit(r: int) -> float:
    return ((r >> 11) + 1) * 2.0**-53


def geometric(mean: float, r: int, cap: int = 2**62) -> int:
    if mean <= 1.0:
        return 1
    x = math.log(unit(r)) / math.log1p(-1.0 / mean)
    return cap if x >= cap - 1 else 1 + math.floor(x)


def lr_pick(active, choice_count, full_scan, keys, block_log2, words, i):
    """Envoy's unweighted least-request pick, draws 3, 4, ... of request i."""
    n = len(active)
    if full_scan:
        cand, tied, j = 0, 1, 3
        for h in range(1, n):
            if active[h] < active[cand]:
                cand, tied = h, 1
            elif active[h] == active[cand]:
                tied += 1
                r = draw(keys, block_log2, i, words, j)
                j += 1
                if r % tied == 0:
                    cand = h
        return cand
    cand = draw(keys, block_log2, i, words, 3) % n
    for c in range(1, choice_count):
        s = draw(keys, block_log2, i, words, 3 + c) % n
        if active[s] < active[cand]:
            cand = s
    return cand


def lr_simulate(weighted, weights, bias, choice_count, full_scan, edf, rate, svc, servers, keys, block_log2, n):
    """The least-request event simulation with heapq; returns (dest, latency)."""
    k = len(weights)
    words = 3 + max(choice_count, k)
    kind, a, b = svc

    def service(i, h):
        r1, r2 = draw(keys, block_log2, i, words, 1), draw(keys, block_log2, i, words, 2)
        if kind == 1:
            return a[h]
        if kind == 0:
            return -a[h] * math.log(unit(r1))
        z = math.sqrt(-2.0 * math.log(unit(r1))) * math.cos(2.0 * math.pi * unit(r2))
        return math.exp(math.log(a[h]) - 0.5 * b[h] * b[h] + b[h] * z)

    deadline, order, current, offset = edf
    deadline, order = list(deadline), list(order)
    active = [0] * k
    busy = [0] * k
    queues = [[] for _ in range(k)]
    heap: list = []
    dest = [0] * n
    arrival = [0.0] * n
    latency = [0.0] * n
    inv_rate = 1.0 / rate
    t_next = -math.log(unit(draw(keys, block_log2, 0, words, 0))) * inv_rate
    i = 0
    while i < n or heap:
        if heap and (i >= n or heap[0][0] <= t_next):
            t, r = heapq.heappop(heap)
            h = dest[r]
            latency[r] = t - arrival[r]
            active[h] -= 1
            busy[h] -= 1
            if queues[h]:
                q = queues[h].pop(0)
                busy[h] += 1
                heapq.heappush(heap, (t + service(q, h), q))
            continue
        now = t_next
        if weighted:
            j = min(range(k), key=lambda q: (deadline[q], order[q]))
            current = deadline[j]
            if bias == 1.0:
                w = weights[j] / (active[j] + 1.0)
            elif bias != 0.0:
                w = weights[j] / (active[j] + 1.0) ** bias
            else:
                w = weights[j]
            deadline[j] = current + 1.0 / w
            order[j] = offset
            offset += 1
            h = j
        else:
            h = lr_pick(active, choice_count, full_scan, keys, block_log2, words, i)
        dest[i] = h
        arrival[i] = now
        active[h] += 1
        if servers[h] == 0 or busy[h] < servers[h]:
            busy[h] += 1
            heapq.heappush(heap, (now + service(i, h), i))
        else:
            queues[h].append(i)
        i += 1
        if i < n:
            t_next = now - math.log(unit(draw(keys, block_log2, i, words, 0))) * inv_rate
    return dest, latency


def recent_affinity(conn_client, conn_time, choice, n_endpoints, timeout, cap, reap):
    """xt_recent lists as OrderedDicts (LRU order = insertion order, move_to_end on --set)."""
    lists = [OrderedDict() for _ in range(n_endpoints)]
    out = []
    evictions = [0] * n_endpoints
    for who, now, ch in zip(conn_client, conn_time, choice):
        chosen = None
        for e in range(n_endpoints):
            lst = lists[e]
            if who in lst:
                if now - lst[who] <= timeout:
                    chosen = e
                if reap:
                    oldest = next(iter(lst))
                    if oldest != who and now - lst[oldest] > timeout:
                        del lst[oldest]
            if chosen is not None:
                break
        if chosen is None:
            chosen = ch
        lst = lists[chosen]
        if who in lst:
            lst.move_to_end(who)
        elif len(lst) >= cap:
            lst.popitem(last=False)
            evictions[chosen] += 1
        lst[who] = now
        out.append(chosen)
    return out, evictions


def set_affinity(conn_client, conn_time, choice, n_endpoints, timeout, size):
    """nft affinity sets: element -> expiry; a full set (live elements) refuses new ones."""
    sets = [dict() for _ in range(n_endpoints)]
    out = []
    refused = [0] * n_endpoints
    for who, now, ch in zip(conn_client, conn_time, choice):
        chosen = next((e for e in range(n_endpoints) if sets[e].get(who, -math.inf) > now), ch)
        s = sets[chosen]
        if s.get(who, -math.inf) > now:
            s[who] = now + timeout
        elif sum(1 for v in s.values() if v > now) < size:
            s[who] = now + timeout
        else:
            refused[chosen] += 1
        out.append(chosen)
    return out, refused


def alias_col(table: list[int], bits: int, r: int) -> int:
    j = r >> (64 - bits)
    low = r & ((1 << (64 - bits)) - 1)
    e = table[j]
    return j if low < (e >> bits) else (e & ((1 << bits) - 1))


def connection_counts(gtable, gbits, req_tables, req_bits, offsets, sizes, conn_keys, req_keys, block_log2, k):
    """One replicate: group per connection, backend per request."""
    out = [0] * k
    j = 0
    for c, s in enumerate(sizes):
        if s == 0:
            continue
        g = alias_col(gtable, gbits, draw(conn_keys, block_log2, c))
        if req_bits[g] == 0:
            out[offsets[g]] += s
            j += s
            continue
        for _ in range(s):
            out[offsets[g] + alias_col(req_tables[g], req_bits[g], draw(req_keys, block_log2, j))] += 1
            j += 1
    return out
