"""VirtualIPPool: the model refuses with field names, the CRD is generated and current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip.api.model import VirtualIPSettings, VirtualIPSpec
from keepvip.api.pool import InvalidPool, PoolTemplate, parse_pool
from keepvip.api.pool_crd import build_pool_crd, render_pool_crd
from keepvip.cli import main
from keepvip.operator.lb.pools import PoolView
from keepvip.operator.lb.records import desired_spec
from keepvip.operator.lb.service import LbService

ROOT = Path(__file__).parents[2]


def refusal(spec: dict[str, Any]) -> str:
    with pytest.raises(InvalidPool) as caught:
        parse_pool({"metadata": {"name": "p"}, "spec": spec})
    return str(caught.value)


def test_addresses_cidrs_and_ranges_of_both_families_with_defaults() -> None:
    pool = parse_pool(
        {
            "metadata": {"name": "p"},
            "spec": {"addresses": ["198.18.0.96/28", "198.18.1.1-198.18.1.3", "2001:db8:1::/64"]},
        }
    )
    assert pool.spec.auto_assign
    assert not pool.spec.disabled
    assert pool.spec.reserve_network_and_broadcast
    assert pool.spec.families() == {4, 6}
    sizes = {str(b): b.size for b in pool.spec.blocks()}
    assert sizes["198.18.0.97-198.18.0.110"] == 14
    assert sizes["2001:db8:1::1-2001:db8:1:0:ffff:ffff:ffff:ffff"] == 2**64 - 1


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"addresses": ["198.18.0.1/24"]},
            "spec.addresses[0]: '198.18.0.1/24' has host bits set: write 198.18.0.0/24",
        ),
        (
            {"addresses": ["198.18.0.9-198.18.0.1"]},
            "spec.addresses[0]: '198.18.0.9-198.18.0.1': the first address",
        ),
        ({"addresses": ["198.18.0.0/24", "198.18.0.5"]}, "spec.addresses[1]: 198.18.0.5 overlaps"),
        ({"addresses": ["224.0.0.1"]}, "spec.addresses[0]: 224.0.0.1 is a multicast address"),
        ({"addresses": ["198.18.0.1-2001:db8::1"]}, "mixes IPv4 and IPv6"),
        ({"addresses": ["198.18.0.8/32"], "exclude": ["198.18.0.8"]}, "spec.exclude: excludes every address"),
        (
            {"addresses": ["198.18.0.0/24"], "template": {"vrrp": {"vrid": 7}}},
            "spec.template.vrrp.vrid: leave unset",
        ),
        (
            {"addresses": ["2001:db8::/64"], "template": {"vrrp": {"version": 2}}},
            "spec.template.vrrp.version: IPv6",
        ),
        ({"addresses": ["198.18.0.0/24"], "priority": "1"}, "spec.priority: must be a whole number"),
        ({"addresses": ["198.18.0.0/24"], "autoAssign": "yes"}, "spec.autoAssign: must be true or false"),
        (
            {"addresses": ["198.18.0.0/24"], "template": {"healthChecks": [{"name": "x"}]}},
            "spec.template.healthChecks[0]",
        ),
        (
            {"addresses": ["198.18.0.0/24"],
             "template": {"trackInterfaces": [{"name": "bond0"}, {"name": "bond0", "weight": -10}]}},
            "spec.template.trackInterfaces[1].name: 'bond0' is listed twice",
        ),
        ({"addresses": ["198.18.0.0/24"], "template": {"syncGroup": "Edge_1"}}, "spec.template.syncGroup"),
        ({"addresses": []}, "spec.addresses: needs at least 1 item"),
        ({"addresses": ["198.18.0.0/24"], "colour": "red"}, "spec.colour: unknown field"),
    ],
)
def test_refusals_name_the_field(spec: dict[str, Any], expected: str) -> None:
    assert expected in refusal(spec)


def test_a_bad_status_is_dropped_not_fatal() -> None:
    pool = parse_pool(
        {"metadata": {"name": "p"}, "spec": {"addresses": ["198.18.0.0/24"]}, "status": {"orphaned": "x"}}
    )
    assert pool.status is None


def test_committed_pool_crd_is_current_in_crds_and_in_the_chart() -> None:
    for path in (
        ROOT / "crds" / "virtualippools.keepvip.io.yaml",
        ROOT / "charts/keepvip/files/crds/virtualippools.keepvip.io.yaml",
    ):
        assert path.read_text() == render_pool_crd(), f"{path} is stale: run `make crd`"


def test_keepvip_crd_prints_the_pool_crd_and_both(capsys: Any) -> None:
    assert main(["crd", "--kind", "VirtualIPPool"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == build_pool_crd()
    assert main(["crd", "--kind", "all"]) == 0
    kinds = [d["spec"]["names"]["kind"] for d in yaml.safe_load_all(capsys.readouterr().out)]
    assert kinds == ["VirtualIP", "VirtualIPPool"]


def test_pool_crd_is_cluster_scoped_with_short_name_and_structural() -> None:
    crd = build_pool_crd()
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["vippool"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    text = yaml.safe_dump(version["schema"])
    assert "$ref" not in text
    assert "anyOf" not in text
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["autoAssign"]["default"] is True
    assert spec["reserveNetworkAndBroadcast"]["default"] is True
    assert "vrrp" in spec["template"]["properties"]
    assert "healthChecks" in spec["template"]["properties"]


def test_the_template_is_virtualips_own_settings_model_without_addresses_and_service_ref() -> None:
    """One model for the per-VIP settings: a field added to VirtualIP reaches pools by itself."""
    assert issubclass(PoolTemplate, VirtualIPSettings)
    assert issubclass(VirtualIPSpec, VirtualIPSettings)
    assert set(PoolTemplate.model_fields) == set(VirtualIPSpec.model_fields) - {"addresses", "service_ref"}
    template = build_pool_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["template"]["properties"]  # fmt: skip
    assert {"trackInterfaces", "syncGroup", "healthChecks", "arbiter"} <= set(template)


def test_track_interfaces_and_sync_group_of_the_template_reach_every_record() -> None:
    pool = parse_pool({"metadata": {"name": "edge", "uid": "u"}, "spec": {
        "addresses": ["198.18.0.0/28"],
        "template": {"trackInterfaces": [{"name": "bond0", "weight": -30}], "syncGroup": "edge",
                     "vrrp": {"advertisementInterval": "100ms"}}}})  # fmt: skip
    address = next(iter(pool.spec.blocks())).address(0)
    spec, refused = desired_spec(PoolView.of(pool), address, [LbService(namespace="web", name="shop")], True)
    assert refused is None
    assert spec is not None
    assert spec["trackInterfaces"] == [{"name": "bond0", "weight": -30}]
    assert spec["syncGroup"] == "edge"
    record = VirtualIPSpec.model_validate(spec)
    assert record.sync_group == "edge"
    assert record.track_interfaces[0].name == "bond0"
