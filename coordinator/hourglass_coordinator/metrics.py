"""The coordinator's Prometheus metrics (see hourglass_core.metrics for what they share), and
the interceptor that times every call."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from prometheus_client import Counter, Gauge, Histogram

from hourglass_coordinator.calls import HandlerInterceptor, around
from hourglass_core.metrics import LATENCY_BUCKETS, LEASE_LOSSES, Children
from hourglass_core.models import Run

RPC_SECONDS = Histogram(
    "hourglass_rpc_seconds",
    "Latency of the calls this coordinator served, by method and status code (a stream: its whole life).",
    ["method", "code"],
    buckets=LATENCY_BUCKETS,
)
HEARTBEATS = Counter("hourglass_worker_heartbeats", "Worker heartbeats received on this coordinator's streams.")
LEADER = Gauge("hourglass_leader", "1 while this coordinator holds the leader lease, else 0.")
LEADER_LEASES_LOST = LEASE_LOSSES.labels("leader")
RUNS_RECORDED = Counter(
    "hourglass_runs_recorded",
    "Run events from workers written to the store, by status (a running one: a run going for a "
    "second; an event a worker sends again after a reconnect counts again).",
    ["namespace", "status"],
)


def runs_recorded() -> Children[tuple[str, str], Counter]:
    return Children(lambda key: RUNS_RECORDED.labels(*key))


def count_recorded(counters: Children[tuple[str, str], Counter], runs: list[Run]) -> None:
    for run in runs:
        counters[(run.namespace, run.status.value)].inc()


class RpcMetrics(HandlerInterceptor):
    """Times each call of a method served here, from its handler's first step to its end.
    Unknown methods are not timed: their names are the caller's to choose."""

    def __init__(self) -> None:
        self._observe: Children[tuple[str, grpc.StatusCode], Callable[[float], None]] = Children(
            lambda key: RPC_SECONDS.labels(key[0], key[1].name).observe
        )

    def wrap(self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method.lstrip("/")
        observe = self._observe

        def end(started: float, code: grpc.StatusCode) -> None:
            observe[(method, code)](time.perf_counter() - started)

        return around(handler, time.perf_counter, end)
