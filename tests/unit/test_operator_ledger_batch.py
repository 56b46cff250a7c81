"""The allocation ledger commits concurrent allocations together, and never hands a pair out twice.

``Kube.update_ledger`` is driven here against an in-memory ConfigMap store that keeps
a ``resourceVersion`` and refuses a stale replace with 409, as the API server does
(the cluster tier runs the same code against a real one). What is asserted: many
threads allocating at once get distinct pairs, in fewer writes than allocations; a
replace that loses a race re-decides every call of the batch; one call that fails
does not fail the others.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from ipaddress import IPv4Address
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from keepvip.operator.allocation import (
    Allocated,
    LedgerEntry,
    Pool,
    Request,
    allocate,
    decode_ledger,
    encode_entry,
)
from keepvip.operator.kube import Kube, LedgerChanges
from keepvip.operator.settings import OperatorSettings


class ConfigMaps:
    """One namespace's ConfigMaps with optimistic concurrency (the calls Kube makes)."""

    def __init__(self) -> None:
        self.stored: dict[str, tuple[int, dict[str, str]]] = {}
        self.replaces = 0
        self.conflicts = 0
        self.lock = threading.Lock()
        self.before_replace: Any = None

    def read_namespaced_config_map(self, name: str, namespace: str) -> Any:  # noqa: ARG002
        with self.lock:
            if name not in self.stored:
                raise ApiException(status=404)
            version, data = self.stored[name]
            return SimpleNamespace(data=dict(data), metadata=SimpleNamespace(resource_version=str(version)))

    def create_namespaced_config_map(self, namespace: str, body: Mapping[str, Any]) -> Any:
        with self.lock:
            name = body["metadata"]["name"]
            if name in self.stored:
                raise ApiException(status=409)
            self.stored[name] = (1, dict(body["data"]))
        return self.read_namespaced_config_map(name, namespace)

    def replace_namespaced_config_map(self, name: str, namespace: str, body: Any) -> None:  # noqa: ARG002
        if self.before_replace is not None:
            hook, self.before_replace = self.before_replace, None
            hook()
        with self.lock:
            version, _ = self.stored[name]
            if str(version) != body.metadata.resource_version:
                self.conflicts += 1
                raise ApiException(status=409)
            self.stored[name] = (version + 1, dict(body.data))
            self.replaces += 1


POOL = Pool((IPv4Address("224.0.0.18"),), (), range(1, 256))


def kube_with(store: ConfigMaps) -> Kube:
    kube = Kube(OperatorSettings(), api=SimpleNamespace())
    kube.core = store
    return kube


def allocation(uid: str) -> Any:
    request = Request(uid=uid, name=uid, family=4, seed="198.18.0.1")  # one seed: all want the same pair

    def decide(ledger: dict[str, LedgerEntry]) -> tuple[LedgerChanges, Allocated]:
        decision = allocate(request, ledger, POOL)
        assert isinstance(decision, Allocated)
        changes = {uid: encode_entry(LedgerEntry(uid, decision.pair))} if decision.is_new else {}
        return changes, decision

    return decide


def test_allocations_made_at_once_get_distinct_pairs_in_fewer_writes() -> None:
    store = ConfigMaps()
    kube = kube_with(store)
    results: dict[str, Allocated] = {}
    start = threading.Barrier(40)

    def one(i: int) -> None:
        start.wait()
        results[f"u-{i}"] = kube.update_ledger(allocation(f"u-{i}"))

    def the_others_queue_meanwhile() -> None:  # the first write is slow, as over a network
        for _ in range(1000):
            with kube._queue_guard:
                if len(kube._queue) == 39:
                    return
            threading.Event().wait(0.01)

    store.before_replace = the_others_queue_meanwhile
    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger = decode_ledger(store.stored["keepvip-allocations"][1])
    assert len({r.pair for r in results.values()}) == 40
    assert {uid: entry.pair for uid, entry in ledger.items()} == {uid: r.pair for uid, r in results.items()}
    assert store.replaces == 2  # the first, then the 39 that queued behind it in one write


def test_a_batch_that_loses_a_race_is_decided_again_on_the_other_writers_ledger() -> None:
    store = ConfigMaps()
    kube = kube_with(store)
    first = kube.update_ledger(allocation("u-1"))

    def another_replica_allocates() -> None:  # takes the pair u-2 is about to take
        with store.lock:
            version, data = store.stored["keepvip-allocations"]
            request = Request(uid="x", name="x", family=4, seed="198.18.0.1")
            other = allocate(request, decode_ledger(data), POOL)
            assert isinstance(other, Allocated)
            data = {**data, "x": encode_entry(LedgerEntry("x", other.pair))}
            store.stored["keepvip-allocations"] = (version + 1, data)

    store.before_replace = another_replica_allocates
    second = kube.update_ledger(allocation("u-2"))
    ledger = decode_ledger(store.stored["keepvip-allocations"][1])
    assert store.conflicts == 1
    assert len({entry.pair for entry in ledger.values()}) == 3
    assert second.pair not in (first.pair, ledger["x"].pair)


def test_a_call_that_fails_fails_alone() -> None:
    store = ConfigMaps()
    kube = kube_with(store)

    def broken(ledger: dict[str, LedgerEntry]) -> tuple[LedgerChanges, None]:
        raise ValueError("bad decision")

    with pytest.raises(ValueError, match="bad decision"):
        kube.update_ledger(broken)
    assert kube.update_ledger(allocation("u-1")).is_new
    assert set(decode_ledger(store.stored["keepvip-allocations"][1])) == {"u-1"}
