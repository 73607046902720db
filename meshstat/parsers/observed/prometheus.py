"""Prometheus metrics as text: the exposition format and the HTTP API's query JSON.

Two inputs, one structure (:class:`PrometheusData`, a tuple of :class:`Series`):

The text exposition format (a ``/metrics`` scrape, Envoy's ``/stats/prometheus``)
    Line oriented: ``# HELP name text``, ``# TYPE name counter|gauge|histogram|summary|untyped``,
    other ``#`` comments, blank lines, and samples
    ``name{label="value",...} value [timestamp]``. Label values escape ``\\\\``, ``\\"`` and
    ``\\n``; a trailing comma inside the braces and empty braces (``name{} 0``, as Envoy
    writes counters without tags) are allowed; the value is a Go float (``NaN``,
    ``+Inf``, ``-Inf``); the timestamp is integer milliseconds. OpenMetrics additions
    are accepted too: ``# EOF``, ``# UNIT``, exemplars after ``#``. The grammar is the
    one of Prometheus' own parser (prometheus/common ``expfmt/text_parse.go``:
    ``TextParser``, states ``startOfLine``, ``readingLabels``, ``readingValue``) and of the
    format's reference page (prometheus/docs ``content/docs/instrumenting/exposition_formats.md``,
    "Text format details"). Each sample becomes a one-point series whose labels include
    ``__name__``.
The HTTP API's JSON (``/api/v1/query``, ``/api/v1/query_range``)
    ``{"status": "success", "data": {"resultType": "vector" | "matrix", "result": [...]}}``;
    a vector result is ``{"metric": {...}, "value": [t, "v"]}``, a matrix result
    ``{"metric": {...}, "values": [[t, "v"], ...]}`` with ``t`` in Unix seconds and the
    value a string (prometheus/prometheus ``web/api/v1/api.go``: ``QueryData``;
    ``promql/value.go``: ``Sample``/``Series`` JSON marshalling). ``__name__`` is in
    ``metric`` unless the query dropped it (an aggregation such as ``sum by (...)``).
    ``"status": "error"`` answers are refused with Prometheus' own message; ``scalar``
    and ``string`` results and native histograms (``"histogram"`` points) are refused.

Pure Python; errors are :class:`~meshstat.errors.ConfigParseError` with the file and line.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from meshstat.errors import ConfigParseError
from meshstat.inputs import read_text
from meshstat.parsers.json_text import read_json

__all__ = [
    "PrometheusData",
    "Series",
    "load_prometheus",
    "parse_exposition",
    "parse_prometheus",
    "parse_query_json",
]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FLOAT = re.compile(
    r"[+-]?(?:(?:\d[\d]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[Nn][Aa][Nn]|[Ii][Nn][Ff](?:[Ii][Nn][Ii][Tt][Yy])?)"
)
_TYPES = (
    "counter",
    "gauge",
    "histogram",
    "summary",
    "untyped",
    "unknown",
    "gaugehistogram",
    "stateset",
    "info",
)
#: Longest number text read (a value of thousands of digits is not a counter).
_MAX_NUMBER = 64


@dataclass(frozen=True)
class Series:
    """One time series: its labels and its points.

    Attributes
    ----------
    labels : tuple of (name, value)
        Sorted by name; the metric name is the label ``__name__`` (absent when a
        query aggregated it away).
    points : tuple of (time, value)
        Unix seconds (``nan`` for an exposition sample without a timestamp) and the value.
    line : int
        Line of the sample (exposition) or of the result's ``"metric"`` key (JSON).
    """

    labels: tuple[tuple[str, str], ...]
    points: tuple[tuple[float, float], ...]
    line: int

    @property
    def name(self) -> str:
        """The metric name (``""`` when the query dropped it)."""
        return self.label("__name__")

    def label(self, key: str, default: str = "") -> str:
        """The value of label ``key`` (``default`` when absent)."""
        for k, v in self.labels:
            if k == key:
                return v
        return default

    def has(self, key: str) -> bool:
        """Whether the series has label ``key``."""
        return any(k == key for k, _ in self.labels)


@dataclass(frozen=True)
class PrometheusData:
    """What one file held.

    Attributes
    ----------
    source : str
        The file.
    form : str
        ``"exposition"`` (a scrape), ``"vector"`` or ``"matrix"`` (the HTTP API).
    series : tuple of Series
        In file order.
    types : mapping
        ``# TYPE`` declarations of an exposition (metric family -> type).
    """

    source: str
    form: str
    series: tuple[Series, ...]
    types: Mapping[str, str] = field(default_factory=dict)


def load_prometheus(path: str) -> PrometheusData:
    """Read a scrape or an HTTP API answer from ``path`` (``"-"``: standard input) and parse it."""
    text = read_text(path, what="Prometheus metrics")
    return parse_prometheus(text, str(path) if path != "-" else "<stdin>")


def parse_prometheus(text: str, source: str = "<string>") -> PrometheusData:
    """The exposition format, or the HTTP API's JSON when the text starts with ``{``."""
    stripped = text.lstrip("\ufeff \t\n")
    if not stripped:
        raise ConfigParseError(
            "empty input (expected a Prometheus scrape or an /api/v1/query answer)", source=source
        )
    if stripped.startswith("{"):
        return parse_query_json(text, source)
    return parse_exposition(text, source)


