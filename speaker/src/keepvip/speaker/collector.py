"""Metric values as plain numbers, made into Prometheus families only when scraped (issue 15).

prometheus_client's ``Counter``/``Gauge`` keep, per label set, a child object with a
lock and a value object with another lock, its label dictionaries and a creation time:
~1 KiB per series. A speaker at 1,000 VirtualIPs has ~12 series per router, and the
children were 7 MiB of its RSS. Here a series is one slotted number in a dictionary
keyed by its label values (~150 bytes), written only by the event loop's thread; the
scrape (the metrics server's thread) copies the dictionary and builds
``prometheus_client.metrics_core`` families from it — a custom collector, so the
registry, ``get_sample_value`` and the exposition work as before.

Names, types, labels and help texts are those of docs/metrics.md. What differs from
prometheus_client's metric classes: counters expose no ``_created`` series (not
documented, and 12,000 more lines per scrape at 1,000 VIPs), and nothing is locked —
an increment is one ``+=`` on the loop's thread, and a scrape reads floats.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

Kind = Literal["counter", "gauge"]


def go_float(value: float) -> str:
    """A number as Prometheus writes it (Go's format: ``1.0``, ``+Inf``, ``1e+06``)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call] # untyped in prometheus_client
    return text


class Value:
    """One series: a number the speaker increments or sets."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (counters only grow: callers pass positive amounts)."""
        self.value += amount

    def set(self, value: float) -> None:
        """Set a gauge."""
        self.value = float(value)


class Family:
    """A counter or gauge with a label set per series; unlabelled ones have one series, 0 at first."""

    __slots__ = ("_series", "documentation", "kind", "labelnames", "name")

    def __init__(self, name: str, kind: Kind, documentation: str, labelnames: Sequence[str] = ()) -> None:
        # A counter's family name is without ``_total`` (OpenMetrics); its sample adds it.
        self.name = name.removesuffix("_total") if kind == "counter" else name
        self.kind = kind
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._series: dict[tuple[str, ...], Value] = {}
        if not self.labelnames:
            self._series[()] = Value()

    @property
    def sample_name(self) -> str:
        """The name of this family's samples in the exposition."""
        return f"{self.name}_total" if self.kind == "counter" else self.name

    def labels(self, *values: object) -> Value:
        """The series of these label values (created at 0 on first use)."""
        key = tuple(str(value) for value in values)
        series = self._series.get(key)
        if series is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name}: labels {self.labelnames}, got {key}")
            series = self._series[key] = Value()
        return series

    def inc(self, amount: float = 1.0) -> None:
        """Increment the series of an unlabelled family."""
        self._series[()].inc(amount)

    def set(self, value: float) -> None:
        """Set the series of an unlabelled gauge."""
        self._series[()].set(value)

    @property
    def value(self) -> float:
        """The value of an unlabelled family."""
        return self._series[()].value

    def remove(self, *values: str) -> None:
        """Forget one series; ``KeyError`` if it does not exist."""
        del self._series[tuple(values)]

    def label_sets(self) -> list[tuple[str, ...]]:
        """The label values of every series."""
        return list(self._series)

    def family(self) -> Metric:
        """The Prometheus family as it is now."""
        series = tuple(self._series.items())  # one C-level copy: safe while the loop adds series
        cls = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        metric = cls(self.name, self.documentation, labels=self.labelnames)
        for labels, value in series:
            metric.add_metric(labels, value.value)
        return metric


class Histogram:
    """An unlabelled histogram: counts per bucket, a sum and a count."""

    __slots__ = ("_bounds", "_counts", "_sum", "documentation", "name")

    def __init__(self, name: str, documentation: str, buckets: Iterable[float]) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = sorted(float(b) for b in buckets)
        if self._bounds[-1] != float("inf"):
            self._bounds.append(float("inf"))
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    @property
    def labelnames(self) -> tuple[str, ...]:
        return ()

    def observe(self, amount: float) -> None:
        """Count one observation in the first bucket whose upper bound is ≥ ``amount``."""
        self._counts[bisect.bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def family(self) -> Metric:
        """The Prometheus family as it is now (cumulative buckets)."""
        counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, count in zip(self._bounds, counts, strict=True):
            cumulative += count
            buckets.append((go_float(bound), float(cumulative)))
        metric = HistogramMetricFamily(self.name, self.documentation)
        metric.add_metric([], buckets, total)
        return metric


class SpeakerCollector:
    """The collector registered with the speaker's registry: every family, built at scrape time."""

    def __init__(self, families: Iterable[Family | Histogram]) -> None:
        self._families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.family()

    def describe(self) -> Iterator[Metric]:
        """Empty families (names only), so the registry checks for duplicates without a scrape."""
        for family in self._families:
            yield Metric(family.name, family.documentation, "histogram" if isinstance(family, Histogram)
                         else family.kind)  # fmt: skip
