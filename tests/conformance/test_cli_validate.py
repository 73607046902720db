"""``python -m meshstat validate``: runs the real systems with the user's input."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

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
def test_validate_iptables_listing() -> None:
    """An ``iptables -t nat -vnL --line-numbers`` listing is validated like the iptables-save it came from."""
    listings = Path(__file__).parents[1] / "data" / "iptables" / "listings"
    path = str(listings / "kube-proxy-3ep-counters.nat.vnL-line-numbers")
    rc, out, err = _run(["validate", "--iptables", path, "--service", "default/web:http", "-n", "3000"])
    assert rc == 0, out + err  # the test and its p-value: a real kernel, alpha 0.001 (validate)
    assert "10.244.1.3:8080" in out
    assert "the real system agrees with the model" in out


@pytest.mark.usefixtures("netfilter_ready")
def test_validate_nft_fixture() -> None:
    path = str(DATA / "kube-proxy-nftables-overall.nft-list")
    _rc, out, err = _run(
        ["validate", "--nft", path, "--address", "172.30.0.44:80", "-n", "2000", "--format", "csv"]
    )
    assert "10.180.0.4:80" in out and "10.180.0.5:80" in out, err
    assert "p = " in err  # machine formats keep stdout clean


@pytest.mark.usefixtures("envoy_path")
def test_validate_weights_envoy() -> None:
    _rc, out, err = _run(["validate", "--weights", "3,1", "-n", "2000"])
    assert "envoy: n = 2,000" in out, err
    assert "admin /stats upstream_rq_total agrees" in out


@pytest.mark.usefixtures("nginx_path")
def test_validate_nginx(tmp_path) -> None:
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
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "needs root" in err


def test_refuses_without_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHSTAT_ENVOY", "/nonexistent/envoy")
    rc, _out, err = _run(["validate", "--weights", "90,10"])
    assert rc == 2
    assert err.count("\n") == 1
    assert "MESHSTAT_ENVOY" in err


def test_usage_errors() -> None:
    rc, _, err = _run(["validate", "--weights", "90,10", "--nginx", "x.conf"])
    assert rc == 2
    assert "exactly one of" in err
    rc, _, err = _run(["validate", "--weights", "90,10", "-n", "2e6"])
    assert rc == 2
    assert "at most" in err
    rc, _, err = _run(["validate", "--iptables", str(DATA / "istio-cni-sidecar-basic.iptables-save")])
    assert rc == 2
    assert "--service" in err


# ----------------------------------------------------------------- Ctrl-C during a validate run


def _descendants(pid: int) -> dict[int, str]:
    """pid -> command name of every process below ``pid`` (from /proc)."""
    parent: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parent[int(entry)] = ppid
        names[int(entry)] = name
    out: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        for child, pp in parent.items():
            if pp == p and child not in out:
                out[child] = names[child]
                frontier.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _interrupt_validate(
    argv: list[str], ready: Callable[[int], bool]
) -> tuple[int, int, str, dict[int, str]]:
    """Start ``meshstat validate``, wait until ``ready(pid)``, send SIGINT.

    Returns the pid, the exit status, stderr and the processes it had started.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshstat", "validate", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready(proc.pid):
            assert proc.poll() is None, f"validate ended early: {proc.stderr.read()}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "validate never started its real system"
            time.sleep(0.1)
        time.sleep(1.0)  # traffic is flowing
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
        err = proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test fails
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    return proc.pid, rc, err, children


@pytest.mark.usefixtures("netfilter_ready")
def test_ctrl_c_during_netfilter_validate_removes_namespaces_and_processes() -> None:
    from meshstat.oracle.netns import NAMESPACE_PREFIX, list_namespaces

    path = str(DATA / "kube-proxy-iptables-3ep-itp-cluster.iptables-save")

    def ours(pid: int) -> list[str]:
        return [ns for ns in list_namespaces() if ns.startswith(f"{NAMESPACE_PREFIX}{pid}-")]

    pid, rc, err, children = _interrupt_validate(
        ["--iptables", path, "--service", "ns1/svc1", "-n", "1e6"], lambda pid: len(ours(pid)) >= 2
    )
    assert rc == 130, err
    assert "meshstat: interrupted" in err
    assert "Traceback" not in err
    assert children, "the run had started no process"
    assert not ours(pid), "namespaces outlived the run"
    alive = {p: name for p, name in children.items() if _alive(p)}
    assert not alive, f"processes outlived the run: {alive}"


@pytest.mark.usefixtures("envoy_path")
def test_ctrl_c_during_envoy_validate_stops_envoy() -> None:
    def envoy_started(pid: int) -> bool:
        return "envoy" in _descendants(pid).values()

    _, rc, err, children = _interrupt_validate(["--weights", "90,10", "-n", "1e6"], envoy_started)
    assert rc == 130, err
    assert "meshstat: interrupted" in err
    assert "Traceback" not in err
    envoys = [p for p, name in children.items() if name == "envoy"]
    assert envoys
    alive = {p: name for p, name in children.items() if _alive(p)}
    assert not alive, f"processes outlived the run: {alive}"
