"""The typed field readers every manifest parser shares, and the conversion context they report through.

A manifest object is a :class:`~meshstat.parsers.yaml_loader.LineDict` (a mapping that knows its line and the
line of each key). The readers here take one field of such a mapping, check that it has the shape it should
(a mapping, a list, a string, an integer in range, true or false, a mapping or list of strings) and raise
:class:`meshstat.errors.ConfigParseError` through :meth:`ManifestContext.fail` with the file, the line of the
field and what was found when it does not. An absent field reads as the reader's empty value (an empty
mapping or list, ``None``, the default).

:func:`str_pairs`, :func:`str_list` and :data:`TEXT` are what the converters' fast paths take of a value
without a reader: the common shapes as they are, None (for the reader to decide) for anything else.

Used by :mod:`meshstat.parsers.k8s`, :mod:`meshstat.parsers.topology`, :mod:`meshstat.parsers.gateway_api`,
:mod:`meshstat.parsers.istio_scope` and :mod:`meshstat.parsers.istio_locality`, so that each kind of mistake
is worded the same way whatever the kind of object.

Pure Python.
"""

from __future__ import annotations

from typing import Any

from meshstat.errors import ConfigParseError
from meshstat.inputs import ascii_digits
from meshstat.parsers.yaml_loader import LineDict, LineList

__all__ = [
    "TEXT",
    "ManifestContext",
    "field_bool",
    "field_controller",
    "field_int",
    "field_list",
    "field_map",
    "field_str",
    "field_str_list",
    "field_str_map",
    "str_list",
    "str_pairs",
    "type_name",
]


#: The types of a value that :func:`field_str` returns as it is (for the converters' fast paths:
#: ``type(v) in TEXT``)
TEXT = (str, type(None))


class ManifestContext:
    """Source file name and default namespace while converting one file."""

    def __init__(self, source: str, default_namespace: str) -> None:
        self.source = source
        self.default_namespace = default_namespace

    def fail(
        self, message: str, obj: Any = None, key: str | None = None, snippet: Any = None
    ) -> ConfigParseError:
        """The error to raise: ``message`` at the line of ``key`` in ``obj`` (or ``obj``'s line, or ``obj``).

        ``obj`` may be a line number itself; ``snippet`` is the offending text.
        """
        line = None
        if isinstance(obj, LineDict):
            line = obj.line_of(key) if key else obj.line
        elif isinstance(obj, LineList):
            line = obj.line
        elif isinstance(obj, int):
            line = obj
        snip = None if snippet is None else str(snippet)
        return ConfigParseError(message, source=self.source, line=line, snippet=snip)


def type_name(val: Any) -> str:
    """What a YAML value is, in YAML's words ("a mapping", "a list", "a boolean", "a number", "a string")."""
    if isinstance(val, dict):
        return "a mapping"
    if isinstance(val, list):
        return "a list"
    if isinstance(val, bool):
        return "a boolean"
    if isinstance(val, int | float):
        return "a number"
    return "a string" if isinstance(val, str) else type(val).__name__


def field_map(ctx: ManifestContext, obj: Any, key: str, what: str, *, required: bool = False) -> LineDict:
    """The mapping ``obj[key]`` (an empty one, at the line of ``obj``, when absent and not ``required``)."""
    val = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(val, dict):
        return val  # type: ignore[return-value]
    if val is None:
        if required:
            raise ctx.fail(f"expected {what} to have a '{key}' mapping", obj)
        empty = LineDict()
        empty.line = obj.line_of(key) if isinstance(obj, LineDict) else 0
        empty.key_lines = {}
        return empty
    if not isinstance(val, dict):
        raise ctx.fail(f"expected '{key}' of {what} to be a mapping, got {type_name(val)}", obj, key, val)
    return val  # type: ignore[return-value]


def field_list(ctx: ManifestContext, obj: Any, key: str, what: str) -> list[Any]:
    """The list ``obj[key]`` (empty when absent)."""
    val = obj.get(key) if isinstance(obj, dict) else None
    if val is None:
        return []
    if not isinstance(val, list):
        raise ctx.fail(f"expected '{key}' of {what} to be a list, got {type_name(val)}", obj, key, val)
    return val


def field_str(ctx: ManifestContext, obj: Any, key: str, what: str, *, required: bool = False) -> str | None:
    """The scalar ``obj[key]`` as text (None when absent and not ``required``; a boolean is refused)."""
    val = obj.get(key) if isinstance(obj, dict) else None
    if type(val) is str:
        return val
    if val is None:
        if required:
            raise ctx.fail(f"expected {what} to have '{key}'", obj)
        return None
    if isinstance(val, bool | dict | list):
        raise ctx.fail(f"expected '{key}' of {what} to be a string, got {type_name(val)}", obj, key, val)
    return str(val)


