"""Real kernel netfilter (iptables / nftables) against meshstat's exact shares.

Every test builds a two-namespace lab (client and node/pods joined by a veth
pair, addresses exist only inside the namespaces), loads real rules, opens
>= 20,000 TCP connections to a 10.96.x.x service address and counts them per
backend. Chi-square tests at ALPHA = 1e-5 per test (tests/conformance/util.py; the kernel's random numbers
cannot be seeded); the per-connection consistency checks are exact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import pytest

from meshstat import model
from meshstat.oracle.netns import (
    NetnsLab,
    cleanup_leftovers,
    find_kube_service,
    kube_proxy_ruleset,
    list_namespaces,
    nft_numgen_ruleset,
    numgen_slot_shares,
)
from tests.conformance.util import ALPHA, DATA, assert_fits

pytestmark = [pytest.mark.conformance, pytest.mark.usefixtures("netfilter_ready")]

N = 20_000
VIP = "10.96.0.10"


def _endpoints(n: int) -> list[str]:
    """Pod addresses in kube-proxy's order (string sort of "ip:port": 10.244.1.10 < 10.244.1.2)."""
    return sorted(f"10.244.1.{i}:8080" for i in range(1, n + 1))


def _check_run(run, server_reports, n: int) -> None:  # noqa: ANN001
    assert run.errors == 0, f"{run.errors} connections failed"
    assert not run.timed_out
    assert run.n == n
    # the listeners saw exactly the connections the client counted
    server = {}
    for rep in server_reports:
        server.update({k: v for k, v in rep["connections"].items() if v})
    assert server == {k: v for k, v in run.counts().items() if v}


@pytest.mark.parametrize("n_endpoints", [2, 3, 5, 10])
def test_kube_proxy_cascade(n_endpoints: int, record) -> None:  # noqa: ANN001
    eps = _endpoints(n_endpoints)
    stage = model.Cascade.kube_proxy(n_endpoints)
    with NetnsLab() as lab:
        lab.load_iptables(kube_proxy_ruleset(VIP, 80, eps))
        lab.serve({e: e for e in eps} | {model.FALL_THROUGH: f"{VIP}:80"})
        run = lab.connect(f"{VIP}:80", N)
        reports = lab.stop_servers()
    _check_run(run, reports, N)
    counts = [run.counts().get(e, 0) for e in eps]
    assert run.counts().get(model.FALL_THROUGH, 0) == 0
    assert_fits(record, f"kube-proxy {n_endpoints} endpoints", eps, counts, stage.shares(),
                seconds=round(run.elapsed, 2))


def test_kube_proxy_fixture_3ep(record) -> None:  # noqa: ANN001
    """kube-proxy's own expected rules (proxier_test.go), as iptables-save printed them."""
    text = (DATA / "kube-proxy-iptables-3ep-itp-cluster.iptables-save").read_text()
    svc = find_kube_service(text, "ns1/svc1")
    eps = [e[1] for e in svc.endpoints]
    probs = [e[2] for e in svc.endpoints if e[2]]
    assert probs == ["0.33333333349", "0.50000000000"]
    stage = model.Cascade.from_probabilities(probs)
    assert stage.shares() == model.Cascade.kube_proxy(3).shares()  # printed form == written form
    with NetnsLab() as lab:
        lab.load_iptables(text)
        lab.ensure_jump("PREROUTING", "KUBE-SERVICES")
        lab.serve({e: e for e in eps})
        run = lab.connect(f"{svc.cluster_ip}:{svc.port}", N)
        reports = lab.stop_servers()
    _check_run(run, reports, N)
    assert_fits(record, "kube-proxy fixture 3ep", eps, [run.counts().get(e, 0) for e in eps], stage.shares())


def test_kube_proxy_legacy_5digit(record) -> None:  # noqa: ANN001
    """Pre-1.17 ``%0.5f`` probabilities (6 endpoints, iptables-save form: 0.16667000018 ...)."""
    text = (DATA / "kube-proxy-iptables-generated-6ep-legacy-5digit.iptables-save").read_text()
    svc = find_kube_service(text, "default/web:http")
    eps = [e[1] for e in svc.endpoints]
    stage = model.Cascade.kube_proxy(6, legacy=True)
    parsed = model.Cascade.from_probabilities([e[2] for e in svc.endpoints if e[2]])
    assert parsed.thresholds == stage.thresholds
    with NetnsLab() as lab:
        lab.load_iptables(text)
        assert lab.ensure_jump("PREROUTING", "KUBE-SERVICES")  # the fixture has the service chains only
        lab.serve({e: e for e in eps})
        run = lab.connect(f"{svc.cluster_ip}:{svc.port}", N)
        reports = lab.stop_servers()
    _check_run(run, reports, N)
    assert_fits(record, "kube-proxy legacy %0.5f 6 endpoints", eps, [run.counts().get(e, 0) for e in eps],
                stage.shares())


