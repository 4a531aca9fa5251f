"""Conversions between the cluster's protobuf messages (workers, shard map, coordinators) and
`hourglass_core.cluster`, both ways: the coordinator encodes, the SDK decodes."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from hourglass_core.cluster import CoordinatorStatus, ShardMapStatus, ShardStatus, WorkerState, WorkerStatus
from hourglass_core.wire import dur, from_dur, from_ts, ts
from hourglass_pb.v1 import jobs_pb2 as pb

_STATES = {
    WorkerState.ALIVE: pb.WORKER_STATE_ALIVE,
    WorkerState.LEAVING: pb.WORKER_STATE_LEAVING,
    WorkerState.DEAD: pb.WORKER_STATE_DEAD,
    WorkerState.LEFT: pb.WORKER_STATE_LEFT,
}
_STATE_OF = {code: state for state, code in _STATES.items()}
_NEVER = datetime.fromtimestamp(0, UTC)


def _set(target: Timestamp, value: datetime | None) -> None:
    if value is not None:
        target.CopyFrom(ts(value))


def _get(parent: object, name: str) -> datetime | None:
    return from_ts(getattr(parent, name), parent.HasField(name), name)  # type: ignore[attr-defined]


def worker_to_pb(worker: WorkerStatus) -> pb.Worker:
    out = pb.Worker(
        id=worker.id, host=worker.host, state=_STATES[worker.state], executors=sorted(worker.executors),
        capacity=worker.capacity, runs_in_progress=worker.runs_in_progress,
        shards=[pb.OwnedShard(shard=s, token=t) for s, t in sorted(worker.shards.items())],
        ran_last_minute=worker.ran_last_minute, lost_last_minute=worker.lost_last_minute,
        coordinator=worker.coordinator, last_heartbeat=ts(worker.last_heartbeat), since=ts(worker.since),
    )  # fmt: skip
    _set(out.started_at, worker.started_at)
    return out


def worker_from_pb(message: pb.Worker) -> WorkerStatus:
    """A state this SDK does not know reads as dead (not to be relied on)."""
    return WorkerStatus(
        id=message.id, state=_STATE_OF.get(message.state, WorkerState.DEAD),
        since=_get(message, "since") or _NEVER, last_heartbeat=_get(message, "last_heartbeat") or _NEVER,
        host=message.host, started_at=_get(message, "started_at"), executors=frozenset(message.executors),
        capacity=message.capacity, runs_in_progress=message.runs_in_progress,
        shards={s.shard: s.token for s in message.shards}, ran_last_minute=message.ran_last_minute,
        lost_last_minute=message.lost_last_minute, coordinator=message.coordinator,
    )  # fmt: skip


def _shard_to_pb(shard: ShardStatus) -> pb.ShardStatus:
    out = pb.ShardStatus(shard=shard.shard, owner=shard.owner, lease_holder=shard.lease_holder, token=shard.token)
    _set(out.lease_expires_at, shard.lease_expires_at)
    _set(out.checkpoint, shard.checkpoint)
    if shard.checkpoint_lag is not None:
        out.checkpoint_lag.CopyFrom(dur(shard.checkpoint_lag))
    return out


def _shard_from_pb(message: pb.ShardStatus) -> ShardStatus:
    lag = from_dur(message.checkpoint_lag, "checkpoint_lag") if message.HasField("checkpoint_lag") else None
    return ShardStatus(message.shard, message.owner, message.lease_holder, message.token,
                       _get(message, "lease_expires_at"), _get(message, "checkpoint"), lag)  # fmt: skip


def shard_map_to_pb(status: ShardMapStatus) -> pb.ShardMapStatus:
    out = pb.ShardMapStatus(version=status.version, leader=status.leader, leader_token=status.leader_token,
                            shards=[_shard_to_pb(s) for s in status.shards], read_at=ts(status.read_at))  # fmt: skip
    _set(out.leader_since, status.leader_since)
    return out


def shard_map_from_pb(message: pb.ShardMapStatus) -> ShardMapStatus:
    return ShardMapStatus(message.version, message.leader, message.leader_token, _get(message, "leader_since"),
                          [_shard_from_pb(s) for s in message.shards], _get(message, "read_at") or _NEVER)  # fmt: skip


def coordinator_to_pb(status: CoordinatorStatus) -> pb.Coordinator:
    out = pb.Coordinator(id=status.id, address=status.address, leader=status.leader,
                         last_heartbeat=ts(status.last_heartbeat))  # fmt: skip
    _set(out.started_at, status.started_at)
    _set(out.leader_since, status.leader_since)
    return out


def coordinator_from_pb(message: pb.Coordinator) -> CoordinatorStatus:
    return CoordinatorStatus(message.id, message.address, _get(message, "started_at"),
                             _get(message, "last_heartbeat") or _NEVER, message.leader,
                             _get(message, "leader_since"))  # fmt: skip
