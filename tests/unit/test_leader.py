"""The leader's shard maps over in-process membership (no I/O): who gets shards when workers
come, go, or all seem to vanish at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hourglass_coordinator.leader import Leader
from hourglass_core.leases.base import WorkerInfo
from hourglass_core.leases.memory import MemoryLeases, MemoryMembership

TIMEOUT = timedelta(seconds=3)


async def test_workers_all_vanishing_at_once_keep_their_shards_until_one_is_back() -> None:
    now = [0.0]
    membership = MemoryMembership(clock=lambda: now[0])
    store: Any = None  # rebalance does not touch the store
    leader = Leader("r1", MemoryLeases(), membership, store, num_shards=8, ttl=TIMEOUT)
    for worker in ("w1", "w2"):
        await membership.heartbeat(WorkerInfo(worker), TIMEOUT)
    first = await leader.rebalance()
    assert first is not None and sorted(set(first.owners.values())) == ["w1", "w2"]

    now[0] += 10  # every heartbeat expired: starved heartbeats, or everyone died
    assert await leader.rebalance() is None
    assert await membership.shard_map() == first  # nobody could run a shard moved now

    await membership.heartbeat(WorkerInfo("w2"), TIMEOUT)
    back = await leader.rebalance()
    assert back is not None and set(back.owners.values()) == {"w2"} and len(back.owners) == 8