# --------------------------------------------------------------------------- exposition


def _err(msg: str, source: str, line: int, text: str) -> ConfigParseError:
    return ConfigParseError(msg, source=source, line=line, snippet=text.strip()[:120] or None)


def _number(tok: str, what: str, source: str, lineno: int, line: str) -> float:
    if len(tok) > _MAX_NUMBER or not _FLOAT.fullmatch(tok):
        raise _err(
            f"expected {what} (a number such as 42, 1.5e3, NaN or +Inf), got {tok[:40]!r}",
            source,
            lineno,
            line,
        )
    return float(tok)


def _read_labels(line: str, pos: int, source: str, lineno: int) -> tuple[list[tuple[str, str]], int]:
    """Labels from ``line[pos] == "{"``; returns them and the index after ``}``."""
    labels: list[tuple[str, str]] = []
    i = pos + 1
    n = len(line)

    def skip(j: int) -> int:
        while j < n and line[j] in " \t":
            j += 1
        return j

    while True:
        i = skip(i)
        if i < n and line[i] == "}":
            return labels, i + 1
        m = _LABEL.match(line, i)
        if m is None:
            raise _err("expected a label name or '}' inside the braces", source, lineno, line)
        key = m.group(0)
        i = skip(m.end())
        if i >= n or line[i] != "=":
            raise _err(f"expected '=' after label name {key!r}", source, lineno, line)
        i = skip(i + 1)
        if i >= n or line[i] != '"':
            raise _err(f"expected a double-quoted value for label {key!r}", source, lineno, line)
        i += 1
        buf: list[str] = []
        while True:
            if i >= n:
                raise _err(
                    f"expected a closing double quote for the value of label {key!r}", source, lineno, line
                )
            c = line[i]
            if c == "\\":
                if i + 1 >= n:
                    raise _err(
                        f'expected an escape (\\\\, \\", \\n) in the value of label {key!r}',
                        source,
                        lineno,
                        line,
                    )
                e = line[i + 1]
                if e not in '\\"n':
                    raise _err(
                        f'expected an escape \\\\, \\" or \\n in the value of label {key!r}, got \\{e}',
                        source,
                        lineno,
                        line,
                    )
                buf.append("\n" if e == "n" else e)
                i += 2
                continue
            if c == '"':
                i += 1
                break
            buf.append(c)
            i += 1
        if any(k == key for k, _ in labels):
            raise _err(f"label {key!r} appears twice", source, lineno, line)
        labels.append((key, "".join(buf)))
        i = skip(i)
        if i < n and line[i] == ",":
            i += 1
            continue
        if i < n and line[i] == "}":
            return labels, i + 1
        raise _err("expected ',' or '}' after a label value", source, lineno, line)