def test_cascade_fall_through(record) -> None:  # noqa: ANN001
    """Statistic rules only, no unconditional last rule: unmatched connections reach the service IP itself."""
    eps = _endpoints(2)
    probs = ["0.3", "0.5"]
    stage = model.Cascade.from_probabilities(probs, fall_through=True)
    with NetnsLab() as lab:
        lab.load_iptables(kube_proxy_ruleset(VIP, 80, eps, probabilities=probs, fall_through=True))
        lab.serve({e: e for e in eps} | {model.FALL_THROUGH: f"{VIP}:80"})
        run = lab.connect(f"{VIP}:80", N)
        reports = lab.stop_servers()
    _check_run(run, reports, N)
    names = [*eps, model.FALL_THROUGH]
    assert_fits(record, "cascade 0.3/0.5 + fall-through", names, [run.counts().get(x, 0) for x in names],
                stage.shares())


def test_nft_numgen_weighted_vmap(record) -> None:  # noqa: ANN001
    """``numgen random mod 7 vmap { 0-3 : goto ep0, 4-5 : goto ep1, 6 : goto ep2 }``."""
    eps = _endpoints(3)
    slots = [0, 0, 0, 0, 1, 1, 2]
    per_slot = numgen_slot_shares(len(slots))
    assert sum(per_slot) == 1
    shares = [sum((s for s, e in zip(per_slot, slots, strict=True) if e == i), Fraction(0)) for i in range(3)]
    with NetnsLab() as lab:
        lab.load_nft(nft_numgen_ruleset("10.96.0.20", 80, eps, slots))
        lab.serve({e: e for e in eps} | {"(not rewritten)": "10.96.0.20:80"})
        run = lab.connect("10.96.0.20:80", N)
        reports = lab.stop_servers()
    _check_run(run, reports, N)
    assert_fits(record, "nft numgen mod 7 weighted 4:2:1", eps, [run.counts().get(e, 0) for e in eps], shares)


def test_seed_istio_capture_then_kube_proxy(record) -> None:  # noqa: ANN001
    """The seed article's path: a pod with Istio's capture rules, a node with kube-proxy's.

    UID 0 (the application) is redirected to the sidecar's outbound port 15001 in
    the pod; UID 1337 (the sidecar itself) is exempt, leaves the pod, and the
    node's kube-proxy cascade splits it 50/50 over the two pods.
    """
    istio = (DATA / "istio-cni-sidecar-basic.iptables-save").read_text()
    eps = _endpoints(2)
    stage = model.Cascade.kube_proxy(2)
    with NetnsLab() as lab:
        lab.load_iptables(istio, side="client")
        lab.load_iptables(kube_proxy_ruleset(VIP, 80, eps, service="default/reviews:http"))
        lab.serve({e: e for e in eps} | {model.FALL_THROUGH: f"{VIP}:80"})
        lab.serve({"sidecar:15001": "0.0.0.0:15001", "sidecar:15006": "0.0.0.0:15006"}, side="client")
        app = lab.connect(f"{VIP}:80", 2_000)  # UID 0
        proxy = lab.connect(f"{VIP}:80", N, uid=1337)
    assert app.errors == 0 and proxy.errors == 0
    record(case="istio capture, uid 0", n=app.n, counts=app.counts())
    assert app.counts() == {"sidecar:15001": 2_000}  # exact: every app connection is captured
    assert set(proxy.counts()) <= set(eps)
    assert_fits(record, "istio capture, uid 1337 -> kube-proxy 2 pods", eps,
                [proxy.counts().get(e, 0) for e in eps], stage.shares())


