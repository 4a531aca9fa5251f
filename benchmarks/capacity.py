"""The capacity model of docs/capacity.md: what a rate of fires and a number of stored jobs ask
of Cassandra, Redis and the Hourglass processes, from costs measured on this box.

`python -m benchmarks.capacity` prints the tables of docs/capacity.md. Every input is a
measured figure named by where it was measured (benchmarks/RESULTS.md); the arithmetic is
pure, so tests/unit/test_capacity.py checks it and `make bench` figures can be set against it.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Costs:
    """CPU milliseconds per fire (its submit included) and Cassandra work per fire, measured
    at 1000 fires/s, one Cassandra node (RF 1), 2 coordinators and 2 workers (RESULTS.md,
    2026-12-05 evening and 2026-12-06 morning: 0.43-0.48 / 0.61-0.68 / 0.57-0.64 ms)."""

    coordinator_ms: float = 0.46
    worker_ms: float = 0.65
    cassandra_ms: float = 0.60
    # Counted by Cassandra's virtual tables over 60,000 fires (RESULTS.md, 2026-12-06 morning).
    cql_requests: float = 0.98
    partition_reads: float = 2.07
    mutations: float = 1.08
    # Bytes a fire leaves stored: fire row + claim row + run rows (by job) + job row of a
    # once-job, ~0.8 KiB with Cassandra's per-cell overhead (echo params, small results).
    stored_bytes: int = 800


@dataclass(frozen=True, slots=True)
class Cluster:
    shards: int = 64
    workers: int = 2
    coordinators: int = 2
    replication: int = 1
    shard_lease_ttl_s: float = 3.0  # renewed every ttl/4
    heartbeat_s: float = 0.5
    shard_map_poll_s: float = 0.1  # each coordinator reads the shard map from Redis
    poll_interval_s: float = 1.0  # each worker reads each of its shards' due fires
    bucket_s: int = 60  # a schedule partition: one shard, one minute
    run_retention_days: int = 7


@dataclass(frozen=True, slots=True)
class Load:
    fires_per_s: float
    stored_jobs: int = 1_000_000


def cassandra_cores(load: Load, cluster: Cluster, costs: Costs) -> float:
    """Cores Cassandra spends in all (over every node). Measured at RF 1; at RF n a mutation
    is applied on n replicas and a QUORUM read reads n//2+1 of them, so the per-fire cost is
    split by the measured mix of mutations and partition reads and each part multiplied
    (coordinating a request is counted in the multiplied part too: an overestimate). Lightweight
    transactions (claims, ~0.11 a fire) cost more on a ring (Paxos rounds to a quorum): to be
    measured there (docs/capacity.md)."""
    writes = costs.mutations / (costs.mutations + costs.partition_reads)
    quorum = cluster.replication // 2 + 1
    per_fire_ms = costs.cassandra_ms * (writes * cluster.replication + (1 - writes) * quorum)
    return load.fires_per_s * per_fire_ms / 1000


def cassandra_requests_per_s(load: Load, cluster: Cluster, costs: Costs) -> float:
    """CQL requests the clients send (grouped as today), plus the shard polls."""
    return load.fires_per_s * costs.cql_requests + cluster.shards / cluster.poll_interval_s


def redis_ops_per_s(cluster: Cluster) -> float:
    """Redis commands a second: lease renewals, heartbeats, shard-map reads, presence. None is
    per fire (hints only for submits due within 3 s whose shard owner is on another replica)."""
    leases = cluster.shards / (cluster.shard_lease_ttl_s / 4) + cluster.coordinators / (3.0 / 4)
    heartbeats = cluster.workers / cluster.heartbeat_s
    maps = cluster.coordinators / cluster.shard_map_poll_s
    presence = cluster.coordinators * 1.0
    return leases + heartbeats + maps + presence


def server_cores(load: Load, costs: Costs) -> tuple[float, float]:
    """(coordinator cores, worker cores) in all."""
    return load.fires_per_s * costs.coordinator_ms / 1000, load.fires_per_s * costs.worker_ms / 1000


def schedule_partition_rows(load: Load, cluster: Cluster) -> float:
    """Rows of one fires partition (one shard, one bucket) at a steady rate."""
    return load.fires_per_s * cluster.bucket_s / cluster.shards


def runs_partition_rows(fire_every_s: float, cluster: Cluster) -> int:
    """Rows a recurring job's runs_by_job partition holds at steady state (runs expire after
    the retention)."""
    return math.ceil(cluster.run_retention_days * 86_400 / fire_every_s)


def stored_gib(load: Load, cluster: Cluster, costs: Costs) -> float:
    """Data kept (every replica) by the retention: each fire's rows for `run_retention_days`."""
    per_day = load.fires_per_s * 86_400 * costs.stored_bytes
    return per_day * cluster.run_retention_days * cluster.replication / 2**30


def shards_for(workers: int, per_worker: int = 4) -> int:
    """Shards for `workers`: a few per worker so a departure spreads its load over many (a
    shard is the unit that moves), rounded up to a power of two; never below 64."""
    return max(64, 1 << math.ceil(math.log2(workers * per_worker)))


def plan(fires_per_day: float, peak: float, nodes: int, costs: Costs = Costs(), headroom: float = 0.5) -> dict[str, float]:
    """What a day of `fires_per_day`, with peaks `peak` times the average, needs on a ring of
    `nodes` Cassandra nodes at RF 3: cores per role at the peak, keeping `headroom` free."""
    rate = fires_per_day / 86_400 * peak
    workers = max(2, math.ceil(rate * costs.worker_ms / 1000 / (1 - headroom)))
    cluster = Cluster(shards=shards_for(workers), workers=workers, coordinators=3, replication=min(3, nodes))
    load = Load(rate)
    coordinator, worker = server_cores(load, costs)
    cassandra = cassandra_cores(load, cluster, costs)
    return {
        "peak_fires_per_s": rate,
        "shards": cluster.shards,
        "cassandra_cores": cassandra,
        "cassandra_cores_per_node": cassandra / nodes / (1 - headroom),
        "coordinator_cores": coordinator / (1 - headroom),
        "worker_cores": worker / (1 - headroom),
        "workers_at_1_core": workers,
        "redis_ops_per_s": redis_ops_per_s(cluster),
        "cql_requests_per_s": cassandra_requests_per_s(load, cluster, costs),
        "schedule_partition_rows": schedule_partition_rows(load, cluster),
        "stored_gib": stored_gib(Load(fires_per_day / 86_400), cluster, costs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fires-per-day", type=float, default=10_000_000)
    ap.add_argument("--peak", type=float, default=10.0)
    ap.add_argument("--nodes", type=int, default=3)
    args = ap.parse_args()
    for peak in (1.0, args.peak):
        print(f"{args.fires_per_day:,.0f} fires a day, peak x{peak:g}, {args.nodes} Cassandra nodes (RF 3):")
        for name, value in plan(args.fires_per_day, peak, args.nodes).items():
            print(f"  {name:26} {value:,.2f}")


if __name__ == "__main__":
    main()
