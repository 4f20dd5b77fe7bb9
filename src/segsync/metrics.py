"""Prometheus metrics: one registry for the process, and small helpers every module may call.

Names follow the Prometheus conventions (``segsync_`` prefix, base units, ``_total`` on counters,
timestamps rather than ages). Label values are bounded: source names come from the rules file,
never from a request, so a forged webhook cannot blow up cardinality.

Helpers are cheap and safe to call from any module, in the daemon or a one-shot command; only the
daemon serves them (``/metrics``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from segsync import __version__

disable_created_metrics()  # `_created` series double the output and no alert uses them
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

#: Steps whose runs and last success are tracked.
STEPS = ("pull", "reconcile", "compute", "plan", "push", "keep_alive")

BUILD = Info("segsync_build", "Version of the running segsync.", registry=REGISTRY)
BUILD.info({"version": __version__})

CRM_REQUESTS = Counter(
    "segsync_crm_requests", "CRM API calls by method and HTTP status (or error code).",
    ["source", "method", "status"], registry=REGISTRY,
)  # fmt: skip
THROTTLES = Counter(
    "segsync_crm_throttles", "Times a CRM told segsync to slow down (429, QUERY_LIMIT_EXCEEDED, ...).",
    ["source", "reason"], registry=REGISTRY,
)  # fmt: skip
RECORDS_PULLED = Counter(
    "segsync_records_pulled", "Records written to the store by pulls.", ["source", "entity"], registry=REGISTRY
)
RECORDS_QUARANTINED = Counter(
    "segsync_records_quarantined", "Records that could not be mapped and were quarantined.",
    ["source", "entity"], registry=REGISTRY,
)  # fmt: skip
RECORDS_DELETED = Counter(
    "segsync_records_deleted", "Records marked deleted, by how segsync learnt it (events, webhook, sweep).",
    ["source", "entity", "via"], registry=REGISTRY,
)  # fmt: skip
SEGMENT_CUSTOMERS = Gauge(
    "segsync_segment_customers", "Customers per segment value after the last compute.",
    ["source", "segment", "value"], registry=REGISTRY,
)  # fmt: skip
WRITEBACK_OPS = Counter(
    "segsync_writeback_operations", "Write-back operations by kind and outcome (planned, applied, failed, parked).",
    ["source", "op", "status"], registry=REGISTRY,
)  # fmt: skip
TASKS_CREATED = Counter("segsync_tasks_created", "CRM tasks created by segsync.", ["source"], registry=REGISTRY)
RUNS = Counter("segsync_runs", "Step runs by outcome.", ["source", "step", "status"], registry=REGISTRY)
RUN_DURATION = Histogram(
    "segsync_run_duration_seconds", "Wall time of step runs.", ["source", "step"], registry=REGISTRY,
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)  # fmt: skip
LAST_SUCCESS = Gauge(
    "segsync_last_success_timestamp_seconds", "Unix time of the last successful run of a step.",
    ["source", "step"], registry=REGISTRY,
)  # fmt: skip
SOURCE_STOPPED = Gauge(
    "segsync_source_stopped", "1 when a source is stopped by a fatal CRM error until the config is reloaded.",
    ["source"], registry=REGISTRY,
)  # fmt: skip
SOURCE_FAILING = Gauge(
    "segsync_source_failing", "1 while the latest run of a source failed (transient or not).", ["source"],
    registry=REGISTRY,
)  # fmt: skip
LEASE_HELD = Gauge(
    "segsync_lease_held", "1 when this replica holds the lease of a source (works it).", ["source"], registry=REGISTRY
)
WEBHOOKS = Counter(
    "segsync_webhooks", "Incoming CRM webhooks by outcome (accepted, rejected, invalid, unknown_source).",
    ["source", "result"], registry=REGISTRY,
)  # fmt: skip
WEBHOOK_HINTS = Counter(
    "segsync_webhook_hints", "Change hints parsed from webhooks.", ["source", "kind"], registry=REGISTRY
)
TOKEN_EXPIRY = Gauge(
    "segsync_token_expiry_timestamp_seconds", "Unix time when a source's credentials expire (from keep_alive).",
    ["source"], registry=REGISTRY,
)  # fmt: skip
CONFIG_RELOADS = Counter("segsync_config_reloads", "Rules-file reloads by outcome.", ["result"], registry=REGISTRY)
CONFIG_LAST_RELOAD = Gauge(
    "segsync_config_last_reload_success_timestamp_seconds", "Unix time of the last good rules load.", registry=REGISTRY
)

#: (source, segment) → values set by the last compute, so that emptied values drop to 0.
_segment_values: dict[tuple[str, str], set[str]] = {}


def prime_source(source: str) -> None:
    """Pre-export zeros for a source's main series ("avoid missing metrics": alerts need a value)."""
    for step in STEPS:
        RUNS.labels(source, step, "ok")
        RUNS.labels(source, step, "failed")
        RUN_DURATION.labels(source, step)
    SOURCE_STOPPED.labels(source).set(0)
    SOURCE_FAILING.labels(source).set(0)
    LEASE_HELD.labels(source).set(0)
    WEBHOOKS.labels(source, "accepted")
    WEBHOOKS.labels(source, "rejected")