def test_keepalive_split_follows_connections(record) -> None:  # noqa: ANN001
    """R requests per kept-alive connection all go where the connection went (per-connection choice).

    Dispersion: M = 20 batches of C = 200 connections with R = 25 requests each.
    With a per-connection choice the request share of the first pod per batch has
    variance p(1-p)/C, so S = sum_b (X_b - C p)^2 / (C p (1-p)) (X_b connections
    to it) is ~ chi2(M): two-sided test at ALPHA (chi-square approximation of the
    binomial; the normal approximation is good at C = 200). A per-request model
    (variance p(1-p)/(C R)) predicts S*R ~ chi2(M) and must be rejected: under the
    per-connection truth that check fails with probability P(chi2(20) < 45.3/25) < 1e-12.
    """
    from scipy.stats import chi2

    m_batches, c, r = 20, 200, 25
    eps = _endpoints(2)
    p = float(model.Cascade.kube_proxy(2).shares()[0])
    with NetnsLab() as lab:
        lab.load_iptables(kube_proxy_ruleset(VIP, 80, eps))
        lab.serve({e: e for e in eps})
        run = lab.connect(f"{VIP}:80", m_batches * c, requests_per_connection=r)
        reports = lab.stop_servers()
    assert run.errors == 0 and run.n == m_batches * c
    assert run.mixed == 0, f"{run.mixed} connections had requests answered by two backends"
    served = reports[0]["requests"]
    conns = run.counts()
    assert served == {e: conns.get(e, 0) * r for e in eps}  # exact: requests = R x connections
    first = eps[0]
    names = run.sequence_names()
    xs = [sum(1 for x in names[b * c:(b + 1) * c] if x == first) for b in range(m_batches)]
    s = sum((x - c * p) ** 2 for x in xs) / (c * p * (1 - p))
    p_conn = 2 * min(chi2.cdf(s, m_batches), chi2.sf(s, m_batches))
    p_req = chi2.sf(s * r, m_batches)
    record(case="keep-alive per-connection dispersion", batches=m_batches, connections_per_batch=c,
           requests_per_connection=r, first_pod_per_batch=xs, S=s, pvalue_connection_model=p_conn,
           pvalue_request_model=p_req, alpha=ALPHA)
    assert p_conn >= ALPHA, f"dispersion S={s:.2f} does not fit the per-connection model (p={p_conn:.3g})"
    assert p_req < ALPHA, f"the per-request model was not rejected (S*R={s * r:.1f}, p={p_req:.3g})"


# --------------------------------------------------------------------------- clean-up


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    pid = proc.pid
    assert not os.path.exists(f"/proc/{pid}")
    return pid


def test_leftover_namespaces_are_removed() -> None:
    """A namespace of a crashed run (its pid is gone) is removed by name on the next run; others stay."""
    dead = _dead_pid()
    left = f"ms-{dead}-1-c"
    alive = f"ms-{os.getpid()}-999-c"
    other = "mstest-keep"
    for ns in (left, alive, other):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        removed = cleanup_leftovers()
        names = list_namespaces()
        assert left in removed and left not in names
        assert alive in names and other in names
    finally:
        for ns in (left, alive, other):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def test_cleanup_on_exception() -> None:
    with pytest.raises(RuntimeError, match="boom"), NetnsLab() as lab:
        lab.serve({"a": "10.244.9.9:80"})
        names = (lab.client, lab.backend)
        assert set(names) <= set(list_namespaces())
        raise RuntimeError("boom")
    assert not set(names) & set(list_namespaces())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cleanup_on_signal(sig: int) -> None:
    """Ctrl-C (SIGINT) or SIGTERM while connections run: namespaces and listeners are gone afterwards."""
    code = (
        "from meshstat.oracle.netns import NetnsLab, kube_proxy_ruleset\n"
        "with NetnsLab() as lab:\n"
        "    lab.load_iptables(kube_proxy_ruleset('10.96.0.10', 80, ['10.244.1.1:8080']))\n"
        "    lab.serve({'a': '10.244.1.1:8080'})\n"
        "    print(lab.client, lab.backend, lab._servers[0].proc.pid, flush=True)\n"
        "    lab.connect('10.96.0.10:80', 2_000_000, deadline=60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    words = proc.stdout.readline().split()  # type: ignore[union-attr]
    assert len(words) == 3
    names, server_pid = words[:2], int(words[2])
    assert os.path.exists(f"/proc/{server_pid}")
    time.sleep(0.5)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    proc.stdout.close()  # type: ignore[union-attr]
    assert proc.returncode != 0
    assert not set(names) & set(list_namespaces())
    for _ in range(50):  # the listener was killed; give init a moment to reap it
        if not os.path.exists(f"/proc/{server_pid}"):
            break
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{server_pid}"), "the listener process outlived its lab"
