"""The server's metrics, in the Prometheus text format (served by ``GET /metrics``).

Each app has a registry of its own (several apps in one process, as in the tests, never mix) and
each process its own numbers: with several processes, scrape each one (Prometheus adds them up).

Labels stay bounded whatever clients send: requests are counted by route *template*, never
the path asked for (``/fn/info/{name}``; the catch-alls as the OpenAPI document names them:
``/db/{collection}``, ``/db/{collection}/{id}``; ``unmatched`` for paths no route serves),
function runs by trigger *kind* (``web``, ``task``, ``db_created``, ``db_updated``,
``db_deleted``, ``chan_out``, and ``message`` for every other message type), task runs by type.

Counted as things happen (cheap: the children of each label set are bound once and kept):

* ``sb_http_requests_total{method,route,status}``, ``sb_http_request_duration_seconds{method,route}``
  (a realtime stream counts once, when it ends, with its whole duration)
* ``sb_function_runs_total{trigger,result}``, ``sb_function_run_duration_seconds{trigger}``
* ``sb_task_runs_total{type,result}``, ``sb_task_run_duration_seconds{type}``
* ``sb_scheduler_delay_seconds``: how late a scheduled run was claimed after its due time

Read when scraped (nothing on the hot path):

* ``sb_realtime_connections{transport}`` (``sse``, ``ws``), ``sb_realtime_channels`` (channels with
  a subscriber here), ``sb_realtime_presence`` (connection-channel memberships here)
* ``sb_function_events_waiting``, ``sb_function_queue_depth`` (jobs waiting for a runner),
  ``sb_function_jobs_held`` (jobs this process claimed: queued or running)
* ``sb_store_write_batch_size`` (SQLite: writes per transaction of the one writer)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from sbserver.backends.storage.sqlite_writer import BATCH_BOUNDS, BatchSizes

if TYPE_CHECKING:  # these services count their runs here
    from sbserver.backends.storage import Store
    from sbserver.services.functions import FunctionService
    from sbserver.services.realtime import Broker

UNMATCHED = "unmatched"
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
TRIGGERS = frozenset(("web", "task", "db_created", "db_updated", "db_deleted", "chan_out"))
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DELAY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


def trigger_kind(event: str) -> str:
    """The label of a run's trigger: its kind, never a name a client chose."""
    return event if event in TRIGGERS else "message"


class Metrics:
    """The instruments of one app; ``watch`` adds the gauges read when scraped."""

    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series (process-wide: the server has no others)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("sb_http_requests", "HTTP requests answered", ("method", "route", "status"), registry=r)
        self.request_seconds = Histogram(
            "sb_http_request_duration_seconds",
            "time from a request's arrival to the end of its answer",
            ("method", "route"),
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.function_runs = Counter("sb_function_runs", "function runs", ("trigger", "result"), registry=r)
        self.function_seconds = Histogram(
            "sb_function_run_duration_seconds", "how long a function ran", ("trigger",), registry=r, buckets=RUN_BUCKETS
        )
        self.task_runs = Counter("sb_task_runs", "scheduled task runs", ("type", "result"), registry=r)
        self.task_seconds = Histogram(
            "sb_task_run_duration_seconds", "how long a task run took", ("type",), registry=r, buckets=RUN_BUCKETS
        )
        self.scheduler_delay = Histogram(
            "sb_scheduler_delay_seconds",
            "how late a scheduled task run was taken after its due time",
            registry=r,
            buckets=DELAY_BUCKETS,
        )
        self._requests: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._runs: dict[tuple[str, bool], tuple[Any, Any]] = {}

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request. ``route``: the template of the route that served it."""
        key = (method, route, status)
        children = self._requests.get(key)
        if children is None:
            label = method if method in METHODS else "OTHER"
            children = (self.requests.labels(label, route, str(status)), self.request_seconds.labels(label, route))
            self._requests[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def function_run(self, event: str, seconds: float, ok: bool) -> None:
        """One function run; ``event``: web, task, or the type of the event that triggered it."""
        key = (event, ok)
        children = self._runs.get(key)
        if children is None:
            kind = trigger_kind(event)
            children = (
                self.function_runs.labels(kind, "ok" if ok else "error"),
                self.function_seconds.labels(kind),
            )
            self._runs[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def task_run(self, kind: str, seconds: float, result: str) -> None:
        self.task_runs.labels(kind, result).inc()
        if result != "skipped":
            self.task_seconds.labels(kind).observe(seconds)

    def watch(self, broker: Broker, functions: FunctionService, store: Store) -> None:
        """Add the gauges read from the running services when scraped."""
        self.registry.register(Live(broker, functions, store))


class Live(Collector):
    """The gauges of the services' current state, read at each scrape."""

    def __init__(self, broker: Broker, functions: FunctionService, store: Store) -> None:
        self.broker = broker
        self.functions = functions
        self.store = store

    def describe(self) -> list[Metric]:
        return []  # names are checked against the others' at each scrape, not at registration

    def collect(self) -> Iterator[Metric]:
        transports = {"sse": 0, "ws": 0}
        members: dict[str, int] = {}
        for conn in list(self.broker.connections.values()):
            transports[conn.transport] = transports.get(conn.transport, 0) + 1
            for topic in conn.topics:
                members[topic] = members.get(topic, 0) + 1
        connections = GaugeMetricFamily(
            "sb_realtime_connections", "open realtime connections in this process", labels=["transport"]
        )
        for transport, count in sorted(transports.items()):
            connections.add_metric([transport], count)
        yield connections
        yield GaugeMetricFamily(
            "sb_realtime_channels", "channels with at least one subscriber in this process", value=len(members)
        )
        yield GaugeMetricFamily(
            "sb_realtime_presence",
            "channel memberships of this process's connections (presence, summed over channels)",
            value=sum(members.values()),
        )
        backlog = self.functions.backlog()
        yield GaugeMetricFamily(
            "sb_function_events_waiting", "events waiting to be turned into function jobs", value=backlog["events"]
        )
        yield GaugeMetricFamily(
            "sb_function_queue_depth", "function jobs waiting for a runner in this process", value=backlog["queued"]
        )
        yield GaugeMetricFamily(
            "sb_function_jobs_held", "function jobs this process claimed (queued or running)", value=backlog["held"]
        )
        sizes = getattr(self.store, "write_batches", None)
        if isinstance(sizes, BatchSizes):
            yield batch_histogram(sizes)


def batch_histogram(sizes: BatchSizes) -> HistogramMetricFamily:
    counts = list(sizes.counts)
    buckets: list[tuple[str, float]] = []
    seen = 0
    for bound, count in zip(BATCH_BOUNDS, counts, strict=False):
        seen += count
        buckets.append((str(float(bound)), seen))
    buckets.append(("+Inf", seen + counts[-1]))
    return HistogramMetricFamily(
        "sb_store_write_batch_size",
        "writes per transaction of the SQLite writer",
        buckets=buckets,
        sum_value=sizes.total,
    )
