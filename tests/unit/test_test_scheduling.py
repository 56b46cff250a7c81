"""``make test``'s two workers: the cluster tier stays whole, every other test is its own unit."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import CLUSTER_TIER, work_unit

ROOT = Path(__file__).parents[2]


def test_every_cluster_test_is_in_one_unit_so_one_worker_starts_the_one_cluster() -> None:
    cluster_ids = [f"{p.relative_to(ROOT).as_posix()}::test_x"
                   for p in (ROOT / CLUSTER_TIER).glob("test_*.py")]
    assert len(cluster_ids) > 10
    assert {work_unit(nodeid) for nodeid in cluster_ids} == {CLUSTER_TIER}


def test_netns_and_unit_tests_are_units_of_their_own_dealt_to_any_free_worker() -> None:
    others = ["tests/netns/test_convert_wire.py::test_a[one]",
              "tests/netns/test_convert_wire.py::test_a[two]",
              "tests/unit/test_chart_render.py::test_b",
              "tests/clusterlike/test_c.py::test_c"]
    assert [work_unit(nodeid) for nodeid in others] == others


def _make_test_recipe() -> str:
    return (ROOT / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]


def test_make_test_asks_for_the_scheduling_this_module_implements() -> None:
    assert "-n 2 --dist loadscope" in _make_test_recipe()


def test_quiet_tests_leave_the_parallel_run_and_run_alone_after_it() -> None:
    parallel, alone = [line for line in _make_test_recipe().splitlines() if "bin/pytest" in line]
    assert '-n 2 --dist loadscope -m "not quiet"' in parallel
    assert "-m quiet" in alone
    assert "-n " not in alone
    assert parallel.rstrip().endswith("|| status=$$?; \\")  # a failure there still runs the second
