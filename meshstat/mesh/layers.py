"""The layered view of a call: :class:`Layer` (one decision) and :class:`ClientPath` (one way a call goes).

Defined apart from :mod:`meshstat.mesh.paths` so that the modules that build paths
(:mod:`~meshstat.mesh.scope`, :mod:`~meshstat.mesh.ambient`) need not import the mesh itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field, replace
from typing import Any

from meshstat.model import Backend, Node, Route, Stage, Weighted, share_text
from meshstat.parsers.k8s import Diagnostic

__all__ = ["CLIENT_NAMES_SHOWN", "FAILURES", "ClientList", "ClientPath", "Layer", "client_union", "distinct_leaves",
           "failure_warnings", "name_list", "rename"]

#: ``outcome`` labels of leaves where the call fails (a 500 of an invalid backendRef, 502, 503, 404 NR,
#: a rejected connection, an error): a share above 0 is a warning.
FAILURES = ("500", "502", "503", "404", "reject", "error")


@dataclass(frozen=True, slots=True)
class Layer:
    """One stage of the layered view: what decides, how, and where it is configured.

    A decision that rests on an assumption says so in ``decision`` (``assumes: ...``).
    """

    layer: str
    component: str
    decision: str
    unit: str = ""
    where: str = ""


#: The most client names a path lists (``--format csv|json`` rows, remarks); a longer list shows its first
#: ones and how many more, so that a cluster's output grows with its paths, not paths x clients.
CLIENT_NAMES_SHOWN = 100


def name_list(names: Iterable[str], limit: int = 5, *, sep: str = ", ", total: int | None = None) -> str:
    """``a, b, c and 7 more``: never a line listing thousands of names (reads at most ``limit`` of them,
    and the length of a sized ``names``; ``total``: how many there are, when known)."""
    from itertools import islice

    shown = list(islice(names, limit))
    if total is None:
        total = len(names) if isinstance(names, Sized) else len(shown) + sum(1 for _ in names)
    more = total - len(shown)
    return sep.join(shown) + (f" and {more} more" if more > 0 else "")


def rename(text: str, was: str, now: str) -> str:
    """``text`` with the name ``was`` (whole: not the start of a longer name, ``ns1`` in ``ns10``) written ``now``."""
    import re

    if was == now or was not in text:
        return text
    return re.sub(re.escape(was) + r"(?![\w.-])", lambda _: now, text)


class ClientList(Sequence[str]):
    """The client names of a path: runs of names shared by every path, each less a few positions.

    A cluster's clients of one kind (every sidecar workload, say) are the same for all of its
    Services but each Service's own workloads; a path keeps the run once (a tuple shared by every
    path) and the positions it leaves out, so that building the paths of 10,000 Services costs
    the Services, not Services x clients. It reads as the sequence of names it stands for
    (``len``, iteration, ``in``, ``==`` with a list).
    """

    __slots__ = ("_n", "_parts")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._parts: list[tuple[tuple[str, ...], frozenset[int]]] = []
        self._n = 0
        self.add_run(tuple(names))

    @classmethod
    def run(cls, names: tuple[str, ...], drop: frozenset[int] = frozenset()) -> ClientList:
        """``names`` (a shared tuple) less the positions in ``drop``."""
        out = cls()
        out.add_run(names, drop)
        return out

    def add_run(self, names: tuple[str, ...], drop: frozenset[int] = frozenset()) -> None:
        """Append ``names`` (a shared tuple) less the positions in ``drop``."""
        if len(drop) < len(names):
            self._parts.append((names, drop))
            if self._n >= 0:
                self._n += len(names) - len(drop)

    def add_runs(self, runs: Iterable[tuple[tuple[str, ...], frozenset[int]]]) -> None:
        """Append each ``(names, drop)`` of ``runs``, as :meth:`add_run` does, in one step (a cluster's
        hundreds of namespace groups per path: the length is counted when asked)."""
        self._parts.extend(runs)
        self._n = -1

    def __len__(self) -> int:
        if self._n < 0:
            self._n = sum(len(names) - len(drop) for names, drop in self._parts)
        return self._n

    def extend(self, other: Iterable[str]) -> None:
        """Append ``other``'s names (its runs, when it is a ClientList)."""
        if isinstance(other, ClientList):
            n = len(other)
            self._parts.extend(other._parts)
            if self._n >= 0:
                self._n += n
        else:
            self.add_run(tuple(other))

    def __iter__(self) -> Iterator[str]:
        for run, drop in self._parts:
            if drop:
                yield from (name for i, name in enumerate(run) if i not in drop)
            else:
                yield from run

    def __getitem__(self, i: Any) -> Any:
        return list(self)[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ClientList | list | tuple):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ClientList({list(self)!r})"