def parse_exposition(text: str, source: str = "<string>") -> PrometheusData:
    """Parse the Prometheus text exposition format (see the module docstring).

    Raises
    ------
    ConfigParseError
        ``file:line: expected ...`` at the first line that is not a comment, a
        blank line or a sample; also when a series appears twice, and for a file
        without any sample.
    """
    series: list[Series] = []
    types: dict[str, str] = {}
    seen: dict[tuple[tuple[str, str], ...], int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip(" \t\r\ufeff")
        if not line:
            continue
        if line.startswith("#"):
            parts = line[1:].split(None, 3)
            if parts and parts[0] == "TYPE":
                if len(parts) < 3 or not _NAME.fullmatch(parts[1]) or parts[2].lower() not in _TYPES:
                    raise _err(
                        "expected '# TYPE <metric name> counter|gauge|histogram|summary|untyped'",
                        source,
                        lineno,
                        line,
                    )
                types[parts[1]] = parts[2].lower()
            elif parts and parts[0] == "EOF":
                break
            continue
        m = _NAME.match(line)
        if m is None:
            raise _err(
                "expected a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), a '# ' comment or a blank line",
                source,
                lineno,
                line,
            )
        name = m.group(0)
        i = m.end()
        labels: list[tuple[str, str]] = []
        j = i
        while j < len(line) and line[j] in " \t":
            j += 1
        if j < len(line) and line[j] == "{":
            labels, i = _read_labels(line, j, source, lineno)
        rest = line[i:]
        if rest and rest[0] not in " \t":
            raise _err(f"expected a space and the value after {name}", source, lineno, line)
        exemplar = rest.find(" #")
        if exemplar >= 0:  # OpenMetrics exemplar: "value [ts] # {labels} value [ts]"
            rest = rest[:exemplar]
        toks = rest.split()
        if not toks:
            raise _err(f"expected the value of {name} after the labels", source, lineno, line)
        if len(toks) > 2:
            raise _err(
                f"expected 'value [timestamp]' after {name}, got {len(toks)} fields", source, lineno, line
            )
        value = _number(toks[0], f"the value of {name}", source, lineno, line)
        ts = math.nan
        if len(toks) == 2:
            t = toks[1]
            if not re.fullmatch(r"-?\d{1,19}(?:\.\d+)?", t):
                raise _err(
                    f"expected a timestamp in milliseconds after the value of {name}, got {t[:40]!r}",
                    source,
                    lineno,
                    line,
                )
            ts = float(t) / (1000.0 if "." not in t else 1.0)  # OpenMetrics writes seconds with a fraction
        key = tuple(sorted([("__name__", name), *labels]))
        if key in seen:
            raise _err(
                f"series {_show(name, labels)} appears twice (first on line {seen[key]})",
                source,
                lineno,
                line,
            )
        seen[key] = lineno
        series.append(Series(key, ((ts, value),), lineno))
    if not series:
        raise ConfigParseError(
            "expected at least one sample line ('name{labels} value'); found none",
            source=source,
            line=max(1, text.count("\n")),
        )
    return PrometheusData(source, "exposition", tuple(series), types)


def _show(name: str, labels: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels if k != "__name__")
    return f"{name}{{{inner}}}"


# --------------------------------------------------------------------------- HTTP API JSON


def parse_query_json(text: str, source: str = "<string>") -> PrometheusData:
    """Parse an ``/api/v1/query`` (vector) or ``/api/v1/query_range`` (matrix) answer.

    Raises
    ------
    ConfigParseError
        Malformed JSON, an error answer (Prometheus' ``errorType`` and ``error`` are
        quoted), a result type other than vector or matrix, or a result entry of
        the wrong shape (the line of its ``"metric"`` key).
    """
    doc = read_json(
        text,
        source,
        expected="a Prometheus /api/v1/query answer",
        constants="Prometheus quotes values",
        nesting="a Prometheus answer nests 5 levels",
    )
    if not isinstance(doc, dict) or "status" not in doc:
        raise ConfigParseError(
            'expected a Prometheus API answer {"status": ..., "data": {...}}', source=source, line=1
        )
    if doc.get("status") != "success":
        why = (
            f"{doc.get('errorType', '?')}: {doc.get('error', '?')}"
            if doc.get("status") == "error"
            else (f"status {doc.get('status')!r}")
        )
        raise ConfigParseError(
            f"expected a successful query answer; Prometheus answered {why}", source=source, line=1
        )
    data = doc.get("data")
    if not isinstance(data, dict) or "resultType" not in data or not isinstance(data.get("result"), list):
        raise ConfigParseError(
            'expected "data": {"resultType": ..., "result": [...]}',
            source=source,
            line=_line_of(text, '"data"'),
        )
    rtype = data["resultType"]
    if rtype not in ("vector", "matrix"):
        raise ConfigParseError(
            f"expected resultType vector or matrix (counts per series), got {rtype!r}",
            source=source,
            line=_line_of(text, '"resultType"'),
        )
    metric_lines = [text.count("\n", 0, m.start()) + 1 for m in re.finditer(r'"metric"\s*:', text)]
    out: list[Series] = []
    seen: dict[tuple[tuple[str, str], ...], int] = {}
    for i, entry in enumerate(data["result"]):
        line = metric_lines[i] if i < len(metric_lines) else 1
        if not isinstance(entry, dict) or not isinstance(entry.get("metric"), dict):
            raise ConfigParseError(
                f'result {i}: expected {{"metric": {{...}}, ...}}', source=source, line=line
            )
        labels = []
        for k, v in entry["metric"].items():
            if not isinstance(v, str):
                raise ConfigParseError(
                    f"result {i}: label {k!r} must be a string, got {_kind(v)}", source=source, line=line
                )
            labels.append((str(k), v))
        key = tuple(sorted(labels))
        if "histogram" in entry or "histograms" in entry:
            raise ConfigParseError(
                f"result {i}: native histogram points are not counts (query a counter)",
                source=source,
                line=line,
            )
        if rtype == "vector":
            if "value" not in entry:
                raise ConfigParseError(
                    f'result {i}: expected "value": [time, "value"] in a vector', source=source, line=line
                )
            points = (_point(entry["value"], i, source, line),)
        else:
            vals = entry.get("values")
            if not isinstance(vals, list):
                raise ConfigParseError(
                    f'result {i}: expected "values": [[time, "value"], ...] in a matrix',
                    source=source,
                    line=line,
                )
            points = tuple(_point(p, i, source, line) for p in vals)
            if any(b[0] <= a[0] for a, b in itertools.pairwise(points)):
                raise ConfigParseError(
                    f"result {i}: expected increasing timestamps", source=source, line=line
                )
        if key in seen:
            raise ConfigParseError(
                f"result {i}: the series {_show(dict(key).get('__name__', ''), key)} appears "
                f"twice (first at result {seen[key]})",
                source=source,
                line=line,
            )
        seen[key] = i
        out.append(Series(key, points, line))
    if not out:
        raise ConfigParseError(
            "the query answer has no series (an empty result: check the query's label matchers)",
            source=source,
            line=_line_of(text, '"result"'),
        )
    return PrometheusData(source, rtype, tuple(out))


def _kind(v: object) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}.get(type(v), "a number")


def _point(p: object, i: int, source: str, line: int) -> tuple[float, float]:
    if (
        not (isinstance(p, list) and len(p) == 2)
        or isinstance(p[0], bool)
        or not isinstance(p[0], int | float)
    ):
        raise ConfigParseError(
            f'result {i}: expected a point [unix seconds, "value"], got {json.dumps(p)[:60]}',
            source=source,
            line=line,
        )
    v = p[1]
    if isinstance(v, str):
        if len(v) > _MAX_NUMBER or not _FLOAT.fullmatch(v.strip()):
            raise ConfigParseError(
                f"result {i}: expected a number as the value, got {v[:40]!r}", source=source, line=line
            )
        value = float(v)
    elif isinstance(v, int | float) and not isinstance(v, bool):
        value = float(v)
    else:
        raise ConfigParseError(
            f"result {i}: expected a number as the value, got {_kind(v)}", source=source, line=line
        )
    return float(p[0]), value


def _line_of(text: str, token: str) -> int:
    at = text.find(token)
    return 1 if at < 0 else text.count("\n", 0, at) + 1
