"""The sidecar client groups a Service's rows are worked out for: the cost of a Service grows with the namespaces its
rules single out and the kinds of Sidecar resource in the cluster, not with the number of namespaces.

A sidecar's VirtualService, DestinationRule and scope for a Service depend on its namespace only through the
objects that name namespaces (:func:`meshstat.mesh.clients.rule_namespaces`: exports, ``sourceNamespace``, the
namespaces of the Service and of its rules, ...) and through the Sidecar resource its workload applies. So, for one
Service, :meth:`SidecarGroups.split` gives:

* each client group (:class:`~meshstat.audit.core.ClientClass`) of a namespace the rules single out, alone;
* the groups of the other namespaces that have a Sidecar resource, by the *shape* of the scope their workloads
  get (:func:`meshstat.mesh.scope.scope_shape`: the egress listeners' ports and hosts, with ``./`` written for
  "the client's own namespace", and the outbound policy). Such a namespace is none of those of the Service and
  its rules, so ``./`` hosts import nothing of theirs and two namespaces of one shape see the Service alike: the
  first group of a shape is worked out and stands for the others. A cluster with a default Sidecar in every
  namespace (Istio's advice for large meshes) then costs one evaluation per Service, not one per namespace;
* every other group, which a client of a namespace no object names stands for.

The rows name every group they stand for; a fix that names the first one's Sidecar or namespace names all of
them (:meth:`SidecarGroups.fix_for`). A shape's groups less a Service's singled-out namespaces are a
:class:`ShapePart`, named from the shape's summary (:meth:`SidecarGroups.label`): a row's text costs the few
namespaces it names and leaves out, not the thousands it stands for.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any

from meshstat.audit.core import ClientClass, clients_text
from meshstat.mesh.layers import name_list, rename
from meshstat.mesh.scope import client_scope, scope_shape

__all__ = ["Part", "ShapePart", "SidecarGroups"]


@dataclass(frozen=True)
class ShapePart:
    """The client groups of shape ``k`` (the last: the namespaces no Sidecar names) outside the namespaces
    ``left_out``, ``first`` being the first of them."""

    k: int
    left_out: frozenset[str]
    first: ClientClass


class _Summary:
    """One shape's groups, summed up per namespace: workloads, and the Sidecar resources they apply."""

    def __init__(self, classes: list[ClientClass], refs: list[str]) -> None:
        self.workloads: dict[str, int] = {}
        #: Sidecar ref -> the namespaces where it applies (the root namespace's applies in many)
        self.refs: dict[str, set[str]] = {}
        self.refs_in: dict[str, set[str]] = {}  # namespace -> the Sidecar refs that apply there
        for c, r in zip(classes, refs, strict=True):
            self.workloads[c.namespace] = self.workloads.get(c.namespace, 0) + len(c.workloads)
            if r:
                self.refs.setdefault(r, set()).add(c.namespace)
                self.refs_in.setdefault(c.namespace, set()).add(r)
        self.names = sorted(self.workloads)
        self.total = sum(self.workloads.values())
        self.sorted_refs = sorted(self.refs)

    def refs_outside(self, left: frozenset[str]) -> tuple[int, Any]:
        """How many Sidecar refs apply in a namespace outside ``left``, and those refs by name (lazily)."""
        gone = {r for ns in left for r in self.refs_in.get(ns, ()) if self.refs[r] <= left}
        return len(self.refs) - len(gone), (r for r in self.sorted_refs if r not in gone)


def _counted(sm: _Summary, left: frozenset[str]) -> Any:
    """(namespace, workloads) of a shape's groups outside ``left``, by name."""
    return ((ns, sm.workloads[ns]) for ns in sm.names if ns not in left)


Part = list[ClientClass] | ShapePart


