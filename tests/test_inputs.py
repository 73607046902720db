"""meshstat.inputs: sizes, the bound, decoding; and CRLF/BOM files read exactly as their LF twins."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from meshstat import inputs
from meshstat.errors import ConfigParseError, InvalidArgument

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256M", 256 << 20),
        ("1G", 1 << 30),
        ("1.5G", 3 << 29),
        ("64MiB", 64 << 20),
        ("4096", 4096),
        ("1kb", 1024),
        (" 2 T ", 2 << 40),
        (".5K", 512),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert inputs.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-5", "12X", "1e3", "M", "1.2.3K", "0.0001K"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(InvalidArgument):
        inputs.parse_size(text)


@pytest.mark.parametrize(("text", "digits"), [("8080", True), ("0", True), ("", False), ("\u00b2", False),
                                             ("1\u00b2", False), ("\u0663", False), ("-1", False),
                                             (" 1", False)])
def test_ascii_digits(text: str, digits: bool) -> None:
    """A number is ASCII digits: a superscript two is a digit to ``str.isdigit``, and ``int()`` refuses it."""
    assert inputs.ascii_digits(text) is digits
    if digits:
        assert int(text) >= 0


def test_format_size() -> None:
    assert inputs.format_size(64 << 20) == "64 MiB"
    assert inputs.format_size(100 << 20) == "100 MiB"
    assert inputs.format_size((100 << 20) + 1) == "100.0 MiB"
    assert inputs.format_size(1000) == "1000 bytes"
    assert inputs.format_size(3 << 29) == "1.5 GiB"


def test_default_bound_and_context() -> None:
    assert inputs.current_max_input_size() == inputs.DEFAULT_MAX_INPUT_BYTES == 64 << 20
    with inputs.max_input_size("1K") as bound:
        assert bound == inputs.current_max_input_size() == 1024
        with inputs.max_input_size(None):
            assert inputs.current_max_input_size() == 1024
    assert inputs.current_max_input_size() == 64 << 20


def test_read_text_bound(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_bytes(b"x" * 2000)
    assert inputs.read_text(f, max_bytes=2000) == "x" * 2000
    with pytest.raises(
        ConfigParseError,
        match=r"f.txt: input is 2000 bytes, over the 1999 bytes limit "
        r"\(raise it with --max-input-size\)",
    ):
        inputs.read_text(f, max_bytes=1999)
    with inputs.max_input_size(1000), pytest.raises(ConfigParseError, match="over the 1000 bytes limit"):
        inputs.read_text(f, what="counts file")


def test_read_text_stdin() -> None:
    assert inputs.read_text("-", stdin=io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbfa\r\nb"))) == "a\nb"
    assert inputs.read_text("-", stdin=io.StringIO("\ufeffa\r\nb")) == "a\nb"
    with pytest.raises(ConfigParseError, match=r"^<stdin>: input is over the 10 bytes limit"):
        inputs.read_text("-", stdin=io.StringIO("x" * 11), max_bytes=10)


def test_read_text_pipe_is_bounded(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "wb") as fh, contextlib.suppress(BrokenPipeError):
            fh.write(b"y" * 100_000)

    t = threading.Thread(target=writer)
    t.start()
    try:
        with pytest.raises(ConfigParseError, match="input is over the 1 KiB limit"):
            inputs.read_text(fifo, max_bytes=1024)
    finally:
        t.join(timeout=10)


@pytest.mark.parametrize(
    ("data", "where", "what"),
    [
        (b"ab\ncd\x00e", "f:2:3", "a NUL byte"),
        (b"ab\r\ncd\xe9e", "f:2:3", "byte 0xE9, which is not UTF-8"),
        (b"a\rb\r\n\xff", "f:3:1", "byte 0xFF"),
        (b"\xef\xbb\xbf\xfe", "f:1:1", "byte 0xFE"),
        ("x\ny\0", "f:2:2", "a NUL character"),
    ],
)
def test_binary_data_is_refused_with_line_and_column(data: bytes | str, where: str, what: str) -> None:
    with pytest.raises(ConfigParseError) as ei:
        inputs.decode_text(data, "f")
    assert str(ei.value).startswith(f"{where}: expected UTF-8 text, found binary data ({what}")


def test_bom_and_line_ends() -> None:
    assert inputs.decode_text(b"\xef\xbb\xbfa\r\nb\rc\n") == "a\nb\nc\n"
    assert inputs.decode_text("caf\u00e9\r\n".encode()) == "caf\u00e9\n"


# --------------------------------------------------------------------------- CRLF and BOM, parser by parser


def _iptables(text: str) -> object:
    from meshstat.parsers.netfilter import parse_iptables

    rs = parse_iptables(text, "f")
    return [
        (
            k,
            [
                (c.name, c.policy, [(r.line, r.text, r.target.text) for r in c.rules])
                for c in t.chains.values()
            ],
        )
        for k, t in rs.tables.items()
    ], rs.warnings


def _nft(text: str) -> object:
    from meshstat.parsers.netfilter import parse_nft

    rs = parse_nft(text, "f")
    return [
        (
            k,
            [(c.name, [(r.line, r.text) for r in c.rules]) for c in t.chains.values()],
            [(s.name, s.elements) for s in t.sets.values()],
        )
        for k, t in rs.tables.items()
    ]


def _envoy(text: str) -> object:
    from meshstat.parsers.envoy import parse_envoy_text

    cfg = parse_envoy_text(text, "f")
    return cfg.listeners, cfg.route_configs, cfg.clusters, cfg.assignments, cfg.host_statuses, cfg.lines


def _manifests(text: str) -> object:
    from meshstat.parsers.k8s import parse_manifest_text

    m = parse_manifest_text(text, "f")
    return repr(m)


def _nginx(text: str) -> object:
    from meshstat.parsers.nginx import parse_upstreams

    return parse_upstreams(text, source="f")


def _ipvs(text: str) -> object:
    from meshstat.kubeproxy import parse_ipvsadm

    return parse_ipvsadm(text, "f")


def _envoy_stats(text: str) -> object:
    from meshstat.parsers.observed import parse_envoy_stats

    return parse_envoy_stats(text, "f")


def _prometheus(text: str) -> object:
    from meshstat.parsers.observed import parse_prometheus

    return parse_prometheus(text, "f")


PARSERS = [
    (
        "iptables",
        _iptables,
        [
            *sorted((DATA / "iptables").glob("kube-proxy-*.iptables-save")),
            DATA / "iptables" / "istio-cni-sidecar-tproxy.iptables-save",
            DATA / "iptables" / "kube-proxy-iptables-overall.restore",
        ],
    ),
    ("nft", _nft, sorted((DATA / "iptables").glob("*.nft*"))),
    (
        "envoy",
        _envoy,
        [
            DATA / "envoy" / n
            for n in (
                "istio-demo-istioctl-route.json",
                "istio-demo-istioctl-listener.json",
                "meshstat-exp-envoy140-front.yaml",
                "envoy-examples-locality-load-balancing.yaml",
            )
        ],
    ),
    (
        "k8s",
        _manifests,
        sorted((DATA / "istio").glob("*.yaml")) + sorted((DATA / "istio-demo").glob("*.yaml")),
    ),
    ("nginx", _nginx, [DATA / "bad" / "nginx-good.conf"]),
    ("ipvsadm", _ipvs, [DATA / "iptables" / "kube-proxy-ipvs-ipvsadm-ln.txt"]),
    ("envoy-stats", _envoy_stats, sorted((DATA / "observed").glob("envoy140-reviews-after-*"))),
    ("prometheus", _prometheus, sorted((DATA / "observed").glob("istio-*.*[mn]"))),
]


@pytest.mark.parametrize(("name", "parse", "files"), PARSERS, ids=[p[0] for p in PARSERS])
def test_crlf_and_bom_parse_as_lf(name: str, parse: object, files: list[Path]) -> None:
    """Every parser, given CRLF text directly, returns what it returns for LF; through read_text, BOM too."""
    assert files
    for f in files:
        lf = f.read_text(encoding="utf-8")
        want = parse(lf)  # type: ignore[operator]
        assert parse(lf.replace("\n", "\r\n")) == want, f  # type: ignore[operator]
        raw = b"\xef\xbb\xbf" + lf.replace("\n", "\r\n").encode()
        assert parse(inputs.decode_text(raw, "f")) == want, f  # type: ignore[operator]
