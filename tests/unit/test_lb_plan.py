"""The LoadBalancer decisions on object bodies: parse → decide → status (no API)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keepvip.api.pool import parse_pool
from keepvip.operator.lb.plan import Inventory, Plan, decide
from keepvip.operator.lb.pools import PoolView
from keepvip.operator.lb.reasons import Allocation
from keepvip.operator.lb.records import Record, parse_record, record_body, record_name
from keepvip.operator.lb.service import LbService, Skip, parse_service

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ip = ipaddress.ip_address


def pool(name: str = "main", addresses: tuple[str, ...] = ("198.18.0.96/29",), **spec: Any) -> PoolView:
    body = {
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
        "spec": {"addresses": list(addresses), **spec},
    }
    return PoolView.of(parse_pool(body))


def service(
    name: str, namespace: str = "ns", annotations: dict[str, str] | None = None, **spec: Any
) -> LbService:
    body = {
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}], **spec},
    }
    parsed = parse_service(body, default_class=True)
    assert isinstance(parsed, LbService)
    return parsed


def inventory(
    services: list[LbService], pools: list[PoolView], records: tuple[Record, ...] = (), **extra: Any
) -> Inventory:
    return Inventory(
        services=tuple(services),
        pools=tuple(pools),
        records=records,
        foreign=extra.get("foreign", {}),
        namespaces={},
        ready=extra.get("ready", {}),
        now=extra.get("now", NOW),
        default_delay=extra.get("delay", timedelta(0)),
    )


def applied(plan: Plan, pools: list[PoolView]) -> tuple[Record, ...]:
    """The records the plan leaves behind, as the next pass would list them."""
    views = {p.name: p for p in pools}
    released = {r.record.name for r in plan.releases}
    records = []
    for slot in plan.slots:
        if slot.name in released:
            continue
        spec = slot.spec if slot.spec is not None else (slot.record.spec if slot.record else {})
        body = record_body(slot.name, views[slot.pool], slot.members, slot.group_key, spec)
        parsed = parse_record(body)
        assert parsed is not None
        records.append(parsed)
    return tuple(records)


def test_the_loadbalancer_class_decides_which_services_are_ours() -> None:
    base = {"metadata": {"name": "a", "namespace": "ns"}, "spec": {"type": "LoadBalancer"}}
    assert parse_service({**base, "spec": {"type": "ClusterIP"}}, True) is Skip.NOT_LOAD_BALANCER
    assert parse_service(base, default_class=False) is Skip.NO_CLASS
    assert isinstance(parse_service(base, default_class=True), LbService)
    ours = {**base, "spec": {"type": "LoadBalancer", "loadBalancerClass": "keepvip.io/vrrp"}}
    assert isinstance(parse_service(ours, default_class=False), LbService)
    other = {**base, "spec": {"type": "LoadBalancer", "loadBalancerClass": "metallb.io/metallb"}}
    assert parse_service(other, default_class=True) is Skip.OTHER_CLASS
    ignored = {**base, "metadata": {**base["metadata"], "annotations": {"keepvip.io/ignore": "true"}}}
    assert parse_service(ignored, default_class=True) is Skip.IGNORED


def test_annotation_and_load_balancer_ip_together_are_an_error_that_names_both() -> None:
    svc = service(
        "a", annotations={"keepvip.io/load-balancer-ips": "198.18.0.97"}, loadBalancerIP="198.18.0.98"
    )
    assert svc.problem is not None
    assert svc.problem[0] is Allocation.INVALID_REQUEST
    assert "keepvip.io/load-balancer-ips" in svc.problem[1]
    assert "spec.loadBalancerIP" in svc.problem[1]
    outcome = decide(inventory([svc], [pool()])).outcomes["ns/a"]
    assert outcome.addresses == []
    assert outcome.failure == svc.problem


def test_a_service_gets_a_hashed_address_of_the_pool_and_a_record_named_after_it() -> None:
    plan = decide(inventory([service("web")], [pool()]))
    [slot] = plan.creates()
    assert slot.address in pool()
    assert slot.name == record_name(slot.address)
    assert plan.outcomes["ns/web"].addresses == [slot.address] == plan.outcomes["ns/web"].new
    body = record_body(slot.name, pool(), slot.members, None, slot.spec or {})
    assert body["metadata"]["labels"]["keepvip.io/pool"] == "main"
    assert body["metadata"]["ownerReferences"][0]["kind"] == "VirtualIPPool"
    assert body["spec"]["addresses"] == [f"{slot.address}/32"]


def test_record_names_are_dns_1123() -> None:
    assert record_name(ip("198.18.0.100")) == "lb-198-18-0-100"
    assert record_name(ip("2001:db8::64")) == "lb-2001-db8--64"
    assert record_name(ip("2001:db8:1::")) == "lb-2001-db8-1--0"


def test_network_and_broadcast_are_reserved_and_exclude_is_honoured() -> None:
    view = pool(addresses=("198.18.0.96/30",), exclude=["198.18.0.98"])
    assert [str(b) for b in view.blocks] == ["198.18.0.97"]
    assert pool(addresses=("198.18.0.96/30",), reserveNetworkAndBroadcast=False).size(4) == 4


def test_the_choice_does_not_depend_on_the_order_of_creation() -> None:
    names = [f"svc-{n}" for n in range(5)]
    one = decide(inventory([service(n) for n in names], [pool()])).outcomes
    two = decide(inventory([service(n) for n in reversed(names)], [pool()])).outcomes
    assert {k: o.addresses for k, o in one.items()} == {k: o.addresses for k, o in two.items()}
    assert len({o.addresses[0] for o in one.values()}) == 5


def test_a_second_pass_changes_nothing_and_a_restart_keeps_every_address() -> None:
    pools = [pool()]
    services = [service(f"svc-{n}") for n in range(6)]
    first = decide(inventory(services, pools))
    records = applied(first, pools)
    again = decide(inventory(services, pools, records))
    assert again.creates() == []
    assert again.updates() == []
    assert again.releases == []
    assert {k: o.addresses for k, o in again.outcomes.items()} == {
        k: o.addresses for k, o in first.outcomes.items()
    }


def test_exhaustion_is_reported_and_a_release_serves_the_pending_service() -> None:
    pools = [pool()]  # /29: 6 usable addresses
    services = [service(f"svc-{n}") for n in range(7)]
    first = decide(inventory(services, pools))
    [failed] = [k for k, o in first.outcomes.items() if o.failure]
    assert first.outcomes[failed].failure[0] is Allocation.POOL_EXHAUSTED  # type: ignore[index]
    assert "main" in first.outcomes[failed].failure[1]  # type: ignore[index]
    records = applied(first, pools)
    leaving = next(k for k in first.outcomes if k != failed)
    survivors = [s for s in services if s.key != leaving]
    second = decide(inventory(survivors, pools, records))
    [release] = second.releases
    assert release.service == leaving
    assert second.outcomes[failed].addresses == []  # the record is still being deleted: next pass
    third = decide(inventory(survivors, pools, applied(second, pools)))
    assert third.outcomes[failed].addresses == [release.record.address]


def test_a_released_address_rests_for_other_services_but_not_for_its_old_holder() -> None:
    pools = [pool(addresses=("198.18.0.97/32",), reuseDelay="60s")]
    first = decide(inventory([service("old")], pools))
    records = applied(first, pools)
    gone = decide(inventory([], pools, records))
    assert [r.service for r in gone.releases] == ["ns/old"]
    resting_pool = pool(addresses=("198.18.0.97/32",), reuseDelay="60s")
    status = {
        "released": [{"address": "198.18.0.97", "service": "ns/old", "releasedAt": "2026-01-01T11:59:30Z"}]
    }
    body = {
        "metadata": {"name": "main"},
        "spec": {"addresses": ["198.18.0.97/32"], "reuseDelay": "60s"},
        "status": status,
    }
    resting_pool = PoolView.of(parse_pool(body))
    other = decide(inventory([service("new")], [resting_pool])).outcomes["ns/new"]
    assert other.failure is not None
    assert other.failure[0] is Allocation.POOL_EXHAUSTED
    back = decide(inventory([service("old")], [resting_pool])).outcomes["ns/old"]
    assert back.addresses == [ip("198.18.0.97")]
    later = decide(inventory([service("new")], [resting_pool], now=NOW + timedelta(minutes=1))).outcomes[
        "ns/new"
    ]
    assert later.addresses == [ip("198.18.0.97")]


def test_a_requested_address_is_honoured_or_refused_with_the_holder_named() -> None:
    ask = {"keepvip.io/load-balancer-ips": "198.18.0.99"}
    plan = decide(inventory([service("a", annotations=ask), service("b", annotations=ask)], [pool()]))
    assert plan.outcomes["ns/a"].addresses == [ip("198.18.0.99")]
    failure = plan.outcomes["ns/b"].failure
    assert failure is not None
    assert failure[0] is Allocation.REQUESTED_IP_UNAVAILABLE
    assert "ns/a" in failure[1]
    outside = decide(inventory([service("c", loadBalancerIP="198.18.5.5")], [pool()])).outcomes["ns/c"]
    assert outside.failure is not None
    assert outside.failure[0] is Allocation.REQUESTED_IP_UNAVAILABLE


def test_an_address_of_a_hand_written_virtualip_is_never_handed_out() -> None:
    view = pool(addresses=("198.18.0.97-198.18.0.98",))
    plan = decide(inventory([service("a"), service("b")], [view], foreign={ip("198.18.0.97"): "ingress"}))
    got = [o for o in plan.outcomes.values() if o.addresses]
    assert [o.addresses for o in got] == [[ip("198.18.0.98")]]


def test_sharing_one_key_gives_one_record_with_both_services() -> None:
    key = {"keepvip.io/sharing-key": "web"}
    http = service("http", annotations=key)
    https = service("https", annotations=key, ports=[{"port": 443, "protocol": "TCP"}])
    plan = decide(inventory([http, https], [pool()]))
    [slot] = plan.creates()
    assert slot.members == ["ns/http", "ns/https"]
    assert slot.group_key == "ns/web"
    assert plan.outcomes["ns/http"].addresses == plan.outcomes["ns/https"].addresses


def test_sharing_with_a_port_clash_is_a_conflict_never_a_second_address() -> None:
    key = {"keepvip.io/sharing-key": "web"}
    plan = decide(inventory([service("a", annotations=key), service("b", annotations=key)], [pool()]))
    assert len(plan.creates()) == 1
    failure = plan.outcomes["ns/b"].failure
    assert failure is not None
    assert failure[0] is Allocation.SHARING_CONFLICT
    assert "80/TCP" in failure[1]
    assert plan.outcomes["ns/b"].addresses == []


def test_sharing_with_local_policy_needs_identical_selectors() -> None:
    key = {"keepvip.io/sharing-key": "web"}
    local = {"externalTrafficPolicy": "Local", "healthCheckNodePort": 31000}
    a = service("a", annotations=key, selector={"app": "x"}, **local)
    b = service("b", annotations=key, selector={"app": "y"}, ports=[{"port": 81}], **local)
    plan = decide(inventory([a, b], [pool()]))
    failure = plan.outcomes["ns/b"].failure
    assert failure is not None
    assert "selector" in failure[1]


def test_sharing_keys_do_not_cross_namespaces() -> None:
    key = {"keepvip.io/sharing-key": "web"}
    plan = decide(inventory([service("a", "one", key), service("a", "two", key)], [pool()]))
    assert len(plan.creates()) == 2


def test_dual_stack_gets_one_record_per_family_and_prefer_tolerates_a_missing_family() -> None:
    both = pool(addresses=("198.18.0.96/29", "2001:db8:1::/120"))
    dual = service("d", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"])
    plan = decide(inventory([dual], [both]))
    assert sorted(a.version for a in plan.outcomes["ns/d"].addresses) == [4, 6]
    assert len(plan.creates()) == 2
    prefer = service("p", ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4"])
    outcome = decide(inventory([prefer], [pool()])).outcomes["ns/p"]
    assert [a.version for a in outcome.addresses] == [4]
    assert outcome.failure is None
    require = service("r", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"])
    failed = decide(inventory([require], [pool()])).outcomes["ns/r"]
    assert failed.failure is not None
    assert failed.failure[0] is Allocation.NO_MATCHING_POOL


def test_pool_priority_and_selectors_choose_the_pool() -> None:
    cheap = pool("cheap", ("198.18.1.0/29",), priority=10)
    dear = pool("dear", ("198.18.2.0/29",), priority=20)
    out = decide(inventory([service("a")], [dear, cheap])).outcomes["ns/a"]
    assert out.addresses[0] in cheap
    picky = pool("picky", ("198.18.3.0/29",), priority=1, serviceSelector={"matchLabels": {"tier": "edge"}})
    out = decide(inventory([service("a")], [picky, dear])).outcomes["ns/a"]
    assert out.addresses[0] in dear
    manual = pool("manual", ("198.18.4.0/29",), autoAssign=False)
    assert (
        decide(inventory([service("a")], [manual])).outcomes["ns/a"].failure[0] is Allocation.NO_MATCHING_POOL
    )  # type: ignore[index]
    named = service("b", annotations={"keepvip.io/pool": "manual"})
    assert decide(inventory([named], [manual])).outcomes["ns/b"].addresses[0] in manual


def test_shrinking_a_pool_never_moves_an_address_in_use() -> None:
    wide = [pool(addresses=("198.18.0.96/29",))]
    services = [service(f"s{n}") for n in range(4)]
    first = decide(inventory(services, wide))
    records = applied(first, wide)
    narrow = [pool(addresses=("198.18.0.96/30",))]
    again = decide(inventory(services, narrow, records))
    assert again.creates() == []
    assert again.releases == []
    assert {k: o.addresses for k, o in again.outcomes.items()} == {
        k: o.addresses for k, o in first.outcomes.items()
    }


def test_a_service_status_address_without_record_is_rebound_to_that_address() -> None:
    body = {
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.101"}]}},
    }
    svc = parse_service(body, default_class=True)
    assert isinstance(svc, LbService)
    plan = decide(inventory([svc], [pool()]))
    assert plan.outcomes["ns/web"].addresses == [ip("198.18.0.101")]


def test_local_policy_adds_the_kube_proxy_health_check_and_cluster_policy_stands_down() -> None:
    local = service("l", externalTrafficPolicy="Local", healthCheckNodePort=31234)
    [slot] = decide(inventory([local], [pool()])).creates()
    assert slot.spec is not None
    [check] = slot.spec["healthChecks"]
    assert check["http"] == {"port": 31234, "path": "/healthz"}
    assert check["weight"] == 0
    cluster = service("c")
    [slot] = decide(inventory([cluster], [pool()], ready={"ns/c": False})).creates()
    assert slot.spec is not None
    assert {"key": "keepvip.io/no-ready-endpoints", "operator": "Exists"} in slot.spec["nodeSelector"][
        "matchExpressions"
    ]
    opt_out = service("o", annotations={"keepvip.io/announce-without-endpoints": "true"})
    [slot] = decide(inventory([opt_out], [pool()], ready={"ns/o": False})).creates()
    assert (slot.spec is not None and "nodeSelector" not in slot.spec) or not slot.spec["nodeSelector"].get(
        "matchExpressions"
    )


@pytest.mark.parametrize("version", [("1", "20"), ("1", "28+")])
def test_ip_mode_is_written_only_where_the_server_knows_it(version: tuple[str, str]) -> None:
    from keepvip.operator.lb.report import ingress
    from keepvip.operator.lb.service import server_knows_ip_mode

    assert not server_knows_ip_mode(*version)
    assert server_knows_ip_mode("1", "29")
    assert server_knows_ip_mode("1", "31+")
    assert ingress([ip("198.18.0.97")], "Proxy", server_knows_ip_mode("1", "30")) == [
        {"ip": "198.18.0.97", "ipMode": "Proxy"}
    ]
    assert ingress([ip("198.18.0.97")], "Proxy", server_knows_ip_mode(*version)) == [{"ip": "198.18.0.97"}]


def test_a_record_being_deleted_is_neither_released_again_nor_handed_out() -> None:
    pools = [pool(addresses=("198.18.0.97/32",))]
    first = decide(inventory([service("old")], pools))
    [record] = applied(first, pools)
    leaving = Record(**{**record.__dict__, "deleting": True})
    plan = decide(inventory([service("new")], pools, (leaving,)))
    assert plan.releases == []
    failure = plan.outcomes["ns/new"].failure
    assert failure is not None
    assert failure[0] is Allocation.POOL_EXHAUSTED