def forget_source(source: str) -> None:
    """Drop the gauges of a source removed from the rules (counters stay until restart, as Prometheus expects)."""
    for gauge in (SOURCE_STOPPED, SOURCE_FAILING, LEASE_HELD, TOKEN_EXPIRY):
        with contextlib.suppress(KeyError):
            gauge.remove(source)


def request_hook(source: str) -> Callable[[str, int | str], None]:
    """A ``ConnectorContext.on_request`` that counts calls of ``source``."""

    def on_request(method: str, status: int | str) -> None:
        CRM_REQUESTS.labels(source, method, str(status)).inc()

    return on_request


def throttle_hook(source: str) -> Callable[[str], None]:
    """A ``ConnectorContext.on_throttle`` that counts slow-down answers of ``source``."""

    def on_throttle(reason: str) -> None:
        THROTTLES.labels(source, reason).inc()

    return on_throttle


def record_run(source: str, step: str, status: str, seconds: float, *, finished_at: float | None = None) -> None:
    RUNS.labels(source, step, status).inc()
    RUN_DURATION.labels(source, step).observe(seconds)
    if status == "ok":
        LAST_SUCCESS.labels(source, step).set(finished_at if finished_at is not None else time.time())


def record_pull_counts(source: str, counts: Mapping[str, Mapping[str, int]]) -> None:
    """Feed a pull's per-entity counts (``PullResult.counts``) into the counters."""
    for entity, c in counts.items():
        if c.get("upserted"):
            RECORDS_PULLED.labels(source, entity).inc(c["upserted"])
        if c.get("quarantined"):
            RECORDS_QUARANTINED.labels(source, entity).inc(c["quarantined"])
        if c.get("deleted"):
            RECORDS_DELETED.labels(source, entity, "events" if entity == "events" else "pull").inc(c["deleted"])


def record_deleted(source: str, entity: str, via: str, n: int) -> None:
    if n:
        RECORDS_DELETED.labels(source, entity, via).inc(n)


def record_segment_sizes(source: str, sizes: Mapping[str, Mapping[str, int]]) -> None:
    """Set segment sizes: ``{segment: {value: customers}}``; values gone since the last compute drop to 0."""
    for segment, values in sizes.items():
        current = {str(v): n for v, n in values.items()}
        for gone in _segment_values.get((source, segment), set()) - current.keys():
            SEGMENT_CUSTOMERS.labels(source, segment, gone).set(0)
        for value, n in current.items():
            SEGMENT_CUSTOMERS.labels(source, segment, value).set(n)
        _segment_values[(source, segment)] = set(current)


def record_token_expiry(source: str, expires_at: object) -> None:
    """``expires_at``: an ISO-8601 time or Unix seconds, as a connector's ``keep_alive()`` reports it."""
    if isinstance(expires_at, int | float):
        TOKEN_EXPIRY.labels(source).set(float(expires_at))
    elif isinstance(expires_at, str):
        with contextlib.suppress(ValueError):
            TOKEN_EXPIRY.labels(source).set(datetime.fromisoformat(expires_at).timestamp())


def record_ops(source: str, op: str, status: str, n: int = 1) -> None:
    """Count write-back operations: ``status`` is planned, applied, failed or parked."""
    if n:
        WRITEBACK_OPS.labels(source, op, status).inc(n)
        if op == "task" and status == "applied":
            TASKS_CREATED.labels(source).inc(n)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type, for ``/metrics``."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
