"""The LoadBalancer pass against a recording stand-in for the API (order of writes, 409, restart).

The stand-in keeps objects in memory and records every write, so these tests check
what the controller writes and in which order; the cluster tier
(tests/cluster/test_loadbalancer.py) runs the same controller against kube-apiserver.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from keepvip.operator.lb.controller import LoadBalancerController
from keepvip.operator.settings import LoadBalancerSettings

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Store:
    """VirtualIPs, Services and pools in memory; writes recorded in order."""

    def __init__(self, pool: dict[str, Any]) -> None:
        self.kube = self
        self.pools = [pool]
        self.services: list[dict[str, Any]] = []
        self.vips: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, bool] = {}
        self.writes: list[tuple[str, Any]] = []
        self.taken_by_someone_else: set[str] = set()

    def server_version(self) -> tuple[str, str]:
        return "1", "20"

    def list_pools(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.pools)

    def list_services(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.services)

    def list_virtualips(self) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self.vips.values()))

    def list_namespaces(self) -> dict[str, dict[str, str]]:
        return {"ns": {}}

    def list_ready_endpoints(self) -> dict[str, bool]:
        return dict(self.endpoints)

    def create_virtualip(self, body: dict[str, Any]) -> bool:
        name = body["metadata"]["name"]
        self.writes.append(("create", name))
        if name in self.vips or name in self.taken_by_someone_else:
            return False
        self.vips[name] = copy.deepcopy(body)
        return True

    def delete_virtualip(self, name: str) -> None:
        self.writes.append(("delete", name))
        self.vips.pop(name, None)

    def update_record(self, name: str, annotations: dict[str, str], spec: dict[str, Any] | None) -> None:
        self.writes.append(("update", name))
        self.vips[name]["metadata"]["annotations"].update(annotations)
        if spec is not None:
            self.vips[name]["spec"] = spec

    def patch_service_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        self.writes.append(("service", name))
        for service in self.services:
            if (service["metadata"]["namespace"], service["metadata"]["name"]) == (namespace, name):
                service["status"] = copy.deepcopy(status)
                return True
        return False

    def patch_pool_status(self, name: str, status: dict[str, Any]) -> None:
        self.writes.append(("pool", name))
        self.pools[0]["status"] = copy.deepcopy(status)

    def post_service_event(self, *args: str) -> None:
        self.writes.append(("event", args[4]))

    def add_service(self, name: str, **annotations: str) -> None:
        self.services.append({
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "annotations": annotations},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
        })  # fmt: skip
        self.endpoints[f"ns/{name}"] = True

    def remove_service(self, name: str) -> None:
        self.services = [s for s in self.services if s["metadata"]["name"] != name]

    def ip(self, name: str) -> str | None:
        service = next(s for s in self.services if s["metadata"]["name"] == name)
        ingress = (service.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        return ingress[0]["ip"] if ingress else None

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        service = next(s for s in self.services if s["metadata"]["name"] == name)
        return next(c for c in service["status"]["conditions"] if c["type"] == kind)


def pool(addresses: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "main", "uid": "uid-main", "generation": 1},
        "spec": {"addresses": addresses, **spec},
    }


def controller(store: Store, clock: list[datetime]) -> LoadBalancerController:
    settings = LoadBalancerSettings(enabled=True, default_class=True, reuse_delay="30s")
    return LoadBalancerController(settings, store, clock=lambda: clock[0])  # type: ignore[arg-type]


def test_a_pass_creates_the_record_before_writing_the_status_and_a_second_pass_writes_nothing() -> None:
    store = Store(pool(["198.18.0.100-198.18.0.104"]))
    store.add_service("web")
    clock = [NOW]
    lb = controller(store, clock)
    lb.run_pass()
    kinds = [kind for kind, _ in store.writes]
    assert kinds.index("create") < kinds.index("service") < kinds.index("event")
    assert ("event", "IPAllocated") in store.writes
    address = store.ip("web")
    assert address is not None
    assert (
        store.vips[f"lb-{address.replace('.', '-')}"]["metadata"]["annotations"]["keepvip.io/services"]
        == "ns/web"
    )
    assert store.pools[0]["status"]["ipv4"] == {"total": 5, "assigned": 1, "available": 4}
    store.writes.clear()
    lb.run_pass()
    assert store.writes == []


def test_a_name_taken_meanwhile_is_never_a_second_holder_the_service_retries() -> None:
    store = Store(pool(["198.18.0.100/32"], reserveNetworkAndBroadcast=False))
    store.add_service("web")
    store.taken_by_someone_else.add("lb-198-18-0-100")
    report = controller(store, [NOW]).run_pass()
    assert report.conflicts == 1
    assert report.again_in is not None
    assert store.ip("web") is None
    assert store.condition("web", "keepvip.io/Allocated")["reason"] == "Retrying"


def test_a_release_is_written_into_the_pool_before_the_record_goes_and_rests_for_others() -> None:
    store = Store(pool(["198.18.0.100/32"], reserveNetworkAndBroadcast=False))
    store.add_service("old")
    clock = [NOW]
    lb = controller(store, clock)
    lb.run_pass()
    store.remove_service("old")
    store.add_service("new")
    store.writes.clear()
    lb.run_pass()
    kinds = [kind for kind, _ in store.writes]
    assert kinds.index("pool") < kinds.index("delete")
    released = store.pools[0]["status"]["released"]
    assert released == [
        {"address": "198.18.0.100", "service": "ns/old", "releasedAt": "2026-01-01T12:00:00Z"}
    ]
    clock[0] = NOW + timedelta(seconds=10)
    lb.run_pass()
    assert store.ip("new") is None
    assert store.condition("new", "keepvip.io/Allocated")["reason"] == "PoolExhausted"
    clock[0] = NOW + timedelta(seconds=31)
    lb.run_pass()
    assert store.ip("new") == "198.18.0.100"


def test_a_restarted_controller_keeps_every_address() -> None:
    store = Store(pool(["198.18.0.96/27"]))
    for n in range(20):
        store.add_service(f"svc-{n}")
    controller(store, [NOW]).run_pass()
    before = {s["metadata"]["name"]: store.ip(s["metadata"]["name"]) for s in store.services}
    assert len(set(before.values())) == 20
    store.writes.clear()
    controller(store, [NOW + timedelta(minutes=5)]).run_pass()  # a new process: nothing in memory
    assert [w for w in store.writes if w[0] in ("create", "delete", "update")] == []
    assert {name: store.ip(name) for name in before} == before


def test_a_service_that_stops_being_a_load_balancer_is_cleared_and_its_address_released() -> None:
    store = Store(pool(["198.18.0.100-198.18.0.104"]))
    store.add_service("web")
    lb = controller(store, [NOW])
    lb.run_pass()
    store.services[0]["spec"]["type"] = "ClusterIP"
    lb.run_pass()
    assert store.vips == {}
    assert store.services[0]["status"] == {"loadBalancer": {"ingress": []}, "conditions": []}


def test_each_service_gets_its_address_right_after_its_record_and_is_written_once_per_pass() -> None:
    """A burst of Services is not held back until the pass's last record is created."""
    store = Store(pool(["198.18.0.100-198.18.0.119"]))
    names = [f"svc-{n}" for n in range(5)]
    for name in names:
        store.add_service(name)
    lb = controller(store, [NOW])
    lb.run_pass()
    order = [(kind, name) for kind, name in store.writes if kind in ("create", "service")]
    assert [kind for kind, _ in order] == ["create", "service"] * 5, order
    for (_, record), (_, service) in zip(order[::2], order[1::2], strict=True):
        address = store.ip(service)
        assert address is not None
        assert record == f"lb-{address.replace('.', '-')}"
    assert len({store.ip(name) for name in names}) == 5
    store.writes.clear()
    lb.run_pass()
    assert store.writes == []