def client_union(lists: Iterable[Sequence[str]]) -> list[str]:
    """The names of many client lists, each once, in the order they first appear.

    :class:`ClientList` runs shared by many lists are read once each (a name the first list to
    hold a run leaves out counts from the next list that keeps it), so a cluster's paths cost
    their runs, not paths x clients; other sequences are read name by name.
    """
    first: dict[str, tuple[int, int, int]] = {}
    runs: dict[int, tuple[tuple[str, ...], tuple[int, int], frozenset[int], dict[int, tuple[int, int, int]]]] = {}
    pending: dict[int, set[int]] = {}  # id(run) -> positions the lists so far all left out
    for k, names in enumerate(lists):
        if not isinstance(names, ClientList):
            for i, name in enumerate(names):
                first.setdefault(name, (k, -1, i))
            continue
        for j, (run, drop) in enumerate(names._parts):
            rid = id(run)
            got = runs.get(rid)
            if got is None:
                runs[rid] = (run, (k, j), drop, {})
                if drop:
                    pending[rid] = set(drop)
                continue
            left = pending.get(rid)
            if left:
                kept = [i for i in left if i not in drop]
                for i in kept:
                    got[3][i] = (k, j, i)
                left.difference_update(kept)
    for run, (k0, j0), drop0, later in runs.values():
        for i, name in enumerate(run):
            key = later.get(i) if i in drop0 else (k0, j0, i)
            if key is not None and (name not in first or key < first[name]):
                first[name] = key
    return sorted(first, key=first.__getitem__)


@dataclass
class ClientPath:
    """One way a call to a service can go, with its Route and who takes it.

    ``kind`` is one of ``"kube-proxy"`` (no mesh), ``"sidecar"``, ``"uid-1337"``,
    ``"envoy-dump"``, ``"ambient"`` (ztunnel only) and ``"ambient-waypoint"``.
    """

    kind: str
    label: str
    route: Route
    clients: ClientList = field(default_factory=ClientList)
    layers: list[Layer] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.clients, ClientList):
            self.clients = ClientList(self.clients)


def failure_warnings(paths: Iterable[ClientPath], target: str) -> list[Diagnostic]:
    """A warning per failing leaf with a share above 0 on each path.

    ``label: 1/2 (50%) of requests to T fail: <leaf>``, with the leaf's file and line.
    """
    out = []
    for p in paths:
        root = p.route.root
        what = "connections" if isinstance(root, Stage) and root.unit == "connection" else "requests"
        shares, exact = p.route.expected_shares()
        for b, s in zip(p.route.backends(), shares, strict=True):
            if dict(b.labels).get("outcome") in FAILURES and s > 0:
                pv = b.provenance
                text = share_text(s, exact)
                out.append(Diagnostic("warning", f"{p.label}: {text} ({float(s) * 100:.4g}%) of {what} to "
                                      f"{target} fail: {b.name}", pv.source if pv else None,
                                      pv.line if pv else None))
    return out


def distinct_leaves(kids: Sequence[Node], tags: Sequence[str]) -> list[Node]:
    """The children of one split, a leaf that an earlier child already has renamed ``name via tag``.

    Two destinations of a split may reach the same pod: two subsets whose labels select it, two
    Services with the same selector. Envoy then has two clusters with that endpoint in each; the
    pod's share is the sum of both, and the model counts each cluster's copy apart (a route's leaves
    have distinct names), named after its destination (``tag``: the subset, host or backendRef).
    """
    seen: set[str] = set()
    out: list[Node] = []
    for kid, tag in zip(kids, tags, strict=True):
        kid = _renamed(kid, seen, tag)
        _names(kid, seen)
        out.append(kid)
    return out


def _names(node: Node, into: set[str]) -> None:
    if isinstance(node, Backend):
        into.add(node.name)
    else:
        for c in node.children:
            _names(c, into)


def _renamed(node: Node, seen: set[str], tag: str) -> Node:
    if isinstance(node, Backend):
        if node.name not in seen:
            return node
        name, i = f"{node.name} via {tag}", 2
        while name in seen:
            name, i = f"{node.name} via {tag} #{i}", i + 1
        return replace(node, name=name)
    kids = tuple(_renamed(c, seen, tag) for c in node.children)
    return node if all(a is b for a, b in zip(kids, node.children, strict=True)) else replace(node, children=kids)


def with_fault_abort(node: Node, abort: tuple[int, str] | None, label: str, where: str, layers: list[Layer],
                     at: int) -> Node:
    """``node`` behind an http rule's ``fault.abort`` (:attr:`meshstat.parsers.k8s.HTTPRoute.abort`): Envoy's
    fault filter answers that share of the requests itself, before the route picks a cluster, and routes the
    rest (``source/extensions/filters/http/fault/fault_filter.cc``: the abort decision per request). Its
    :class:`Layer` goes in at ``at``, before the route's."""
    if abort is None or abort[0] <= 0:
        return node
    per_million, answer = abort
    layers.insert(at, Layer("Envoy fault filter", label, f"fault.abort answers {per_million / 10_000:g}% of the "
                            f"requests {answer} before routing", "request", where))
    aborted = Backend(name=f"fault abort {answer}", labels=(("outcome", answer),))
    if per_million >= 1_000_000:
        return aborted
    return Weighted(children=(aborted, node), weights=(per_million, 1_000_000 - per_million), unit="request",
                    name=f"{label} fault abort")
