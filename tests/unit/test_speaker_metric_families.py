"""The speaker's metrics, rendered at scrape time, are exactly those docs/metrics.md lists.

The values are plain numbers made into families only when scraped
(keepvip.speaker.collector, issue 15); these tests pin what a scraper sees: every
documented name with its type and labels, nothing undocumented, a text exposition
that Prometheus' own parser reads back, and a forgotten VirtualIP's series gone.
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.metrics_server import render_text

DOCS = Path(__file__).parents[2] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(?P<name>keepvip_[a-z_]+)` \| (?P<type>\w+) \| (?P<labels>[^|]*) \|")


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Name → (type, label names) of the speaker's table (the first one in the file)."""
    table = DOCS.read_text().split("\n\n| metric |")[1]
    rows = {}
    for line in table.splitlines():
        if match := ROW.match(line):
            labels = tuple(re.findall(r"`([a-z_]+)`", match["labels"]))
            rows[match["name"]] = (match["type"], labels)
    return rows


def scraped(metrics: SpeakerMetrics) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Name → (type, label names) as a scraper parses the exposition."""
    out = {}
    for family in text_string_to_metric_families(render_text(metrics.registry).decode()):
        name = f"{family.name}_total" if family.type == "counter" else family.name
        labels = {key for sample in family.samples for key in sample.labels if key != "le"}
        out[name] = (family.type, tuple(sorted(labels)))
    return out


def populated() -> SpeakerMetrics:
    """Every labelled family with one series, as a running speaker has them."""
    metrics = SpeakerMetrics()
    for family in vars(metrics).values():
        if hasattr(family, "labels") and family.labelnames:
            family.labels(*("vip-a" if name == "virtualip" else "x" for name in family.labelnames)).inc()
    metrics.timer_lateness.observe(0.003)
    return metrics


def test_every_documented_metric_is_exposed_with_its_type_and_labels_and_nothing_else() -> None:
    docs = documented()
    assert len(docs) > 20
    found = scraped(populated())
    assert found == {name: (kind, tuple(sorted(labels))) for name, (kind, labels) in docs.items()}
    # and the model the chart tests use (series names with their labels, in order)
    series = SpeakerMetrics().exported_series()
    assert {name for name in series if not name.startswith("keepvip_timer_lateness")} == set(docs) - {
        "keepvip_timer_lateness_seconds"
    }
    assert all(series[name] == labels for name, (_, labels) in docs.items() if name in series)


def test_values_are_read_at_scrape_time_and_counters_expose_no_created_series() -> None:
    metrics = SpeakerMetrics()
    sent = metrics.advert_sent.labels("vip-a")  # what a router keeps and increments
    for _ in range(3):
        sent.inc()
    metrics.vrrp_state.labels("vip-a", "eth0", 7).set(2)
    metrics.routers.set(1)
    for lateness in (0.0001, 0.003, 2.0):
        metrics.timer_lateness.observe(lateness)
    sample = metrics.registry.get_sample_value
    assert sample("keepvip_advert_sent_total", {"virtualip": "vip-a"}) == 3
    assert sample("keepvip_vrrp_state", {"virtualip": "vip-a", "interface": "eth0", "vrid": "7"}) == 2
    assert sample("keepvip_routers") == 1
    assert sample("keepvip_config_ready") == 1
    assert sample("keepvip_timer_lateness_seconds_bucket", {"le": "0.0005"}) == 1
    assert sample("keepvip_timer_lateness_seconds_bucket", {"le": "0.005"}) == 2
    assert sample("keepvip_timer_lateness_seconds_bucket", {"le": "+Inf"}) == 3
    assert sample("keepvip_timer_lateness_seconds_count") == 3
    assert sample("keepvip_timer_lateness_seconds_sum") == 2.0031
    assert "_created" not in render_text(metrics.registry).decode()


def test_forget_removes_every_series_of_that_virtualip_only() -> None:
    metrics = populated()
    metrics.transitions.labels("vip-b", "MASTER", "startup").inc()
    metrics.forget("vip-a")
    text = render_text(metrics.registry).decode()
    assert 'virtualip="vip-a"' not in text
    assert 'keepvip_vrrp_transitions_total{reason="startup",state="MASTER",virtualip="vip-b"} 1.0' in text
    assert 'keepvip_virtualip_failures_total{reason="x"} 1.0' in text  # not a per-VirtualIP family