def test_a_service_whose_record_was_taken_meanwhile_is_written_once_without_the_address() -> None:
    store = Store(pool(["198.18.0.100-198.18.0.119"]))
    store.add_service("first")
    store.add_service("second")
    lb = controller(store, [NOW])
    taken = {f"lb-198-18-0-{n}" for n in range(100, 120)}
    store.taken_by_someone_else = taken  # every create loses its race
    lb.run_pass()
    service_writes = [name for kind, name in store.writes if kind == "service"]
    assert sorted(service_writes) == ["first", "second"]
    assert store.ip("first") is None
    assert store.condition("first", "keepvip.io/Allocated")["status"] == "False"


def held_by(store: Store, node: str) -> None:
    """The speakers elected ``node`` for every record and the status stage wrote it."""
    for record in store.vips.values():
        record["status"] = {"master": node, "nodes": [{"node": node, "state": "MASTER"}]}


def test_a_restarted_controller_writes_nothing_when_nothing_changed() -> None:
    """issue 15: no Service status patch and no Event from a restart (bench/lb.py checks it live)."""
    store = Store(pool(["198.18.0.96/27"]))
    for n in range(20):
        store.add_service(f"svc-{n}")
    clock = [NOW]
    old = controller(store, clock)
    old.run_pass()
    held_by(store, "node-c")
    old.run_pass()  # Announced: True, "… on node-c" and one NodeAssigned each
    assert store.condition("svc-0", "keepvip.io/Announced")["status"] == "True"
    store.writes.clear()
    old.run_pass()
    assert store.writes == []  # converged: the old process has nothing left to write
    controller(store, [NOW + timedelta(minutes=5)]).run_pass()  # a new process: nothing in memory
    assert store.writes == []


def test_a_restart_writes_only_what_the_old_process_had_not_written_yet() -> None:
    """What bench/lb.py saw (368 Service patches and 369 Events after a restart at 500) is the old
    process's next pass: the controller keeps no memory between passes, so a restarted one
    writes exactly what the old one would have written next, no more."""
    store = Store(pool(["198.18.0.96/27"]))
    for n in range(20):
        store.add_service(f"svc-{n}")
    old = controller(store, [NOW])
    old.run_pass()
    held_by(store, "node-c")  # elected after the old process's last pass, before its next one
    store.writes.clear()
    twin = copy.deepcopy(store)
    old.run_pass()
    controller(twin, [NOW]).run_pass()
    assert twin.writes == store.writes
    assert sorted(store.writes) == sorted([("service", f"svc-{n}") for n in range(20)] +
                                          [("event", "nodeAssigned")] * 20)  # fmt: skip (MetalLB's reason)
