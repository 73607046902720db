"""Fuzzing every parser: mutated fixtures may only raise meshstat's own errors, and never hang.

Each entry of :data:`REGISTRY` is a parser (and the cheap work done on what it
returns: services, a packet trace, a call resolution, mesh paths, nginx shares)
with the fixtures it is fed. Hypothesis mutates a fixture (byte flips, line
deletions, duplications and swaps, truncation, a token replaced by ``-1``,
``NaN``, ``1e309``, ``4294967296``, ``!``, ``-j``, a very long token, inserted
CR, BOM or NUL characters) and calls the parser on the text directly (no
:func:`meshstat.inputs.read_text` in between, so the parsers themselves must cope
with CR, BOM and NUL). Only :class:`meshstat.errors.MeshstatError` may escape,
its message must be one line, and each input must finish within
:data:`TIME_BOUND` seconds of CPU time (a ``SIGPROF`` watchdog; a hard ``faulthandler``
watchdog ends the process if even that cannot interrupt it).

Budget: :data:`CI_EXAMPLES` inputs per parser (derandomized under the ``ci``
profile: the same inputs every run), about 40 s for the whole file on the 2-core
development machine. A longer run (random inputs)::

    HYPOTHESIS_PROFILE=dev MESHSTAT_FUZZ_EXAMPLES=20000 \
        python -m pytest tests/test_fuzz.py -p no:cacheprovider -x

Each target may also hold :class:`Extreme` inputs: valid but at the edge of
what must run in bounded time and memory (a kube-proxy service of 3,000
endpoints, ``numgen random mod 4294967295``, 3,000 numgen slots, a header regex
``(a+)+b`` that a backtracking engine takes exponential time on, matched against
:data:`HOSTILE_HEADERS`). :func:`test_extreme_inputs` runs each as is and then
:data:`EXTREME_EXAMPLES` mutations of it.

To add a parser, append one :class:`FuzzTarget` to :data:`REGISTRY`.
A crash found here is fixed in the parser and its minimal input added to
``tests/data/bad/`` (see its README) as a regression case.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from meshstat.errors import MeshstatError

DATA = Path(__file__).resolve().parent / "data"

#: Seconds one input (parse plus follow-ups) may take.
TIME_BOUND = 2.0
#: Default inputs per parser in CI (MESHSTAT_FUZZ_EXAMPLES overrides it for every parser).
CI_EXAMPLES = 700
#: Mutated inputs per extreme input (large texts: a small budget of their own, apart from the seeds').
EXTREME_EXAMPLES = 20
#: Seconds of CPU time a valid extreme input may take: a guard against a hang or a blow-up, not a speed goal (the
#: parsers' speed is measured in benchmarks/, against a baseline in the same run). The 3,000-endpoint rulesets took
#: 0.9-1.7 s of CPU, three runs each, through ``run_one``, on a 2-core CI machine whose speed moves by a factor of
#: two from day to day; a fresh-clone CI run on it once took more than 2 s.
EXTREME_BOUND = 10.0
#: A mutation of an extreme input may take this many times the CPU time of the input itself.
EXTREME_SLOWDOWN = 4.0


# --------------------------------------------------------------------------- the parsers


#: Request headers of the follow-ups: a value on which a backtracking engine takes exponential time for
#: a regex such as ``(a+)+b`` (RE2, which Envoy uses, takes linear time).
HOSTILE_HEADERS = {"end-user": "a" * 30 + "c"}


def _quiet(fn: Callable[[], object]) -> None:
    """Run a follow-up step: meshstat errors are fine (the input was bad), anything else is not."""
    try:
        fn()
    except MeshstatError as exc:
        _check_message(exc)


def _netfilter_followups(rs: object) -> None:
    from meshstat import kubeproxy, netfilter

    infos: list = []

    def svc() -> None:
        infos.extend(kubeproxy.services(rs))  # type: ignore[arg-type]

    _quiet(svc)
    for info in infos[:3]:
        _quiet(lambda i=info: kubeproxy.service_route(i).exact_shares())
    dst = next((i.cluster_ip for i in infos if i.cluster_ip), None) or "10.96.0.10"
    dport = next((i.port for i in infos if i.port), None) or 80
    _quiet(lambda: netfilter.trace(rs, netfilter.Packet(dst=dst, dport=dport), "output"))  # type: ignore[arg-type]


def parse_iptables(text: str) -> None:
    from meshstat.parsers.netfilter import parse_iptables as parse

    _netfilter_followups(parse(text, "fuzz.iptables-save"))


def parse_listing(text: str) -> None:
    """``iptables -L`` listings and damaged pastes, as ``--iptables FILE`` reads them (sniffed)."""
    from meshstat import kubeproxy, netfilter
    from meshstat.inference.counters import check_counters

    rs = netfilter.load("fuzz.vnL", text=text)
    _netfilter_followups(rs)
    infos: list = []
    _quiet(lambda: infos.extend(kubeproxy.services(rs)[:2]))
    for info in infos:
        _quiet(lambda i=info: check_counters(rs, i.name))


def parse_nft(text: str) -> None:
    from meshstat.parsers.netfilter import parse_nft as parse

    _netfilter_followups(parse(text, "fuzz.nft"))


def parse_ipvsadm(text: str) -> None:
    from meshstat.kubeproxy import parse_ipvsadm as parse

    parse(text, "fuzz.ipvsadm")


def parse_envoy(text: str) -> None:
    from meshstat.mesh import envoy_dump_route
    from meshstat.parsers.envoy import parse_envoy_text

    cfg = parse_envoy_text(text, "fuzz.json")
    calls: list[tuple[str, int]] = []
    for name, rc in list(cfg.route_configs.items())[:3]:
        port = (
            int(name)
            if name.isascii() and name.isdigit() and len(name) <= 5 and 0 < int(name) < 65536
            else 80
        )
        for vh in (rc.get("virtual_hosts") if isinstance(rc, dict) else None) or []:
            doms = vh.get("domains") if isinstance(vh, dict) else None
            if isinstance(doms, list) and doms and isinstance(doms[0], str):
                calls.append((doms[0], port))
            if len(calls) >= 3:
                break
    for li in cfg.listeners[:2]:
        calls.append(("10.0.0.1", 15001 if "15001" in str(li.get("name")) else 80))
    for host, port in calls[:4]:
        _quiet(lambda h=host, p=port: envoy_dump_route(cfg, h, p, headers=HOSTILE_HEADERS)[0].exact_shares())


def parse_manifests(text: str) -> None:
    from meshstat.mesh import Mesh
    from meshstat.parsers.k8s import parse_manifest_text

    m = parse_manifest_text(text, "fuzz.yaml")

    def paths() -> None:
        mesh = Mesh(m)
        for info, port in mesh.routed_services()[:2]:
            for p in mesh.client_paths(info, port, headers=HOSTILE_HEADERS)[:3]:
                p.route.exact_shares()

    _quiet(paths)


def parse_nginx(text: str) -> None:
    from meshstat.balancers.roundrobin import SmoothWRR
    from meshstat.parsers.nginx import parse_upstreams

    for up in list(parse_upstreams(text, source="fuzz.conf").values())[:3]:
        _quiet(up.shares)
        _quiet(lambda u=up: SmoothWRR.from_upstream(u).sequence(20))


def parse_counts(text: str) -> None:
    from meshstat.inference import observed as inference

    if text.lstrip().startswith(("{", "[")):
        inference._read_observed_json("fuzz.json", text)
    else:
        inference._read_observed_csv("fuzz.csv", text)


def parse_envoy_stats(text: str) -> None:
    from meshstat.inference import observed_traffic as ot
    from meshstat.parsers.observed import parse_envoy_stats as parse

    st = parse(text, "fuzz.txt")
    _quiet(lambda: [st.find("cluster", c, "upstream_rq_total") for c in st.names()])

    def follow() -> None:  # the selection and differencing of read_traffic, on one or two snapshots
        for snaps in ([st], [st, st]):
            tracks, _by, _form = ot._envoy_tracks(snaps, None, None, None, [], [])
            ot._difference(tracks, [], [])

    _quiet(follow)


def parse_prometheus(text: str) -> None:
    from meshstat.inference import observed_traffic as ot
    from meshstat.parsers.observed import parse_prometheus as parse

    data = parse(text, "fuzz.prom")

    def follow() -> None:  # the selection and differencing of read_traffic
        datas = [data] if data.form == "matrix" else [data, data]
        tracks, *_ = ot._prometheus_tracks(datas, None, None, None, None, None, [], [])
        ot._difference(tracks, [], [])

    _quiet(follow)


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class FuzzTarget:
    """One parser under fuzzing.

    Parameters
    ----------
    name : str
        Test id.
    parse : callable
        ``parse(text)``: parse and do the cheap follow-up work; may raise only
        :class:`MeshstatError`.
    seeds : sequence of Path or str
        Fixture files (or literal texts) to mutate.
    examples : int
        Inputs per CI run.
    """

    name: str
    parse: Callable[[str], None]
    seeds: Sequence[Path | str]
    examples: int = CI_EXAMPLES
    extremes: Sequence[Extreme] = ()

    def texts(self) -> list[str]:
        return [s if isinstance(s, str) else s.read_text(encoding="utf-8") for s in self.seeds]


@dataclass(frozen=True)
class Extreme:
    """A valid input at the edge of what a parser and its follow-ups must handle in bounded time and memory.

    Parameters
    ----------
    name : str
        Test id.
    make : callable
        Builds the text (generated, so that no large fixture is stored).
    """

    name: str
    make: Callable[[], str]


def _files(folder: str, *patterns: str) -> list[Path]:
    return sorted(p for pat in patterns for p in (DATA / folder).glob(pat))


_NGINX = """\
http {
    upstream backend {
        server 10.0.0.1:80 weight=5 max_fails=3 fail_timeout=10s;
        server 10.0.0.2:80 weight=1;
        server 10.0.0.3:80 backup;
        server 10.0.0.4:80 down;
        keepalive 16;
    }
    upstream other { least_conn; server unix:/tmp/a.sock; server [::1]:8080 weight=2; }
    server { listen 80; location / { proxy_pass http://backend; } }
}
stream {
    upstream dns { hash $remote_addr consistent; server 10.0.0.9:53 weight=3; }
}
"""

def _kube_proxy_iptables(n: int) -> str:
    """kube-proxy's ``iptables-save`` of one ClusterIP Service with ``n`` endpoints: a cascade of ``n`` rules.

    The shape of kube-proxy's iptables proxier (``writeServiceToEndpointRules`` in
    ``pkg/proxy/iptables/proxier.go``): rule ``i`` of ``KUBE-SVC-*`` jumps to endpoint ``i``
    with ``--probability 1/(n-i)`` written with ten decimals, the last rule unconditionally.
    """
    svc = "KUBE-SVC-FUZZBIGSERVICE00"
    seps = [f"KUBE-SEP-{i:016X}" for i in range(n)]
    ips = [f"10.{244 + i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(n)]
    out = ["*nat", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":KUBE-SERVICES - [0:0]",
           ":KUBE-MARK-MASQ - [0:0]", f":{svc} - [0:0]", *(f":{c} - [0:0]" for c in seps),
           '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
           '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
           "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
           '-A KUBE-SERVICES -d 10.96.0.50/32 -p tcp -m comment --comment "default/big:http cluster IP" '
           f"-m tcp --dport 80 -j {svc}"]  # fmt: skip
    for i, (c, ip) in enumerate(zip(seps, ips, strict=True)):
        prob = f" -m statistic --mode random --probability {1 / (n - i):.10f}" if i < n - 1 else ""
        out.append(f'-A {svc} -m comment --comment "default/big:http -> {ip}:8080"{prob} -j {c}')
    for c, ip in zip(seps, ips, strict=True):
        out.append(f'-A {c} -s {ip}/32 -m comment --comment "default/big:http" -j KUBE-MARK-MASQ')
        out.append(f'-A {c} -p tcp -m comment --comment "default/big:http" -m tcp -j DNAT --to-destination {ip}:8080')
    return "\n".join([*out, "COMMIT", ""])


_NFT = DATA / "iptables" / "kube-proxy-nftables-overall.nft"
#: kube-proxy's nftables rule that splits ns4/svc4 between two endpoints (``numgen random mod 2 vmap``).
_NUMGEN_SPLIT = re.compile(r"numgen random mod 2 vmap \{ 0 : goto (\S+) , 1 : goto (\S+) \}")


def _nft_numgen_huge_modulus() -> str:
    """The two endpoints of ns4/svc4 split by ``numgen random mod 4294967295`` in two ranges of slots."""
    out, n = _NUMGEN_SPLIT.subn(
        r"numgen random mod 4294967295 vmap { 0-2147483646 : goto \1 , 2147483647-4294967294 : goto \2 }",
        _NFT.read_text(encoding="utf-8"),
    )
    assert n == 1
    return out


def _nft_numgen_many_endpoints(n: int = 3000) -> str:
    """ns4/svc4 with ``n`` endpoints: ``numgen random mod n`` and ``n`` endpoint chains, as kube-proxy writes them."""
    chain = "endpoint-FUZZ{0:06d}-ns4/svc4/tcp/p80__10.{1}.{2}.{3}/80"
    names = [chain.format(i, 181 + i // 65536, i // 256 % 256, i % 256) for i in range(n)]
    vmap = " , ".join(f"{i} : goto {c}" for i, c in enumerate(names))
    text = _NUMGEN_SPLIT.sub(lambda m: f"numgen random mod {n} vmap {{ {vmap} }}", _NFT.read_text(encoding="utf-8"))
    body = []
    for i, c in enumerate(names):
        ip = f"10.{181 + i // 65536}.{i // 256 % 256}.{i % 256}"
        body += [f"add chain ip kube-proxy {c}", f"add rule ip kube-proxy {c} ip saddr {ip} jump mark-for-masquerade",
                 f"add rule ip kube-proxy {c} meta l4proto tcp dnat to {ip}:80"]  # fmt: skip
    head, sep, tail = text.partition("# svc4\n")
    return head + "\n".join(body) + "\n" + sep + tail


_REGEX = "(a+)+b"


def _envoy_regex_route() -> str:
    """Istio's sidecar config_dump with a first route on bill-service matching header ``end-user`` against ``(a+)+b``.

    ``(a+)+b`` is RE2 syntax (Envoy's ``safe_regex``), linear in RE2 and exponential in a backtracking engine
    on :data:`HOSTILE_HEADERS`.
    """
    doc = json.loads((DATA / "envoy" / "istio-demo-front-tomcat-config_dump.json").read_text(encoding="utf-8"))
    done = 0
    stack: list[object] = [doc]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            for vh in cur.get("virtual_hosts") or []:
                if isinstance(vh, dict) and vh.get("domains") != ["*"] and vh.get("routes"):
                    first = vh["routes"][0]
                    match = {"prefix": "/", "headers": [
                        {"name": "end-user", "string_match": {"safe_regex": {"regex": _REGEX}}}]}  # fmt: skip
                    vh["routes"].insert(0, {**first, "name": "by-header", "match": match})
                    done += 1
            stack.extend(v for k, v in cur.items() if k != "virtual_hosts")
        elif isinstance(cur, list):
            stack.extend(cur)
    assert done
    return json.dumps(doc, indent=1)


def _istio_regex_manifests() -> str:
    """The istio-demo manifests with a VirtualService route matching header ``end-user`` against ``(a+)+b``."""
    vs = (
        "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\n"
        "metadata: {name: vs-regex, namespace: istio-demo}\n"
        "spec:\n  hosts: [bill-service]\n  http:\n"
        f"  - match:\n    - headers:\n        end-user: {{regex: '{_REGEX}'}}\n"
        "    route:\n    - destination: {host: bill-service, subset: v2}\n"
        "  - route:\n    - destination: {host: bill-service, subset: v1}\n"
    )
    docs = [p.read_text(encoding="utf-8") for p in _files("istio-demo", "*.yaml") if "virtualservice" not in p.name]
    return "\n---\n".join([*docs, vs])


_MANIFESTS = "\n---\n".join(p.read_text(encoding="utf-8") for p in _files("istio-demo", "*.yaml"))

#: Every parser under fuzzing. One entry per parser; see :class:`FuzzTarget`.
REGISTRY: list[FuzzTarget] = [
    FuzzTarget("iptables-save", parse_iptables, _files("iptables", "*.iptables-save", "*.restore"),
               extremes=[Extreme("kube-proxy-3000-endpoints", lambda: _kube_proxy_iptables(3000))]),
    FuzzTarget(
        "iptables-list",
        parse_listing,
        _files("iptables", "*.vnL", "*.paste", "listings/*.vnL*", "listings/*.vnxL", "listings/*.L"),
        examples=500,
    ),
    FuzzTarget("nft", parse_nft, _files("iptables", "*.nft", "*.nft-list") + _files("bad", "nft-good.nft"),
               extremes=[Extreme("numgen-mod-4294967295", _nft_numgen_huge_modulus),
                         Extreme("numgen-3000-endpoints", _nft_numgen_many_endpoints)]),
    FuzzTarget("ipvsadm", parse_ipvsadm, _files("iptables", "*ipvsadm*"), examples=300),
    FuzzTarget("envoy", parse_envoy, _files("envoy", "*.json", "*.yaml", "istioctl/*.json", "istioctl/*.yaml"),
               examples=400, extremes=[Extreme("envoy-regex-(a+)+b", _envoy_regex_route)]),
    FuzzTarget("k8s-yaml", parse_manifests, [*_files("istio", "*.yaml"), *_files("bookinfo/gateway-api", "*.yaml"),
                                             _MANIFESTS],
               extremes=[Extreme("istio-regex-(a+)+b", _istio_regex_manifests)]),
    FuzzTarget("nginx", parse_nginx, [_NGINX, DATA / "bad" / "nginx-good.conf"]),
    FuzzTarget(
        "counts",
        parse_counts,
        [
            "backend,count\nv1,95\nv2,5\n",
            '{"v1": 95, "v2": 5}\n',
            '[{"backend": "a", "count": 3}, ["b", 4]]\n',
        ],
        examples=300,
    ),
    FuzzTarget("envoy-stats", parse_envoy_stats, _files("observed", "envoy140-*.txt", "envoy140-*-stats.json"),
               examples=300),
    FuzzTarget("prometheus", parse_prometheus, _files("observed", "istio-*.prom", "istio-demo-query-*.json"),
               examples=300),
]


# --------------------------------------------------------------------------- mutations

INTERESTING = (
    "-1", "0", "-0", "1.5", "NaN", "nan", "-nan", "Infinity", "1e309", "-1e309", ".inf", ".nan",
    "4294967295", "4294967296", "18446744073709551616", "99999999999999999999999", "0x1F", "1e5",
    "!", "-j", "-g", "-m", "--probability", "*nat", "COMMIT", ":", "{", "}", "[", "]", '"', "'", "\\",
    "null", "true", "[]", "{}", "~", "&a", "*a", "<<", "goto", "jump", "mod", "vmap", "weight=0",
    "upstream", "server", ";", "", " ", "\t", "\ufeff", "\x00", "\r", "\r\n", "\u2028", "\x85", "é",
    "\U0001d11e", "(a+)+b", "(a)\\1", "(?=a)", "a{1000}",
)  # fmt: skip
_TOKEN = re.compile(r"[^\s\"',:;{}\[\]()=]+")
#: Values a JSON node is replaced with (structure-aware mutation of JSON seeds).
JSON_VALUES = (
    -1, 0, 1.5, float("nan"), float("inf"), -float("inf"), 4294967296, 2**64, 10**30, "-1", "NaN", "1e309",
    "", "!", "x" * 5000, None, True, [], {}, [None], {"": None}, [[[[]]]], {"value": -1}, {"value": "x"},
)  # fmt: skip

_pos = st.integers(min_value=0, max_value=1 << 24)
_long = st.builds(lambda c, n: c * n, st.sampled_from('a9-.:[{"\\ '), st.integers(1000, 20000))
_value = st.one_of(st.sampled_from(INTERESTING), _long, st.text(max_size=8))
_mutation = st.one_of(
    st.tuples(st.just("flip"), _pos, st.characters(codec="utf-8")),
    st.tuples(st.just("flip"), _pos, st.sampled_from('{}[]":;-!0 \n\r\x00')),
    st.tuples(st.just("delete_line"), _pos),
    st.tuples(st.just("duplicate_line"), _pos),
    st.tuples(st.just("swap_lines"), _pos, _pos),
    st.tuples(st.just("truncate"), _pos),
    st.tuples(st.just("token"), _pos, _value),
    st.tuples(
        st.just("insert"), _pos, st.sampled_from(("\r", "\ufeff", "\x00", "\n", "\r\n", "\t", "\\", '"'))
    ),
    st.tuples(st.just("insert"), _pos, _long),
    st.tuples(st.just("json_node"), _pos, st.sampled_from(JSON_VALUES)),
    st.tuples(st.just("json_node"), _pos, st.sampled_from(JSON_VALUES)),
)


def mutate(text: str, mutations: Sequence[tuple]) -> str:
    """Apply mutations (as drawn by the strategy) in order."""
    for m in mutations:
        kind = m[0]
        if kind in ("flip", "truncate", "insert") and text:
            i = m[1] % (len(text) + (kind == "insert"))
            if kind == "flip":
                text = text[:i] + m[2] + text[i + 1 :]
            elif kind == "truncate":
                text = text[:i]
            else:
                text = text[:i] + m[2] + text[i:]
        elif kind in ("delete_line", "duplicate_line", "swap_lines"):
            lines = text.split("\n")
            i = m[1] % len(lines)
            if kind == "delete_line":
                del lines[i]
            elif kind == "duplicate_line":
                lines.insert(i, lines[i])
            else:
                j = m[2] % len(lines)
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif kind == "json_node":
            text = _mutate_json(text, m[1], m[2])
        elif kind == "token":
            spans = [t.span() for t in _TOKEN.finditer(text)]
            if spans:
                a, b = spans[m[1] % len(spans)]
                text = text[:a] + m[2] + text[b:]
    return text


def _mutate_json(text: str, k: int, value: object) -> str:
    """Replace the ``k``-th node (mod the node count) of a JSON text by ``value``; other texts unchanged."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return text
    nodes: list[tuple[object, object]] = []  # (container, key) of every non-root node
    stack = [doc]
    while stack:
        cur = stack.pop()
        items = cur.items() if isinstance(cur, dict) else enumerate(cur) if isinstance(cur, list) else ()
        for key, child in items:
            nodes.append((cur, key))
            stack.append(child)
    if not nodes:
        return text
    container, key = nodes[k % len(nodes)]
    container[key] = value  # type: ignore[index]
    return json.dumps(doc, indent=1)


# --------------------------------------------------------------------------- the watchdog


class InputTookTooLong(Exception):  # not a MeshstatError, on purpose
    """An input ran past :data:`TIME_BOUND`."""


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Raise :class:`InputTookTooLong` in the body after ``seconds``; end the process after 10 times that."""

    def alarm(signum: int, frame: object) -> None:
        raise InputTookTooLong(f"input took more than {seconds} s")

    # CPU time (ITIMER_PROF), not wall time: a loaded CI machine must not fail a fast parser;
    # a hang that does not use the CPU is caught by faulthandler's wall-clock kill
    old = signal.signal(signal.SIGPROF, alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    faulthandler.dump_traceback_later(seconds * 10, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
        faulthandler.cancel_dump_traceback_later()


def _check_message(exc: MeshstatError) -> None:
    text = str(exc)
    assert text.strip(), f"{type(exc).__name__} without a message"
    assert "\n" not in text, f"message of {type(exc).__name__} is not one line: {text!r}"
    assert "\r" not in text, f"message of {type(exc).__name__} is not one line: {text!r}"


def run_one(target: FuzzTarget, text: str, bound: float = TIME_BOUND) -> None:
    """Parse ``text`` within ``bound`` seconds of CPU time; only meshstat errors (with one-line messages) may
    escape."""
    with time_bound(bound):
        try:
            target.parse(text)
        except MeshstatError as exc:
            _check_message(exc)


# --------------------------------------------------------------------------- the tests


def _budget(target: FuzzTarget) -> int:
    env = os.environ.get("MESHSTAT_FUZZ_EXAMPLES")
    return int(env) if env else target.examples


@pytest.mark.parametrize("target", REGISTRY, ids=[t.name for t in REGISTRY])
def test_seeds_parse(target: FuzzTarget) -> None:
    """The unmutated fixtures are fine inputs (each may still be refused with a meshstat error)."""
    assert target.seeds
    for text in target.texts():
        run_one(target, text)


def _extreme_params() -> list[object]:
    out = []
    for t in REGISTRY:
        for e in t.extremes:
            out.append(pytest.param(t, e, id=f"{t.name}:{e.name}"))
    return out


@pytest.mark.parametrize(("target", "extreme"), _extreme_params())
def test_extreme_inputs(target: FuzzTarget, extreme: Extreme) -> None:
    """A valid input at the edge (thousands of rules, a huge modulus, a pathological regex) within the time bound,
    then :data:`EXTREME_EXAMPLES` mutations of it (no shrinking: a large input shrinks slowly)."""
    text = extreme.make()
    with contextlib.suppress(MeshstatError):  # lazy imports outside the time bound, on a small seed
        target.parse(target.texts()[0])
    cpu = time.process_time()
    run_one(target, text, EXTREME_BOUND)
    # a mutation may take EXTREME_SLOWDOWN times what the valid input took on this machine (a blow-up is
    # orders of magnitude), and never less than TIME_BOUND: a slow machine must not fail a fast parser
    bound = max(TIME_BOUND, EXTREME_SLOWDOWN * (time.process_time() - cpu))

    @settings(
        max_examples=EXTREME_EXAMPLES,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(mutations=st.lists(_mutation, min_size=1, max_size=3))
    def fuzz(mutations: list[tuple]) -> None:
        mutated = mutate(text, mutations)
        note(f"extreme {extreme.name}, mutations {mutations!r}")
        run_one(target, mutated, bound)

    fuzz()


@pytest.mark.parametrize("target", REGISTRY, ids=[t.name for t in REGISTRY])
def test_fuzz(target: FuzzTarget) -> None:
    texts = target.texts()
    for text in texts:  # lazy imports (scipy, yaml) happen here, outside the time bound
        with contextlib.suppress(MeshstatError):
            target.parse(text)

    @settings(
        max_examples=_budget(target),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(seed=st.integers(0, len(texts) - 1), mutations=st.lists(_mutation, min_size=1, max_size=4))
    def fuzz(seed: int, mutations: list[tuple]) -> None:
        text = mutate(texts[seed], mutations)
        note(
            f"seed {seed} ({target.seeds[seed] if isinstance(target.seeds[seed], Path) else 'inline'}), "
            f"input {text[:2000]!r}"
        )
        run_one(target, text)

    fuzz()
