"""The `Leases` and `Membership` protocols: who owns what, right now.

Two implementations: Redis (production, many processes) and in-process (embedded, one process).
Both pass the same contract suite (tests/contract/test_leases_contract.py).

A lease alone cannot stop a paused process from acting after it expired, so every lease carries
a fencing token from a counter that only grows; writes that must not come from a stale owner are
made conditional on it in the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from hourglass_core.cluster import WorkerState
from hourglass_core.models import Fire

# How long a dead or departed worker stays listed (Settings.dead_worker_retention).
DEFAULT_DEAD_RETENTION = timedelta(minutes=5)


def shard_key(shard: int) -> str:
    """The lease key of a shard."""
    return f"shard:{shard}"


@dataclass(frozen=True, slots=True)
class Lease:
    key: str
    owner: str
    token: int  # fencing token: larger than every token handed out before for any key
    ttl: timedelta


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    worker_id: str
    executors: frozenset[str] = field(default_factory=frozenset)
    capacity: int = 0
    coordinator: str = ""  # id of the coordinator replica holding the worker's stream
    # Shutting down: still alive (it finishes the fires it claimed, so nobody takes them over)
    # but assigned no shards.
    leaving: bool = False
    host: str = ""
    started_at: datetime | None = None  # when the worker process started
    # As of the latest heartbeat; runs finished in the last minute, counted by its replica.
    runs_in_progress: int = 0
    ran_last_minute: int = 0


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A worker as membership knows it: alive or leaving while its heartbeats go on; dead
    (they stopped) or left (removed after leaving) for the dead-worker retention after that."""

    info: WorkerInfo
    state: WorkerState
    since: datetime
    last_heartbeat: datetime
    lost_last_minute: int = 0  # its runs noted lost (note_lost) in the last minute


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    replica_id: str
    address: str = ""
    started_at: datetime | None = None
    leader_since: datetime | None = None  # set while it holds the leader lease


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    info: ReplicaInfo
    last_heartbeat: datetime


@dataclass(frozen=True, slots=True)
class ShardMap:
    version: int
    owners: dict[int, str]  # shard -> worker id


class Leases(Protocol):
    async def acquire(self, key: str, owner: str, ttl: timedelta) -> Lease | None:
        """Takes the lease if nobody holds it (or `owner` already does: then it is renewed and
        keeps its token). Returns None while another owner holds it."""
        ...

    async def renew(self, lease: Lease) -> bool:
        """Extends the lease by its ttl if it is still held with the same token."""
        ...

    async def release(self, lease: Lease) -> bool:
        """Drops the lease if it is still held with the same token."""
        ...

    async def holder(self, key: str) -> str | None: ...

    async def inspect(self, keys: Sequence[str]) -> dict[str, Lease]:
        """The leases of `keys` held now (free keys are absent), each with `ttl` the time it
        has left. Reads only."""
        ...

    async def seed_fencing(self, at_least: int) -> None:
        """Makes every later token larger than `at_least` (after the backend lost its data)."""
        ...

    async def ping(self) -> None:
        """Returns once the backend answers (health probes); raises Unavailable otherwise."""
        ...

    async def close(self) -> None: ...


class Membership(Protocol):
    async def heartbeat(self, worker: WorkerInfo, ttl: timedelta) -> None:
        """Records the worker as live for `ttl`."""
        ...

    async def live_workers(self) -> list[WorkerInfo]:
        """Workers whose last heartbeat is younger than its ttl, sorted by id. Those whose
        heartbeat expired are recorded dead from its expiry; records dead or left longer than
        the dead-worker retention are forgotten."""
        ...

    async def remove_worker(self, worker_id: str) -> None:
        """No longer live: recorded as left (kept for the dead-worker retention)."""
        ...

    async def workers(self) -> list[WorkerRecord]:
        """Every worker known, sorted by id: the live ones, and those dead or left within the
        dead-worker retention."""
        ...

    async def note_lost(self, worker_id: str, run_ids: Sequence[str]) -> None:
        """Counts runs of the worker recorded LOST, for a minute (a run id counts once)."""
        ...

    async def replica_heartbeat(self, replica: ReplicaInfo, ttl: timedelta) -> None:
        """Records the coordinator replica as up for `ttl`."""
        ...

    async def replicas(self) -> list[ReplicaRecord]:
        """Replicas whose last heartbeat is younger than its ttl, sorted by id."""
        ...

    async def publish_shard_map(self, shard_map: ShardMap) -> None: ...

    async def shard_map(self) -> ShardMap:
        """The latest published map (version 0 and no owners before the first)."""
        ...

    async def publish_hint(self, worker_id: str, fire: Fire) -> None:
        """Tells the worker's coordinator replica (whichever it is) of a fire due soon."""
        ...

    def hints(self) -> AsyncIterator[tuple[str, Fire]]:
        """Every hint published from now on, as (worker id, fire), for any worker."""
        ...

    async def close(self) -> None: ...
