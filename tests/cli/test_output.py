"""Output people read: the README's examples fit 100 columns, ``--wide`` shows every column, ``-o``, help, completion.

The README's examples are read from the README itself (every ``$ python -m meshstat ...`` line of a ``text``
block, with its ``\\`` continuations) and run in-process with ``COLUMNS=100``.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from meshstat.cli import build_parser, main
from meshstat.cli.examples import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 100
#: The commands whose default output must fit (the README has an example of each).
FITTED = {"simulate", "compare", "compare -f", "services", "trace", "mesh", "check", "plan", "bands", "canary"}
#: Options that ask for another output than the default table.
NOT_DEFAULT = ("--format", "-o", "--wide", "--output", "--plot", "--help")


def readme_examples() -> list[list[str]]:
    """Every ``$ python -m meshstat`` command of the README's text blocks, as argv (without the program)."""
    text = (ROOT / "README.md").read_text()
    out: list[list[str]] = []
    for block in re.findall(r"```text\n(.*?)```", text, flags=re.S):
        lines = block.split("\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ python -m meshstat "):
                cmd = line[2:]
                while cmd.endswith("\\"):
                    i += 1
                    cmd = cmd[:-1] + " " + lines[i].strip()
                out.append(shlex.split(cmd)[3:])
            i += 1
    return out


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def kind(argv: list[str]) -> str:
    return "compare -f" if argv[0] == "compare" and ("-f" in argv or "--filename" in argv) else argv[0]


def default_examples() -> list[list[str]]:
    return [a for a in readme_examples() if not any(x in NOT_DEFAULT for x in a)]


def test_the_readme_has_a_default_output_example_of_each_command() -> None:
    assert {kind(a) for a in default_examples()} >= FITTED


