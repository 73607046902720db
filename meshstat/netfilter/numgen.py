"""The nft ``numgen random mod N`` split as a model stage, with the kernel's exact slot sizes.

:class:`Numgen` is the :class:`meshstat.model.Stage` of kube-proxy's nftables
mode (``numgen random mod N vmap { slots : goto endpoint }``);
:func:`numgen_slot_counts` gives how many of the ``2**32`` random values land
in each slot (kernel ``reciprocal_scale``, ``net/netfilter/nft_numgen.c``).
Pure Python: it belongs with the model's stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from meshstat import model
from meshstat.errors import InvalidArgument, ModelError

__all__ = ["Numgen", "numgen_slot_counts"]

_TWO32 = 1 << 32


def numgen_slot_counts(modulus: int) -> tuple[int, ...]:
    """How many of the 2**32 values of ``r`` give each slot of ``numgen random mod N``.

    The kernel computes ``reciprocal_scale(r, N) = (r * N) >> 32``
    (``include/linux/kernel.h``; ``net/netfilter/nft_numgen.c: nft_ng_random_gen``),
    so slot ``s`` gets ``ceil((s+1) 2**32 / N) - ceil(s 2**32 / N)`` values.
    """
    return _slot_counts(modulus, 32)


def _slot_counts(modulus: int, bits: int) -> tuple[int, ...]:
    """Slot sizes of ``(r * N) >> bits`` for uniform ``bits``-bit ``r`` (bits=32: the kernel's)."""
    if modulus < 1:
        raise InvalidArgument(f"numgen modulus must be >= 1, got {modulus}")
    one = 1 << bits

    def first(s: int) -> int:  # smallest r with (r*N) >> bits >= s, i.e. ceil(s * 2**bits / N)
        return -((-s * one) // modulus)

    return tuple(min(first(s + 1), one) - first(s) for s in range(modulus))


@dataclass(frozen=True, slots=True, kw_only=True)
class Numgen(model.Stage):
    """nft ``numgen random mod N [offset K] vmap|map { slots : outcome }``.

    ``slots[i]`` lists the slot ranges ``(lo, hi)`` (inclusive, offset
    included) that lead to ``children[i]``; a slot no element names makes the
    rule fall through (put a :data:`meshstat.model.FALL_THROUGH` backend there
    to model it). Shares are exact, with the kernel's ``reciprocal_scale`` bias
    (see :func:`numgen_slot_counts`).
    """

    modulus: int = 1
    offset: int = 0
    slots: tuple[tuple[tuple[int, int], ...], ...] = ()
    unit: model.Unit = "connection"

    def __post_init__(self) -> None:
        if not self.children:
            raise ModelError("a numgen stage needs at least one outcome")
        if self.modulus < 1:
            raise ModelError(f"numgen modulus must be >= 1, got {self.modulus}")
        if len(self.slots) != len(self.children):
            raise ModelError(f"{len(self.slots)} slot lists for {len(self.children)} numgen outcomes")
        seen: set[int] = set()
        for ranges in self.slots:
            for lo, hi in ranges:
                if lo > hi or lo < self.offset or hi >= self.offset + self.modulus:
                    raise ModelError(
                        f"numgen slot range {lo}-{hi} is outside {self.offset}..{self.offset + self.modulus - 1}"
                    )
                for s in range(lo, hi + 1):
                    if s in seen:
                        raise ModelError(f"numgen slot {s} is mapped twice")
                    seen.add(s)
        if len(seen) != self.modulus:
            missing = sorted(set(range(self.offset, self.offset + self.modulus)) - seen)
            raise ModelError(
                f"numgen slots {missing[:8]} lead nowhere; add a fall-through outcome for them"
            )

    @property
    def policy(self) -> str:  # noqa: D102
        return "numgen"

    def counts(self) -> tuple[int, ...]:
        """Values of ``r`` (out of ``2**32``) leading to each child."""
        per_slot = numgen_slot_counts(self.modulus)
        return tuple(
            sum(per_slot[s - self.offset] for lo, hi in ranges for s in range(lo, hi + 1)) for ranges in self.slots
        )

    def shares(self) -> tuple[Fraction, ...]:
        """Exact probability of each child: ``counts / 2**32``."""
        return tuple(Fraction(c, _TWO32) for c in self.counts())

    def masses64(self) -> tuple[int, ...]:
        """``counts * 2**32``: exact, sums to ``2**64``."""
        return tuple(c * _TWO32 for c in self.counts())

    def masses64_exact(self) -> bool:  # noqa: D102
        return True
