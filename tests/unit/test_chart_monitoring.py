"""Alerts and the Grafana dashboard speak the metrics keepvip really exports.

No Prometheus runs here, so the queries are checked against the code that produces
the series: every ``keepvip_*`` name must be a metric the speaker (speaker/metrics.py)
or the operator (operator/metrics.py) registers, every label grouped on must be one
of that metric's labels (or ``node``, added by the chart's PodMonitor), and the state
code compared with must be the one the speaker publishes for MASTER.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import pytest

from keepvip.operator import metrics as operator_metrics
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.vrrp.state import State
from tests.chart_helm import CHART, Helm, Rendered

DASHBOARD = CHART / "dashboards" / "keepvip.json"
ALERTS = {"KeepvipNoMaster", "KeepvipSplitBrain", "KeepvipFlapping", "KeepvipAllocationPoolNearlyExhausted",
          "KeepvipPoolAddressesAbove75Percent", "KeepvipPoolAddressesAbove85Percent",
          "KeepvipPoolAddressesAbove95Percent", "KeepvipPoolExhausted"}  # fmt: skip
RELABELED = {"node"}  # PodMonitor: __meta_kubernetes_pod_node_name -> node


def exported_series(candidates: Iterable[object]) -> dict[str, tuple[str, ...]]:
    """Series name -> label names, for every prometheus_client metric among ``candidates``."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    out: dict[str, tuple[str, ...]] = {}
    for metric in candidates:
        if hasattr(metric, "_labelnames") and hasattr(metric, "_type"):
            for suffix in suffixes[metric._type]:
                out[metric._name + suffix] = tuple(metric._labelnames)
    return out


KNOWN = {
    **SpeakerMetrics().exported_series(),
    **exported_series(vars(operator_metrics).values()),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    helm = Helm.find(tmp_path_factory.mktemp("helm"))
    return helm.template({
        "monitoring": {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        "dashboards": {"enabled": True},
    })  # fmt: skip


def rules(rendered: Rendered) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = rendered.one("PrometheusRule")["spec"]["groups"][0]["rules"]
    return result


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    queries += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    return queries


def all_queries(rendered: Rendered) -> list[str]:
    return [rule["expr"] for rule in rules(rendered)] + dashboard_queries()


def test_the_pool_alerts_fire_in_disjoint_bands_and_at_exhaustion(rendered: Rendered) -> None:
    by_name = {rule["alert"]: rule for rule in rules(rendered)}
    band = re.compile(r"> (0\.\d+)\)(?: <= (0\.\d+))?")
    bands = [band.findall(by_name[f"KeepvipPoolAddressesAbove{p}Percent"]["expr"])[0] for p in (75, 85, 95)]
    assert bands == [("0.75", "0.85"), ("0.85", "0.95"), ("0.95", "")]
    assert by_name["KeepvipPoolAddressesAbove95Percent"]["labels"]["severity"] == "critical"
    assert "keepvip_pool_addresses_available == 0" in by_name["KeepvipPoolExhausted"]["expr"]


def test_the_rules_hold_the_documented_alerts_each_explained(rendered: Rendered) -> None:
    assert {rule["alert"] for rule in rules(rendered)} == ALERTS
    for rule in rules(rendered):
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


def test_every_metric_queried_is_exported_by_keepvip(rendered: Rendered) -> None:
    for query in all_queries(rendered):
        for name in re.findall(r"\bkeepvip_[a-z_]+\b", query):
            assert name in KNOWN, f"{name} in {query!r} is not a keepvip metric"


def test_every_label_grouped_on_exists_on_the_metric(rendered: Rendered) -> None:
    for query in all_queries(rendered):
        names = set(re.findall(r"\bkeepvip_[a-z_]+\b", query))
        available = set().union(*(KNOWN[n] for n in names)) | RELABELED
        groups = re.findall(r"by \(([^)]*)\)", query)
        grouped = {label.strip() for group in groups for label in group.split(",")}
        selected = set(re.findall(r"([a-z_]+)=~?\"", query))
        assert grouped | selected <= available, query


def test_master_is_compared_with_the_code_the_speaker_publishes(rendered: Rendered) -> None:
    for query in all_queries(rendered):
        for code in re.findall(r"keepvip_vrrp_state(?:\{[^}]*\})?\)?\s*==\s*(\d+)", query):
            assert int(code) == State.MASTER.keepalived_code, query


def test_queries_have_balanced_brackets(rendered: Rendered) -> None:
    pairs = {")": "(", "]": "[", "}": "{"}
    for query in all_queries(rendered):
        stack: list[str] = []
        for char in re.sub(r'"[^"]*"', '""', query):
            if char in "([{":
                stack.append(char)
            elif char in pairs:
                assert stack, query
                assert stack.pop() == pairs[char], query
        assert not stack, query


def test_pod_monitor_adds_the_node_label_the_queries_group_on(rendered: Rendered) -> None:
    endpoint = rendered.one("PodMonitor")["spec"]["podMetricsEndpoints"][0]
    targets = {r["targetLabel"] for r in endpoint["relabelings"]}
    assert targets >= RELABELED


def test_dashboard_names_the_states_with_the_speakers_codes() -> None:
    board = json.loads(DASHBOARD.read_text())
    timelines = [p for p in board["panels"] if p["type"] == "state-timeline"]
    assert timelines
    for panel in timelines:
        options = panel["fieldConfig"]["defaults"]["mappings"][0]["options"]
        shown = {int(code): option["text"] for code, option in options.items()}
        expected = {state.keepalived_code: state.value for state in State}
        assert {code: name[:4] for code, name in shown.items()} == {
            code: name[:4] for code, name in expected.items()
        }


def test_dashboard_shows_per_virtualip_master_transitions_and_drops() -> None:
    board = json.loads(DASHBOARD.read_text())
    variable = next(v for v in board["templating"]["list"] if v["name"] == "virtualip")
    assert variable["definition"] == "label_values(keepvip_vrrp_state, virtualip)"
    repeated = [p for p in board["panels"] if p.get("repeat") == "virtualip"]
    assert len(repeated) == 1
    per_vip = " ".join(t["expr"] for p in board["panels"] for t in p.get("targets", [])
                       if 'virtualip="$virtualip"' in t["expr"])  # fmt: skip
    for metric in ("keepvip_vrrp_state", "keepvip_become_master_total", "keepvip_advert_dropped_total"):
        assert metric in per_vip
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    assert board["uid"] == "keepvip-overview"


def test_dashboard_configmap_carries_the_dashboard_file(rendered: Rendered) -> None:
    config_map = rendered.one("ConfigMap", "-dashboard")
    assert json.loads(config_map["data"]["keepvip.json"]) == json.loads(DASHBOARD.read_text())
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
