"""The `Leases` and `Membership` protocols: who owns what, right now.

Two implementations: Redis (production, many processes) and in-process (embedded, one process).
Both pass the same contract suite (tests/contract/test_leases_contract.py).

A lease alone cannot stop a paused process from acting after it expired, so every lease carries
a fencing token from a counter that only grows; writes that must not come from a stale owner are
made conditional on it in the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from hourglass_core.models import Fire


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
        """Workers whose last heartbeat is younger than its ttl, sorted by id."""
        ...

    async def remove_worker(self, worker_id: str) -> None: ...

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
