"""Text for people (:mod:`meshstat.report.text`): fitting, colour rules, rich and plain agree, grouped remarks."""

from __future__ import annotations

import io
import re

import pytest

from meshstat.report.text import (
    Terminal,
    bounded,
    fit_widths,
    format_remarks,
    output_width,
    render_columns,
    use_color,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Tty(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise OSError("no terminal size here")


def test_width_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_width(io.StringIO()) is None  # a pipe: no width, as kubectl
    assert output_width(Tty()) is None  # a terminal whose size cannot be read
    monkeypatch.setenv("COLUMNS", "72")
    assert output_width(io.StringIO()) == 72
    monkeypatch.setenv("COLUMNS", "wide")
    assert output_width(io.StringIO()) is None


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(Tty()) and not use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())
    monkeypatch.setenv("NO_COLOR", "")  # the convention: set and not empty
    assert use_color(Tty())


def test_the_command_line_colours_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from meshstat.cli import main

    argv = ["check", "--weights", "90,10", "--observed", "5,5"]
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty, err = Tty(), io.StringIO()
    assert main(argv, stdout=tty, stderr=err) == 0
    coloured = tty.getvalue()
    assert ANSI.search(coloured)
    pipe = io.StringIO()
    assert main(argv, stdout=pipe, stderr=err) == 0
    assert not ANSI.search(pipe.getvalue())
    assert ANSI.sub("", coloured) == pipe.getvalue()  # rich draws the same text, with colour
    monkeypatch.setenv("NO_COLOR", "1")
    tty = Tty()
    assert main(argv, stdout=tty, stderr=err) == 0
    assert tty.getvalue() == pipe.getvalue()


def test_rich_and_plain_tables_are_the_same_text() -> None:
    headers = ["NAME", "COUNT", "NOTE"]
    rows = [["a-very-long-backend-name-that-is-cut", "1,234", "explanations are wrapped within their column"],
            ["b", "5", "short"]]  # fmt: skip
    kw = {"align": ["left", "right", "left"], "shrink": [True, False, False], "wrap": [False, False, True]}
    for width in (None, 60, 40):
        plain = render_columns(headers, rows, term=Terminal(width, False), **kw)
        rich = render_columns(headers, rows, term=Terminal(width, True), **kw)
        assert ANSI.search(rich)
        assert ANSI.sub("", rich) == plain, width
        if width is not None:
            assert max(len(line) for line in plain.splitlines()) <= width


def test_plain_tables_without_wrapping_are_rich_ones_without_colour() -> None:
    """Without a wrapped column the plain table is laid out column by column: the same text as rich draws."""
    headers = ["NAME", "PATH", "EXACT"]
    rows = [["svc-with-a-long-name.ns:8080", "sidecar (Envoy)", "90%"], ["b", "no sidecar (kube-proxy)", "10%"],
            ["", "x", "-"]]  # fmt: skip
    kw = {"align": ["left", "left", "right"], "shrink": [True, True, False]}
    for width in (None, 50, 40, 30):
        plain = render_columns(headers, rows, term=Terminal(width, False), **kw)
        rich = render_columns(headers, rows, term=Terminal(width, True), **kw)
        assert ANSI.sub("", rich) == plain, width
        assert len(plain.splitlines()) == 1 + len(rows) + ("more column" in plain), width
    assert render_columns(headers, rows, term=Terminal(None, False), **kw).splitlines()[2] == \
        "b" + " " * 27 + "   " + "no sidecar (kube-proxy)" + "   " + "  10%"  # widths 28, 23, 5; gaps of 3


def test_fit_shrinks_text_widest_first_and_never_numbers() -> None:
    headers = ["A", "B", "N"]
    rows = [["x" * 30, "y" * 20, "1234567"]]
    widths, shown = fit_widths(headers, rows, [True, True, False], 40)
    assert shown == 3 and sum(widths) + 6 <= 40 and widths[2] == 7 and widths[0] >= widths[1] - 1
    widths, shown = fit_widths(headers, rows, [True, True, False], 20)
    assert shown < 3  # names at their floor still too wide: columns go from the right


def test_remarks_grouped_merged_bounded_and_wrapped() -> None:
    lines = [
        "seed 1 | n 10",
        "note: b",
        "warning: a",
        "note: b",
        "file.yaml:3: warning: c",
        "taken by ns/a, ns/b (istio-proxy), ns/c, ns/d, ns/e",
        "note: " + "long " * 30,
    ]
    text = format_remarks(lines, term=Terminal(40))
    out = text.splitlines()
    assert out[0] == "seed 1 | n 10"
    assert out[1] == "taken by ns/a, ns/b (istio-proxy), ns/c"
    assert out[2] == "    and 2 more"
    assert out[3:5] == ["warning: a", "file.yaml:3: warning: c"]
    assert out[5] == "note: b (2 times)"
    assert all(len(line) <= 40 for line in out) and out[-1].startswith("    long")
    full = format_remarks(lines, full=True)
    assert "ns/a, ns/b (istio-proxy), ns/c, ns/d, ns/e" in full and "and 2 more" not in full


def test_bounded() -> None:
    assert bounded(["a", "b", "c", "d"]) == "a, b, c, d"
    assert bounded([str(i) for i in range(1000)]) == "0, 1, 2 and 997 more"
