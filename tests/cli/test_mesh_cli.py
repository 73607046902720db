"""CLI: ``mesh``, ``envoy-route`` and ``run_compare_files`` (the ``compare -f`` delegate), in-process."""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

from meshstat.cli import Context, main
from meshstat.cli.mesh import run_compare_files

DATA = Path(__file__).resolve().parents[1] / "data"
DEMO = str(DATA / "istio-demo")
DUMP = str(DATA / "envoy" / "istio-demo-front-tomcat-config_dump.json")


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(argv, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def compare_args(**kw) -> argparse.Namespace:  # noqa: ANN003
    base = dict(filename=[DEMO], scale=None, client=None, envoy=None, n=20_000, seed=7, format="markdown", output=None)
    base.update(kw)
    return argparse.Namespace(**base)


def run_compare(**kw) -> tuple[int, str, str]:  # noqa: ANN003
    out, err = io.StringIO(), io.StringIO()
    args = compare_args(**kw)
    ctx = Context(out, err)
    ctx._fmt = args.format  # type: ignore[attr-defined]
    rc = run_compare_files(args, ctx)
    return rc, out.getvalue(), err.getvalue()


def rows(text: str) -> list[list[str]]:
    """The cells of a markdown table (the side-by-side frame: one row per service, version and pod)."""
    return [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            for line in text.splitlines() if line.startswith("|") and not line.startswith("|-")]


def test_compare_istio_demo_table() -> None:
    rc, out, err = run_compare(envoy=DUMP)
    assert rc == 0 and err == ""
    header, *body = rows(out)
    assert header[:3] == ["service", "version", "pod / endpoint"]
    assert header[3:] == [f"{p} {k}" for p in ("no sidecar (kube-proxy)", "sidecar (Envoy)",
                                               "sidecar's own (UID 1337, kube-proxy)", "config dump (Envoy)")
                          for k in ("exact", "simulated")]
    v1, v2 = (r for r in body if r[2] == "(all)")
    assert [v1[i] for i in (3, 5, 7, 9)] == ["50%", "90%", "50%", "90%"]
    assert [v2[i] for i in (3, 5, 7, 9)] == ["50%", "10%", "50%", "10%"]
    assert "seed 7 | n 20,000 per path" in out
    assert "sidecar (Envoy): taken by istio-demo/front-tomcat-v1" in out


def test_compare_scale_what_if() -> None:
    rc, out, _ = run_compare(scale=["deploy/bill-service-v1=3"])
    assert rc == 0
    body = rows(out)[1:]
    v1 = next(r for r in body if r[1] == "v1" and r[2] == "(all)")
    assert (v1[3], v1[5]) == ("75%", "90%")
    assert sum(1 for r in body if r[2].startswith("bill-service-v1-")) == 3
    assert "scaled from 1 to 3" in out


def test_compare_csv_is_long_and_warnings_go_to_stderr(tmp_path: Path) -> None:
    bad = tmp_path / "m"
    bad.mkdir()
    for f in Path(DEMO).iterdir():
        (bad / f.name).write_text(f.read_text().replace("weight: 10", "weight: 30"))
    rc, out, err = run_compare(filename=[str(bad)], format="csv")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("service,path,unit,clients,level,version,backend,address,exact_fraction,exact")
    assert any(",version,v1,(all),\"\",3/4," in line and "sidecar (Envoy)" in line for line in lines)
    assert "weights sum to 120, not 100" in err and "bill-service-virtualservice.yaml:" in err


def test_mesh_command_layers_for_client() -> None:
    rc, out, err = run(["mesh", "-f", DEMO, "--client", "istio-demo/front-tomcat-v1", "-n", "10000", "--seed", "1",
                        "--envoy", DUMP])
    assert rc == 0, err
    assert "ISTIO_REDIRECT" in out and "weighted clusters v1=90, v2=10 (per request)" in out
    assert "outbound|9999|v1|bill-service.istio-demo.svc.cluster.local" in out
    assert "no sidecar (kube-proxy)" not in out  # the client is injected: its app traffic never takes kube-proxy
    assert "client istio-demo/front-tomcat-v1: injected" in out


def test_mesh_command_json() -> None:
    rc, out, err = run(["mesh", "-f", DEMO, "--service", "bill-service.istio-demo:9999", "-n", "1000", "--seed", "3",
                        "--format", "json"])
    assert rc == 0, err
    data = json.loads(out)
    sidecar = {r["version"]: r["exact_fraction"] for r in data if r["path"] == "sidecar (Envoy)"
               and r["level"] == "version"}
    assert sidecar == {"v1": "9/10", "v2": "1/10"}
    assert "seed 3" in err


def test_envoy_route_command() -> None:
    rc, out, err = run(["envoy-route", "--config-dump", DUMP, "--host", "bill-service.istio-demo.svc.cluster.local",
                        "--port", "9999", "-n", "5000", "--seed", "1"])
    assert rc == 0, err
    assert "bill-service.istio-demo.svc.cluster.local:9999" in out and "90%" in out and "10%" in out
    argv = ["envoy-route", "--config-dump", str(DATA / "envoy" / "meshstat-exp-envoy140-config_dump.json"),
            "--host", "127.0.0.1", "--port", "10000", "--path", "/split_hdr", "--header", "x-rv=95", "-n", "100"]
    rc, out, _ = run(argv)
    assert rc == 0 and "100%" in out  # the default table: one row per version
    rc, out, _ = run([*argv, "--wide"])
    assert rc == 0 and "127.0.0.1:18082" in out  # --wide: every row and column of the long frame


def test_errors_are_one_line() -> None:
    rc, _, err = run(["envoy-route", "--config-dump", str(DATA / "istio" / "bookinfo-destination-rule-reviews.yaml"),
                      "--host", "x", "--port", "80"])
    assert rc == 3 and err.count("\n") == 1
    assert "expected an Envoy listener, route configuration, cluster, host status or endpoint assignment" in err
    rc, _, err = run(["mesh", "-f", DEMO, "--scale", "bill-service-v1"])
    assert rc == 2 and "--scale expects KIND/NAME=REPLICAS" in err
    rc, _, err = run(["mesh", "-f", DEMO, "--client", "istio-demo/nope"])
    assert rc == 2 and "no workload 'istio-demo/nope'" in err


def test_malformed_yaml_exit_3(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  labels: {a: [}\n")
    rc, _, err = run(["mesh", "-f", str(f)])
    assert rc == 3 and f"{f}:5:" in err and err.count("\n") == 1
    g = tmp_path / "bad.json"
    g.write_text('{"configs": [\n]\n,}')
    rc, _, err = run(["envoy-route", "--config-dump", str(g), "--host", "x", "--port", "1"])
    assert rc == 3 and f"{g}:3:" in err and "invalid JSON" in err


def test_partial_envoy_input_says_what_it_lacks() -> None:
    """istioctl listener + route outputs only: the dump's path shows 'cluster unknown', with a warning, not 503 NC."""
    listener, route = (str(DATA / "envoy" / f"istio-demo-istioctl-{k}.json") for k in ("listener", "route"))
    rc, out, _ = run_compare(envoy=[listener, route])
    assert rc == 0 and not any("503" in r[2] for r in rows(out))
    (w,) = [line for line in out.splitlines() if "does not hold Envoy's clusters" in line]
    assert w.startswith("warning: config dump (Envoy): the input does not hold Envoy's clusters") and listener in w
    unknown = [r for r in rows(out) if r[2].startswith("cluster unknown (not in the input): outbound|9999|v")]
    assert sorted(r[9] for r in unknown) == ["10%", "90%"]
    rc, out, _ = run(["envoy-route", "--config-dump", listener, "--config-dump", route, "--host",
                      "bill-service.istio-demo.svc.cluster.local", "--port", "9999", "--address", "10.108.203.9",
                      "-n", "1000", "--seed", "1"])
    assert rc == 0 and "warning: the input does not hold Envoy's clusters" in out and route in out


def test_envoy_route_reads_istioctl_bootstrap_output() -> None:
    boot = str(DATA / "envoy" / "istioctl" / "bootstrap-output.json")
    rc, out, err = run(["envoy-route", "--config-dump", boot, "--host", "a", "--port", "80", "-n", "100"])
    assert rc == 0 and err == ""
    assert f"warning: no listeners in the input ({boot}: istioctl proxy-config bootstrap output" in out


def test_a_service_named_without_its_port(tmp_path: Path) -> None:
    """One port is taken; none and several are one-line errors that say which (none was reported as several)."""
    f = tmp_path / "svc.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: headless, namespace: default}\n"
                 "spec: {clusterIP: None, selector: {app: x}}\n---\n"
                 "apiVersion: v1\nkind: Service\nmetadata: {name: two, namespace: default}\n"
                 "spec: {selector: {app: y}, ports: [{name: http, port: 80}, {name: grpc, port: 9090}]}\n")
    for cmd in ("mesh", "compare"):
        rc, out, err = run([cmd, "-f", str(f), "--service", "default/headless"])
        assert (rc, out) == (2, "") and err.strip() == ("meshstat: error: headless.default has no ports (a Service "
                                                        "without ports: nothing is routed to it)")
        rc, out, err = run([cmd, "-f", str(f), "--service", "default/two"])
        assert rc == 2 and "two.default has several ports (80, 9090); give " in err and err.count("\n") == 1
