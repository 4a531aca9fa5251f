"""Leader election and the leader's duty: keep the shard map balanced over live workers."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from hourglass_core.leases.base import Lease, Leases, Membership, ShardMap
from hourglass_core.sharding import assign_shards
from hourglass_core.store.base import Store

log = logging.getLogger(__name__)
LEADER_KEY = "leader"
REBALANCE_INTERVAL_S = 0.25


class Leader:
    def __init__(
        self,
        replica_id: str,
        leases: Leases,
        membership: Membership,
        store: Store,
        *,
        num_shards: int,
        ttl: timedelta,
    ) -> None:
        self._replica_id = replica_id
        self._leases = leases
        self._membership = membership
        self._store = store
        self._num_shards = num_shards
        self._ttl = ttl
        self.lease: Lease | None = None

    @property
    def is_leader(self) -> bool:
        return self.lease is not None

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
                            self.lease = None
                        last_renew = loop.time()
                    if self.lease is not None:
                        await self.rebalance()
                except Exception as error:  # noqa: BLE001 - keep campaigning through outages
                    log.warning("leader loop: %s", error)
                    self.lease = None
                await asyncio.sleep(REBALANCE_INTERVAL_S if self.lease else renew_every)
        finally:
            if self.lease is not None:
                await asyncio.shield(self._leases.release(self.lease))
                log.info("replica %s released the leader lease", self._replica_id)

    async def _campaign(self) -> None:
        # Tokens must never go backwards, even if the lease backend forgot everything.
        await self._leases.seed_fencing(await self._store.max_fencing_token())
        self.lease = await self._leases.acquire(LEADER_KEY, self._replica_id, self._ttl)
        if self.lease is not None:
            log.info("replica %s is leader (token %d)", self._replica_id, self.lease.token)

    async def rebalance(self) -> ShardMap | None:
        """Publishes a new shard map when the live workers changed; returns it."""
        workers = [w.worker_id for w in await self._membership.live_workers()]
        current = await self._membership.shard_map()
        owners = assign_shards(workers, self._num_shards, current.owners)
        if owners == current.owners:
            return None
        new = ShardMap(current.version + 1, owners)
        await self._membership.publish_shard_map(new)
        log.info("shard map v%d: %d shards over %d workers", new.version, len(owners), len(workers))
        return new
