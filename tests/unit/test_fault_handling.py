"""The worker's fault-handling parts, without processes: claim holders, shard lives in the book,
the fence, the lease keeper's fencing floor and forfeit, backoff and rate-limited logs."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from hourglass_core import claims
from hourglass_core.backoff import Backoff, RateLimitedLog
from hourglass_core.errors import Unavailable
from hourglass_core.leases.base import Lease, shard_key
from hourglass_core.leases.memory import MemoryLeases
from hourglass_core.models import Fire
from hourglass_worker.book import ShardBook
from hourglass_worker.claiming import Later
from hourglass_worker.fencing import Fence
from hourglass_worker.later import MOVING_TRIES, LookAgain
from hourglass_worker.shards import ShardKeeper

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_claim_holders_name_worker_and_token_and_parse_back() -> None:
    holder = claims.holder_id("w#1", 42)  # a worker id may itself contain the separator
    assert claims.parse(holder) == claims.Holder("w#1", 42)
    assert claims.parse(claims.abandoned(holder)) == claims.Holder("w#1", 42, abandoned=True)
    assert claims.parse("legacy-worker") == claims.Holder("legacy-worker", None)


def test_a_fire_finished_in_an_earlier_shard_life_does_not_clear_the_new_lifes_entry() -> None:
    book = ShardBook()
    fire = Fire(due=T0, namespace="d", job_id="a", shard=3)
    assert book.take(fire, life=7)
    book.open(3)  # the shard was lost and taken again
    assert book.take(fire, life=9)  # read again from the checkpoint
    book.handled(fire, life=7)  # the earlier life's run finishes now
    assert book.handled_through(3, T0 + timedelta(seconds=5)) < T0  # still pending in life 9
    book.handled(fire, life=9)
    assert book.handled_through(3, T0 + timedelta(seconds=5)) == T0 + timedelta(seconds=5)


async def test_a_row_the_schedule_never_moves_to_is_given_up_after_a_few_looks() -> None:
    again: list[Fire] = []
    later = LookAgain(lambda fire, life: again.append(fire))
    fire = Fire(due=T0, namespace="d", job_id="a", shard=0)
    assert all(later.schedule(fire, 1, Later.MOVING) for _ in range(MOVING_TRIES))
    assert not later.schedule(fire, 1, Later.MOVING)
    assert later.schedule(fire, 1, Later.WATCH)  # watching is not limited


async def test_fence_runs_claims_of_the_held_lease_only_and_released_ones_while_alive() -> None:
    leases = MemoryLeases()
    keeper = ShardKeeper(leases, "w1", timedelta(seconds=3), lambda s, lease: None, lambda s, g: None)
    beating_since = [0.0]
    fence = Fence(keeper, lambda: beating_since[0])
    keeper.assign({1})
    await keeper._step()
    token = keeper.token(1)
    assert token is not None
    fence.gained(1, token)
    assert fence.may_run(1, token) is True
    assert fence.may_run(1, token - 1) is False  # claimed under an earlier lease of the shard
    fence.lost(1, graceful=True)
    released_at = asyncio.get_running_loop().time()
    assert fence.may_run(1, token) is True  # released on purpose, heartbeats never paused
    beating_since[0] = released_at + 1  # a pause in the heartbeats after the release
    assert fence.may_run(1, token) is False
    fence.gained(1, token + 5)
    fence.lost(1, graceful=False)
    assert fence.may_run(1, token + 5) is False


async def test_keeper_raises_the_fencing_counter_above_the_store_after_a_lost_lease() -> None:
    leases = MemoryLeases()
    lost: list[tuple[int, bool]] = []
    keeper = ShardKeeper(
        leases, "w1", timedelta(seconds=3), lambda s, lease: None, lambda s, g: lost.append((s, g)),
        fencing_floor=lambda: _value(1000),
    )  # fmt: skip
    keeper.assign({0})
    await keeper._step()
    first = keeper.token(0)
    assert first is not None and first > 1000  # seeded before the very first lease
    keeper.forfeit(0)  # the store said our token is stale
    assert lost == [(0, False)] and keeper.token(0) is None
    await keeper._step()
    second = keeper.token(0)
    assert second is not None and second > first


async def test_after_a_redis_failover_tokens_pass_every_token_the_store_recorded() -> None:
    """The promoted replica lacks the last INCRs (replication is asynchronous): a grant from
    its counter would repeat a token the store already saw. The failed step makes the keeper
    seed from the store before its next grant."""
    leases, ttl = MemoryLeases(), timedelta(seconds=3)
    store_max = [0]  # the largest token Cassandra recorded (checkpoints)
    keeper = ShardKeeper(leases, "w1", ttl, lambda s, lease: None, lambda s, g: None,
                         fencing_floor=lambda: _value(store_max[0]))  # fmt: skip
    keeper.assign({0})
    await keeper._step()
    other = await leases.acquire(shard_key(1), "w2", ttl)  # on the old primary
    assert other is not None
    store_max[0] = other.token  # w2 wrote its checkpoint with it
    leases._fencing, leases._held = other.token - 1, {k: v for k, v in leases._held.items() if k != shard_key(1)}
    acquire, failures = leases.acquire, [1]

    async def failing_over(key: str, owner: str, ttl: timedelta) -> Lease | None:
        if failures:  # the first call meets the failover: the old primary is gone
            failures.pop()
            raise Unavailable("redis: acquire: Connection refused")
        return await acquire(key, owner, ttl)

    leases.acquire = failing_over  # type: ignore[method-assign]
    keeper.assign({0, 1})  # w2 died meanwhile: its shard is ours now
    task = asyncio.create_task(keeper.run())
    try:
        async with asyncio.timeout(5):
            while (token := keeper.token(1)) is None:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not failures and token is not None and token > store_max[0]


async def test_a_stopped_keeper_ends_and_releases_its_leases_even_when_the_cancel_is_lost() -> None:
    """Python 3.11's asyncio.wait_for (around redis-py's socket writes) can swallow a cancel;
    a SIGTERMed worker then waited forever for its keeper, which went on taking leases."""
    leases, ttl = MemoryLeases(), timedelta(seconds=3)
    keeper = ShardKeeper(leases, "w1", ttl, lambda s, lease: None, lambda s, g: None, fencing_floor=lambda: _value(7))
    seed, swallowed = leases.seed_fencing, []

    async def losing_the_cancel(at_least: int) -> None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            swallowed.append(at_least)  # as wait_for does when its operation completes meanwhile
        await seed(at_least)

    leases.seed_fencing = losing_the_cancel  # type: ignore[method-assign]
    keeper.assign({0, 1})
    task = asyncio.create_task(keeper.run())
    await asyncio.sleep(0.01)  # seeding, before the acquires
    keeper.stop()
    task.cancel()
    await asyncio.wait({task}, timeout=3)
    assert swallowed and task.done() and keeper.held == set()
    assert await leases.holder(shard_key(0)) is None and await leases.holder(shard_key(1)) is None


async def test_leases_that_come_in_after_the_keeper_was_stopped_are_given_back_not_opened() -> None:
    leases, ttl = MemoryLeases(), timedelta(seconds=3)
    gained: list[int] = []
    keeper = ShardKeeper(leases, "w1", ttl, lambda s, lease: gained.append(s), lambda s, g: None)
    acquire = leases.acquire

    async def slow_acquire(key: str, owner: str, ttl: timedelta) -> Lease | None:
        await asyncio.sleep(0.05)
        return await acquire(key, owner, ttl)

    leases.acquire = slow_acquire  # type: ignore[method-assign]
    keeper.assign({0, 1})
    task = asyncio.create_task(keeper.run())
    await asyncio.sleep(0.01)  # acquiring
    keeper.stop()  # SIGTERM meanwhile (the cancel lost, as it can be)
    await asyncio.wait({task}, timeout=3)
    assert task.done() and gained == [] and keeper.held == set()
    assert await leases.holder(shard_key(0)) is None and await leases.holder(shard_key(1)) is None


async def test_a_new_assignment_takes_its_shards_without_renewing_fresh_leases_first() -> None:
    leases = MemoryLeases()
    renewed: list[int] = []
    renew = leases.renew

    async def counting_renew(lease: Lease) -> bool:
        renewed.append(lease.token)
        return await renew(lease)

    leases.renew = counting_renew  # type: ignore[method-assign]
    keeper = ShardKeeper(leases, "w1", timedelta(seconds=3), lambda s, lease: None, lambda s, g: None)
    keeper.assign({0, 1})
    await keeper._step()
    keeper.assign({0, 1, 2})  # a hand-over right after: only the new shard's lease is needed
    await keeper._step()
    assert keeper.held == {0, 1, 2} and renewed == []
    for held in keeper._held.values():
        held.confirmed_at -= 1.0
    await keeper._step()
    assert len(renewed) == 3


async def _value(n: int) -> int:
    return n


def test_backoff_grows_exponentially_with_equal_jitter_up_to_its_cap() -> None:
    backoff = Backoff(initial=0.1, cap=1.0)
    delays = [backoff.next_delay() for _ in range(8)]
    for i, delay in enumerate(delays):
        base = min(1.0, 0.1 * 2**i)
        assert base / 2 <= delay <= base
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_recurring_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    warn = RateLimitedLog(logging.getLogger("test.rate"), every=60)
    with caplog.at_level(logging.WARNING):
        for i in range(100):
            warn.warning("k", "store down: %d", i)
    assert len(caplog.records) == 1

