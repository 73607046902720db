"""meshstat.records: a record is the frozen, slotted dataclass it replaces, made and pickled faster."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import InitVar, field

import pytest

from meshstat.parsers.k8s import Meta, WorkloadResource
from meshstat.records import record


def _both(body):
    """The same class body as a record and as ``@dataclass(frozen=True, slots=True)``."""
    frozen = dataclasses.dataclass(frozen=True, slots=True)
    return record(type("R", (), dict(body))), frozen(type("R", (), dict(body)))


def _body():
    def __post_init__(self) -> None:
        object.__setattr__(self, "total", self.a + len(self.many))

    return {
        "__annotations__": {"a": "int", "b": "str", "many": "list", "total": "int", "k": "int"},
        "b": "x",
        "many": field(default_factory=list),
        "total": field(init=False, default=0, compare=False),
        "k": field(kw_only=True, default=7),
        "__post_init__": __post_init__,
    }


def test_a_record_is_the_dataclass() -> None:
    """Same signature, defaults, factories, keyword-only fields, __post_init__, equality, hash, repr,
    refusal."""
    rec, dc = _both(_body())
    ours, theirs = (list(inspect.signature(c.__init__).parameters.values())[1:] for c in (rec, dc))
    assert [(p.name, p.kind) for p in ours] == [(p.name, p.kind) for p in theirs]
    assert [p.default for p in ours if p.name != "many"] == [p.default for p in theirs if p.name != "many"]
    for args, kwargs in [((1,), {}), ((1, "y", [1, 2]), {"k": 3}), ((), {"a": 2, "many": [0]})]:
        r, d = rec(*args, **kwargs), dc(*args, **kwargs)
        assert repr(r) == repr(d) and r.total == d.total
        assert [getattr(r, f.name) for f in dataclasses.fields(rec)] == [getattr(d, f.name) for f in
                                                                          dataclasses.fields(dc)]
        assert r == rec(*args, **kwargs) and r != rec(99)
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.a = 5
    assert rec(1).many is not rec(1).many  # a fresh default each time
    with pytest.raises(TypeError):
        rec()
    with pytest.raises(TypeError):
        rec(1, "y", [], 3)  # k is keyword-only


def test_a_record_pickles_as_its_arguments() -> None:
    """Pickling makes the record again through __init__: equal, with what __post_init__ and caches make."""
    rec, _ = _both(_body())
    globals()["R"] = rec  # picklable by name
    rec.__qualname__ = "R"
    try:
        r = rec(2, "z", [1], k=4)
        back = pickle.loads(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL))
        assert back == r and back.total == 3 and back.k == 4
    finally:
        del globals()["R"]
    meta = Meta("Deployment", "apps/v1", "a", "ns", (("app", "a"),), (), "f.yaml", 3, False)
    w = WorkloadResource(meta, 2, (("app", "a"),), (), False, (("http", 80, "TCP"),))
    assert w.labels == {"app": "a"}  # the cache is made ...
    got = pickle.loads(pickle.dumps(w))
    assert got == w and got.meta.ref == "ns/a" and got._labels is None  # ... and made again, not sent


def test_init_var_is_refused() -> None:
    with pytest.raises(TypeError, match="InitVar"):
        record(type("V", (), {"__annotations__": {"a": InitVar[int]}}))
