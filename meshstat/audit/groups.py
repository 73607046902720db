"""The sidecar client groups a Service's rows are worked out for: the cost of a Service grows with the namespaces its
rules single out and the kinds of Sidecar resource in the cluster, not with the number of namespaces.

A sidecar's VirtualService, DestinationRule and scope for a Service depend on its namespace only through the
objects that name namespaces (:func:`meshstat.mesh.clients.rule_namespaces`: exports, ``sourceNamespace``, the
namespaces of the Service and of its rules, ...) and through the Sidecar resource its workload applies. So, for one
Service, :meth:`SidecarGroups.split` gives:

* each client group (:class:`~meshstat.audit.core.ClientClass`) of a namespace the rules single out, alone;
* the groups of the other namespaces that have a Sidecar resource, by the *shape* of the scope their workloads
  get (:func:`scope_shape`: the egress listeners' ports and hosts, with ``./`` written for "the client's own
  namespace", and the outbound policy). Such a namespace is none of those of the Service and its rules, so
  ``./`` hosts import nothing of theirs and two namespaces of one shape see the Service alike: the first group of a
  shape is worked out and stands for the others. A cluster with a default Sidecar in every namespace (Istio's
  advice for large meshes) then costs one evaluation per Service, not one per namespace;
* every other group, which a client of a namespace no object names stands for.

The rows name every group they stand for; a fix that names the first one's Sidecar or namespace names all of
them (:meth:`SidecarGroups.fix_for`).
"""

from __future__ import annotations

import re
from typing import Any

from meshstat.audit.core import ClientClass
from meshstat.mesh.layers import name_list
from meshstat.mesh.scope import ClientScope, client_scope

__all__ = ["SidecarGroups", "scope_shape"]


def scope_shape(scope: ClientScope) -> tuple[Any, ...]:
    """What of a client's scope decides what it sees of a Service outside its namespace: the egress listeners
    (port, hosts with ``./`` as written) and the outbound policy; None for the Sidecar when it has none."""
    sc = scope.sidecar
    if sc is None or not sc.egress:
        return (sc is not None, scope.outbound_policy)
    return (tuple((li.port, tuple(li.hosts)) for li in sc.egress), scope.outbound_policy)


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
        self.shape_ns = [{classes[i].namespace for i in idx} for idx in self.shapes]
        self._pos = {id(c): i for i, c in enumerate(classes)}
        self._members: dict[tuple[int, frozenset[str]], tuple[int, list[ClientClass]] | None] = {}
        self._names: dict[int, tuple[tuple[str, str], tuple[str, str]]] = {}

    def _part(self, k: int, special: set[str]) -> tuple[int, list[ClientClass]] | None:
        """The groups of shape ``k`` outside the ``special`` namespaces, with the index of the first (kept per
        shape and namespaces left out: the same list for every Service that leaves out the same ones)."""
        key = (k, frozenset(self.shape_ns[k] & special))
        got = self._members.get(key)
        if got is None:
            idx = [i for i in self.shapes[k] if self.classes[i].namespace not in key[1]]
            got = self._members[key] = (idx[0], [self.classes[i] for i in idx]) if idx else None
        return got

    def split(self, special: set[str]) -> list[tuple[ClientClass, list[ClientClass], str]]:
        """For a Service whose rules single out the ``special`` namespaces: (the group to work out, the groups it
        stands for, kind) in the groups' order; kind is ``own`` (a special namespace's group, alone), ``shape``
        (namespaces with Sidecars of one shape) or ``generic`` (the namespaces no object names: work it out for
        a namespace that no object names)."""
        cls = self.classes
        out = [(i, [cls[i]], "own") for ns in special for i in self.by_ns.get(ns, ())]
        last = len(self.shapes) - 1
        for k in range(len(self.shapes)):
            part = self._part(k, special)
            if part is not None:
                out.append((part[0], part[1], "generic" if k == last else "shape"))
        out.sort(key=lambda x: x[0])
        return [(members[0], members, kind) for _, members, kind in out]

    def fix_for(self, fix: str, group: list[ClientClass]) -> str:
        """``fix`` (written for the first of ``group``, a list :meth:`split` gave) for all of ``group``: its
        Sidecar and its namespace, where named, become the list of theirs."""
        if len(group) < 2:
            return fix
        names = self._names.get(id(group))  # split's lists are kept (``_members``): their ids stay theirs
        if names is None:
            pos = self._pos
            refs = sorted({r for c in group if (r := self.sidecar_ref[pos[id(c)]])})
            spaces = sorted({c.namespace for c in group})
            names = self._names[id(group)] = (
                (f"Sidecar {self.sidecar_ref[pos[id(group[0])]]}",
                 "Sidecars " + name_list(refs, 3) if len(refs) > 1 else f"Sidecar {refs[0]}" if refs else ""),
                (f"namespace {group[0].namespace}",
                 "namespaces " + name_list(spaces, 3) if len(spaces) > 1 else f"namespace {spaces[0]}"))
        for was, now in names:
            if was != now and was in fix:  # the name whole, not the start of a longer one (ns1 in ns10)
                fix = re.sub(re.escape(was) + r"(?![\w.-])", lambda _: now, fix)
        return fix
