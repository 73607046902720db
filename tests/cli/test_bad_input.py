"""Bad input through the command line: one line on stderr, exit 2 (bad argument) or 3 (bad input).

Every case of ``tests/data/bad/`` (listed with its reason in the README there) and
every bad argument below runs in-process through :func:`meshstat.cli.main`. Each
must exit with the status of its class, print exactly one line on stderr starting
``meshstat: error:``, name the file (and the line where there is one) and say
what was expected (the key phrase stored beside the case). Never a traceback.
"""

from __future__ import annotations

import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshstat import cli
from meshstat.errors import ConfigParseError

DATA = Path(__file__).resolve().parents[1] / "data"
BAD = DATA / "bad"
LISTENER = str(DATA / "envoy" / "istio-demo-istioctl-listener.json")
ARG, INPUT = cli.ExitStatus.INVALID_INPUT, cli.ExitStatus.PARSE_ERROR


@dataclass(frozen=True)
class Case:
    """One bad input: the file (under tests/data/bad) or None, the command, and what must come out."""

    name: str
    file: str | None
    status: int
    phrase: str
    line: int | None = None
    command: tuple[str, ...] = ()


def services(name: str, status: int, phrase: str, line: int | None = None) -> Case:
    return Case(name, name, status, phrase, line, ("services", "--iptables", "{}"))


def trace(name: str, status: int, phrase: str, line: int | None = None, *, nft: bool = False) -> Case:
    return Case(
        name,
        name,
        status,
        phrase,
        line,
        ("trace", "--nft" if nft else "--iptables", "{}", "--dst", "172.30.1.1:80"),
    )


def envoy(name: str, phrase: str, line: int | None = None) -> Case:
    return Case(
        name,
        name,
        INPUT,
        phrase,
        line,
        (
            "envoy-route",
            "--config-dump",
            LISTENER,
            "--config-dump",
            "{}",
            "--host",
            "bill-service.istio-demo.svc.cluster.local",
            "--port",
            "9999",
            "--address",
            "10.108.203.9",
        ),
    )


def mesh(name: str, phrase: str, line: int | None = None) -> Case:
    return Case(name, name, INPUT, phrase, line, ("mesh", "-f", "{}"))


def nginx(name: str, phrase: str, line: int | None = None) -> Case:
    return Case(name, name, INPUT, phrase, line, ("validate", "--nginx", "{}"))


def counts(name: str, phrase: str, line: int | None = None) -> Case:
    return Case(name, name, INPUT, phrase, line, ("check", "--weights", "90,10", "--observed-file", "{}"))


def envoy_stats(name: str, phrase: str, line: int | None = None) -> Case:
    return Case(name, name, INPUT, phrase, line, ("check", "--weights", "90,10", "--envoy-stats", "{}"))


def prometheus(name: str, phrase: str, line: int | None = None) -> Case:
    return Case(name, name, INPUT, phrase, line, ("check", "--weights", "90,10", "--prometheus", "{}"))


def arg(name: str, phrase: str, *command: str) -> Case:
    return Case(name, None, ARG, phrase, None, command)


SIM = ("simulate", "--weights", "90,10")

