"""Workloads that drive the stateful balancers: clients, connections, keys, load.

A :class:`Workload` says who sends the ``n`` requests of a run:

* ``clients`` and ``requests_per_connection``: ``C`` clients share the ``n``
  requests (the first ``n % C`` clients send one more) and send them at equal
  rates, each over connections reused for ``R`` requests: a fixed ``R``, a
  geometric number with mean ``R`` (``"geometric:R"``), or one connection for
  the whole run (``"all"``, as HTTP/2 and gRPC clients do). Requests are
  ordered in time by ``(offset within client, client)`` and connections by
  their first request, so that the order is the one a balancer sees.
* ``keys``, ``zipf`` (or ``key_values``): the hash key of every request for
  RING_HASH and MAGLEV (a header value), uniform or Zipf(``s``) over ``K`` keys.
* ``arrival_rate``, ``service_time``, ``servers``: the load that LEAST_REQUEST
  reacts to (Poisson arrivals, per-backend service-time distributions, FIFO
  servers per backend).

Pure Python; numpy is imported inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from meshstat.errors import InvalidArgument

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "MAX_KEYS",
    "ConnectionLayout",
    "ServiceTime",
    "Workload",
    "parse_requests_per_connection",
    "parse_service_time",
]

#: Most hash keys of a workload: ``2**24``. Each key holds its hash, its host and
#: an alias-table column of its popularity (about 40 bytes with the construction's
#: stacks): 2**24 keys take some 700 MB and a few seconds; 10**8 would pass 4 GB.
MAX_KEYS = 1 << 24
#: Up to this many keys a Zipf popularity is rounded to ``2**-64`` with exact
#: fractions; beyond, in float64 (relative error about 1e-16 per key).
EXACT_ZIPF_KEYS = 1 << 16

_SERVICE_KINDS = {"exp": 0, "const": 1, "lognormal": 2}


#: Most finite FIFO servers (rows of the least-request event simulation) in one run.
MAX_SERVER_ROWS = 1 << 20

@dataclass(frozen=True, slots=True)
class ServiceTime:
    """A service-time distribution in seconds.

    Parameters
    ----------
    kind : {"exp", "const", "lognormal"}
    mean : float
        Mean service time (seconds).
    sigma : float
        Log-scale standard deviation (``lognormal`` only).
    """

    kind: str = "exp"
    mean: float = 0.01
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _SERVICE_KINDS:
            raise InvalidArgument(f"service time kind must be exp, const or lognormal, got {self.kind!r}")
        if not self.mean > 0:
            raise InvalidArgument(f"service time mean must be positive, got {self.mean!r}")
        if self.sigma < 0:
            raise InvalidArgument(f"lognormal sigma must be >= 0, got {self.sigma!r}")

    @property
    def code(self) -> int:
        """Kernel code of the kind."""
        return _SERVICE_KINDS[self.kind]

    def __str__(self) -> str:
        return f"{self.kind}:{self.mean:g}" + (f",{self.sigma:g}" if self.kind == "lognormal" else "")


def parse_service_time(text: str) -> ServiceTime:
    """``"exp:0.01"``, ``"const:0.005"``, ``"lognormal:0.01,1.0"`` or a bare mean (``"0.01"``, exponential)."""
    raw = text.strip()
    kind, sep, rest = raw.partition(":")
    if not sep:
        kind, rest = "exp", raw
    parts = rest.split(",")
    try:
        mean = float(parts[0])
        sigma = float(parts[1]) if len(parts) > 1 else 0.0
    except ValueError:
        raise InvalidArgument(f"expected a service time such as exp:0.01 or lognormal:0.01,1, got {text!r}") from None
    if len(parts) > (2 if kind == "lognormal" else 1):
        raise InvalidArgument(f"too many numbers in service time {text!r}")
    return ServiceTime(kind, mean, sigma)


#: The kernels count requests in int64; no run is longer, so a larger fixed R behaves as this one.
MAX_REQUESTS_PER_CONNECTION = 2**63 - 1


def parse_requests_per_connection(text: str | int | None) -> int | str | None:
    """``R`` (positive int), ``"geometric:MEAN"``, ``"all"`` or None (one request per connection)."""
    if text is None:
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 1:
            raise InvalidArgument(f"requests per connection must be >= 1, got {text}")
        return min(text, MAX_REQUESTS_PER_CONNECTION)
    raw = str(text).strip().lower()
    if raw == "all":
        return "all"
    if raw.startswith("geometric:"):
        try:
            mean = float(raw.split(":", 1)[1])
        except ValueError:
            mean = 0.0
        if not 1.0 <= mean < float("inf"):
            raise InvalidArgument(
                f"geometric mean requests per connection must be a finite number >= 1, got {text!r}"
            )
        return f"geometric:{mean:g}"
    try:
        r = int(raw.replace("_", ""))
    except ValueError:
        raise InvalidArgument(f"requests per connection must be N, geometric:MEAN or all, got {text!r}") from None
    if r < 1:
        raise InvalidArgument(f"requests per connection must be >= 1, got {text!r}")
    # a run has at most 2**63-1 requests, so any larger R carries them exactly as R = 2**63-1 does
    return min(r, MAX_REQUESTS_PER_CONNECTION)


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """Who sends the requests (see the module docstring).

    Parameters
    ----------
    clients : int
        Clients (distinct source IPs for affinity).
    requests_per_connection : int, "geometric:MEAN", "all" or None
        Connection reuse; None means a new connection per request.
    keys : int, optional
        Number of distinct hash keys (header values ``key_prefix + str(i)``).
    zipf : float
        Zipf exponent of the key popularity (0 = uniform).
    key_values : tuple of str, optional
        Explicit header values (replaces ``keys``).
    key_prefix : str
        Prefix of generated header values.
    arrival_rate : float, optional
        Poisson arrivals per second (LEAST_REQUEST); default: 80% of the
        backends' total capacity (all servers finite) or 1000/s.
    service_time : ServiceTime or tuple of ServiceTime
        One for all backends, or one per backend.
    servers : int or tuple of int
        Parallel FIFO servers per backend (0 = unlimited).
    connection_rate : float
        New connections per second and client (affinity timeouts).
    """

    clients: int = 1
    requests_per_connection: int | str | None = None
    keys: int | None = None
    zipf: float = 0.0
    key_values: tuple[str, ...] | None = None
    key_prefix: str = "key-"
    arrival_rate: float | None = None
    service_time: ServiceTime | tuple[ServiceTime, ...] = ServiceTime("exp", 0.01)
    servers: int | tuple[int, ...] = 1
    connection_rate: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.clients, bool) or not isinstance(self.clients, int) or self.clients < 1:
            raise InvalidArgument(f"clients must be a positive integer, got {self.clients!r}")
        object.__setattr__(self, "requests_per_connection", parse_requests_per_connection(self.requests_per_connection))
        if self.keys is not None and (
            isinstance(self.keys, bool) or not isinstance(self.keys, int) or self.keys < 1
        ):
            raise InvalidArgument(f"keys must be a positive integer, got {self.keys!r}")
        if self.keys is not None and self.keys > MAX_KEYS:
            raise InvalidArgument(
                f"keys must be at most {MAX_KEYS:,} (2**24), got {self.keys:,}: every key holds its hash, its "
                "host and an alias-table column of its popularity (about 40 bytes), and more would not fit in 4 GB"
            )
        if self.key_values is not None:
            object.__setattr__(self, "key_values", tuple(str(v) for v in self.key_values))
            if not self.key_values:
                raise InvalidArgument("key_values must not be empty")
        if not 0 <= self.zipf < float("inf"):
            raise InvalidArgument(f"zipf exponent must be a finite number >= 0, got {self.zipf!r}")
        if self.arrival_rate is not None and not self.arrival_rate > 0:
            raise InvalidArgument(f"arrival rate must be positive, got {self.arrival_rate!r}")
        if not self.connection_rate > 0:
            raise InvalidArgument(f"connection rate must be positive, got {self.connection_rate!r}")
        if isinstance(self.service_time, list):
            object.__setattr__(self, "service_time", tuple(self.service_time))
        if isinstance(self.servers, list):
            object.__setattr__(self, "servers", tuple(self.servers))

    # ------------------------------------------------------------------ keys

    @property
    def has_keys(self) -> bool:
        """Whether requests carry a hash key."""
        return self.keys is not None or self.key_values is not None

    @property
    def key_count(self) -> int:
        """Number of distinct keys."""
        if self.key_values is not None:
            return len(self.key_values)
        if self.keys is None:
            raise InvalidArgument("this workload has no keys (give keys=K or key_values=...)")
        return self.keys

    @property
    def key_set(self) -> tuple[object, ...]:
        """What identifies the keys and their popularity (two workloads with the same send the same keys)."""
        return (self.key_values, None if self.key_values is not None else (self.key_prefix, self.keys), self.zipf)

    def key_masses64(self) -> tuple[int, ...] | np.ndarray:
        """Key popularities as integers summing to ``2**64`` (the alias table's masses), in key order.

        Uniform keys: ``2**64 // K`` each, one more for the first ``2**64 % K``
        (largest remainder, ties in key order, as :func:`meshstat.model.round_to_total`),
        as a uint64 array for any ``K``. Zipf: :func:`round_to_total` of
        :meth:`key_shares` up to :data:`EXACT_ZIPF_KEYS` keys; beyond, the same
        rounding from float64 weights.
        """
        import numpy as np

        from meshstat.model import round_to_total

        k = self.key_count
        if k == 1:
            return (1 << 64,)
        if self.zipf == 0:
            q, r = divmod(1 << 64, k)
            out = np.full(k, q, dtype=np.uint64)
            out[:r] += np.uint64(1)
            return out
        if k <= EXACT_ZIPF_KEYS:
            return round_to_total(list(self.key_shares()), 1 << 64)
        w = np.arange(1, k + 1, dtype=np.float64) ** -float(self.zipf)
        scaled = w / w.sum() * 2.0**64
        floors = np.floor(scaled)
        if floors.max() >= 2.0**64:  # one key has all the mass
            return tuple((1 << 64) if i == 0 else 0 for i in range(k))
        out = floors.astype(np.uint64)
        total = (int(np.sum(out >> np.uint64(32), dtype=np.uint64)) << 32) + int(
            np.sum(out & np.uint64(0xFFFFFFFF), dtype=np.uint64)
        )
        deficit = (1 << 64) - total  # float rounding: a few units per key, either sign
        if deficit > 0:
            q, r = divmod(deficit, k)
            out += np.uint64(q)
            out[np.argsort(-(scaled - floors), kind="stable")[:r]] += np.uint64(1)
        elif deficit < 0:  # from the most popular key, which holds at least 2**64 / K
            out[0] -= np.uint64(-deficit)
        return out

    def key_strings(self) -> tuple[str, ...]:
        """The header values, in key-index order."""
        if self.key_values is not None:
            return self.key_values
        if self.keys is None:
            raise InvalidArgument("this workload has no keys (give keys=K or key_values=...)")
        return tuple(f"{self.key_prefix}{i}" for i in range(self.keys))

    def key_shares(self) -> tuple[Fraction, ...]:
        """Popularity of every key: uniform, or ``i**-s / H`` for Zipf (float-rounded when s is not 0)."""
        k = len(self.key_strings())
        if self.zipf == 0:
            return tuple(Fraction(1, k) for _ in range(k))
        w = [Fraction((i + 1) ** -self.zipf) for i in range(k)]
        tot = sum(w)
        return tuple(x / tot for x in w)

    # ------------------------------------------------------------------ per-backend lists

    def service_times(self, k: int) -> tuple[ServiceTime, ...]:
        """One service time per backend."""
        st = self.service_time
        if isinstance(st, ServiceTime):
            return (st,) * k
        if len(st) != k:
            raise InvalidArgument(f"{len(st)} service times for {k} backends")
        return tuple(st)

    def servers_per_backend(self, k: int) -> tuple[int, ...]:
        """Parallel servers per backend."""
        s = self.servers
        if isinstance(s, int):
            out = (s,) * k
        else:
            if len(s) != k:
                raise InvalidArgument(f"{len(s)} server counts for {k} backends")
            out = tuple(int(x) for x in s)
        if any(x < 0 for x in out):
            raise InvalidArgument("server counts must be >= 0 (0 = unlimited)")
        return out

    def kernel_servers(self, k: int, n: int) -> tuple[int, ...]:
        """Servers per backend as the event simulation of ``n`` requests holds them.

        A backend with at least ``n`` servers never queues (at most ``n`` requests
        are ever in it): it is simulated as unlimited (0), exactly. Every other
        server is a row of the simulation (a 64-slot completion ring, about 540
        bytes): at most :data:`MAX_SERVER_ROWS` in all.
        """
        out = tuple(0 if s >= n else s for s in self.servers_per_backend(k))
        rows = sum(max(s, 1) for s in out)
        if rows > MAX_SERVER_ROWS:
            raise InvalidArgument(
                f"at most {MAX_SERVER_ROWS:,} FIFO servers in all below the request count, got {rows:,}: each is "
                "a row of the event simulation (about 540 bytes); 0 (or at least -n) servers is unlimited"
            )
        return out

    # ------------------------------------------------------------------ connections

    def active_clients(self, n: int) -> int:
        """Clients that send at least one of ``n`` requests: ``min(clients, n)`` (the first ``n % C`` send one more)."""
        return max(1, min(self.clients, n))

    def requests_per_client(self, n: int) -> np.ndarray:
        """Requests of every client that sends any (:meth:`active_clients` of them), int64.

        Clients beyond ``n`` send nothing and take no memory: ``clients=10**8``
        with ``n = 10**6`` costs what ``clients=10**6`` does.
        """
        import numpy as np

        q, r = divmod(n, self.clients)
        out = np.full(self.active_clients(n), q, dtype=np.int64)
        out[:r] += 1
        return out

    def layout(self, n: int, keys: np.ndarray | None = None, block_log2: int = 18) -> ConnectionLayout:
        """Connections of a run of ``n`` requests (geometric sizes use ``keys``)."""
        return ConnectionLayout.build(self, n, keys, block_log2)


@dataclass(frozen=True, eq=False)
class ConnectionLayout:
    """Connections and requests of a run, in time order.

    Attributes
    ----------
    conn_client : int64[m]
        Client of every connection (connection order = order of first request).
    conn_start : int64[m]
        Offset of the connection's first request within its client.
    conn_size : int64[m]
        Requests on the connection.
    request_conn : int64[n] or None
        Connection of every request, requests in time order (built on demand).
    """

    conn_client: np.ndarray
    conn_start: np.ndarray
    conn_size: np.ndarray
    n: int
    clients: int  # the clients that send requests (at most n)

    @staticmethod
    def build(w: Workload, n: int, keys: np.ndarray | None, block_log2: int) -> ConnectionLayout:
        import numpy as np

        per = w.requests_per_client(n)
        n_cl = per.shape[0]  # the active clients: the others send nothing
        rpc = w.requests_per_connection
        cl, st, sz = [], [], []
        if rpc is None or rpc == 1:
            # one connection per request, in time order
            counts = per
            first = np.cumsum(counts) - counts
            c_of = np.repeat(np.arange(n_cl, dtype=np.int64), counts)
            t_of = np.arange(n, dtype=np.int64) - first[c_of]
            order = np.lexsort((c_of, t_of))
            return ConnectionLayout(c_of[order], t_of[order], np.ones(n, dtype=np.int64), n, n_cl)
        if rpc == "all":
            counts = per
            keep = counts > 0
            c_of = np.arange(n_cl, dtype=np.int64)[keep]
            return ConnectionLayout(c_of, np.zeros(c_of.size, np.int64), counts[keep], n, n_cl)
        if isinstance(rpc, int):
            full, rest = np.divmod(per, rpc)
            nconn = full + (rest > 0)
            c_of = np.repeat(np.arange(n_cl, dtype=np.int64), nconn)
            j = np.arange(c_of.size, dtype=np.int64) - (np.cumsum(nconn) - nconn)[c_of]
            last_partial = (j == nconn[c_of] - 1) & (rest[c_of] > 0)
            cl.append(c_of)
            st.append(j * rpc)
            sz.append(np.where(last_partial, rest[c_of], rpc).astype(np.int64))
        else:
            from meshstat._kernels import balancers as kb

            mean = float(str(rpc).split(":", 1)[1])
            if keys is None:
                raise InvalidArgument("geometric connection sizes need random keys")
            # one renewal stream of geometric sizes, cut at client boundaries (memoryless)
            total = np.cumsum(np.asarray(per, dtype=np.int64))
            # draws are counter-based: a longer run of sizes extends the same prefix
            m_est = min(n, int(n / mean * 1.2) + 64)
            if -(-n // (1 << block_log2)) > keys.shape[0]:
                raise InvalidArgument("internal: not enough stream keys for connection sizes")
            while True:
                sizes = np.empty(m_est, dtype=np.int64)
                kb.geometric_sizes(
                    np.float64(mean), np.int64(max(n, 1)), keys, np.int64(block_log2), np.int64(m_est), sizes
                )
                ends = np.cumsum(sizes)
                if ends[-1] >= n:
                    break
                m_est = n
            # merge the two sorted cut lists in linear time (no sort), then drop repeated cuts
            cuts = ends[ends < n]
            inner = np.insert(cuts, np.searchsorted(cuts, total[:-1]), total[:-1])
            bounds = np.concatenate([[0], inner, [n]]).astype(np.int64)
            bounds = bounds[np.concatenate([[True], bounds[1:] != bounds[:-1]])]
            g_start = bounds[:-1]
            g_size = np.diff(bounds)
            starts_of_client = np.concatenate([[0], total[:-1]])
            client = np.searchsorted(total, g_start, side="right").astype(np.int64)
            cl.append(client)
            st.append(g_start - starts_of_client[client])
            sz.append(g_size)
        c_of = np.concatenate(cl) if cl else np.zeros(0, np.int64)
        s_of = np.concatenate(st) if st else np.zeros(0, np.int64)
        z_of = np.concatenate(sz) if sz else np.zeros(0, np.int64)
        keep = z_of > 0
        c_of, s_of, z_of = c_of[keep], s_of[keep], z_of[keep]
        if n_cl == 1:  # one client: already in time order
            return ConnectionLayout(c_of, s_of, z_of, n, n_cl)
        order = np.lexsort((c_of, s_of))
        return ConnectionLayout(c_of[order], s_of[order], z_of[order], n, n_cl)

    @property
    def n_connections(self) -> int:
        """Number of connections."""
        return int(self.conn_size.shape[0])

    def request_connections(self) -> np.ndarray:
        """Connection index of every request, requests in time order ``(offset in client, client)``."""
        import numpy as np

        from meshstat._kernels import balancers as kb

        m = self.n_connections
        if m == self.n and bool(np.all(self.conn_size == 1)):
            return np.arange(self.n, dtype=np.int64)
        # requests in (client, offset) order carry their connection, then reorder by (offset, client)
        by_client = np.lexsort((self.conn_start, self.conn_client))
        conn_rep = np.empty(self.n, dtype=np.int64)
        kb.expand_by_sizes(by_client.astype(np.int64), self.conn_size[by_client], conn_rep)
        per = np.bincount(self.conn_client, weights=self.conn_size, minlength=self.clients).astype(np.int64)
        client_of = np.repeat(np.arange(self.clients, dtype=np.int64), per)
        first = np.concatenate([[0], np.cumsum(per)[:-1]])
        offset = np.arange(self.n, dtype=np.int64) - first[client_of]
        order = np.lexsort((client_of, offset))
        return conn_rep[order]

    def requests_of(self, conn_values: Sequence[int] | np.ndarray) -> np.ndarray:
        """Per-request values (time order) from per-connection values."""
        import numpy as np

        v = np.asarray(conn_values)
        return v[self.request_connections()]
