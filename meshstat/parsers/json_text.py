"""JSON text -> Python values, strictly, with the file and line of what is wrong.

:func:`read_json` is the one JSON reader of the parsers that take JSON whole (Envoy's config dumps and
admin output, Prometheus' HTTP API answers): the standard library's :func:`json.loads`, except that

* ``NaN``, ``Infinity`` and ``-Infinity``, which Python's ``json`` accepts but JSON does not have, are
  refused with their line;
* every failure is a :class:`meshstat.errors.ConfigParseError` that starts with ``invalid JSON:``: a
  syntax error with its line, column and the line's text, a number of more digits than :func:`int`
  converts, nesting deeper than Python's recursion allows.

Kubernetes manifests in JSON are read by :mod:`meshstat.parsers.yaml_loader` instead (every object
keeps its line there). Pure Python.
"""

from __future__ import annotations

import json
import re
from typing import Any

from meshstat.errors import ConfigParseError

__all__ = ["read_json"]

#: A bare NaN or Infinity outside a string (what ``parse_constant`` was called for).
_CONSTANT = re.compile(r"(?<![\w\"])-?(?:NaN|Infinity)(?![\w\"])")


class _NonFinite(ValueError):
    pass


def _no_constants(name: str) -> Any:
    raise _NonFinite(name)


def _hint(text: str) -> str:
    return f" ({text})" if text else ""


def read_json(text: str, source: str, *, expected: str, constants: str = "", nesting: str = "") -> Any:
    """The value of the JSON ``text`` read from ``source``, refusing ``NaN`` and ``Infinity``.

    Parameters
    ----------
    text : str
        The whole JSON text.
    source : str
        File name for the errors.
    expected : str
        What the text should be, added to a syntax error ("expected a Prometheus /api/v1/query answer").
    constants : str, optional
        Why ``NaN`` or ``Infinity`` cannot be there, added to their refusal ("Prometheus quotes values").
    nesting : str, optional
        How deep such a text nests, added to the refusal of deeper nesting.

    Raises
    ------
    ConfigParseError
        ``invalid JSON: ...`` with the line (and for a syntax error the column and the line's text).
    """
    try:
        return json.loads(text, parse_constant=_no_constants)
    except _NonFinite as exc:
        m = _CONSTANT.search(text)
        line = text.count("\n", 0, m.start()) + 1 if m else None
        raise ConfigParseError(
            f"invalid JSON: {exc} is not a JSON number{_hint(constants)}",
            source=source,
            line=line,
            snippet=text.splitlines()[line - 1].strip() if line else None,
        ) from None
    except json.JSONDecodeError as exc:
        lines = text.splitlines()
        snippet = lines[exc.lineno - 1].strip() if 0 < exc.lineno <= len(lines) else None
        raise ConfigParseError(
            f"invalid JSON: {exc.msg} (expected {expected})",
            source=source,
            line=exc.lineno,
            column=exc.colno,
            snippet=snippet or None,
        ) from None
    except RecursionError:
        raise ConfigParseError(
            f"invalid JSON: nested deeper than meshstat reads{_hint(nesting)}", source=source
        ) from None
    except ValueError:  # int() refuses more digits than sys.get_int_max_str_digits()
        m = re.search(r"\d{1000,}", text)
        raise ConfigParseError(
            "invalid JSON: a number with too many digits",
            source=source,
            line=text.count("\n", 0, m.start()) + 1 if m else None,
        ) from None
