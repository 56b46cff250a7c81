"""The webhook's inventory: every listed VirtualIP counts, each parsed once per resourceVersion."""

from __future__ import annotations

from typing import Any

from keepvip.operator.inventory import InventoryCache
from keepvip.operator.reconcile import inventory_entry


def vip(name: str, address: str, version: str, uid: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name, "uid": uid or f"uid-{name}", "resourceVersion": version,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"addresses": [address], "interface": "eth0"},
    }


def test_each_version_is_parsed_once_and_a_new_version_is_read_again() -> None:
    cache = InventoryCache(inventory_entry)
    listing = [vip(f"v{i}", f"198.18.0.{i + 1}/24", "1") for i in range(50)]
    first = cache.inventory(listing)
    assert cache.parsed == 50
    assert cache.inventory(listing) == first
    assert cache.parsed == 50  # unchanged versions: not parsed again
    listing[7] = vip("v7", "198.18.1.7/24", "2")  # v7's address changed
    after = cache.inventory(listing)
    assert cache.parsed == 51
    assert {str(a) for a in after["v7"].addresses} == {"198.18.1.7"}


def test_a_deleted_and_recreated_name_is_a_new_object() -> None:
    cache = InventoryCache(inventory_entry)
    cache.inventory([vip("v", "198.18.0.1/24", "5", uid="a")])
    again = cache.inventory([vip("v", "198.18.0.2/24", "5", uid="b")])  # same version text, new uid
    assert {str(a) for a in again["v"].addresses} == {"198.18.0.2"}


def test_objects_gone_from_the_list_are_gone_from_the_inventory_and_invalid_ones_do_not_count() -> None:
    cache = InventoryCache(inventory_entry)
    cache.inventory([vip("a", "198.18.0.1/24", "1"), vip("b", "198.18.0.2/24", "1")])
    broken = vip("c", "not-an-address", "1")
    assert set(cache.inventory([vip("a", "198.18.0.1/24", "1"), broken])) == {"a"}


def test_an_update_of_metadata_only_needs_no_inventory_and_a_spec_change_does() -> None:
    from keepvip.operator.admission import nothing_to_review

    old = vip("v", "198.18.0.1/24", "1")
    kopf_wrote = {"finalizers": ["keepvip.io/release-allocation"],
                  "annotations": {"keepvip.io/last-handled-configuration": "{}"}}
    annotated = {**old, "metadata": {**old["metadata"], **kopf_wrote}}
    moved = {**old, "spec": {**old["spec"], "addresses": ["198.18.0.2/24"]}}
    deleting = {**moved, "metadata": {**old["metadata"], "deletionTimestamp": "2026-01-01T00:01:00Z"}}
    assert nothing_to_review(annotated, old)  # kopf's finalizer and annotations: no list of every VIP
    assert nothing_to_review(deleting, old)
    assert not nothing_to_review(moved, old)
    assert not nothing_to_review(old, None)  # a CREATE is always reviewed


def test_the_webhooks_listing_asks_the_watch_cache_with_a_timeout() -> None:
    """A listing shared by every waiting review must fail rather than hang (issue 15)."""
    from keepvip.operator.kube import Kube
    from keepvip.operator.settings import OperatorSettings

    asked: list[dict[str, object]] = []

    class Custom:
        def list_cluster_custom_object(self, *where: object, **options: object) -> dict[str, object]:
            assert where == ("keepvip.io", "v1alpha1", "virtualips")
            asked.append(options)
            return {"items": [{"metadata": {"name": "a"}}]}

    kube = Kube(OperatorSettings(), api=object())
    kube.custom = Custom()
    assert kube.list_virtualips(cached=True, timeout=4.0) == [{"metadata": {"name": "a"}}]
    assert kube.list_virtualips() == [{"metadata": {"name": "a"}}]
    assert asked == [{"resource_version": "0", "_request_timeout": 4.0}, {}]