def field_int(
    ctx: ManifestContext,
    obj: Any,
    key: str,
    what: str,
    *,
    default: int | None = None,
    lo: int = 0,
    hi: int | None = None,
) -> int | None:
    """The integer ``obj[key]`` in ``[lo, hi]`` (digits in a string count; ``default`` when absent)."""
    val = obj.get(key) if isinstance(obj, dict) else None
    if val is None:
        return default
    if isinstance(val, bool) or not isinstance(val, int):
        if isinstance(val, str) and ascii_digits(val.strip().lstrip("-")):
            val = int(val.strip())
        else:
            raise ctx.fail(f"expected '{key}' of {what} to be an integer", obj, key, val)
    if val < lo or (hi is not None and val > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        shown = str(val) if -(10**30) < val < 10**30 else f"an integer of {len(str(abs(val)))} digits"
        raise ctx.fail(f"expected '{key}' of {what} to be {rng}", obj, key, shown)
    return val


def field_bool(ctx: ManifestContext, obj: Any, key: str, what: str) -> bool | None:
    """The boolean ``obj[key]`` (None when absent: each reader applies its own default)."""
    val = obj.get(key) if isinstance(obj, dict) else None
    if val is None:
        return None
    if not isinstance(val, bool):
        raise ctx.fail(f"expected '{key}' of {what} to be true or false, got {type_name(val)}", obj, key, val)
    return val


def field_str_map(ctx: ManifestContext, obj: Any, key: str, what: str) -> tuple[tuple[str, str], ...]:
    """The mapping ``obj[key]`` of scalars as ``((key, text), ...)`` in file order (labels, annotations)."""
    m = obj.get(key) if isinstance(obj, dict) else None
    got = str_pairs(m)  # the common cases: none (no annotations, no labels), or text to text as it is
    if got is not None:
        return got
    if not isinstance(m, dict):
        m = field_map(ctx, obj, key, what)  # raises: not a mapping
    items = m.items()
    out = []
    for k, v in items:
        if isinstance(v, dict | list):
            raise ctx.fail(f"expected the values of '{key}' of {what} to be strings", m, str(k), v)
        out.append((str(k), "" if v is None else _scalar_text(v)))
    return tuple(out)


def str_pairs(m: Any) -> tuple[tuple[str, str], ...] | None:
    """What :func:`field_str_map` makes of the value ``m`` in its common cases (``()`` for None, the items
    of a mapping of text to text as they are), or None for anything else: the fast paths of the converters
    take the common case as it is and leave the rest to the checked reader, which converts or says what is
    wrong.
    """
    if m is None:
        return ()
    if not isinstance(m, dict):
        return None
    items = tuple(m.items())
    for k, v in items:
        if type(k) is not str or type(v) is not str:
            return None
    return items


def str_list(val: Any) -> tuple[str, ...] | None:
    """What :func:`field_str_list` makes of the value ``val`` when it is None or a list of text (the common
    cases, for the converters' fast paths), or None for anything else.
    """
    if val is None:
        return ()
    if not isinstance(val, list):
        return None
    for item in val:
        if type(item) is not str:
            return None
    return tuple(val)


def _scalar_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def field_str_list(ctx: ManifestContext, obj: Any, key: str, what: str) -> tuple[str, ...]:
    """The list ``obj[key]`` of scalars as text (empty when absent)."""
    out = []
    for item in field_list(ctx, obj, key, what):
        if isinstance(item, dict | list) or item is None:
            raise ctx.fail(f"expected '{key}' of {what} to be a list of strings", obj, key, item)
        out.append(str(item))
    return tuple(out)


def field_controller(ctx: ManifestContext, md: Any, what: str) -> tuple[str, str] | None:
    """``(kind, name)`` of the controller among ``md['ownerReferences']`` (a ``metadata`` mapping), or None.

    The controller is the reference with ``controller: true``, as ``GetControllerOf`` reads it
    (kubernetes ``staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/controller_ref.go``): the
    ReplicaSet of a Deployment's pod, the Deployment of a ReplicaSet, the StatefulSet of its pod.
    Other owners only keep an object from garbage collection. Owners are in the object's namespace.
    """
    for o in field_list(ctx, md, "ownerReferences", what):
        if not isinstance(o, dict):
            raise ctx.fail(f"expected 'ownerReferences' of {what} to be a list of mappings", md, "ownerReferences", o)
        if o.get("controller") is True:
            return (field_str(ctx, o, "kind", "an owner reference") or "",
                    field_str(ctx, o, "name", "an owner reference") or "")
    return None
