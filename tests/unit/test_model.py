"""The VirtualIP model: defaults, per-node priority, and refusals that name the field."""

from __future__ import annotations

from datetime import timedelta
from ipaddress import ip_interface
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip.api.model import VirtualIP, VrrpState
from keepvip.api.parse import InvalidVirtualIP, parse_virtualip

INVALID_CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parents[1] / "data" / "invalid_virtualips.yaml").read_text()
)


def document(name: str = "ingress", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"addresses": ["198.18.0.100/24"]}
    base.update(spec)
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name},
        "spec": base,
    }


def test_a_minimal_virtualip_gets_the_documented_defaults() -> None:
    vip = parse_virtualip(document())
    spec = vip.spec
    assert spec.addresses == (ip_interface("198.18.0.100/24"),)
    assert spec.priority == 100
    assert spec.preempt is True
    assert spec.preempt_delay == timedelta(0)
    assert spec.vrrp.version == 3
    assert spec.vrrp.advertisement_interval == timedelta(seconds=1)
    assert spec.vrrp.interval_centiseconds == 100
    assert spec.vrrp.vrid is None
    assert spec.vrrp.checksum.value == "pseudoHeader"
    assert spec.interface is None
    assert spec.family == 4


def test_an_address_without_prefix_is_a_host_address() -> None:
    assert parse_virtualip(document(addresses=["198.18.0.100"])).spec.addresses[0].network.prefixlen == 32
    v6 = parse_virtualip(document(addresses=["2001:db8::100"]))
    assert v6.spec.addresses[0].network.prefixlen == 128
    assert v6.spec.family == 6


def test_node_priorities_first_match_wins_else_base_priority() -> None:
    spec = parse_virtualip(
        document(
            priority=90,
            nodePriorities=[
                {"nodeName": "node-a", "priority": 150},
                {"nodeSelector": {"matchLabels": {"rack": "r1"}}, "priority": 120},
                {
                    "nodeSelector": {"matchExpressions": [{"key": "rack", "operator": "Exists"}]},
                    "priority": 110,
                },
            ],
        )
    ).spec
    assert spec.priority_for("node-a", {"rack": "r1"}) == 150
    assert spec.priority_for("node-b", {"rack": "r1"}) == 120
    assert spec.priority_for("node-c", {"rack": "r2"}) == 110
    assert spec.priority_for("node-d", {}) == 90


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({}, {}, True),
        ({"matchLabels": {"role": "ingress"}}, {"role": "ingress", "x": "y"}, True),
        ({"matchLabels": {"role": "ingress"}}, {"role": "db"}, False),
        (
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
            {"zone": "b"},
            True,
        ),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, {"zone": "a"}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}]}, {"spot": "1"}, False),
    ],
)
def test_node_selector_has_kubernetes_label_selector_semantics(
    selector: dict[str, Any], labels: dict[str, str], selected: bool
) -> None:
    assert parse_virtualip(document(nodeSelector=selector)).spec.selects(labels) is selected


def test_a_round_trip_through_the_wire_form_is_lossless() -> None:
    body = document(
        addresses=["198.18.0.100/24", "198.18.0.101/24"],
        preemptDelay="1m30s",
        vrrp={"version": 2, "advertisementInterval": "2s", "vrid": 51, "multicastGroup": "standard"},
        healthChecks=[{"name": "web", "http": {"port": 8080, "path": "/healthz"}, "weight": -20}],
        arbiter={"gateway": "198.18.0.1"},
    )
    vip = parse_virtualip(body)
    again = parse_virtualip(vip.to_body())
    assert again == vip
    assert vip.to_body()["spec"]["preemptDelay"] == "90s"
    assert vip.to_body()["spec"]["vrrp"]["advertisementInterval"] == "2s"


def test_status_with_nodes_parses() -> None:
    body = document()
    body["status"] = {
        "vrid": 51,
        "master": "node-a",
        "nodes": [{"node": "node-a", "state": "MASTER", "priority": 150, "effectivePriority": 130}],
    }
    vip = parse_virtualip(body)
    assert isinstance(vip, VirtualIP)
    assert vip.status is not None
    assert vip.status.nodes[0].state is VrrpState.MASTER
    assert vip.status.nodes[0].effective_priority == 130


def test_v2_with_pass_authentication_is_accepted() -> None:
    auth = {"type": "PASS", "secretRef": {"namespace": "kube-system", "name": "vrrp", "key": "password"}}
    spec = parse_virtualip(document(vrrp={"version": 2, "authentication": auth})).spec
    assert spec.vrrp.authentication is not None


