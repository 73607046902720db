"""A trace as a tree: under each branch the probabilities sum to 1, along a branch they multiply to the path's.

Checked twice on the article's dump (``--uid 1337`` and ``--uid 0``) and on kube-proxy dumps (client-IP affinity
with its ``-m recent`` history; a random cascade over four endpoints; an nftables ruleset): on the tree
structure (:func:`meshstat.report.netfilter.trace_tree`) and on the text a person reads (``meshstat trace``),
parsed back line by line.
"""

from __future__ import annotations

import io
import re
from fractions import Fraction
from pathlib import Path

import pytest

from meshstat import netfilter as nf
from meshstat.cli import main
from meshstat.report.netfilter import TraceLeaf, TraceSplit, trace_tree

DATA = Path(__file__).resolve().parents[1] / "data" / "iptables"
SEED = DATA / "seed-front-tomcat-pod.iptables-save"
AFFINITY = DATA / "kube-proxy-iptables-affinity-etp-local-terminating.iptables-save"
FOUR = DATA / "kube-proxy-iptables-generated-4-5-10ep.iptables-save"
NFT = DATA / "kube-proxy-nftables-overall.nft"

#: (file, dialect, destination, options of the command line, Packet fields, trace keywords)
CASES = {
    "seed uid 1337": (SEED, "iptables", "10.108.203.9:9999", ["--uid", "1337"], {"uid": 1337}, {}),
    "seed uid 0": (SEED, "iptables", "10.108.203.9:9999", ["--uid", "0"], {"uid": 0}, {}),
    "kube-proxy affinity": (AFFINITY, "iptables", "172.30.1.1:80", ["--chain", "KUBE-SERVICES"], {},
                            {"chain": "KUBE-SERVICES"}),
    "kube-proxy 4 endpoints": (FOUR, "iptables", "10.96.0.50:80", ["--chain", "KUBE-SERVICES"], {},
                               {"chain": "KUBE-SERVICES"}),
    "kube-proxy nft": (NFT, "nft", "172.30.0.44:80", [], {}, {}),
}  # fmt: skip


def result(case: str) -> nf.TraceResult:
    path, dialect, dst, _, fields, kw = CASES[case]
    ip, _, port = dst.partition(":")
    return nf.trace(nf.load(str(path), dialect), nf.Packet(dst=ip, dport=int(port), **fields), **kw)


def walk(items: tuple, above: Fraction, seen: list) -> None:
    """Every level sums to 1; every leaf's paths, per assumption left out of the tree, multiply to ``above``."""
    assert sum((x.probability for x in items), Fraction(0)) == 1
    for x in items:
        here = above * x.probability
        if isinstance(x, TraceLeaf):
            by_given: dict[tuple[str, ...], Fraction] = {}
            for p, g in zip(x.paths, x.given, strict=True):
                assert str(p.verdict) == str(x.verdict)
                by_given[g] = by_given.get(g, Fraction(0)) + p.probability
                seen.append(p)
            assert set(by_given.values()) == {here}, (x.verdict, by_given, here)
        else:
            assert isinstance(x, TraceSplit)
            walk(x.yes, here, seen)
            walk(x.no, here, seen)


@pytest.mark.parametrize("case", list(CASES))
def test_tree_sums_to_one_and_multiplies_to_the_paths(case: str) -> None:
    r = result(case)
    seen: list = []
    walk(trace_tree(r), Fraction(1), seen)
    assert sorted(map(id, seen)) == sorted(map(id, r.paths))  # each path in exactly one leaf


def test_cases_branch_on_unknowns_and_random_rules() -> None:
    """The cases are not trivial: unknowns (packet fields, client history) and random splits below them."""

    def labels(items: tuple) -> set[str]:
        out: set[str] = set()
        for x in items:
            if isinstance(x, TraceSplit):
                out |= {x.label} | labels(x.yes) | labels(x.no)
        return out

    assert {"source in 127.0.0.6/32", "out-if lo"} <= labels(trace_tree(result("seed uid 1337")))
    assert "gid 1337" in labels(trace_tree(result("seed uid 0")))
    aff = labels(trace_tree(result("kube-proxy affinity")))
    assert sum(lab.startswith("client seen before (recent list KUBE-SEP-") for lab in aff) == 3
    four = trace_tree(result("kube-proxy 4 endpoints"))
    leaves = [x for x in four if isinstance(x, TraceLeaf)]
    assert len(leaves) == 4 and all(x.probability != 1 for x in leaves)


_LINE = re.compile(r"^(?P<guide>(?:[│ ] {3}|[├└]── )*)(?P<label>.*)$")
_PROB = re.compile(r"^(?P<p>\d+(?:/\d+)?)(?: \(≈[^)]*\))?  (?P<rest>.+)$")


def parse(text: str) -> list[tuple[int, str]]:
    """``(depth, label)`` of every line of a drawn tree (the root at depth 0)."""
    out = []
    for line in text.splitlines():
        m = _LINE.match(line)
        assert m is not None
        out.append((len(m.group("guide")) // 4, m.group("label")))
    return out


def children(lines: list[tuple[int, str]], i: int) -> list[int]:
    depth, out = lines[i][0], []
    for j in range(i + 1, len(lines)):
        if lines[j][0] <= depth:
            break
        if lines[j][0] == depth + 1:
            out.append(j)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_the_drawn_tree_reads_the_same(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The text: probabilities under each line sum to 1, and along each branch multiply to a path's."""
    path, dialect, dst, opts, _, _ = CASES[case]
    monkeypatch.setenv("COLUMNS", "100")
    out, err = io.StringIO(), io.StringIO()
    assert main(["trace", f"--{dialect}", str(path), "--dst", dst, *opts], stdout=out, stderr=err) == 0, err.getvalue()
    text = out.getvalue()
    body = text.splitlines()
    end = next((i for i, line in enumerate(body) if line.startswith(("note:", "warning:"))), len(body))
    tree = body[:end]  # the remarks follow the tree
    assert all(len(line) <= 100 for line in text.splitlines())
    lines = parse("\n".join(tree))
    r = result(case)
    probs = {str(p.verdict): set() for p in r.paths}
    for p in r.paths:
        probs[str(p.verdict)].add(p.probability)

    def check(i: int, above: Fraction) -> None:
        kids = children(lines, i)
        matched = [(j, _PROB.match(lines[j][1])) for j in kids]
        with_p = [(j, m) for j, m in matched if m is not None]
        if with_p:
            assert len(with_p) == len(kids), lines[i]  # a probability on every line under it, or on none
            assert sum(Fraction(m.group("p")) for _, m in with_p) == 1, lines[i]
            for j, m in with_p:
                here = above * Fraction(m.group("p"))
                rest = m.group("rest")
                if rest.endswith("?"):
                    yes, no = children(lines, j)
                    assert (lines[yes][1], lines[no][1]) == ("yes", "no")
                    check(yes, here)
                    check(no, here)
                else:
                    assert here in probs[rest], (rest, here, probs[rest])
        else:  # an unknown the whole branch reaches: its two sides
            labels = [lines[j][1] for j in kids]
            assert len(kids) == 2 and labels[0].endswith(": yes") and labels[1] == labels[0][:-5] + ": no", labels
            for j in kids:
                check(j, above)

    check(0, Fraction(1))
    assert lines[0][1].startswith("tcp to " + dst)
