"""nft ``numgen random mod N``: slot counts in closed form, ranges, huge moduli in trace and services."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshstat import kubeproxy as kp
from meshstat import model
from meshstat import netfilter as nf
from meshstat.errors import ConfigParseError, InvalidArgument, ModelError
from meshstat.model.numgen import _slot_counts, numgen_gaps
from meshstat.oracle.netns import find_nft_numgen, numgen_slot_shares
from meshstat.parsers.netfilter.nft import parse_nft

DATA = Path(__file__).parents[1] / "data" / "iptables"
TWO32 = 1 << 32
BIG = (1 << 32) - 1  # the largest modulus nft accepts


def _brute(modulus: int, bits: int) -> np.ndarray:
    """Slot sizes by enumerating every ``bits``-bit value through reciprocal_scale, literally."""
    r = np.arange(1 << bits, dtype=np.uint64)
    return np.bincount(((r * np.uint64(modulus)) >> np.uint64(bits)).astype(np.int64), minlength=modulus)


@given(st.integers(1, 5000), st.data())
def test_closed_form_equals_brute_force(modulus: int, data: st.DataObject) -> None:
    """Every slot and every range of slots, against the enumeration of all 2**16 values."""
    brute = _brute(modulus, 16)
    assert tuple(int(x) for x in brute) == _slot_counts(modulus, 16)
    lo = data.draw(st.integers(0, modulus - 1))
    hi = data.draw(st.integers(lo, modulus - 1))
    assert nf.numgen_range_count(modulus, lo, hi, bits=16) == int(brute[lo : hi + 1].sum())


@given(st.integers(1, BIG), st.data())
def test_closed_form_at_32_bits_sits_on_the_kernels_boundaries(modulus: int, data: st.DataObject) -> None:
    """At 32 bits every range [lo, hi] starts at the first r the kernel maps to lo and ends before hi+1's."""
    lo = data.draw(st.integers(0, modulus - 1))
    hi = data.draw(st.integers(lo, modulus - 1))
    count = nf.numgen_range_count(modulus, lo, hi)
    first = -((-lo * TWO32) // modulus)  # ceil(lo * 2**32 / N)
    last = first + count - 1
    assert (first * modulus) >> 32 == lo and (first == 0 or ((first - 1) * modulus) >> 32 == lo - 1)
    assert (last * modulus) >> 32 == hi and (last == TWO32 - 1 or ((last + 1) * modulus) >> 32 == hi + 1)
    assert nf.numgen_range_count(modulus, 0, modulus - 1) == TWO32


def test_slot_lists_are_bounded_and_ranges_are_not() -> None:
    assert nf.numgen_slot_counts(3) == (1431655766, 1431655765, 1431655765)
    with pytest.raises(InvalidArgument, match="count slot ranges"):
        nf.numgen_slot_counts(BIG)
    assert nf.numgen_range_count(BIG, 0, (1 << 31) - 1) == (1 << 31) + 1
    assert nf.numgen_range_count(BIG, 1 << 31, BIG - 1) == (1 << 31) - 1
    with pytest.raises(InvalidArgument, match="outside"):
        nf.numgen_range_count(4, 2, 4)


def test_gaps_are_ranges() -> None:
    assert numgen_gaps(BIG, [(5, 9), (0, 1)]) == [(2, 4), (10, BIG - 1)]
    assert numgen_gaps(10, [(10, 19)], offset=10) == []
    with pytest.raises(ModelError, match="mapped twice"):
        numgen_gaps(10, [(0, 5), (5, 6)])


def test_stage_with_a_huge_modulus() -> None:
    b = (model.Backend(name="a"), model.Backend(name="b"))
    s = nf.Numgen(children=b, modulus=BIG, slots=(((0, (1 << 31) - 1),), ((1 << 31, BIG - 1),)))
    assert s.shares() == (Fraction((1 << 31) + 1, TWO32), Fraction((1 << 31) - 1, TWO32))
    assert sum(s.masses64()) == 1 << 64
    with pytest.raises(ModelError, match=r"slots 5-4294967294 lead nowhere"):
        nf.Numgen(children=b, modulus=BIG, slots=(((0, 2),), ((3, 4),)))
    with pytest.raises(ModelError, match="mapped twice"):
        nf.Numgen(children=b, modulus=BIG, slots=(((0, 9),), ((9, BIG - 1),)))


HUGE = (DATA / "nft-numgen-mod-4294967295.nft").read_text()
# kube-proxy's layout with a two-range map over the largest modulus; loaded as is by nft 1.0.6 (kernel 6.18).
# The last slot, 4294967294, has no element.


def test_huge_modulus_in_trace_and_services() -> None:
    """A two-range map over mod 4294967295: exact shares from the ranges, nothing enumerated."""
    a = Fraction((1 << 31) + 1, TWO32)  # slots 0 .. 2**31-1
    last = Fraction(1, TWO32)  # slot 4294967294 alone: ceil(2**32) - ceil((N-1) 2**32 / N) = 1 value
    b = 1 - a - last
    rs = parse_nft(HUGE, "huge.nft")
    r = nf.trace(rs, nf.Packet(dst="172.30.0.44", dport=80))
    assert [(p.probability, str(p.verdict)) for p in r.paths] == [
        (a, "DNAT to 10.180.0.4:80"), (b, "DNAT to 10.180.0.5:80"), (last, "no NAT: falls through to the next hook")
    ]
    (info,) = kp.services(rs)
    assert [(e.address, e.share, e.slots) for e in info.endpoints] == [
        ("10.180.0.4:80", a, ((0, (1 << 31) - 1),)), ("10.180.0.5:80", b, ((1 << 31, BIG - 2),))
    ]
    assert info.stage.children[-1].name == model.FALL_THROUGH
    assert info.stage.slots[-1] == ((BIG - 1, BIG - 1),)
    assert kp.service_route(info).exact_shares() == (a, b, last)


def test_trace_groups_ranges_with_the_same_target() -> None:
    text = HUGE.replace(
        "0-2147483647 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80, ",
        "0-9 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80, "
        "10-19 : goto endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80, "
        "20-2147483647 : goto endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80, ",
    )
    r = nf.trace(parse_nft(text, "g.nft"), nf.Packet(dst="172.30.0.44", dport=80))
    assert [str(p.verdict) for p in r.paths] == [
        "DNAT to 10.180.0.4:80", "DNAT to 10.180.0.5:80", "no NAT: falls through to the next hook"
    ]
    four = nf.numgen_range_count(BIG, 0, 9) + nf.numgen_range_count(BIG, 20, (1 << 31) - 1)
    assert r.paths[0].probability == Fraction(four, TWO32)
    assert r.total == 1


def test_parser_refuses_overlapping_slots_as_nft_does() -> None:
    text = "table ip t {\n\tchain a {\n\t\taccept\n\t}\n\tchain c {\n" \
           "\t\tnumgen random mod 4 vmap { 0-2 : goto a, 2-3 : goto a }\n\t}\n}\n"  # fmt: skip
    with pytest.raises(ConfigParseError, match="numgen slots 0-2 and 2-3 overlap") as err:
        parse_nft(text, "o.nft")
    assert err.value.line == 6


def test_oracle_reads_ranges() -> None:
    ng = find_nft_numgen(HUGE.replace("4294967293", "4294967294"), address="172.30.0.44:80")
    assert ng.slots[0] == (0, (1 << 31) - 1, "endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80")
    assert ng.shares() == {"10.180.0.4:80": Fraction((1 << 31) + 1, TWO32),
                           "10.180.0.5:80": Fraction((1 << 31) - 1, TWO32)}  # fmt: skip
    assert numgen_slot_shares(BIG, [(0, (1 << 31) - 1)]) == (Fraction((1 << 31) + 1, TWO32),)
    assert numgen_slot_shares(3) == tuple(Fraction(c, TWO32) for c in nf.numgen_slot_counts(3))
    with pytest.raises(ConfigParseError, match="no entry for slots 4294967294-4294967294"):
        find_nft_numgen(HUGE, address="172.30.0.44:80")