#: Every case: files of tests/data/bad (README.md there says why each is bad) and bad arguments.
CASES = [
    # iptables-save
    services("ipt-truncated-midline.iptables-save", INPUT, "expected a closing double quote", 11),
    services("ipt-missing-commit.iptables-save", INPUT, "expected COMMIT at the end of table 'nat'", 14),
    services("ipt-rule-before-table.iptables-save", INPUT, "expected a table header such as '*nat'", 2),
    services("ipt-unknown-table.iptables-save", INPUT, "expected a table name (raw, mangle, nat", 2),
    trace(
        "ipt-jump-undefined-chain.iptables-save",
        INPUT,
        "chain 'KUBE-SEP-MISSINGCHAIN0000' does not exist",
        12,
    ),
    trace("ipt-goto-undefined-chain.iptables-save", INPUT, "chain 'KUBE-NOWHERE' does not exist", 9),
    trace("ipt-jump-cycle.iptables-save", INPUT, "jump loop in table 'nat': KUBE-A -> KUBE-B -> KUBE-A", 13),
    services("ipt-probability-above-one.iptables-save", INPUT, "expected a probability in [0, 1]", 11),
    services("ipt-probability-negative.iptables-save", INPUT, "expected a probability in [0, 1]", 11),
    services("ipt-probability-unparsable.iptables-save", INPUT, "expected a probability in [0, 1]", 11),
    services("ipt-probability-nan.iptables-save", INPUT, "expected a probability in [0, 1]", 11),
    services(
        "ipt-duplicate-chain.iptables-save", INPUT, "is declared twice in table 'nat' (first at line 6)", 9
    ),
    services("ipt-duplicate-table.iptables-save", INPUT, "table 'nat' (ip) appears twice", 19),
    services("ipt-binary-garbage.iptables-save", INPUT, "expected UTF-8 text, found binary data", 9),
    services(
        "ipt-latin1-comment.iptables-save", INPUT, "expected UTF-8 text, found binary data (byte 0xE9", 10
    ),
    services("ipt-empty.iptables-save", INPUT, "empty input"),
    services("ipt-comments-only.iptables-save", INPUT, "empty input"),
    services("ipt-bom-crlf-bad-port.iptables-save", INPUT, "expected valid values for -m tcp", 10),
    services("ipt-unterminated-quote.iptables-save", INPUT, "expected a closing double quote", 13),
    services("ipt-insert-position.iptables-save", INPUT, "expected an insert position of at most 1", 9),
    services("ipt-not-iptables.iptables-save", INPUT, "expected '*table'", 1),
    # nft
    trace("nft-truncated.nft", INPUT, "expected '}' to close the block (input ended)", 1, nft=True),
    trace("nft-jump-undefined-chain.nft", INPUT, "chain 'endpoint-zzz' does not exist", 7, nft=True),
    trace("nft-jump-cycle.nft", INPUT, "jump loop in table 'kube-proxy'", 15, nft=True),
    trace("nft-numgen-mod-zero.nft", INPUT, "expected a modulus in [1, 4294967295]", 7, nft=True),
    trace("nft-unknown-family.nft", INPUT, "expected a table family", 1, nft=True),
    trace("nft-bad-address.nft", INPUT, "expected a valid value for ip daddr", 3, nft=True),
    trace(
        "nft-binary-garbage.nft", INPUT, "expected UTF-8 text, found binary data (a NUL byte)", 6, nft=True
    ),
    trace("nft-dnat-map-verdict.nft", INPUT, "expected 'ADDRESS . PORT' for each numgen slot", 3, nft=True),
    Case(
        "nft-map-port-name.nft",
        "nft-map-port-name.nft",
        INPUT,
        "expected a port number as component 3 of the map element",
        5,
        ("services", "--nft", "{}"),
    ),
    # Envoy JSON (an istioctl proxy-config route output beside the listener output)
    envoy("envoy-truncated.json", "invalid JSON: Expecting property name", 53),
    envoy("envoy-deeply-nested.json", "nested deeper than meshstat reads"),
    envoy(
        "envoy-weight-negative.json", "weight: expected an integer in [0, 4294967295], got the number -90", 53
    ),
    envoy("envoy-weight-nan.json", "invalid JSON: NaN is not a JSON number", 53),
    envoy("envoy-weight-infinity.json", "invalid JSON: Infinity is not a JSON number", 53),
    envoy(
        "envoy-weight-overflow.json", "expected an integer in [0, 4294967295], got the number 4294967296", 53
    ),
    envoy("envoy-weight-sum-overflow.json", "expected weights summing to at most 4294967295", 50),
    envoy("envoy-weight-sum-zero.json", "expected weights summing to more than 0", 50),
    envoy("envoy-weight-fraction.json", "expected an integer in [0, 4294967295], got the number 89.5", 53),
    envoy("envoy-weight-not-a-number.json", "got the string 'ninety'", 53),
    envoy("envoy-wrong-shape.json", "virtual_hosts: expected a list, got the number 7", 5),
    envoy("envoy-empty.json", "empty input"),
    envoy("envoy-scalar.json", "expected an Envoy config_dump", 1),
    envoy("envoy-binary.json", "expected UTF-8 text, found binary data", 1),
    envoy("envoy-endpoint-wrong-shape.json", "lb_endpoints[0].endpoint.address: expected an object", 13),
    envoy("envoy-regex-backreference.json", "got '(a)\\\\1': invalid escape sequence: \\1", 52),
    envoy("envoy-regex-lookahead.json", "safe_regex.regex: expected a regular expression in RE2 syntax", 47),
    # Kubernetes / Istio YAML
    mesh("yaml-vs-regex-backreference.yaml", "RE2 refuses it: invalid escape sequence: \\1", 12),
    mesh("yaml-vs-uri-regex-possessive.yaml", "uri regex '/api/v1++': expected an RE2 regular expression", 11),
    mesh("yaml-alias-bomb.yaml", "expands to more than 1,000,000 nodes through aliases", 1),
    mesh("yaml-deeply-nested.yaml", "nested deeper than 100 levels", 2),
    mesh("yaml-deeply-nested-block.yaml", "nested deeper than meshstat reads", 3),
    mesh("yaml-weight-negative.yaml", "weight -80 < 0", 13),
    mesh("yaml-weight-nan.yaml", "expected 'weight' of route destination to be an integer", 13),
    mesh("yaml-weight-infinity.yaml", "expected 'weight' of route destination to be an integer", 13),
    mesh("yaml-weight-overflow.yaml", "to be in [-2147483648, 2147483647]", 13),
    mesh("yaml-weight-fraction.yaml", "expected 'weight' of route destination to be an integer", 13),
    mesh("yaml-duplicate-key.yaml", "found duplicate key 'weight' (first on line 13", 14),
    mesh("yaml-truncated.yaml", "invalid YAML: found unexpected end of stream", 13),
    mesh("yaml-tab-indent.yaml", "invalid YAML: found character '\\t'", 6),
    mesh("yaml-binary.yaml", "expected UTF-8 text, found binary data (a NUL byte)", 3),
    mesh(
        "yaml-not-an-object.yaml",
        "expected a Kubernetes object (a mapping with apiVersion and kind), got a list",
        1,
    ),
    mesh("yaml-huge-integer.yaml", "found an integer of 5000 characters (too long)", 6),
    mesh("yaml-replicas-too-many.yaml", "meshstat expands at most 50,000 pods", 6),
    mesh("yaml-owner-reference-not-a-mapping.yaml", "expected 'ownerReferences' of Pod metadata to be a list of mappings", 6),
    # Gateway API (cut from gwapi-good.yaml, Bookinfo's route-reviews-90-10 HTTPRoute)
    mesh("gwapi-weight-negative.yaml", "expected 'weight' of backendRef to be in [0, 1000000]", 18),
    mesh("gwapi-weight-overflow.yaml", "expected 'weight' of backendRef to be in [0, 1000000]", 18),
    mesh("gwapi-backend-no-port.yaml", "expected backendRef to a Service to have a 'port'", 16),
    mesh("gwapi-path-relative.yaml", "expected a PathPrefix path to start with '/'", 15),
    mesh("gwapi-version.yaml", "gateway.networking.k8s.io/v1beta1 for HTTPRoute (no other version serves it)", 1),
    # nginx (validate reads the file before it starts nginx)
    nginx("nginx-weight-zero.conf", 'invalid parameter "weight=0"', 3),
    nginx("nginx-weight-negative.conf", 'invalid parameter "weight=-5"', 3),
    nginx("nginx-weight-overflow.conf", "weight must be an integer in [1, 9223372036854775807]", 3),
    nginx("nginx-weight-garbage.conf", 'invalid parameter "weight=five"', 3),
    nginx("nginx-unclosed-brace.conf", "unexpected end of file, expected '}'", 2),
    nginx("nginx-no-upstream.conf", "expected at least one 'upstream NAME", 1),
    nginx("nginx-unknown-directive.conf", 'unknown directive "frobnicate"', 5),
    nginx("nginx-newline-in-token.conf", 'unknown directive "a\\nb"', 3),
    # observed counts (check --observed-file)
    counts("counts-negative.csv", "expected a non-negative integer count", 3),
    counts("counts-nan.json", "count of 'v2' must be a non-negative integer", 1),
    counts("counts-binary.csv", "expected UTF-8 text, found binary data (a NUL byte)", 2),
    counts("counts-deeply-nested.json", "nested too deeply"),
    counts("counts-huge.csv", "expected a non-negative integer count", 3),
    # observed traffic (check --envoy-stats, check --prometheus)
    envoy_stats("observed-stats-not-stats.txt", "expected 'name: value' (Envoy admin /stats)", 4),
    envoy_stats("observed-stats-negative.txt", "expected a non-negative integer counter, got '-221'", 2),
    envoy_stats("observed-clusters-truncated.txt", "expected '<cluster>::<host>::<stat>::<value>'", 8),
    envoy_stats("observed-stats-json-wrong-shape.json", "expected Envoy admin JSON", 1),
    envoy_stats("observed-empty.txt", "empty input"),
    prometheus("observed-prom-unterminated-label.prom", "expected a closing double quote", 3),
    prometheus("observed-prom-duplicate-series.prom", "appears twice (first on line 2)", 4),
    prometheus("observed-query-error.json", "Prometheus answered bad_data", 1),
    prometheus("observed-query-scalar.json", "expected resultType vector or matrix", 4),
    prometheus("observed-query-increase.json", "expected request counts (non-negative integers)", 7),
    prometheus("observed-query-bad-value.json", "expected a number as the value", 7),
    # ipvsadm -ln (services --ipvs)
    Case(
        "ipvs-bad-vip-port.txt",
        "ipvs-bad-vip-port.txt",
        INPUT,
        "expected the virtual service as VIP:PORT",
        4,
        ("services", "--ipvs", "{}"),
    ),
    # command-line arguments
    arg("n-zero", "argument -n: expected a positive count, got '0'", *SIM, "-n", "0"),
    arg("n-negative", "argument -n: expected a positive count, got '-5'", *SIM, "-n", "-5"),
    arg("n-fraction", "argument -n: expected an integer count, got '1.5'", *SIM, "-n", "1.5"),
    arg("n-huge", "argument -n: count must be at most 2**63-1, got '1e30'", *SIM, "-n", "1e30"),
    arg("n-huge-exponent", "count must be at most 2**63-1, got '1e100000000'", *SIM, "-n", "1e100000000"),
    arg("n-garbage", "argument -n: expected a positive integer", *SIM, "-n", "ten"),
    arg("weights-negative", "weight must be >= 0, got '-1'", "simulate", "--weights=-1,2"),
    arg("weights-nan", "weight must be a non-negative integer, got 'nan'", "simulate", "--weights", "nan,1"),
    arg("weights-inf", "weight must be a non-negative integer, got 'inf'", "simulate", "--weights", "inf,1"),
    arg("weights-overflow", "weight must be at most 4294967295", "simulate", "--weights", "4294967296,1"),
    arg("weights-1e400", "weight must be at most 4294967295", "simulate", "--weights", "1e400,1"),
    arg(
        "weights-huge-exponent",
        "weight must be a non-negative integer",
        "simulate",
        "--weights",
        "1e100000000,1",
    ),
    arg("weights-sum-overflow", "exceeds 4294967295", "simulate", "--weights", "2147483648,2147483648"),
    arg(
        "weights-sum-zero",
        "Sum of weights in the weighted_cluster must be greater than 0",
        "simulate",
        "--weights",
        "0,0",
    ),
    arg("cascade-above-one", "probability must be within [0, 1], got '1.5'", "simulate", "--cascade", "1.5"),
    arg("cascade-nan", "probability must be within [0, 1], got 'nan'", "simulate", "--cascade", "nan"),
    arg(
        "observed-huge-exponent",
        "observed counts must be non-negative integers",
        "check",
        "--weights",
        "1,1",
        "--observed",
        "1e100000000,5",
    ),
    arg("observed-three-files", "give one file or two (before after), got 3", "check", "--weights", "90,10",
        "--envoy-stats", "a", "b", "c"),
    arg("observed-steps-without-canary", "--steps goes with --canary", "check", "--weights", "90,10",
        "--prometheus", str(BAD / "observed-prom-good.prom"), "--steps", "5,10"),
    arg("observed-client-without-data", "--client goes with --envoy-stats or --prometheus", "check", "--weights",
        "90,10", "--observed", "5,5", "--client", "a"),
    arg("observed-no-split", "give the configured split", "check", "--prometheus",
        str(BAD / "observed-prom-good.prom")),
    # digits that are not ASCII: str.isdigit holds for them, int() refuses them (meshstat.inputs.ascii_digits)
    arg("port-superscript", "expected a port in [1, 65535], got '\u00b2'", "envoy-route", "--config-dump",
        LISTENER, "--host", "a", "--port", "\u00b2"),
    arg("dst-port-superscript", "expected IP[:PORT], got '172.30.1.1:\u00b2'", "trace", "--iptables",
        str(BAD / "ipt-good.iptables-save"), "--dst", "172.30.1.1:\u00b2"),
    arg(
        "max-input-size-garbage",
        "expected a size such as 256M, 1G",
        "services",
        "--iptables",
        str(BAD / "ipt-good.iptables-save"),
        "--max-input-size",
        "12X",
    ),
    arg(
        "max-input-size-zero",
        "expected a size of at least one byte",
        "services",
        "--iptables",
        str(BAD / "ipt-good.iptables-save"),
        "--max-input-size",
        "0",
    ),
]