@pytest.mark.parametrize("case", INVALID_CASES, ids=[c["name"] for c in INVALID_CASES])
def test_invalid_virtualips_are_refused_with_the_field_named(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidVirtualIP) as refused:
        parse_virtualip(document(name=case["name"], **case["spec"]))
    paths = [error.path for error in refused.value.errors]
    assert case["field"] in paths, f"{refused.value} does not name {case['field']}"
    assert case["name"] in str(refused.value)
    assert all(error.message for error in refused.value.errors)


def test_the_invalid_list_covers_at_least_twenty_mistakes() -> None:
    assert len(INVALID_CASES) >= 20


def test_a_status_list_stored_as_null_reads_as_empty() -> None:
    body = document()
    body["status"] = {"nodes": None, "conditions": None, "vrid": 3}
    status = parse_virtualip(body).status
    assert status is not None
    assert status.nodes == ()
    assert status.conditions == ()


def test_the_cluster_example_is_a_valid_virtualip() -> None:
    example = Path(__file__).parents[2] / "examples" / "ingress-vip.yaml"
    vip = parse_virtualip(yaml.safe_load(example.read_text()))
    assert vip.name == "ingress"
    assert vip.spec.vrrp.vrid is None  # the operator allocates it


def refusal(**spec: Any) -> InvalidVirtualIP:
    with pytest.raises(InvalidVirtualIP) as refused:
        parse_virtualip(document(**spec))
    return refused.value


HUGE = "9" * 1_000_000


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"addresses": [HUGE]}, "spec.addresses[0]"),
        ({"interface": HUGE}, "spec.interface"),
        ({"vrrp": {"multicastGroup": HUGE}}, "spec.vrrp.multicastGroup"),
        ({"arbiter": {"gateway": HUGE}}, "spec.arbiter.gateway"),
        ({"preemptDelay": HUGE + "s"}, "spec.preemptDelay"),
        ({"healthChecks": [{"name": HUGE, "tcp": {"port": 80}}]}, "spec.healthChecks[0].name"),
        ({"healthChecks": [{"name": "web", "http": {"port": 80, "path": "/\n" + HUGE}}]},
         "spec.healthChecks[0].http.path"),
    ],
)  # fmt: skip
def test_a_megabyte_value_is_quoted_in_at_most_about_64_characters(spec: dict[str, Any], field: str) -> None:
    error = refusal(**spec)
    assert [e.path for e in error.errors] == [field]
    message = error.errors[0].message
    assert "9" * 50 in message, message  # the start of the value ...
    assert "9" * 65 not in message, message  # ... never the whole
    assert len(message) < 300


def test_a_megabyte_name_is_quoted_short() -> None:
    with pytest.raises(InvalidVirtualIP) as refused:
        parse_virtualip(document(name=HUGE, priority=0))
    assert len(str(refused.value)) < 300


