"""``python -m meshstat validate``: runs the real systems with the user's input."""

from __future__ import annotations

import io
import os

import pytest

from meshstat.cli import main
from tests.conformance.util import DATA

pytestmark = pytest.mark.conformance


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.usefixtures("netfilter_ready")
def test_validate_iptables_fixture() -> None:
    path = str(DATA / "kube-proxy-iptables-3ep-itp-cluster.iptables-save")
    rc, out, err = _run(["validate", "--iptables", path, "--service", "ns1/svc1", "-n", "3000"])
    assert "10.0.1.3:80" in out and "p = " in out, err
    assert ("agrees with" in out) == (rc == 0)


@pytest.mark.usefixtures("netfilter_ready")
def test_validate_nft_fixture() -> None:
    path = str(DATA / "kube-proxy-nftables-overall.nft-list")
    rc, out, err = _run(
        ["validate", "--nft", path, "--address", "172.30.0.44:80", "-n", "2000", "--format", "csv"]
    )
    assert "10.180.0.4:80" in out and "10.180.0.5:80" in out, err
    assert "p = " in err  # machine formats keep stdout clean


@pytest.mark.usefixtures("envoy_path")
def test_validate_weights_envoy() -> None:
    rc, out, err = _run(["validate", "--weights", "3,1", "-n", "2000"])
    assert "envoy: n = 2,000" in out, err
    assert "admin /stats upstream_rq_total agrees" in out


@pytest.mark.usefixtures("nginx_path")
def test_validate_nginx(tmp_path) -> None:  # noqa: ANN001
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "http { upstream app { server 10.1.1.1:80 weight=5; server 10.1.1.2:80; server 10.1.1.3:80; } }"
    )
    rc, out, err = _run(["validate", "--nginx", str(conf), "-n", "700"])
    assert rc == 0, out + err
    assert "equal meshstat's smooth weighted round robin" in out


def test_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    path = str(DATA / "kube-proxy-iptables-3ep-itp-cluster.iptables-save")
    rc, out, err = _run(["validate", "--iptables", path, "--service", "ns1/svc1"])
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "needs root" in err


def test_refuses_without_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHSTAT_ENVOY", "/nonexistent/envoy")
    rc, out, err = _run(["validate", "--weights", "90,10"])
    assert rc == 2 and err.count("\n") == 1 and "MESHSTAT_ENVOY" in err


def test_usage_errors() -> None:
    rc, _, err = _run(["validate", "--weights", "90,10", "--nginx", "x.conf"])
    assert rc == 2 and "exactly one of" in err
    rc, _, err = _run(["validate", "--weights", "90,10", "-n", "2e6"])
    assert rc == 2 and "at most" in err
    rc, _, err = _run(["validate", "--iptables", str(DATA / "istio-cni-sidecar-basic.iptables-save")])
    assert rc == 2 and "--service" in err