def run(argv: list[str], stdin: io.TextIOBase | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    if stdin is not None:
        sys.stdin = stdin
    try:
        status = cli.main(argv, stdout=out, stderr=err)
    finally:
        sys.stdin = old
    return status, out.getvalue(), err.getvalue()


def assert_one_error_line(err: str) -> str:
    assert err.endswith("\n"), f"expected one line on stderr, got {err!r}"
    assert err.count("\n") == 1, f"expected one line on stderr, got {err!r}"
    assert err.startswith("meshstat: error: "), err
    assert "Traceback" not in err
    return err[:-1]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case) -> None:
    path = str(BAD / case.file) if case.file else None
    argv = [path if (a == "{}" and path) else a for a in case.command]
    status, _, err = run(argv)
    line = assert_one_error_line(err)
    assert status == case.status, line
    assert case.phrase in line, line
    if path is not None:
        where = f"{path}:{case.line}:" if case.line is not None else f"{path}: "
        assert where in line, line
    else:
        assert not re.search(r"\S+:\d+: ", line.removeprefix("meshstat: error: ")), line


def test_corpus_is_complete_and_listed() -> None:
    """Every file of tests/data/bad is a case (or the valid base of cases) and is in its README."""
    files = {p.name for p in BAD.iterdir() if p.name != "README.md"}
    used = {c.file for c in CASES if c.file}
    bases = {f for f in files if "-good." in f}
    assert files == used | bases
    assert len(CASES) >= 40
    readme = (BAD / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M))
    assert listed == {c.name for c in CASES} | bases


