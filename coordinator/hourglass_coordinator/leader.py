"""Leader election and the leader's duty: keep the shard map balanced over live workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hourglass_coordinator.metrics import LEADER, LEADER_LEASES_LOST
from hourglass_core.backoff import RateLimitedLog
from hourglass_core.leases.base import Lease, Leases, Membership, ShardMap
from hourglass_core.sharding import assign_shards
from hourglass_core.store.base import Store

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)
LEADER_KEY = "leader"
# How often the leader looks at the live workers: a dead worker's shards move this long, at
# most, after its heartbeats expire (two Redis calls each time).
REBALANCE_INTERVAL_S = 0.1
# A replica that is not leader looks this often whether the lease is free: the leader's death
# is then noticed within this long of its lease expiring.
CAMPAIGN_INTERVAL_S = 0.25


class Leader:
    """Campaigns for the leader lease; while leader, publishes a shard map over the live
    workers (leaving workers get none) whenever they change.

    `known_map()` is the last map this replica saw. If the coordination backend lost its data
    (the stored map is gone), the leader republishes that one rather than starting over, so
    shards stay where they are; and it waits `settle` for the workers' heartbeats to be
    recorded again before moving any shard.
    """

    def __init__(
        self,
        replica_id: str,
        leases: Leases,
        membership: Membership,
        store: Store,
        *,
        num_shards: int,
        ttl: timedelta,
        settle: timedelta = timedelta(seconds=3),
        known_map: Callable[[], ShardMap] = lambda: ShardMap(0, {}),
        on_publish: Callable[[ShardMap], None] = lambda shard_map: None,
    ) -> None:
        self._replica_id = replica_id
        self._leases = leases
        self._membership = membership
        self._store = store
        self._num_shards = num_shards
        self._ttl = ttl
        self._settle = settle.total_seconds()
        self._known_map = known_map
        self._on_publish = on_publish
        self._hold_until = 0.0
        # When the lease of this token was won (a lease taken again after an error keeps it).
        self._won_at, self._won_token = datetime.now(UTC), 0
        self._lease: Lease | None = None

    @property
    def lease(self) -> Lease | None:
        return self._lease

    @lease.setter
    def lease(self, lease: Lease | None) -> None:
        if (lease is None) != (self._lease is None):
            LEADER.inc(1 if lease is not None else -1)  # inc/dec: tests run replicas in one process
        self._lease = lease

    @property
    def is_leader(self) -> bool:
        return self.lease is not None

    @property
    def since(self) -> datetime | None:
        """When this replica took the leader lease it holds; None while it holds none."""
        return self._won_at if self.lease is not None else None

    async def run(self) -> None:
        """Forever: campaign for the lease; while holding it, renew it and rebalance."""
        renew_every = self._ttl.total_seconds() / 3
        last_renew = 0.0
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    if self.lease is None:
                        await self._campaign()
                        last_renew = loop.time()
                    elif loop.time() - last_renew >= renew_every:
                        if not await self._leases.renew(self.lease):
                            log.warning("replica %s lost the leader lease", self._replica_id)
                            LEADER_LEASES_LOST.inc()
                            self.lease = None
                        last_renew = loop.time()
                    if self.lease is not None:
                        await self.rebalance()
                except Exception as error:  # noqa: BLE001 - keep campaigning through outages
                    warn.warning("loop", "leader loop: %s", error)
                    if self.lease is not None:
                        LEADER_LEASES_LOST.inc()
                    self.lease = None
                await asyncio.sleep(REBALANCE_INTERVAL_S if self.lease else CAMPAIGN_INTERVAL_S)
        finally:
            if self.lease is not None:
                lease, self.lease = self.lease, None
                await asyncio.shield(self._leases.release(lease))
                log.info("replica %s released the leader lease", self._replica_id)

    async def _campaign(self) -> None:
        if await self._leases.holder(LEADER_KEY) not in (None, self._replica_id):
            return
        # Tokens must never go backwards, even if the lease backend forgot everything: no
        # campaign until the counter is above what the store has seen.
        await self._leases.seed_fencing(await self._store.max_fencing_token())
        self.lease = await self._leases.acquire(LEADER_KEY, self._replica_id, self._ttl)
        if self.lease is not None:
            if self.lease.token != self._won_token:
                self._won_at, self._won_token = datetime.now(UTC), self.lease.token
            log.info("replica %s is leader (token %d)", self._replica_id, self.lease.token)

    async def rebalance(self) -> ShardMap | None:
        """Publishes a new shard map when the live workers changed (never one with no worker
        at all); returns it."""
        loop = asyncio.get_running_loop()
        current = await self._membership.shard_map()
        known = self._known_map()
        if current.version == 0 and not current.owners and known.owners:
            restored = ShardMap(known.version + 1, dict(known.owners))
            await self._membership.publish_shard_map(restored)
            self._on_publish(restored)
            self._hold_until = loop.time() + self._settle
            log.warning("the shard map was gone (coordination data lost?): republished v%d", restored.version)
            return restored
        if loop.time() < self._hold_until:
            return None
        workers = [w.worker_id for w in await self._membership.live_workers() if not w.leaving]
        if not workers and current.owners:
            # Nobody could run a shard moved now, and every worker vanishing at once is more
            # often heartbeats stuck behind a saturated CPU than all of them dying: the map
            # stays as it is, so workers that come back find their shards still theirs.
            return None
        owners = assign_shards(workers, self._num_shards, current.owners)
        if owners == current.owners:
            return None
        new = ShardMap(current.version + 1, owners)
        await self._membership.publish_shard_map(new)
        self._on_publish(new)
        log.info("shard map v%d: %d shards over %d workers", new.version, len(owners), len(workers))
        return new
