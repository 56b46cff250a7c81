"""What a node runs: one plan per selecting VirtualIP, and named reasons for the rest."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from keepvip.api.parse import parse_virtualip
from keepvip.inet import VRRP_GROUP_V4, VRRP_GROUP_V6
from keepvip.speaker.desired import NodeIdentity, PlanProblem, RouterPlan, Skipped, desired_routers
from keepvip.speaker.vrrp.constants import ChecksumMode


def vip(name: str, status: dict[str, Any] | None = None, **spec: Any) -> Any:
    body: dict[str, Any] = {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name},
        "spec": {"addresses": ["198.18.0.100/24"], **spec},
    }
    if status is not None:
        body["status"] = status
    return parse_virtualip(body)


NODE_A = NodeIdentity("node-a", {"rack": "r1"})


def plans_for(*vips: Any, node: NodeIdentity = NODE_A, kubernetes: bool = False, secrets: Any = None) -> Any:
    return desired_routers(list(vips), node, secrets or {}, use_status_allocation=kubernetes)


def test_standalone_plan_carries_the_spec_and_this_nodes_priority() -> None:
    plans, skipped = plans_for(
        vip(
            "web",
            vrrp={"vrid": 51, "advertisementInterval": "100ms"},
            nodePriorities=[{"nodeName": "node-a", "priority": 150}],
        )
    )
    assert skipped == []
    plan = plans["web"]
    assert isinstance(plan, RouterPlan)
    assert (plan.vrid, plan.priority, plan.interval_cs, plan.version) == (51, 150, 10, 3)
    assert plan.group == VRRP_GROUP_V4
    assert plan.checksum is ChecksumMode.PSEUDO_HEADER
    assert plan.interface is None


def test_a_virtualip_that_does_not_select_the_node_is_neither_run_nor_reported() -> None:
    plans, skipped = plans_for(vip("db", vrrp={"vrid": 9}, nodeSelector={"matchLabels": {"rack": "r2"}}))
    assert plans == {}
    assert skipped == []


def test_standalone_needs_an_explicit_vrid() -> None:
    plans, skipped = plans_for(vip("web"))
    assert plans == {}
    assert skipped == [
        Skipped("web", PlanProblem.MISSING_VRID, "spec.vrrp.vrid is required in standalone mode")
    ]


def test_in_a_cluster_the_operators_allocation_in_status_is_used() -> None:
    allocated = vip("web", status={"vrid": 7, "multicastGroup": "224.0.0.116"})
    plans, _ = plans_for(allocated, kubernetes=True)
    assert (plans["web"].vrid, plans["web"].group) == (7, ip_address("224.0.0.116"))


def test_in_a_cluster_a_virtualip_without_allocation_waits() -> None:
    plans, skipped = plans_for(vip("web"), kubernetes=True)
    assert plans == {}
    assert skipped[0].problem is PlanProblem.NOT_ALLOCATED


def test_standard_group_and_ipv6_standard_group() -> None:
    plans, _ = plans_for(
        vip("v4", vrrp={"vrid": 1, "multicastGroup": "standard"}),
        vip("v6", addresses=["2001:db8::100/64"], vrrp={"vrid": 1}),
    )
    assert plans["v4"].group == VRRP_GROUP_V4
    assert plans["v6"].group == VRRP_GROUP_V6
    assert plans["v6"].family == 6


def test_unicast_peers_replace_the_group() -> None:
    plans, _ = plans_for(vip("web", vrrp={"vrid": 5, "unicastPeers": ["198.18.0.2", "198.18.0.3"]}))
    assert plans["web"].group is None
    assert plans["web"].unicast_peers == (ip_address("198.18.0.2"), ip_address("198.18.0.3"))


def test_pass_authentication_reads_the_referenced_secret_and_sends_at_most_8_bytes() -> None:
    auth = {"type": "PASS", "secretRef": {"namespace": "ns", "name": "vrrp", "key": "password"}}
    web = vip("web", vrrp={"version": 2, "vrid": 5, "authentication": auth})
    plans, skipped = plans_for(web, secrets={("ns", "vrrp", "password"): b"longer-than-8"})
    assert skipped == []
    assert plans["web"].password == b"longer-t"
    plans, skipped = plans_for(web)
    assert plans == {}
    assert skipped[0].problem is PlanProblem.MISSING_SECRET
    assert "secretRef" in skipped[0].detail


def test_an_empty_pass_password_in_the_secret_is_refused_not_run_without_authentication() -> None:
    auth = {"type": "PASS", "secretRef": {"namespace": "ns", "name": "vrrp", "key": "password"}}
    web = vip("web", vrrp={"version": 2, "vrid": 5, "authentication": auth})
    plans, skipped = plans_for(web, secrets={("ns", "vrrp", "password"): b""})
    assert plans == {}
    assert skipped[0].problem is PlanProblem.EMPTY_PASSWORD
    assert "spec.vrrp.authentication.secretRef" in skipped[0].detail
    assert "no authentication" in skipped[0].detail


def test_two_virtualips_on_the_same_group_and_vrid_run_only_the_first_by_name() -> None:
    plans, skipped = plans_for(
        vip("b", addresses=["198.18.0.101/24"], vrrp={"vrid": 5}), vip("a", vrrp={"vrid": 5})
    )
    assert list(plans) == ["a"]
    assert skipped[0].name == "b"
    assert skipped[0].problem is PlanProblem.DUPLICATE_ROUTER


def test_same_vrid_in_different_groups_are_different_routers() -> None:
    plans, skipped = plans_for(
        vip("a", vrrp={"vrid": 5, "multicastGroup": "224.0.0.116"}),
        vip("b", addresses=["198.18.0.101/24"], vrrp={"vrid": 5, "multicastGroup": "224.0.0.117"}),
    )
    assert set(plans) == {"a", "b"}
    assert skipped == []


def test_equal_specs_give_equal_plans_so_a_reload_touches_nothing() -> None:
    first, _ = plans_for(vip("web", vrrp={"vrid": 51}, healthChecks=[{"name": "h", "tcp": {"port": 80}}]))
    second, _ = plans_for(vip("web", vrrp={"vrid": 51}, healthChecks=[{"name": "h", "tcp": {"port": 80}}]))
    assert first == second
    third, _ = plans_for(vip("web", vrrp={"vrid": 51}, healthChecks=[{"name": "h", "tcp": {"port": 81}}]))
    assert third != first