@pytest.mark.parametrize("case", INVALID_CASES, ids=[c["name"] for c in INVALID_CASES])
def test_refusals_say_the_rule_in_words_not_as_a_pattern(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidVirtualIP) as refused:
        parse_virtualip(document(name=case["name"], **case["spec"]))
    for error in refused.value.errors:
        assert "pattern" not in error.message, error
        assert "^" not in error.message, error
        assert "Input should be a valid" not in error.message, error  # pydantic's type words


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"vrrp": {"vrid": True}}, "spec.vrrp.vrid", "must be a whole number, not true/false"),
        ({"vrrp": {"version": "3"}}, "spec.vrrp.version", "without quotes"),
        ({"priority": "100"}, "spec.priority", "without quotes"),
        ({"preempt": 1}, "spec.preempt", "must be true or false"),
        ({"healthChecks": [{"name": "web", "tcp": {"port": 80}, "rise": True}]}, "spec.healthChecks[0].rise",
         "whole number"),
        ({"interface": "éééééééé"}, "spec.interface", "1 to 15 bytes"),
        ({"interface": "eth0:1"}, "spec.interface", "no '/', ':', whitespace or NUL"),
        ({"interface": "."}, "spec.interface", "not an interface name"),
        ({"preemptDelay": "20m"}, "spec.preemptDelay", "at most 1000s"),
        ({"preemptDelay": "100000000000h"}, "spec.preemptDelay", "longer than any duration"),
        ({"addresses": ["198.18.0.0/24"]}, "spec.addresses[0]", "network address of 198.18.0.0/24"),
        ({"addresses": ["198.18.0.255/24"]}, "spec.addresses[0]", "broadcast address of 198.18.0.0/24"),
        ({"addresses": ["169.254.169.254"]}, "spec.addresses[0]", "metadata"),
        ({"addresses": ["127.0.0.1/8"]}, "spec.addresses[0]", "loopback"),
        ({"addresses": ["::ffff:198.18.0.1"]}, "spec.addresses[0]", "write the IPv4 one"),
        ({"addresses": ["2001:db8::100%eth0/64"]}, "spec.addresses[0]", "without a zone index"),
        ({"addresses": ["2001:db8::100/64"], "vrrp": {"unicastPeers": ["fe80::1%eth0"]}},
         "spec.vrrp.unicastPeers[0]", "'fe80::1%eth0': write the peer without a zone index"),
        ({"healthChecks": [{"name": "web", "http": {"port": 80, "path": "/santé"}}]},
         "spec.healthChecks[0].http.path", "percent-encode them"),
        ({"healthChecks": [{"name": "s", "exec": {"command": ["/bin/check", "a\0b"]}}]},
         "spec.healthChecks[0].exec.command[1]", "an argument has no NUL character"),
    ],
)  # fmt: skip
def test_refusal_messages_explain_why(spec: dict[str, Any], field: str, words: str) -> None:
    errors = {e.path: e.message for e in refusal(**spec).errors}
    assert words in errors[field], errors


@pytest.mark.parametrize(
    "address", ["198.18.0.100/24", "198.18.0.0/31", "198.18.0.1/31", "198.18.0.7/32", "198.18.0.255/23",
                "2001:db8::1/64", "2001:db8::/127", "2001:db8::/128"],
)  # fmt: skip
def test_host_addresses_at_the_edges_of_a_prefix_stay_admitted(address: str) -> None:
    assert parse_virtualip(document(addresses=[address])).spec.addresses[0] == ip_interface(address)


def test_peers_and_an_arbiter_gateway_that_can_work_are_admitted() -> None:
    spec = parse_virtualip(
        document(
            addresses=["198.18.0.100/24"],
            vrrp={"unicastPeers": ["198.18.0.2", "198.18.0.3"]},
            arbiter={"gateway": "198.18.0.1", "interval": "1s", "timeout": "900ms"},
            healthChecks=[{"name": "web", "http": {"port": 80, "path": "/healthz?full=1%20x"}}],
        )
    ).spec
    assert len(spec.vrrp.unicast_peers) == 2


def test_an_empty_pass_password_is_refused_wherever_the_secret_is_resolved() -> None:
    auth = {"type": "PASS", "secretRef": {"namespace": "kube-system", "name": "vrrp", "key": "password"}}
    authentication = parse_virtualip(
        document(vrrp={"version": 2, "authentication": auth})
    ).spec.vrrp.authentication
    assert authentication is not None
    assert authentication.password_problem(b"s3cret") is None
    problem = authentication.password_problem(b"")
    assert problem is not None
    assert problem.startswith("key 'password' of Secret kube-system/vrrp is empty")
    assert problem.endswith("an empty PASS password means no authentication")


def test_tracked_interfaces_and_sync_group_are_read_and_written_back() -> None:
    body = document(
        trackInterfaces=[{"name": "bond0"}, {"name": "eth1", "weight": -30}, {"name": "eth2", "weight": 10}],
        syncGroup="edge",
    )
    vip = parse_virtualip(body)
    tracked = [(t.name, t.weight) for t in vip.spec.track_interfaces]
    assert tracked == [("bond0", 0), ("eth1", -30), ("eth2", 10)]
    assert vip.spec.sync_group == "edge"
    written = vip.to_body()["spec"]
    assert written["trackInterfaces"][0] == {"name": "bond0", "weight": 0}
    assert written["syncGroup"] == "edge"
    assert parse_virtualip(document()).spec.track_interfaces == ()
    assert parse_virtualip(document()).spec.sync_group is None


def test_at_most_32_tracked_interfaces() -> None:
    many = [{"name": f"eth{i}"} for i in range(33)]
    with pytest.raises(InvalidVirtualIP, match="trackInterfaces"):
        parse_virtualip(document(trackInterfaces=many))
    assert len(parse_virtualip(document(trackInterfaces=many[:32])).spec.track_interfaces) == 32
