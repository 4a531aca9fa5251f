"""What the API shows of the cluster itself: its workers, the shard map and the coordinator
replicas. Plain data, as in `models` (UTC datetimes, timedeltas, no protobuf).

Everything here is read from what the leader and the coordination backend already hold
(membership records, leases, the published map) and from the shard checkpoints: showing it
costs no write on any path that fires jobs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# Runs and losses are counted over this window ("in the last minute").
COUNT_WINDOW = timedelta(minutes=1)


class WorkerState(enum.Enum):
    ALIVE = "alive"
    LEAVING = "leaving"  # shutting down: finishes what it claimed, owns no shard any more
    DEAD = "dead"  # its heartbeats stopped for the worker timeout (killed, frozen, cut off)
    LEFT = "left"  # shut down cleanly: said it was leaving, then hung up


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    id: str
    state: WorkerState
    since: datetime  # in this state since (alive: since its heartbeats began)
    last_heartbeat: datetime
    host: str = ""
    started_at: datetime | None = None  # when the worker process started
    executors: frozenset[str] = frozenset()
    capacity: int = 0
    runs_in_progress: int = 0  # as of its last heartbeat
    # Shard -> fencing token, for the shard leases it holds now.
    shards: dict[int, int] = field(default_factory=dict)
    # Runs it finished in the last minute, counted by the replica holding its stream (from a
    # reconnection on, by the new one), and its runs recorded LOST in the last minute.
    ran_last_minute: int = 0
    lost_last_minute: int = 0
    coordinator: str = ""  # the replica holding its stream


@dataclass(frozen=True, slots=True)
class ShardStatus:
    shard: int
    owner: str = ""  # assigned by the shard map ("" : nobody)
    lease_holder: str = ""  # who holds its lease now (another worker during a hand-over)
    token: int = 0  # the lease's fencing token
    lease_expires_at: datetime | None = None
    checkpoint: datetime | None = None  # every fire due up to here is handled
    checkpoint_lag: timedelta | None = None  # how far the checkpoint trails the time of the read


@dataclass(frozen=True, slots=True)
class ShardMapStatus:
    version: int
    leader: str  # "" while no replica holds the leader lease
    leader_token: int
    leader_since: datetime | None
    shards: list[ShardStatus]
    read_at: datetime


@dataclass(frozen=True, slots=True)
class CoordinatorStatus:
    id: str
    address: str
    started_at: datetime | None
    last_heartbeat: datetime
    leader: bool
    leader_since: datetime | None = None
