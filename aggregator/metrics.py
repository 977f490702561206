"""`/metrics` in the Prometheus text format (prometheus-client).

Per-input state (last success, consecutive failures, next due) is read from the store at each
scrape, so it is right after a restart and the same on every daemon; counts of work done and
requests served are this process's since it started.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:
    from aggregator.daemon import Daemon


class _Snapshot(Collector):
    def __init__(
        self,
        daemon: Daemon,
        rows: list[dict[str, Any]],
        entries: int | None,
        requests: dict[int, int],
    ):
        self.daemon = daemon
        self.rows = rows
        self.entries = entries
        self.requests = requests

    def collect(self) -> Iterator[Metric]:
        configured = self.daemon.inputs
        rows = [r for r in self.rows if r["name"] in configured]
        up = GaugeMetricFamily(
            "aggregator_store_up", "1 when the store answered this scrape, else 0"
        )
        up.add_metric([], 0 if self.entries is None else 1)
        yield up
        if self.entries is not None:
            entries = GaugeMetricFamily("aggregator_entries", "Entries in the store")
            entries.add_metric([], self.entries)
            yield entries
        success = GaugeMetricFamily(
            "aggregator_input_last_success_timestamp_seconds",
            "When the input last ran without error (Unix time)",
            labels=["input", "kind"],
        )
        failures = GaugeMetricFamily(
            "aggregator_input_consecutive_failures",
            "Failed runs of the input since its last success",
            labels=["input", "kind"],
        )
        due = GaugeMetricFamily(
            "aggregator_input_next_due_timestamp_seconds",
            "When the input is next due (Unix time)",
            labels=["input", "kind"],
        )
        for r in rows:
            labels = [r["name"], r["kind"]]
            if r.get("last_success_at"):
                success.add_metric(labels, r["last_success_at"].timestamp())
            failures.add_metric(labels, r.get("error_count") or 0)
            if r.get("next_due_at"):
                due.add_metric(labels, r["next_due_at"].timestamp())
        yield success
        yield failures
        yield due

        stats = self.daemon.stats
        added = CounterMetricFamily(
            "aggregator_entries_added",
            "Articles new to the input, by input, since the daemon started",
            labels=["input"],
        )
        updated = CounterMetricFamily(
            "aggregator_entries_updated",
            "Articles changed at the input, by input, since the daemon started",
            labels=["input"],
        )
        for name in sorted(stats.added):
            added.add_metric([name], stats.added[name])
            updated.add_metric([name], stats.updated.get(name, 0))
        yield added
        yield updated
        refreshes = CounterMetricFamily(
            "aggregator_refreshes", "Refreshes by input and outcome", labels=["input", "outcome"]
        )
        for (name, result), n in sorted(stats.refreshes.items()):
            refreshes.add_metric([name, result], n)
        yield refreshes
        seconds = SummaryMetricFamily(
            "aggregator_refresh_duration_seconds",
            "Time refreshes of the input took (fetch, parse, store)",
            labels=["input"],
        )
        for name, (count, total) in sorted(stats.durations.items()):
            seconds.add_metric([name], count_value=int(count), sum_value=total)
        yield seconds
        publishes = CounterMetricFamily("aggregator_publishes", "Publish runs")
        publishes.add_metric([], stats.publishes)
        yield publishes

        requests = CounterMetricFamily(
            "aggregator_http_requests", "Feed requests served, by status", labels=["status"]
        )
        for status, n in sorted(self.requests.items()):
            requests.add_metric([str(status)], n)
        yield requests
        not_modified = CounterMetricFamily(
            "aggregator_http_not_modified", "Requests answered 304 Not Modified"
        )
        not_modified.add_metric([], self.requests.get(304, 0))
        yield not_modified


def render(
    daemon: Daemon, rows: list[dict[str, Any]], entries: int | None, requests: dict[int, int]
) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(daemon, rows, entries, dict(requests)))
    return generate_latest(registry), CONTENT_TYPE_LATEST
