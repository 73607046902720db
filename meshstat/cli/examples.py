"""Two or three real examples per command, printed at the end of its ``--help``.

Every example runs on the repository's own test data (``tests/data``), and
``tests/cli/test_output.py`` runs each one (``validate`` needs root and the real
systems; its examples are parsed only).
"""

from __future__ import annotations

__all__ = ["EXAMPLES", "epilog"]

_SEED = "tests/data/iptables/seed-front-tomcat-pod.iptables-save"

#: Examples per sub-command, each a ``meshstat ...`` command line.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "simulate": (
        "meshstat simulate --weights 90,10 -n 1e7",
        "meshstat simulate --kube-proxy-endpoints 3 -n 1e6 --seed 7 --wide",
        "meshstat simulate --iptables tests/data/iptables/kube-proxy-iptables-3ep-itp-cluster.iptables-save "
        "--service ns1/svc1 -n 1e6",
    ),
    "compare": (
        "meshstat compare --kube-proxy-endpoints 2 --weights 90,10 -n 1e7 --seed 7",
        "meshstat compare -f tests/data/istio-demo -n 1e6 --seed 2024",
        "meshstat compare -f tests/data/istio-demo --scale deploy/bill-service-v1=3 -n 1e6 -o json",
    ),
    "cascade": (
        "meshstat cascade --weights 90,10",
        "meshstat cascade --kube-proxy-endpoints 4",
    ),
    "trace": (
        f"meshstat trace --iptables {_SEED} --dst 10.108.203.9:9999 --uid 1337",
        f"meshstat trace --iptables {_SEED} --dst 10.108.203.9:9999 --uid 0 -v",
        f"meshstat trace --iptables {_SEED} --dst 10.108.203.9:9999 --uid 0 --wide",
    ),
    "services": (
        "meshstat services --iptables tests/data/iptables/kube-proxy-iptables-overall.iptables-save",
        "meshstat services --iptables "
        "tests/data/iptables/kube-proxy-iptables-generated-4-5-10ep.iptables-save --service default/web:http",
        "meshstat services --nft tests/data/iptables/kube-proxy-nftables-overall.nft -o wide",
    ),
    "check": (
        "meshstat check --weights 90,10 --observed 5,5 --alternative 50,50",
        "meshstat check --iptables tests/data/iptables/listings/kube-proxy-3ep-counters.nat.vnxL "
        "--service default/web:http",
        "meshstat check --weights 90,10 --observed 880,120 --format json",
    ),
    "plan": (
        "meshstat plan --weights 90,10 --min-hits 1 --probability 0.99 --qps 20",
        "meshstat plan --weights 90,10 --tolerance 0.01",
        "meshstat plan --weights 90,10 --detect 85,15",
    ),
    "bands": (
        "meshstat bands --weights 90,10 -n 200",
        "meshstat bands --weights 90,10 --seconds 60 --qps 20 --within 0.05",
    ),
    "canary": (
        "meshstat canary --steps 1,5,10,25,50,100 --qps 20 --interval 60s",
        "meshstat canary --steps 1,5,25 --qps 20 --interval 5m --detect-error-rate 0.05",
    ),
    "mesh": (
        "meshstat mesh -f tests/data/istio-demo --client istio-demo/front-tomcat-v1 -n 1e5",
        "meshstat mesh -f tests/data/istio-demo --client istio-demo/front-tomcat-v1 "
        "--envoy tests/data/envoy/istio-demo-front-tomcat-config_dump.json -n 1e5",
    ),
    "envoy-route": (
        "meshstat envoy-route --config-dump tests/data/envoy/istio-demo-front-tomcat-config_dump.json "
        "--host bill-service.istio-demo.svc.cluster.local --port 9999 -n 1e5",
        "meshstat envoy-route --config-dump tests/data/envoy/istio-demo-front-tomcat-config_dump.json "
        "--host bill-service.istio-demo.svc.cluster.local --port 9999 -n 1e5 --format csv",
    ),
    "audit": (
        "meshstat audit -f tests/data/bookinfo -f tests/data/bookinfo-ambient/sidecar/namespace.yaml",
        "meshstat audit -f tests/data/bookinfo -f tests/data/bookinfo-ambient/waypoint",
        "meshstat audit -f tests/data/bookinfo -f tests/data/bookinfo-ambient/sidecar/namespace.yaml -o json",
    ),
    "validate": (
        "meshstat validate --weights 90,10 -n 2000",
        "meshstat validate --iptables tests/data/iptables/kube-proxy-iptables-3ep-itp-cluster.iptables-save "
        "--service ns1/svc1",
    ),
    "completion": (
        "meshstat completion bash > ~/.local/share/bash-completion/completions/meshstat",
        'meshstat completion zsh > "${fpath[1]}/_meshstat"',
    ),
}


def epilog(command: str) -> str | None:
    """The ``examples:`` block of ``command``'s help (kept as written by the help formatter)."""
    lines = EXAMPLES.get(command)
    if not lines:
        return None
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)
