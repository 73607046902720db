"""The nft ``numgen random mod N`` split as a model stage, with the kernel's exact slot sizes.

:class:`Numgen` is the :class:`meshstat.model.Stage` of kube-proxy's nftables
mode (``numgen random mod N vmap { slots : goto endpoint }``). How many of the
``2**32`` random values land in a slot, or in a range of slots, is a closed
form (kernel ``reciprocal_scale``, ``net/netfilter/nft_numgen.c``):
:func:`numgen_range_count` costs the same for ``mod 2`` and ``mod 4294967295``,
and every consumer (this stage, the tracer, kube-proxy's reader, the oracle)
works on slot *ranges*, so the work is bounded by the size of the ruleset,
never by the modulus. Pure Python: it belongs with the model's stages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from meshstat.model import stages as model
from meshstat.errors import InvalidArgument, ModelError

__all__ = ["MAX_LISTED_SLOTS", "Numgen", "numgen_gaps", "numgen_range_count", "numgen_slot_counts"]

_TWO32 = 1 << 32
#: Largest modulus :func:`numgen_slot_counts` lists slot by slot (use :func:`numgen_range_count` above it).
MAX_LISTED_SLOTS = 1 << 20


def _first(s: int, modulus: int, bits: int) -> int:
    """Smallest ``r`` with ``(r * N) >> bits >= s``, i.e. ``ceil(s * 2**bits / N)`` (``s <= N``)."""
    return -((-s << bits) // modulus)


def _check_modulus(modulus: int, bits: int) -> None:
    if not 1 <= modulus < 1 << bits:
        raise InvalidArgument(f"numgen modulus must be in [1, {(1 << bits) - 1}], got {modulus}")


def numgen_range_count(modulus: int, lo: int, hi: int, *, bits: int = 32) -> int:
    """How many of the ``2**bits`` values ``r`` give a slot in ``lo..hi`` (``0 <= lo <= hi < N``).

    The kernel picks slot ``reciprocal_scale(r, N) = (r * N) >> 32`` for a
    uniform 32-bit ``r`` (``include/linux/math.h: reciprocal_scale``, formerly
    ``kernel.h``; ``net/netfilter/nft_numgen.c: nft_ng_random_gen``). Slot
    ``s`` is chosen exactly by ``r`` in ``[ceil(s 2**32 / N), ceil((s+1) 2**32 / N))``,
    so a range of slots has ``ceil((hi+1) 2**32 / N) - ceil(lo 2**32 / N)``
    values: two integer divisions whatever the modulus.
    """
    _check_modulus(modulus, bits)
    if not 0 <= lo <= hi < modulus:
        raise InvalidArgument(f"numgen slot range {lo}-{hi} is outside 0..{modulus - 1}")
    return _first(hi + 1, modulus, bits) - _first(lo, modulus, bits)


def numgen_slot_counts(modulus: int) -> tuple[int, ...]:
    """How many of the 2**32 values of ``r`` give each slot of ``numgen random mod N``, slot by slot.

    Slot ``s`` gets ``ceil((s+1) 2**32 / N) - ceil(s 2**32 / N)`` values
    (:func:`numgen_range_count`). A list of ``N`` numbers is only built for
    ``N <= MAX_LISTED_SLOTS``; larger moduli are refused (count ranges instead).
    """
    return _slot_counts(modulus, 32)


def _slot_counts(modulus: int, bits: int) -> tuple[int, ...]:
    """Slot sizes of ``(r * N) >> bits`` for uniform ``bits``-bit ``r`` (bits=32: the kernel's)."""
    if modulus < 1:
        raise InvalidArgument(f"numgen modulus must be >= 1, got {modulus}")
    if modulus > MAX_LISTED_SLOTS:
        raise InvalidArgument(
            f"numgen mod {modulus}: a list of {modulus} slot counts is not built (at most {MAX_LISTED_SLOTS}); "
            "count slot ranges with numgen_range_count"
        )
    _check_modulus(modulus, bits)
    edges = [_first(s, modulus, bits) for s in range(modulus + 1)]
    return tuple(b - a for a, b in zip(edges, edges[1:], strict=False))


def numgen_gaps(modulus: int, ranges: Iterable[tuple[int, int]], offset: int = 0) -> list[tuple[int, int]]:
    """The slot ranges of ``offset..offset+N-1`` that ``ranges`` leave out, in order.

    ``ranges`` are inclusive ``(lo, hi)`` pairs that must not overlap
    (:class:`meshstat.errors.ModelError` otherwise); the work is ``O(k log k)``
    for ``k`` ranges, independent of the modulus.
    """
    out: list[tuple[int, int]] = []
    nxt = offset
    for lo, hi in _sorted_disjoint(ranges, modulus, offset):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= offset + modulus - 1:
        out.append((nxt, offset + modulus - 1))
    return out


def _sorted_disjoint(ranges: Iterable[tuple[int, int]], modulus: int, offset: int) -> list[tuple[int, int]]:
    items = sorted(ranges)
    prev_hi = None
    for lo, hi in items:
        if lo > hi or lo < offset or hi >= offset + modulus:
            raise ModelError(f"numgen slot range {lo}-{hi} is outside {offset}..{offset + modulus - 1}")
        if prev_hi is not None and lo <= prev_hi:
            raise ModelError(f"numgen slot {lo} is mapped twice")
        prev_hi = hi
    return items


def _slot_text(gaps: Sequence[tuple[int, int]], limit: int = 8) -> str:
    parts = [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in gaps[:limit]]
    return ", ".join(parts) + (", ..." if len(gaps) > limit else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class Numgen(model.Stage):
    """nft ``numgen random mod N [offset K] vmap|map { slots : outcome }``.

    ``slots[i]`` lists the slot ranges ``(lo, hi)`` (inclusive, offset
    included) that lead to ``children[i]``; a slot no element names makes the
    rule fall through (put a :data:`meshstat.model.FALL_THROUGH` backend there
    to model it). Shares are exact, with the kernel's ``reciprocal_scale`` bias
    (see :func:`numgen_range_count`); building and evaluating the stage costs
    ``O(k log k)`` for ``k`` ranges, whatever the modulus.
    """

    modulus: int = 1
    offset: int = 0
    slots: tuple[tuple[tuple[int, int], ...], ...] = ()
    unit: model.Unit = "connection"

    def __post_init__(self) -> None:
        if not self.children:
            raise ModelError("a numgen stage needs at least one outcome")
        if not 1 <= self.modulus < _TWO32:
            raise ModelError(f"numgen modulus must be in [1, {_TWO32 - 1}], got {self.modulus}")
        if len(self.slots) != len(self.children):
            raise ModelError(f"{len(self.slots)} slot lists for {len(self.children)} numgen outcomes")
        gaps = numgen_gaps(self.modulus, (r for ranges in self.slots for r in ranges), self.offset)
        if gaps:
            raise ModelError(f"numgen slots {_slot_text(gaps)} lead nowhere; add a fall-through outcome for them")

    @property
    def policy(self) -> str:  # noqa: D102
        return "numgen"

    def counts(self) -> tuple[int, ...]:
        """Values of ``r`` (out of ``2**32``) leading to each child."""
        off, n = self.offset, self.modulus
        return tuple(sum(numgen_range_count(n, lo - off, hi - off) for lo, hi in ranges) for ranges in self.slots)

    def shares(self) -> tuple[Fraction, ...]:
        """Exact probability of each child: ``counts / 2**32``."""
        return tuple(Fraction(c, _TWO32) for c in self.counts())

    def masses64(self) -> tuple[int, ...]:
        """``counts * 2**32``: exact, sums to ``2**64``."""
        return tuple(c * _TWO32 for c in self.counts())

    def masses64_exact(self) -> bool:  # noqa: D102
        return True
