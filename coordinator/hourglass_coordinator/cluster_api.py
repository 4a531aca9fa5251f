"""What a replica answers about the cluster itself (ListWorkers, GetWorker, GetShardMap,
ListCoordinators): read from membership, the leases and the shard checkpoints as they are,
never written. Any replica answers; each answer is one look at the backends."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hourglass_coordinator.leader import LEADER_KEY
from hourglass_core.cluster import CoordinatorStatus, ShardMapStatus, ShardStatus, WorkerStatus
from hourglass_core.errors import InvalidArgument, WorkerNotFound
from hourglass_core.leases.base import Lease, Leases, Membership, WorkerRecord, shard_key
from hourglass_core.store.base import Checkpoint, Store


def _worker(record: WorkerRecord, shards: dict[int, int]) -> WorkerStatus:
    info = record.info
    return WorkerStatus(
        id=info.worker_id, state=record.state, since=record.since, last_heartbeat=record.last_heartbeat,
        host=info.host, started_at=info.started_at, executors=info.executors, capacity=info.capacity,
        runs_in_progress=info.runs_in_progress, shards=shards, ran_last_minute=info.ran_last_minute,
        lost_last_minute=record.lost_last_minute, coordinator=info.coordinator,
    )  # fmt: skip


def _shard(shard: int, owner: str, lease: Lease | None, checkpoint: Checkpoint | None, now: datetime) -> ShardStatus:
    return ShardStatus(
        shard, owner,
        lease_holder=lease.owner if lease else "", token=lease.token if lease else 0,
        lease_expires_at=now + lease.ttl if lease else None,
        checkpoint=checkpoint.at if checkpoint else None,
        checkpoint_lag=max(now - checkpoint.at, timedelta(0)) if checkpoint else None,
    )  # fmt: skip


class ClusterApi:
    def __init__(self, store: Store, leases: Leases, membership: Membership, *, num_shards: int) -> None:
        self._store = store
        self._leases = leases
        self._membership = membership
        self._num_shards = num_shards

    async def _shard_leases(self, *also: str) -> dict[str, Lease]:
        return await self._leases.inspect([*(shard_key(s) for s in range(self._num_shards)), *also])

    async def workers(self) -> list[WorkerStatus]:
        """Live workers, and those dead or left within the retention, each with the shard
        leases it holds now."""
        records, leases = await asyncio.gather(self._membership.workers(), self._shard_leases())
        shards: dict[str, dict[int, int]] = defaultdict(dict)
        for shard in range(self._num_shards):
            if (lease := leases.get(shard_key(shard))) is not None:
                shards[lease.owner][shard] = lease.token
        return [_worker(r, shards.get(r.info.worker_id, {})) for r in records]

    async def worker(self, worker_id: str) -> WorkerStatus:
        """Raises InvalidArgument for an empty id, WorkerNotFound for one not listed."""
        if not worker_id:
            raise InvalidArgument("id", "must not be empty")
        for worker in await self.workers():
            if worker.id == worker_id:
                return worker
        raise WorkerNotFound(worker_id)

    async def shard_map(self) -> ShardMapStatus:
        shard_map, leases, replicas, checkpoints = await asyncio.gather(
            self._membership.shard_map(), self._shard_leases(LEADER_KEY), self._membership.replicas(),
            asyncio.gather(*(self._store.load_checkpoint(s) for s in range(self._num_shards))),
        )  # fmt: skip
        now = datetime.now(UTC)
        leader = leases.get(LEADER_KEY)
        since = next((r.info.leader_since for r in replicas if leader and r.info.replica_id == leader.owner), None)
        shards = [_shard(s, shard_map.owners.get(s, ""), leases.get(shard_key(s)), checkpoints[s], now)
                  for s in range(self._num_shards)]  # fmt: skip
        return ShardMapStatus(shard_map.version, leader.owner if leader else "", leader.token if leader else 0,
                              since, shards, now)  # fmt: skip

    async def coordinators(self) -> list[CoordinatorStatus]:
        """The replicas that announced themselves lately; the leader is the lease's holder."""
        replicas, leases = await asyncio.gather(self._membership.replicas(), self._leases.inspect([LEADER_KEY]))
        leader = leases[LEADER_KEY].owner if LEADER_KEY in leases else None
        return [
            CoordinatorStatus(r.info.replica_id, r.info.address, r.info.started_at, r.last_heartbeat,
                              r.info.replica_id == leader, r.info.leader_since if r.info.replica_id == leader else None)
            for r in replicas
        ]  # fmt: skip