def test_valid_bases_parse() -> None:
    """The valid files the cases are cut from parse: each case is bad for its own reason."""
    from meshstat.parsers.envoy import load_envoy
    from meshstat.parsers.k8s import load_manifests
    from meshstat.parsers.nginx import load_upstreams

    assert run(["services", "--iptables", str(BAD / "ipt-good.iptables-save")])[0] == 0
    assert run(["trace", "--nft", str(BAD / "nft-good.nft"), "--dst", "172.30.1.1:80"])[0] == 0
    load_envoy([LISTENER, str(BAD / "envoy-route-good.json")])
    assert load_manifests(str(BAD / "yaml-vs-good.yaml")).virtual_services
    assert load_manifests(str(BAD / "gwapi-good.yaml")).gateway_objects
    assert load_upstreams(BAD / "nginx-good.conf")
    assert run(["check", "--weights", "1", "--prometheus", str(BAD / "observed-prom-good.prom")])[0] == 0


# --------------------------------------------------------------------------- the size bound


def test_100_mb_input_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.iptables-save"
    rule = "-A KUBE-SVC-AQI2S6QIMU7PVVRP -m comment --comment padding -j KUBE-SEP-3JOIVZTXZZRGORX4\n"
    block = rule * (1 << 20 // len(rule) + 1)
    with open(big, "w", encoding="utf-8") as fh:
        fh.write("*nat\n")
        while fh.tell() < 100 * (1 << 20):
            fh.write(block)
    status, _, err = run(["services", "--iptables", str(big)])
    line = assert_one_error_line(err)
    assert status == INPUT
    assert f"{big}: ruleset is 100.0 MiB, over the 64 MiB limit (raise it with --max-input-size)" in line, (
        line
    )


def test_max_input_size_raises_and_lowers_the_bound() -> None:
    good = str(BAD / "ipt-good.iptables-save")
    size = (BAD / "ipt-good.iptables-save").stat().st_size  # 931 bytes
    status, _, err = run(["services", "--iptables", good, "--max-input-size", "0.5K"])
    assert status == INPUT
    assert f"ruleset is {size} bytes, over the 512 bytes limit (raise it with --max-input-size)" in (
        assert_one_error_line(err)
    )
    assert run(["services", "--iptables", good, "--max-input-size", "1K"])[0] == 0
    assert run(["services", "--iptables", good, "--max-input-size", str(size)])[0] == 0
    assert run(["services", "--iptables", good, "--max-input-size", str(size - 1)])[0] == INPUT


def test_stdin_is_bounded_too() -> None:
    data = (BAD / "ipt-good.iptables-save").read_bytes()
    status, _, err = run(
        ["services", "--iptables", "-", "--max-input-size", "0.5K"],
        stdin=io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"),
    )
    assert status == INPUT
    assert "<stdin>: ruleset is over the 512 bytes limit (raise it with --max-input-size)" in (
        assert_one_error_line(err)
    )
    status, out, _ = run(
        ["services", "--iptables", "-"], stdin=io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    )
    assert status == 0
    assert "ns1/svc1" in out


def test_every_file_reading_command_takes_the_bound(tmp_path: Path) -> None:
    """Each reader goes through meshstat.inputs.read_text: a 1-byte bound refuses every one of them."""
    listener = LISTENER
    cmds = [
        ["services", "--iptables", str(BAD / "ipt-good.iptables-save")],
        ["trace", "--nft", str(BAD / "nft-good.nft"), "--dst", "172.30.1.1:80"],
        ["services", "--ipvs", str(DATA / "iptables" / "kube-proxy-ipvs-ipvsadm-ln.txt")],
        ["envoy-route", "--config-dump", listener, "--host", "a", "--port", "80"],
        ["mesh", "-f", str(BAD / "yaml-vs-good.yaml")],
        ["validate", "--nginx", str(BAD / "nginx-good.conf")],
        ["check", "--weights", "1,1", "--observed-file", str(BAD / "counts-negative.csv")],
        ["check", "--weights", "1", "--prometheus", str(BAD / "observed-prom-good.prom")],
        ["check", "--weights", "1", "--envoy-stats", str(BAD / "observed-stats-negative.txt")],
        ["simulate", "--iptables", str(BAD / "ipt-good.iptables-save"), "--service", "ns1/svc1"],
    ]
    for argv in cmds:
        status, _, err = run([*argv, "--max-input-size", "1"])
        line = assert_one_error_line(err)
        assert status == INPUT, line
        assert "over the 1 bytes limit (raise it with --max-input-size)" in line, line


# --------------------------------------------------------------------------- exit statuses


def test_missing_file_is_an_os_error() -> None:
    status, _, err = run(["services", "--iptables", str(BAD / "no-such-file")])
    assert status == cli.ExitStatus.ERROR
    assert assert_one_error_line(err).startswith("meshstat: error: cannot access")


@pytest.mark.parametrize(
    "exc",
    [
        RecursionError("maximum recursion depth exceeded"),
        MemoryError(),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        KeyError("x"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_internal_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    from meshstat.cli import netfilter as cli_netfilter

    def boom(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(cli_netfilter, "_load", boom)
    status, _, err = run(["services", "--iptables", str(BAD / "ipt-good.iptables-save")])
    assert status == cli.ExitStatus.ERROR
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert err.startswith(f"meshstat: internal error: {type(exc).__name__}")
    assert err.endswith("(run with --traceback for details)\n")
    with pytest.raises(type(exc)):
        run(["--traceback", "services", "--iptables", str(BAD / "ipt-good.iptables-save")])


def test_a_model_error_is_bad_input_when_it_names_a_file() -> None:
    """The rule of ExitStatus: an error that carries its source file exits 3, from an argument 2."""
    from meshstat.errors import ModelError

    assert ModelError("x", source="f.json", line=3).source == "f.json"
    assert str(ModelError("x", source="f.json", line=3)) == "f.json:3: x"
    assert run(["simulate", "--weights", "0,0"])[0] == ARG
    assert run(["services", "--iptables", str(BAD / "ipt-jump-cycle.iptables-save")])[0] == 0  # no walk there
    assert (
        run(["trace", "--iptables", str(BAD / "ipt-jump-cycle.iptables-save"), "--dst", "10.0.0.1"])[0]
        == INPUT
    )
    assert issubclass(ConfigParseError, ModelError.__mro__[1])  # both are MeshstatError
