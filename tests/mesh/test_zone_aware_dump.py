"""Envoy zone-aware routing read from a config dump: ``node.locality``, ``local_cluster_name``,
``zone_aware_lb_config``.

``tests/data/envoy/zone-aware/config_dump.json`` (written for this test in the admin ``/config_dump`` form): an
Envoy in eu-west-1a whose local cluster ``front`` has 2 healthy hosts in zone a and 1 each in b and c, calling
``backend`` (2 hosts per zone). Envoy's arithmetic (``load_balancer_impl.cc:
ZoneAwareLoadBalancerBase::regenerateLocalityRoutingStructures``), in 1/10000: upstream 3333 per zone, local
a 5000, b 2500, c 2500; a's upstream share is below its local one, so routing is *residual*: zone a keeps
3333 * 10000 // 5000 = 6666, the other 3334 go to b and c in proportion to their residual capacity
(3333 - 2500 = 833 each).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from meshstat.errors import ConfigParseError
from meshstat.mesh import envoy_dump_route
from meshstat.parsers.envoy import load_envoy, parse_envoy_text

DUMP = Path(__file__).resolve().parents[1] / "data" / "envoy" / "zone-aware" / "config_dump.json"


def _shares(cfg) -> tuple[dict[str, Fraction], list[str]]:  # noqa: ANN001
    route, _ = envoy_dump_route(cfg, "127.0.0.1", 10000)
    return {b.name: s for b, s in zip(route.backends(), route.exact_shares(), strict=True)}, list(route.notes)


def _dump(edit) -> str:  # noqa: ANN001
    d = json.loads(DUMP.read_text())
    edit(d)
    return json.dumps(d, indent=1)


def test_parser_reads_locality_local_cluster_and_zone_aware_config() -> None:
    cfg = load_envoy([str(DUMP)])
    assert cfg.node_locality == (("region", "eu-west-1"), ("zone", "eu-west-1a"))
    assert cfg.local_cluster_name == "front"
    za = cfg.clusters["backend"].zone_aware
    assert (za.routing_enabled, za.min_cluster_size, za.force_direct) == (100.0, 6, False)


def test_zone_aware_residual_split() -> None:
    shares, notes = _shares(load_envoy([str(DUMP)]))
    a, other = Fraction(6666, 10000), Fraction(3334, 10000)
    assert shares == {"10.1.1.1:8080": a / 2, "10.1.1.2:8080": a / 2,
                      "10.1.2.1:8080": other / 4, "10.1.2.2:8080": other / 4,
                      "10.1.3.1:8080": other / 4, "10.1.3.2:8080": other / 4}  # fmt: skip
    assert any("zone-aware routing from eu-west-1/eu-west-1a (LocalityResidual)" in n for n in notes)


def _without_local(d: dict) -> None:
    del d["configs"][0]["bootstrap"]["cluster_manager"]


def _min_size_7(d: dict) -> None:
    d["configs"][1]["static_clusters"][1]["cluster"]["common_lb_config"]["zone_aware_lb_config"]["min_cluster_size"] = 7


def _local_missing(d: dict) -> None:
    d["configs"][0]["bootstrap"]["cluster_manager"]["local_cluster_name"] = "gone"


@pytest.mark.parametrize(("edit", "note"), [
    (_without_local, None),
    (_min_size_7, "6 healthy upstream host(s) < min_cluster_size 7"),
    (_local_missing, "local cluster gone (cluster_manager.local_cluster_name) is not in the input"),
])  # fmt: skip
def test_without_zone_aware_routing_every_host_is_equal(edit, note) -> None:  # noqa: ANN001
    shares, notes = _shares(parse_envoy_text(_dump(edit), "dump.json"))
    assert set(shares.values()) == {Fraction(1, 6)} and len(shares) == 6
    if note is not None:
        assert any(note in n for n in notes), notes


def _direct(d: dict) -> None:
    # the local cluster spread like the upstream one: zone a's upstream share >= its local share
    eps = d["configs"][1]["static_clusters"][0]["cluster"]["load_assignment"]["endpoints"]
    eps[0]["lb_endpoints"] = eps[0]["lb_endpoints"][:1]


def test_zone_aware_direct() -> None:
    shares, notes = _shares(parse_envoy_text(_dump(_direct), "dump.json"))
    assert shares == {"10.1.1.1:8080": Fraction(1, 2), "10.1.1.2:8080": Fraction(1, 2)}
    assert any("(LocalityDirect)" in n for n in notes)


@pytest.mark.parametrize(("edit", "what"), [
    (lambda d: d["configs"][0]["bootstrap"]["node"]["locality"].update(zone=5),
     "node.locality.zone: expected a string, got the number 5"),
    (lambda d: d["configs"][0]["bootstrap"]["cluster_manager"].update(local_cluster_name=["x"]),
     "cluster_manager.local_cluster_name: expected a string"),
    (lambda d: d["configs"][1]["static_clusters"][1]["cluster"]["common_lb_config"]["zone_aware_lb_config"].update(
        min_cluster_size="six"), "zone_aware_lb_config.min_cluster_size: expected an integer"),
    (lambda d: d["configs"][1]["static_clusters"][1]["cluster"]["common_lb_config"]["zone_aware_lb_config"].update(
        routing_enabled={"value": 150}), "zone_aware_lb_config.routing_enabled: expected a percentage in [0, 100]"),
])  # fmt: skip
def test_bad_zone_aware_fields(edit, what: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigParseError, match=what.replace("[", r"\[").replace("]", r"\]")) as err:
        parse_envoy_text(_dump(edit), "dump.json")
    assert err.value.line is not None
