"""Compile a :class:`~meshstat.model.Route` into a :class:`Plan` of arrays for the kernels.

The only place where dtypes are chosen. A plan names its sampler (``kind``)
and carries C-contiguous arrays:

* ``bernoulli`` (two backends): ``t`` = mass of backend 0 in units of ``2**-64``;
* ``alias`` (any route): a Vose alias table built with exact integer arithmetic
  on the route's masses (integers summing to ``2**64``), with ``K = 2**bits``
  columns of ``2**(64-bits)`` units each, packed ``(threshold << bits) | alias``;
* ``cascade`` (faithful iptables): the stored integers ``k`` as uint64 (compared with uint64 draws);
* ``envoy`` (faithful Envoy): cumulative weight ends as uint64 and the total.

``bernoulli`` and ``alias`` sample the route's distribution rounded to
multiples of ``2**-64`` (exact for Envoy weights and for cascades of at most
two statistic rules; otherwise off by less than ``2**-64`` per backend, see
:meth:`meshstat.model.Route.masses64`). ``cascade`` and ``envoy`` reproduce
the real mechanism itself.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from meshstat.errors import InvalidArgument
from meshstat.model import Backend, Cascade, Route, Weighted

__all__ = ["Plan", "alias_table", "compile_route", "dest_dtype"]

_TWO64 = 1 << 64


class Plan(NamedTuple):
    """Arrays and scalars a kernel needs; see the module docstring."""

    kind: str
    k: int
    masses: tuple[int, ...]
    masses_exact: bool
    table: np.ndarray
    bits: int
    t: np.uint64
    thresholds: np.ndarray
    cum: np.ndarray
    total: np.uint64
    columns: int


def dest_dtype(k: int) -> np.dtype:
    """Smallest unsigned integer dtype that holds backend indices ``0..k-1``."""
    if k <= 1 << 8:
        return np.dtype(np.uint8)
    if k <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


#: Columns from which :func:`alias_table` is built by its numba kernel (the same construction).
_ALIAS_KERNEL_FROM = 4096


def alias_table(masses: tuple[int, ...] | list[int] | np.ndarray) -> tuple[np.ndarray, int]:
    """Exact Vose alias table for integer masses summing to ``2**64``.

    From :data:`_ALIAS_KERNEL_FROM` masses on (keys of a hash balancer:
    millions) the table is built by :func:`meshstat._kernels.alias.alias_build`,
    the same construction step for step on uint64 arrays; below, here. ``masses``
    may be a uint64 array (every mass below ``2**64``).

    Returns
    -------
    table : uint64[2**bits]
        Entry ``j`` packs ``(threshold_j << bits) | alias_j``: column ``j`` keeps
        itself when the low ``64 - bits`` bits of the draw are below
        ``threshold_j``, else goes to ``alias_j``. A full column is stored as
        ``alias_j = j, threshold_j = 0``.
    bits : int
        ``log2`` of the number of columns (at least 1).
    """
    k = len(masses)
    if isinstance(masses, np.ndarray) or k >= _ALIAS_KERNEL_FROM:
        arr = _as_u64_masses(masses)
        if arr is not None:
            return _alias_table_kernel(arr)
        masses = [int(x) for x in masses]
    if sum(masses) != _TWO64:
        raise InvalidArgument("alias masses must sum to 2**64")
    bits = max(1, (k - 1).bit_length())
    ncol = 1 << bits
    cap = 1 << (64 - bits)
    mass = list(masses) + [0] * (ncol - k)
    thr = [0] * ncol
    alias = list(range(ncol))
    small = [j for j in range(ncol) if mass[j] < cap]
    large = [j for j in range(ncol) if mass[j] >= cap]
    while small and large:
        s = small.pop()
        g = large.pop()
        thr[s] = mass[s]
        alias[s] = g
        mass[g] -= cap - mass[s]
        (small if mass[g] < cap else large).append(g)
    # exact integers: whatever is left is exactly full
    for j in small + large:
        if mass[j] != cap:  # pragma: no cover - impossible with exact integers
            raise AssertionError("alias construction lost mass")
        thr[j] = 0
        alias[j] = j
    packed = np.array([(thr[j] << bits) | alias[j] for j in range(ncol)], dtype=np.uint64)
    return packed, bits


def _as_u64_masses(masses: tuple[int, ...] | list[int] | np.ndarray) -> np.ndarray | None:
    """``masses`` as uint64 (exact sum checked), or None when one mass is the whole ``2**64``."""
    if isinstance(masses, np.ndarray):
        if masses.dtype != np.uint64:
            raise InvalidArgument("alias masses as an array must be uint64")
        arr = masses
        # the sum wraps modulo 2**64: exact when it is 0 and no partial sum overflowed twice
        total = int(np.sum(arr.astype(np.float64)))
        if int(np.sum(arr, dtype=np.uint64)) != 0 or not 0.5 * _TWO64 < total < 1.5 * _TWO64:
            raise InvalidArgument("alias masses must sum to 2**64")
        return arr
    if sum(masses) != _TWO64:
        raise InvalidArgument("alias masses must sum to 2**64")
    if any(m >= _TWO64 for m in masses):
        return None
    return np.asarray(masses, dtype=np.uint64)


def _alias_table_kernel(arr: np.ndarray) -> tuple[np.ndarray, int]:
    from meshstat._kernels.alias import alias_build

    k = arr.shape[0]
    bits = max(1, (k - 1).bit_length())
    mass = np.zeros(1 << bits, dtype=np.uint64)
    mass[:k] = arr
    table = np.empty(1 << bits, dtype=np.uint64)
    if not alias_build(mass, np.int64(bits), table):  # pragma: no cover - impossible with exact integers
        raise AssertionError("alias construction lost mass")
    return table, bits


def compile_route(route: Route, *, mode: str = "per_request") -> Plan:
    """Compile ``route`` for ``mode`` (``"per_request"`` or ``"faithful"``).

    ``faithful`` needs a single cascade or weighted stage over backends. Plans
    are cached per (route, mode): routes are immutable, and building an alias
    table for a thousand backends in Python costs milliseconds. The arrays of a
    cached plan must not be written to (the kernels only read them).
    """
    try:
        return _compile_cached(route, mode)
    except TypeError:  # an unhashable stage (custom subclass): compile afresh
        return _compile(route, mode)


@functools.lru_cache(maxsize=128)
def _compile_cached(route: Route, mode: str) -> Plan:
    plan = _compile(route, mode)
    for arr in (plan.table, plan.thresholds, plan.cum):
        arr.setflags(write=False)
    return plan


def _compile(route: Route, mode: str) -> Plan:
    masses, exact = route.masses64()
    k = len(masses)
    empty64 = np.zeros(0, dtype=np.uint64)
    empty32 = np.zeros(0, dtype=np.uint32)
    if mode == "faithful":
        root = route.root
        if not isinstance(root, Cascade | Weighted) or not all(isinstance(c, Backend) for c in root.children):
            raise InvalidArgument(
                "faithful mode reproduces one iptables cascade or one set of Envoy weighted clusters; "
                f"this route is {route.describe()}"
            )
        if isinstance(root, Cascade):
            th = np.array(root.thresholds, dtype=np.uint64)  # compared with uint64 draws: no casts
            return Plan("cascade", k, masses, exact, empty64, 0, np.uint64(0), th, empty64, np.uint64(0), k)
        cum = np.cumsum(np.array(root.weights, dtype=np.uint64), dtype=np.uint64)
        return Plan("envoy", k, masses, True, empty64, 0, np.uint64(0), empty32, cum, np.uint64(root.total), k)
    if mode != "per_request":
        raise InvalidArgument(f"unknown kernel mode {mode!r}")
    if k == 2 and masses[0] < _TWO64:
        # backend 1 iff r >= t: P = (2**64 - t) / 2**64 = masses[1] / 2**64 exactly
        t = np.uint64(masses[0])
        return Plan("bernoulli", 2, masses, exact, empty64, 0, t, empty32, empty64, np.uint64(0), 2)
    table, bits = alias_table(masses)
    return Plan("alias", k, masses, exact, table, bits, np.uint64(0), empty32, empty64, np.uint64(0), 1 << bits)
