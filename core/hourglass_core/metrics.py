"""What the coordinator's and the worker's Prometheus metrics share: the latency buckets and
the store's request latency. Each process has one registry (prometheus_client's default, with
its process and GC metrics), served by `ops_http`; the metrics of each part live beside it
(hourglass_worker.metrics, hourglass_coordinator.metrics).

Labels stay few and bounded: namespace, executor, operation, method, status code; never a
job or run id. Hot paths take their labelled children once and keep them (`Children`): a
`labels()` look-up costs as much as the observation itself.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import prometheus_client
from prometheus_client import Counter, Histogram

# The *_created series double every counter and histogram for a start time Prometheus
# already has (process_start_time_seconds).
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# Request latencies: from half a millisecond (a Cassandra read) to 10 s (a driver timeout).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

STORE_SECONDS = Histogram(
    "hourglass_store_request_seconds",
    "Latency of the store's calls (Cassandra or SQLite), by Store method; failed calls included.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)

LEASE_LOSSES = Counter(
    "hourglass_lease_losses",
    "Leases lost rather than released: a shard's (on a worker) or the leader's (on a coordinator).",
    ["lease"],
)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Children(Generic[K, V]):
    """Labelled children made once per key by `make`, then found with one dict look-up."""

    def __init__(self, make: Callable[[K], V]) -> None:
        self._make = make
        self._made: dict[K, V] = {}

    def __getitem__(self, key: K) -> V:
        found = self._made.get(key)
        if found is None:
            found = self._made[key] = self._make(key)
        return found
