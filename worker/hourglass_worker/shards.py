"""Holds the leases of the shards assigned to this worker, and nothing else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from hourglass_core.backoff import RateLimitedLog
from hourglass_core.leases.base import Lease, Leases, shard_key

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)

# A lease is trusted locally only until this fraction of its ttl has passed since the request
# that last confirmed it was sent, so clock drift cannot let two owners act at once.
SAFE_FRACTION = 0.8
# How soon to try again for an assigned shard whose lease someone else still holds: a dead
# worker's lease expires at some instant within a ttl, and its shards should move right then.
ACQUIRE_RETRY_S = 0.2


@dataclass(slots=True)
class Held:
    lease: Lease
    confirmed_at: float  # loop time at which the last successful acquire or renew was sent


class ShardKeeper:
    """Leases the assigned shards, renews them, and gives up those no longer assigned.

    `on_gained(shard, lease)` and `on_lost(shard, graceful)` are called from the keeper's loop
    (or from `forfeit`); graceful means the lease was released on purpose (unassigned, or
    shutting down) rather than lost (expired, taken by a newer owner, or found stale).

    `fencing_floor()` returns the largest fencing token the store has seen. Before taking
    leases after a lease was lost or the lease backend failed (perhaps Redis lost its data, or
    a replica lacking the last counter increments was promoted) the keeper raises the counter
    above it, so tokens never go backwards.
    """

    def __init__(
        self,
        leases: Leases,
        worker_id: str,
        ttl: timedelta,
        on_gained: Callable[[int, Lease], None],
        on_lost: Callable[[int, bool], None],
        fencing_floor: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self._leases = leases
        self._worker_id = worker_id
        self._ttl = ttl
        self._period = ttl.total_seconds() / 4  # how often leases are renewed
        self._on_gained = on_gained
        self._on_lost = on_lost
        self._fencing_floor = fencing_floor
        self._must_seed = True
        self._stopping = False
        self._max_token = 0  # the largest token handed to this keeper
        self._desired: set[int] = set()
        self._held: dict[int, Held] = {}
        self._forfeited: list[Lease] = []
        self._changed = asyncio.Event()

    def assign(self, shards: set[int]) -> None:
        self._desired = set(shards)
        self._changed.set()

    def lease(self, shard: int) -> Lease | None:
        """The shard's lease while it is safely ours, else None."""
        held = self._held.get(shard)
        if held is None:
            return None
        age = asyncio.get_running_loop().time() - held.confirmed_at
        return held.lease if age < self._ttl.total_seconds() * SAFE_FRACTION else None

    def trusted_until(self, shard: int) -> float | None:
        """The loop time (time.monotonic) until which the shard's lease is safely ours, as of
        its last renewal; None if not held."""
        held = self._held.get(shard)
        return None if held is None else held.confirmed_at + self._ttl.total_seconds() * SAFE_FRACTION

    def token(self, shard: int) -> int | None:
        """The token of the shard's lease while the keeper holds it, confirmed lately or not."""
        held = self._held.get(shard)
        return None if held is None else held.lease.token

    @property
    def held(self) -> set[int]:
        return set(self._held)

    def forfeit(self, shard: int) -> None:
        """Gives the shard up at once, as lost: a store write found its token stale. The lease
        is released in the background and taken again with a new, larger token."""
        held = self._held.pop(shard, None)
        if held is None:
            return
        self._must_seed = True
        self._forfeited.append(held.lease)
        self._on_lost(shard, False)
        self._changed.set()

    def stop(self) -> None:
        """Makes run() return (releasing every lease) after its current step. Cancelling it
        is not enough on Python 3.11: its asyncio.wait_for, which redis-py puts around every
        socket write, swallows a cancel that arrives as the write completes, and the keeper
        would go on taking leases for a worker that is shutting down."""
        self._stopping = True
        self._changed.set()

    async def run(self) -> None:
        """Until stopped (or cancelled): converge the held leases on the assignment."""
        try:
            while not self._stopping:
                try:
                    await self._step()
                except Exception as error:  # noqa: BLE001 - Redis may be away for a while
                    warn.warning("step", "shard leases: %s", error)
                    # Perhaps a failover: the promoted replica may lack the last INCRs of the
                    # counter, as an emptied Redis lacks all of them. Seed before the next grant.
                    self._must_seed = True
                    self._drop_expired()
                self._changed.clear()
                missing = bool(self._desired - set(self._held))
                try:
                    await asyncio.wait_for(self._changed.wait(), min(self._period, ACQUIRE_RETRY_S) if missing else self._period)
                except TimeoutError:
                    pass
        finally:
            await asyncio.shield(self.release_all())
            log.info("shard keeper of %s stopped", self._worker_id)

    async def _step(self) -> None:
        loop = asyncio.get_running_loop()
        forfeited, self._forfeited = self._forfeited, []
        await asyncio.gather(*(self._leases.release(lease) for lease in forfeited), return_exceptions=True)
        unassigned = [(shard, self._held.pop(shard)) for shard in sorted(set(self._held) - self._desired)]
        for shard, _ in unassigned:
            self._on_lost(shard, True)
        await asyncio.gather(*(self._leases.release(held.lease) for _, held in unassigned))
        # A step woken early (a new assignment, a shard still held elsewhere) takes its
        # shards first: leases renewed less than half a period ago wait for the next step.
        fresh_after = loop.time() - self._period / 2
        renewals = [(shard, h) for shard, h in self._held.items() if h.confirmed_at <= fresh_after]
        sent = loop.time()
        results = await asyncio.gather(*(self._leases.renew(h.lease) for _, h in renewals))
        for (shard, held), ok in zip(renewals, results, strict=True):
            if self._held.get(shard) is not held:
                continue  # forfeited or released while renewing
            if ok:
                held.confirmed_at = sent
            else:
                log.warning("lease of shard %d lost", shard)
                del self._held[shard]
                self._must_seed = True  # perhaps the lease backend forgot everything
                self._on_lost(shard, False)
        wanted = sorted(self._desired - set(self._held))
        if not wanted:
            return
        await self._seed()
        sent = loop.time()
        leases = await asyncio.gather(
            *(self._leases.acquire(shard_key(s), self._worker_id, self._ttl) for s in wanted)
        )
        if self._stopping:
            # Stopped while acquiring: a shard taken now would be read (and its checkpoint
            # moved on) by a worker that no longer starts fires. Give them back at once.
            await asyncio.gather(*(self._leases.release(lease) for lease in leases if lease is not None),
                                 return_exceptions=True)  # fmt: skip
            return
        floor = self._max_token  # tokens of this one round may come back in any order
        for shard, lease in zip(wanted, leases, strict=True):
            if lease is None or shard in self._held:
                continue
            if lease.token <= floor:
                # A token no larger than one handed to us before: the counter restarted (the
                # lease backend lost its data since we seeded). Give it back, seed, try again.
                log.warning("shard %d: token %d went backwards; seeding the counter again", shard, lease.token)
                self._must_seed = True
                self._forfeited.append(lease)
                continue
            self._max_token = max(self._max_token, lease.token)
            self._held[shard] = Held(lease, sent)
            self._on_gained(shard, lease)

    async def _seed(self) -> None:
        """Raises (and nothing is acquired this round) until the counter could be raised: a
        token taken from a counter that restarted at zero would go backwards."""
        if self._must_seed and self._fencing_floor is not None:
            await self._leases.seed_fencing(await self._fencing_floor())
            self._must_seed = False

    def _drop_expired(self) -> None:
        for shard in [s for s in self._held if self.lease(s) is None]:
            del self._held[shard]
            self._must_seed = True
            self._on_lost(shard, False)

    async def release_all(self) -> None:
        held, self._held = self._held, {}
        for shard in held:
            self._on_lost(shard, True)
        await asyncio.gather(
            *(self._leases.release(h.lease) for h in held.values()), return_exceptions=True
        )
