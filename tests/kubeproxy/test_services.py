"""kube-proxy services from dumps, routes, chain hashes, and the CLI's error messages."""

from __future__ import annotations

import io
import re
from fractions import Fraction
from pathlib import Path

import pytest

from meshstat import kubeproxy as kp
from meshstat import model
from meshstat import netfilter as nf
from meshstat.cli import main
from meshstat.errors import InvalidArgument, ModelError

DATA = Path(__file__).parent.parent / "data" / "iptables"
TWO31 = 1 << 31


def rs_of(name: str) -> nf.Ruleset:
    return nf.load(str(DATA / name))


def run(*argv: str, stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_chain_hashes_are_kube_proxys() -> None:
    # docs/measurements.md, M6: well-known real names, and the seed article's names
    assert kp.kube_chain_hash("kube-system/kube-dns:dns", "udp") == "TCOU7JCQXEZGVUNU"
    assert kp.kube_chain_hash("kube-system/kube-dns:dns", "UDP") == "TCOU7JCQXEZGVUNU"
    assert kp.kube_chain_hash("default/kubernetes:https", "tcp") == "NPX46M4PTMTKRN6Y"
    assert kp.kube_chain_hash("istio-demo/bill-service:http", "tcp") == "PK4BNTKC2JYVE7B2"
    assert kp.kube_chain_hash("istio-demo/bill-service:http", "tcp", "10.244.75.113:80") == "6OOOSB56IIMYCEYA"
    assert kp.kube_chain_hash("istio-demo/bill-service:http", "tcp", "10.244.75.115:80") == "AM36T22CJQS6HCG4"
    assert kp.kube_nft_chain_hash("ns1/svc1/tcp/p80") == "ULMVA6XW"
    assert kp.kube_nft_chain_hash("ns1/svc1/tcp/p80__10.180.0.1/80") == "5OJB2KTY"


# ------------------------------------------------------------------ every kube-proxy file

OVERALL = {
    # name: (cluster ip, endpoints, affinity, internal, external, external ips, node ports)
    "ns1/svc1:p80": ("172.30.0.41", ["10.180.0.1:80"], None, "Cluster", None, set(), ()),
    "ns2/svc2:p80": ("172.30.0.42", ["10.180.0.2:80"], None, "Cluster", "Local",
                     {"192.168.99.22:80", "1.2.3.4:80"}, (3001,)),
    "ns3/svc3:p80": ("172.30.0.43", ["10.180.0.3:80"], None, "Cluster", "Cluster", set(), (3003,)),
    "ns4/svc4:p80": ("172.30.0.44", ["10.180.0.4:80", "10.180.0.5:80"], None, "Cluster", "Cluster",
                     {"192.168.99.33:80"}, ()),
    "ns5/svc5:p80": ("172.30.0.45", ["10.180.0.3:80"], 10800, "Cluster", "Cluster", {"5.6.7.8:80"}, (3002,)),
}  # fmt: skip


@pytest.mark.parametrize(
    "name",
    ["kube-proxy-iptables-overall.iptables-save", "kube-proxy-iptables-overall.restore",
     "kube-proxy-nftables-overall.nft", "kube-proxy-nftables-overall.nft-list"],  # fmt: skip
)
def test_overall_services(name: str) -> None:
    infos = {i.name: i for i in kp.services(rs_of(name))}
    assert set(infos) == {*OVERALL, "ns6/svc6:p80"}
    for svc, (ip, eps, aff, itp, etp, ext, nps) in OVERALL.items():
        i = infos[svc]
        assert (i.cluster_ip, i.port, i.protocol) == (ip, 80, "tcp")
        assert [e.address for e in i.endpoints] == eps
        assert sum(e.share for e in i.endpoints) == 1
        assert i.affinity_timeout == aff
        assert (i.internal_policy, i.external_policy) == (itp, etp)
        assert set(i.external_ips) == ext
        assert i.node_ports == nps
        assert i.hash_ok is True
        assert all(e.hash_ok for e in i.endpoints)
    assert [e.share for e in infos["ns4/svc4:p80"].endpoints] == [Fraction(1, 2), Fraction(1, 2)]
    six = infos["ns6/svc6:p80"]
    assert six.rejected and six.endpoints == () and (six.cluster_ip, six.port) == ("172.30.0.46", 80)


def test_3ep_service() -> None:
    (i,) = kp.services(rs_of("kube-proxy-iptables-3ep-itp-cluster.iptables-save"))
    assert (i.name, i.protocol, i.cluster_ip, i.port, i.cluster_chain) == (
        "ns1/svc1", "tcp", "172.30.1.1", 80, "KUBE-SVC-AQI2S6QIMU7PVVRP"
    )
    assert [e.address for e in i.endpoints] == ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.3:80"]
    assert [e.threshold for e in i.endpoints] == [715827883, 1 << 30, None]
    k = 715827883
    assert [e.share for e in i.endpoints] == [
        Fraction(k, TWO31), (1 - Fraction(k, TWO31)) / 2, (1 - Fraction(k, TWO31)) / 2
    ]
    assert i.hash_ok and all(e.hash_ok for e in i.endpoints)


def test_affinity_local_policy_and_terminating_endpoints() -> None:
    (i,) = kp.services(rs_of("kube-proxy-iptables-affinity-etp-local-terminating.iptables-save"))
    assert [e.address for e in i.endpoints] == ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.5:80"]
    assert [e.address for e in i.local_endpoints] == ["10.0.1.1:80", "10.0.1.2:80"]
    assert [e.share for e in i.local_endpoints] == [Fraction(1, 2), Fraction(1, 2)]
    assert i.affinity_timeout == 10800 and i.session_affinity == "ClientIP"
    assert (i.internal_policy, i.external_policy) == ("Cluster", "Local")
    assert i.external_ips == ("1.2.3.4:80",)
    route = kp.service_route(i, chain="local")
    assert isinstance(route.root, model.Cascade)
    assert route.root.thresholds == (1 << 30,)
    assert any("sessionAffinity ClientIP (timeout 10800 s)" in n and "100 client IPs" in n for n in route.notes)
    assert any("externalTrafficPolicy Local" in n for n in route.notes)


def test_generated_services_and_string_order_of_endpoints() -> None:
    infos = {i.name: i for i in kp.services(rs_of("kube-proxy-iptables-generated-4-5-10ep.iptables-save"))}
    assert set(infos) == {"default/web:http", "default/api:grpc", "kube-system/kube-dns:dns"}
    api = infos["default/api:grpc"]
    assert len(api.endpoints) == 10
    assert [e.address for e in api.endpoints[:3]] == ["10.244.1.20:9090", "10.244.10.20:9090", "10.244.2.20:9090"]
    expected = model.Cascade.kube_proxy(10).shares()
    assert [e.share for e in api.endpoints] == list(expected)
    dns = infos["kube-system/kube-dns:dns"]
    assert (dns.protocol, dns.cluster_chain) == ("udp", "KUBE-SVC-TCOU7JCQXEZGVUNU")
    assert [e.share for e in dns.endpoints] == list(model.Cascade.kube_proxy(5).shares())


def test_legacy_five_digit_probabilities() -> None:
    (i,) = kp.services(rs_of("kube-proxy-iptables-generated-6ep-legacy-5digit.iptables-save"))
    assert [e.share for e in i.endpoints] == list(model.Cascade.kube_proxy(6, legacy=True).shares())
    assert [e.share for e in i.endpoints] != list(model.Cascade.kube_proxy(6).shares())


def test_seed_service_route() -> None:
    route = kp.load_service_route(str(DATA / "seed-front-tomcat-pod.iptables-save"), "istio-demo/bill-service:http")
    assert isinstance(route.root, model.Cascade)
    assert route.root.thresholds == (1 << 30,)
    assert [(b.name, b.address) for b in route.backends()] == [
        ("10.244.75.113:80", "10.244.75.113:80"), ("10.244.75.115:80", "10.244.75.115:80")
    ]
    assert route.exact_shares() == (Fraction(1, 2), Fraction(1, 2))
    assert route.masses64() == ((1 << 63, 1 << 63), True)
    assert any("sessionAffinity None" in n for n in route.notes)
    assert any("internalTrafficPolicy Cluster" in n for n in route.notes)
    # by cluster IP too
    assert kp.load_service_route(str(DATA / "seed-front-tomcat-pod.iptables-save"), "10.108.203.9:9999").backends() == route.backends()


def test_nft_route_is_a_numgen_stage() -> None:
    route = kp.load_service_route(str(DATA / "kube-proxy-nftables-overall.nft-list"), "ns4/svc4:p80")
    assert isinstance(route.root, nf.Numgen)
    assert route.root.modulus == 2
    assert route.exact_shares() == (Fraction(1, 2), Fraction(1, 2))
    assert [b.name for b in route.backends()] == ["10.180.0.4:80", "10.180.0.5:80"]
    aff = kp.load_service_route(str(DATA / "kube-proxy-nftables-overall.nft"), "ns5/svc5:p80")
    assert any("timeout 10800 s" in n and "65535" in n for n in aff.notes)


def test_lookup_by_hash_without_comments() -> None:
    text = (DATA / "kube-proxy-iptables-generated-4-5-10ep.iptables-save").read_text()
    stripped = re.sub(r' -m comment --comment "[^"]*"', "", text)
    assert "--comment" not in stripped
    rs = nf.parse_iptables(stripped, "nocomment")
    info = kp.find_service(rs, "default/api:grpc")
    assert info.name == "default/api:grpc" and info.hash_ok
    assert len(info.endpoints) == 10 and info.cluster_ip == "10.96.0.60"
    # listing without comments falls back to chain names
    names = {i.name for i in kp.services(rs)}
    assert "KUBE-SVC-BEA4T34QEWGUELNC" in names


def test_lookup_errors() -> None:
    rs = rs_of("kube-proxy-iptables-overall.iptables-save")
    with pytest.raises(InvalidArgument, match=r"service 'ns9/nope:p80' is not in the dump; services include"):
        kp.find_service(rs, "ns9/nope:p80")
    with pytest.raises(InvalidArgument, match="no service with cluster IP or external IP 10.0.0.1:80"):
        kp.find_service(rs, "10.0.0.1:80")
    with pytest.raises(ModelError, match="ns6/svc6:p80 has no endpoints \\(kube-proxy rejects its traffic\\)"):
        kp.load_service_route(rs, "ns6/svc6:p80")
    with pytest.raises(ModelError, match="has no local-policy chain"):
        kp.load_service_route(rs, "ns4/svc4:p80", chain="local")
    istio = rs_of("istio-cni-sidecar-basic.iptables-save")
    assert kp.services(istio) == []
    raw = nf.parse_iptables("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", "f")
    with pytest.raises(InvalidArgument, match="f: the dump has no nat table"):
        kp.services(raw)


def test_ipvsadm_file() -> None:
    infos = kp.parse_ipvsadm((DATA / "kube-proxy-ipvs-ipvsadm-ln.txt").read_text(), "ipvs")
    assert [(i.name, i.protocol, i.affinity_timeout) for i in infos] == [
        ("10.0.0.1:443", "tcp", 10800), ("10.0.0.10:53", "tcp", None), ("10.0.0.10:53", "udp", None)
    ]
    assert [e.address for e in infos[0].endpoints] == ["192.168.0.1:6443"]
    rc, out, err = run("services", "--ipvs", str(DATA / "kube-proxy-ipvs-ipvsadm-ln.txt"), "--format", "csv")
    assert rc == 0 and out.count("\n") == 4


# ------------------------------------------------------------------ CLI


def test_cli_services_table_and_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (DATA / "kube-proxy-iptables-overall.iptables-save").read_text()
    rc, out, err = run("services", "--iptables", "-", "--format", "csv", stdin=text, monkeypatch=monkeypatch)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("service,protocol,cluster_ip,port,endpoints,local_endpoints,affinity")
    assert lines[4].startswith("ns4/svc4:p80,tcp,172.30.0.44,80,2,0,None,")
    assert lines[5].startswith("ns5/svc5:p80,tcp,172.30.0.45,80,1,0,ClientIP,10800,")
    rc, out, err = run("services", "--nft", str(DATA / "kube-proxy-nftables-overall.nft"), "--service", "ns4/svc4:p80",
                       "--format", "csv")  # fmt: skip
    assert rc == 0, err
    assert out.splitlines()[1].startswith("10.180.0.4:80,1/2,0.5,,0,endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80,true")


@pytest.mark.parametrize(
    ("argv", "content", "code", "message"),
    [
        (["services"], "*nat\n:X - [0:0]\n-A X -m statistic --mode random --probability 2 -j RETURN\nCOMMIT\n", 3,
         "meshstat: error: {f}:3: expected a probability in [0, 1] after --probability (got '2')"),
        (["services"], "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", 2,
         "meshstat: error: {f}: the dump has no nat table (expected a '*nat' block with kube-proxy's chains)"),
        (["trace", "--dst", "[fd00::1]:80"], "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", 2,
         "meshstat: error: {f}: the dump has no table for IPv6 (expected a '*nat' or '*filter' block; iptables-save "
         "prints them)"),
        (["services", "--service", "ns/none:http"], None, 2,
         "meshstat: error: {f}: service 'ns/none:http' is not in the dump; services include ns1/svc1:p80, "
         "ns2/svc2:p80, ns3/svc3:p80, ns4/svc4:p80, ns5/svc5:p80"),
        (["services"], "", 3, "meshstat: error: {f}: empty input: expected iptables-save output (no tables found)"),
        (["trace", "--dst", "10.0.0.1:80"], "\n\n", 3,
         "meshstat: error: {f}: empty input: expected iptables-save output (no tables found)"),
    ],  # fmt: skip
)
def test_cli_errors_are_one_line(
    tmp_path: Path, argv: list[str], content: str | None, code: int, message: str
) -> None:
    f = tmp_path / "dump.txt"
    if content is None:
        f.write_text((DATA / "kube-proxy-iptables-overall.iptables-save").read_text())
    else:
        f.write_text(content)
    rc, out, err = run(argv[0], "--iptables", str(f), *argv[1:])
    assert rc == code
    assert err == message.format(f=f) + "\n"
    assert "Traceback" not in err and out == ""


def test_cli_missing_file_and_nft_errors(tmp_path: Path) -> None:
    rc, out, err = run("services", "--iptables", str(tmp_path / "nope"))
    assert rc == 1 and err.startswith("meshstat: error: cannot access") and err.count("\n") == 1
    bad = tmp_path / "bad.nft"
    bad.write_text("table ip t {\n\tchain c {\n\t\tnumgen random mod x vmap { 0 : goto c }\n\t}\n}\n")
    rc, out, err = run("services", "--nft", str(bad))
    assert rc == 3
    assert err == f"meshstat: error: {bad}:3: expected an integer modulus after 'numgen ... mod' (got 'x')\n"
    empty = tmp_path / "empty.nft"
    empty.write_text("# nothing\n")
    rc, out, err = run("services", "--nft", str(empty))
    assert rc == 3 and err == f"meshstat: error: {empty}: empty input: expected nft list ruleset output (no tables found)\n"


def test_load_sniffs_the_dialect(tmp_path: Path) -> None:
    assert nf.load(str(DATA / "kube-proxy-nftables-overall.nft")).dialect == "nft"
    assert nf.load(str(DATA / "istio-cni-sidecar-basic.golden")).dialect == "iptables"
    f = tmp_path / "x"
    f.write_text("IP Virtual Server version 1.2.1\n")
    from meshstat.errors import ConfigParseError

    with pytest.raises(ConfigParseError, match=r"x:1: expected iptables-save output"):
        nf.load(str(f))