class SidecarGroups:
    """The sidecar client groups of a cluster, indexed for :meth:`split` (see the module docstring)."""

    def __init__(self, mesh: Any, classes: list[ClientClass]) -> None:
        self.classes = classes
        self.by_ns: dict[str, list[int]] = {}
        for i, c in enumerate(classes):
            self.by_ns.setdefault(c.namespace, []).append(i)
        with_sidecar = {s.meta.namespace for s in mesh.scope.sidecars}
        shapes: dict[tuple[Any, ...], list[int]] = {}
        #: the ref of the Sidecar resource each group's workloads apply ("" for none), by group index
        self.sidecar_ref: list[str] = []
        plain = []
        for i, c in enumerate(classes):
            scope = client_scope(mesh, c.workloads[0], c.namespace)
            self.sidecar_ref.append(scope.sidecar.meta.ref if scope.sidecar is not None else "")
            if c.namespace in with_sidecar:
                shapes.setdefault(scope_shape(scope), []).append(i)
            else:
                plain.append(i)
        self.shapes = [*shapes.values(), plain]  # the last: the namespaces no Sidecar names
        self.summaries = [_Summary([classes[i] for i in idx], [self.sidecar_ref[i] for i in idx])
                          for idx in self.shapes]
        self._pos = {id(c): i for i, c in enumerate(classes)}
        seen: dict[str, int] = {}
        for sm in self.summaries:
            for ns in sm.workloads:
                seen[ns] = seen.get(ns, 0) + 1
        #: the namespaces whose groups are in several shapes
        self.in_several = [ns for ns, k in seen.items() if k > 1]
        self._parts: dict[tuple[int, frozenset[str]], tuple[int, ShapePart] | None] = {}

    def _part(self, k: int, special: set[str]) -> tuple[int, ShapePart] | None:
        """The groups of shape ``k`` outside the ``special`` namespaces, with the index of the first (kept per
        shape and namespaces left out: one object for every Service that leaves out the same ones)."""
        workloads = self.summaries[k].workloads
        left = frozenset(ns for ns in special if ns in workloads)
        key = (k, left)
        got = self._parts.get(key)
        if got is None:
            first = next((i for i in self.shapes[k] if self.classes[i].namespace not in left), None)
            got = self._parts[key] = None if first is None else (first, ShapePart(k, left, self.classes[first]))
        return got

    def split(self, special: set[str]) -> list[tuple[ClientClass, Part, str]]:
        """For a Service whose rules single out the ``special`` namespaces: (the group to work out, the groups it
        stands for, kind) in the groups' order; kind is ``own`` (a special namespace's group, alone: a list of
        it), ``shape`` (namespaces with Sidecars of one shape) or ``generic`` (the namespaces no object names:
        work it out for a namespace that no object names); the last two are :class:`ShapePart`."""
        cls = self.classes
        out: list[tuple[int, Part, str]] = [(i, [cls[i]], "own") for ns in special for i in self.by_ns.get(ns, ())]
        last = len(self.shapes) - 1
        for k in range(len(self.shapes)):
            got = self._part(k, special)
            if got is not None:
                out.append((got[0], got[1], "generic" if k == last else "shape"))
        out.sort(key=lambda x: x[0])
        return [(cls[i], part, kind) for i, part, kind in out]

    def classes_of(self, parts: list[Part]) -> list[ClientClass]:
        """Every client group of ``parts``, in order (a shape's are read one by one: for tests and small meshes)."""
        out: list[ClientClass] = []
        for p in parts:
            out.extend(p if isinstance(p, list) else
                       [self.classes[i] for i in self.shapes[p.k] if self.classes[i].namespace not in p.left_out])
        return out

    def label(self, parts: list[Part]) -> tuple[str, int]:
        """:func:`meshstat.audit.core.clients_label` of the groups of ``parts``, from the shapes' summaries.

        A namespace may be in several parts (its groups apply Sidecars of two shapes, or one with a
        workloadSelector and one without): such namespaces, few and found once, are counted once and their
        workloads summed."""
        small: dict[str, int] = {}
        big = []
        for p in parts:
            if isinstance(p, list):
                for c in p:
                    small[c.namespace] = small.get(c.namespace, 0) + len(c.workloads)
            else:
                big.append((self.summaries[p.k], p.left_out))
        n_ns = len(small) + sum(len(sm.workloads) - len(left) for sm, left in big)
        for ns in self.in_several:  # counted in each part that holds it
            n_ns -= max(0, (ns in small) + sum(ns in sm.workloads and ns not in left for sm, left in big) - 1)
        n = sum(small.values()) + sum(sm.total - sum(sm.workloads[ns] for ns in left) for sm, left in big)
        merged = heapq.merge(sorted(small.items()), *(_counted(sm, left) for sm, left in big))
        names = ((ns, sum(k for _, k in same)) for ns, same in groupby(merged, key=itemgetter(0)))
        return clients_text(names, n_ns, n), n

    def fix_for(self, fix: str, part: ShapePart) -> str:
        """``fix`` (written for the first group of ``part``) for all of its groups: the first one's Sidecar and
        namespace, where named, become the list of theirs."""
        sm = self.summaries[part.k]
        first, left = part.first, part.left_out
        n_ns = len(sm.workloads) - len(left)
        n_refs, refs = sm.refs_outside(left)
        if n_ns < 2 and n_refs < 2:
            return fix
        ref = self.sidecar_ref[self._pos[id(first)]]
        spaces = (ns for ns in sm.names if ns not in left)
        names = ((f"Sidecar {ref}", f"Sidecars {name_list(refs, 3, total=n_refs)}" if n_refs > 1 else f"Sidecar {ref}"),
                 (f"namespace {first.namespace}",
                  f"namespaces {name_list(spaces, 3, total=n_ns)}" if n_ns > 1 else f"namespace {first.namespace}"))
        for was, now in names:
            fix = rename(fix, was, now)
        return fix

