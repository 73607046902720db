"""The one strict JSON reader (parsers.json_text) and the three parsers that read JSON through it."""

from __future__ import annotations

import pytest

from meshstat.errors import ConfigParseError
from meshstat.parsers.envoy import parse_envoy_text
from meshstat.parsers.json_text import read_json
from meshstat.parsers.observed import parse_envoy_stats, parse_query_json


def test_plain_json_is_read_as_the_standard_library_reads_it() -> None:
    assert read_json('{"a": [1, 2.5, "NaN", null, true]}', "x.json", expected="x") == {
        "a": [1, 2.5, "NaN", None, True]
    }


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_constants_are_refused_with_their_line(constant: str) -> None:
    with pytest.raises(ConfigParseError) as e:
        read_json(f'{{\n "a": 1,\n "b": {constant}\n}}', "x.json", expected="x", constants="why")
    assert e.value.line == 3
    assert f"x.json:3: invalid JSON: {constant} is not a JSON number (why)" in str(e.value)


def test_syntax_error_has_line_column_and_text() -> None:
    with pytest.raises(ConfigParseError) as e:
        read_json('{\n "a": 1,,\n}', "x.json", expected="an answer")
    assert (e.value.line, e.value.column) == (2, 9)
    assert "invalid JSON: Expecting property name enclosed in double quotes (expected an answer)" in str(
        e.value
    )
    assert e.value.snippet == '"a": 1,,'


def test_too_deep_and_too_long_numbers_are_refused() -> None:
    with pytest.raises(ConfigParseError, match=r"invalid JSON: nested deeper than meshstat reads \(a few\)"):
        read_json("[" * 100_000 + "]" * 100_000, "x.json", expected="x", nesting="a few")
    with pytest.raises(ConfigParseError, match="invalid JSON: a number with too many digits") as e:
        read_json('{\n "a": ' + "9" * 5000 + "}", "x.json", expected="x")
    assert e.value.line == 2


@pytest.mark.parametrize(
    ("parse", "text", "hint"),
    [
        (parse_envoy_text, '{"configs": [\n NaN]}', "(Envoy and istioctl never write it)"),
        (parse_query_json, '{"status":\n NaN}', "(Prometheus quotes values)"),
        (parse_envoy_stats, '{"stats": [\n {"name": "a", "value": NaN}]}', ""),
    ],
)
def test_every_json_parser_refuses_nan_with_its_line(parse, text: str, hint: str) -> None:
    with pytest.raises(ConfigParseError) as e:
        parse(text, "in.json")
    want = "in.json:2: invalid JSON: NaN is not a JSON number" + (f" {hint}" if hint else "")
    assert str(e.value).startswith(want)
