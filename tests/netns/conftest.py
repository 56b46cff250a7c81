"""Fixtures for the netns tier: real namespaces, real sockets, real netlink (root only).

Every test gets a fresh :class:`keepvip.localcluster.lan.Lan` (three nodes and a client on one bridge) that
is torn down after the test whatever its outcome; namespaces a killed earlier run left
behind are swept once per session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The harnesses are plain Python imported by bare name (pytest's pythonpath puts
# tests/netns on sys.path), so bench/ can import them by path too; the LAN builder is
# the one the local cluster and demos use.
from speaker_harness import SpeakerSet, speaker_set

from keepvip.localcluster.lan import Lan, sweep_stale

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in tests/netns carries the ``netns`` marker (select with ``-m netns``)."""
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.netns)


@pytest.fixture(scope="session")
def _root() -> None:
    if os.geteuid() != 0:
        pytest.fail(
            "tests/netns builds network namespaces and raw sockets: run it as root "
            "(CI does); use `pytest tests/unit` for the unprivileged tier",
            pytrace=False,
        )
    sweep_stale()


@pytest.fixture
def lan(_root: None) -> Iterator[Lan]:
    """Three nodes (node1..node3) and a client on one bridge, removed after the test."""
    with Lan.build(nodes=3, client=True) as built:
        yield built


@pytest.fixture
def speakers(lan: Lan, tmp_path: Path) -> Iterator[SpeakerSet]:
    """keepvip speakers on every node (not started) and a web server per node naming it."""
    with speaker_set(lan, tmp_path) as running:
        running.start_web()
        yield running
