"""How ``make test`` shares its tiers between two pytest-xdist workers.

``make test`` runs ``pytest tests -n 2 --dist loadscope``: two workers, and this module's
scheduler decides which tests must stay together. Every test of ``tests/cluster`` shares the
session's one local cluster (a control plane and three node namespaces), so the whole
tier is a single unit of work: one worker starts the cluster and runs the tier in
collection order, module fixtures (a chart install each) set up once. Every other test
(the netns tier builds its own uniquely named namespaces; the unit tier touches nothing
shared) is a unit of its own, dealt to whichever worker is free.

The cluster tier was an ``xdist_group`` first; under pytest 9 that marker no longer
reaches xdist 3.8's scheduler (it rewrote ``item._nodeid``, which pytest 9 no longer
reads), and the tier was dealt to both workers, each starting a cluster of its own.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

CLUSTER_TIER = "tests/cluster/"
"""The node-id prefix of the tests that share one local cluster."""


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: the whole cluster tier, or the test alone."""
    return CLUSTER_TIER if nodeid.startswith(CLUSTER_TIER) else nodeid


class TierScheduling(LoadScopeScheduling):
    """Load-scope scheduling whose scopes are :func:`work_unit`'s."""

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    """Use :class:`TierScheduling` under ``--dist loadscope``; leave other modes to xdist."""
    if config.getoption("dist") != "loadscope":
        return None
    return TierScheduling(config, log)
