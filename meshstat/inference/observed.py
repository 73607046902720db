"""Observed per-backend counts from a file: CSV (``backend,count`` lines) or JSON."""

from __future__ import annotations

import re

from meshstat.errors import ConfigParseError
from meshstat.inputs import read_text

__all__ = ["read_observed"]


def read_observed(path: str) -> tuple[list[str], list[int]]:
    """Read observed counts from a CSV (``backend,count`` lines, optional header) or JSON file.

    JSON may be ``{"v1": 95, "v2": 5}``, ``[["v1", 95], ...]`` or
    ``[{"backend": "v1", "count": 95}, ...]``. Errors name the file and line.

    Raises
    ------
    ConfigParseError
        ``"file:line: expected ..."`` for anything it cannot read.
    """
    text = read_text(path, what="counts file")
    stripped = text.lstrip()
    if path.lower().endswith(".json") or stripped.startswith(("{", "[")):
        return _read_observed_json(path, text)
    return _read_observed_csv(path, text)


def _count_value(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    if isinstance(raw, float):
        return int(raw) if raw.is_integer() and raw >= 0 else None
    if isinstance(raw, str):
        s = raw.strip()
        if re.fullmatch(r"\d[\d_]*", s) and len(s) <= 40:  # int() refuses thousands of digits
            return int(s)
    return None


def _read_observed_csv(path: str, text: str) -> tuple[list[str], list[int]]:
    import csv

    names: list[str] = []
    counts: list[int] = []
    seen: dict[str, int] = {}
    lines = text.splitlines()
    header_done = False
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        row = next(csv.reader([line]))
        row = [c.strip() for c in row]
        if len(row) != 2 or not row[0]:
            if not header_done and not names:
                header_done = True
                if len(row) == 2:
                    continue
            raise ConfigParseError(
                "expected 'backend,count' (two comma-separated fields)", source=path, line=lineno, snippet=line
            )
        value = _count_value(row[1])
        if value is None:
            if not header_done and not names:
                header_done = True  # a header such as "backend,count"
                continue
            raise ConfigParseError(
                "expected a non-negative integer count after the backend name", source=path, line=lineno, snippet=line
            )
        header_done = True
        if row[0] in seen:
            raise ConfigParseError(
                f"backend {row[0]!r} appears twice (first on line {seen[row[0]]})", source=path, line=lineno,
                snippet=line,
            )
        seen[row[0]] = lineno
        names.append(row[0])
        counts.append(value)
    if not names:
        raise ConfigParseError("expected at least one 'backend,count' line", source=path, line=max(1, len(lines)))
    return names, counts


def _read_observed_json(path: str, text: str) -> tuple[list[str], list[int]]:
    import json

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigParseError(f"invalid JSON: {exc.msg}", source=path, line=exc.lineno, column=exc.colno) from None
    except ValueError:  # a number with more digits than int() converts
        raise ConfigParseError("invalid JSON: a number with too many digits", source=path) from None
    except RecursionError:
        raise ConfigParseError("invalid JSON: nested too deeply for a counts file", source=path) from None
    lines = text.splitlines()

    def line_of(token: str) -> int:
        needle = json.dumps(token)
        for i, ln in enumerate(lines, start=1):
            if needle in ln:
                return i
        return 1

    items: list[tuple[str, object]] = []
    if isinstance(data, dict):
        items = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        for entry in data:
            if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str):
                items.append((entry[0], entry[1]))
            elif isinstance(entry, dict) and "backend" in entry and "count" in entry:
                items.append((str(entry["backend"]), entry["count"]))
            else:
                snippet = json.dumps(entry)
                where = line_of(entry[0]) if isinstance(entry, list) and entry and isinstance(entry[0], str) else 1
                if isinstance(entry, dict) and entry:
                    where = line_of(str(next(iter(entry))))
                raise ConfigParseError(
                    'expected ["backend", count] or {"backend": ..., "count": ...}', source=path, line=where,
                    snippet=snippet,
                )
    else:
        raise ConfigParseError('expected {"backend": count, ...} or a list of [backend, count]', source=path, line=1)
    if not items:
        raise ConfigParseError("expected at least one backend count", source=path, line=1)
    names, counts = [], []
    for name, raw in items:
        value = _count_value(raw)
        if value is None:
            raise ConfigParseError(
                f"count of {name!r} must be a non-negative integer", source=path, line=line_of(name), snippet=str(raw)
            )
        if name in names:
            raise ConfigParseError(f"backend {name!r} appears twice", source=path, line=line_of(name))
        names.append(name)
        counts.append(value)
    return names, counts
