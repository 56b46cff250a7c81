"""The speaker DaemonSet is applied again only when it could differ (issue 15: 0 writes at rest).

The maintenance loop re-applies the DaemonSet every resync to repair drift. Each apply
was a write request to the API server even when it changed nothing: the one write a
minute left in a steady 500-VirtualIP cluster. ``Kube.apply_daemonset`` is driven here
against an in-memory DaemonSet store that keeps a uid and a generation the way the API
server does (the generation moves when the spec changes, a re-created object has a new
uid); the cluster tier runs the same code against a real one (bench/cluster_scale.py).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from kubernetes.client.exceptions import ApiException

from keepvip.operator.kube import Kube
from keepvip.operator.settings import OperatorSettings

_uids = itertools.count(1)


class DaemonSets:
    """One DaemonSet's store: server-side apply and get, with uid and generation."""

    def __init__(self) -> None:
        self.stored: dict[str, Any] | None = None
        self.writes = 0

    def _view(self) -> Any:
        assert self.stored is not None
        return SimpleNamespace(metadata=SimpleNamespace(uid=self.stored["uid"],
                                                        generation=self.stored["generation"]))  # fmt: skip

    def read_namespaced_daemon_set(self, name: str, namespace: str) -> Any:  # noqa: ARG002
        if self.stored is None:
            raise ApiException(status=404)
        return self._view()

    def patch_namespaced_daemon_set(
        self, name: str, namespace: str, body: Mapping[str, Any], **_: Any  # noqa: ARG002
    ) -> Any:
        self.writes += 1
        if self.stored is None:
            self.stored = {"uid": f"uid-{next(_uids)}", "generation": 1, "spec": copy.deepcopy(body["spec"])}
        elif self.stored["spec"] != body["spec"]:
            self.stored["spec"] = copy.deepcopy(body["spec"])
            self.stored["generation"] += 1
        return self._view()

    def edit_spec(self) -> None:
        """Someone else changes the spec (kubectl edit)."""
        assert self.stored is not None
        self.stored["spec"] = {**self.stored["spec"], "edited": True}
        self.stored["generation"] += 1


def body(image: str = "keepvip:1") -> dict[str, Any]:
    return {"metadata": {"name": "keepvip-speaker", "namespace": "keepvip"}, "spec": {"image": image}}


def test_an_unchanged_daemonset_is_not_written_again_but_drift_and_changes_are() -> None:
    store = DaemonSets()
    kube = Kube(OperatorSettings(), api=object())
    kube.apps = store

    assert kube.apply_daemonset(body()) is True  # created
    assert [kube.apply_daemonset(body()) for _ in range(5)] == [False] * 5  # resyncs at rest: no write
    assert store.writes == 1

    store.edit_spec()  # drift: someone else's spec edit moves the generation
    assert kube.apply_daemonset(body()) is True
    assert store.stored is not None
    assert "edited" not in store.stored["spec"]
    assert kube.apply_daemonset(body()) is False

    store.stored = None  # deleted ...
    assert kube.apply_daemonset(body()) is True  # ... and applied again
    old_uid = store.stored["uid"]
    store.stored = {"uid": "someone-else", "generation": 1, "spec": body()["spec"]}  # re-created by another
    assert kube.apply_daemonset(body()) is True
    assert store.stored["uid"] != old_uid

    assert kube.apply_daemonset(body("keepvip:2")) is True  # the operator's own change (an upgrade)
    assert kube.apply_daemonset(body("keepvip:2")) is False
    assert store.writes == 5