@pytest.mark.parametrize("argv", default_examples(), ids=lambda a: " ".join(a)[:60])
def test_readme_example_fits_100_columns(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    rc, out, err = run(argv)
    assert rc == 0, err
    long = [line for line in (out + err).splitlines() if len(line) > WIDTH]
    assert not long, "\n".join(long)
    assert "\x1b[" not in out + err  # no colour into a pipe
    assert not any(ch in out for ch in "┌┬┆╞═"), "a box table"


def _csv_columns(argv: list[str]) -> list[str]:
    rc, out, err = run([*argv, "--format", "csv"])
    assert rc == 0, err
    return out.splitlines()[0].split(",")


@pytest.mark.parametrize("argv", default_examples(), ids=lambda a: " ".join(a)[:60])
def test_wide_shows_every_column(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``--wide`` has every column that csv writes (check's csv adds its verdict to each row: not a column)."""
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    columns = set(_csv_columns(argv)) - {"verdict", "headline_test", "headline_p_value"}
    rc, wide, err = run([*argv, "--wide"])
    assert rc == 0, err
    headers = {w for line in wide.splitlines() for w in re.split(r"\s{2,}", line.strip())}
    assert columns <= headers, sorted(columns - headers)


def test_o_wide_is_wide_and_o_file_is_still_a_file(tmp_path: Path) -> None:
    argv = ["check", "--weights", "90,10", "--observed", "880,120"]
    rc, wide, _ = run([*argv, "--wide"])
    assert rc == 0 and "ci95_high" in wide and "95% INTERVAL" not in wide
    assert run([*argv, "-o", "wide"])[1] == wide == run([*argv, "--format", "wide"])[1]
    rc, js, _ = run([*argv, "-o", "json"])
    assert rc == 0 and json.loads(js)["verdict"] in ("consistent", "inconsistent")
    target = tmp_path / "out.csv"
    rc, _, _ = run([*argv, "--format", "csv", "-o", str(target)])
    assert rc == 0 and target.read_text().startswith("backend,weight")
    named = tmp_path / "json"
    rc, _, _ = run([*argv, "--format", "csv", "--output", str(named)])
    assert rc == 0 and named.read_text().startswith("backend,")


def test_default_table_is_plain_kubectl_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    rc, out, _ = run(["simulate", "--weights", "90,10", "-n", "1e6", "--seed", "1"])
    assert rc == 0
    header, v1, *_ = out.splitlines()
    assert re.split(r"\s{3,}", header) == ["BACKEND", "EXPECTED", "OBSERVED", "COUNT", "95% INTERVAL", "P-VALUE"]
    assert v1.split()[:2] == ["b1", "9/10"] and re.search(r"\[0\.\d+, 0\.\d+\]", v1)


def test_narrow_terminal_shortens_names_then_leaves_columns_out(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["services", "--iptables", str(ROOT / "tests/data/iptables/kube-proxy-iptables-overall.iptables-save")]
    monkeypatch.setenv("COLUMNS", "70")
    rc, out, _ = run(argv)
    assert rc == 0 and all(len(line) <= 70 for line in out.splitlines())
    assert "…" in out and "SERVICE" in out
    monkeypatch.setenv("COLUMNS", "40")
    rc, out, _ = run(argv)
    assert rc == 0 and all(len(line) <= 40 for line in out.splitlines())
    assert re.search(r"^\(\d+ more columns?: --wide\)$", out, flags=re.M)
    monkeypatch.delenv("COLUMNS")
    rc, out, _ = run(argv)  # a pipe without COLUMNS: no width, nothing shortened
    assert rc == 0 and "…" not in out and "192.168.99.22:80 +1" in out


# ----------------------------------------------------------------- remarks at cluster scale


def test_long_client_lists_are_bounded_and_whole_in_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    demo = ROOT / "tests/data/istio-demo"
    for f in demo.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    client = (demo / "front-tomcat-dpl-v1.yaml").read_text()
    names = [f"client-{i:03d}" for i in range(40)]
    (tmp_path / "many-clients.yaml").write_text(
        "\n---\n".join(client.replace("front-tomcat-v1", n).replace("front-tomcat", n) for n in names)
    )
    monkeypatch.setenv("COLUMNS", "100")
    argv = ["compare", "-f", str(tmp_path), "-n", "1e4", "--seed", "1"]
    rc, out, err = run(argv)
    assert rc == 0, err
    assert all(len(line) <= 100 for line in out.splitlines())
    unwrapped = re.sub(r"\n    (?=\S)", " ", out)  # a remark's continuation lines are indented by 4
    taken = [line for line in unwrapped.splitlines() if "sidecar (Envoy): taken by" in line]
    assert len(taken) == 1 and re.search(r"and \d+ more$", taken[0]), taken
    rc, js, _ = run([*argv, "--format", "json"])
    rows = json.loads(js)
    clients = next(r["clients"] for r in rows if r["path"] == "sidecar (Envoy)")
    assert all(f"istio-demo/{n}" in clients for n in names)


# ----------------------------------------------------------------- help and completion


def _subparsers() -> dict[str, object]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return dict(action.choices)  # type: ignore[attr-defined]


def test_every_command_has_two_or_three_examples_at_the_end_of_its_help() -> None:
    subs = _subparsers()
    assert set(subs) == set(EXAMPLES)
    for name, p in subs.items():
        assert 2 <= len(EXAMPLES[name]) <= 3, name
        help_text = p.format_help()  # type: ignore[attr-defined]
        tail = help_text.rstrip("\n").split("\n")[-len(EXAMPLES[name]) - 1:]
        assert tail == ["examples:", *(f"  {e}" for e in EXAMPLES[name])], name
        assert all(e.startswith(f"meshstat {name} ") for e in EXAMPLES[name])


@pytest.mark.parametrize(
    "example", [e for name, es in EXAMPLES.items() if name not in ("validate", "completion") for e in es],
    ids=lambda e: e[9:70],
)
def test_help_examples_run(example: str) -> None:
    rc, out, err = run(shlex.split(example)[1:])
    assert rc == 0, err
    assert out


def test_validate_examples_parse() -> None:
    """validate needs root and the real systems (tests/conformance runs them); here its examples must parse."""
    parser = build_parser()
    for e in EXAMPLES["validate"]:
        args = parser.parse_args(shlex.split(e)[1:])
        assert args.command == "validate"


def test_bash_completion_completes_commands_options_and_files() -> None:
    rc, script, _ = run(["completion", "bash"])
    assert rc == 0 and "complete" in script
    bash = shutil.which("bash")
    assert bash is not None
    probe = (
        'source /dev/stdin; complete -p meshstat;'
        ' COMP_WORDS=(meshstat tr); COMP_CWORD=1; _shtab_meshstat; echo "1:${COMPREPLY[*]}";'
        ' COMP_WORDS=(meshstat trace --ui); COMP_CWORD=2; _shtab_meshstat; echo "2:${COMPREPLY[*]}";'
        ' COMP_WORDS=(meshstat trace --iptables tests/data/iptables/seed-front); COMP_CWORD=3; _shtab_meshstat;'
        ' echo "3:${COMPREPLY[*]}"'
    )
    proc = subprocess.run([bash, "-c", probe], input=script, capture_output=True, text=True, cwd=ROOT, check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("complete ") and lines[0].endswith(" meshstat")
    assert "1:trace" in lines and "2:--uid" in lines
    assert "3:tests/data/iptables/seed-front-tomcat-pod.iptables-save" in lines


def test_zsh_completion_names_every_command() -> None:
    rc, script, _ = run(["completion", "zsh"])
    assert rc == 0 and script.startswith("#compdef meshstat")
    for name in _subparsers():
        assert re.search(rf"^\s+\"?{re.escape(name)}:", script, flags=re.M), name
