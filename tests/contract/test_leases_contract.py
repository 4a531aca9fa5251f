"""The `Leases` / `Membership` contract, run against every backend (in-process and Redis; the
general tests also through Redis Sentinel, on a loopback set of the session's own).

Redis comes from HOURGLASS_REDIS_URL (default redis://127.0.0.1:6379/0); each test uses its own
key prefix and deletes its keys afterwards. An unreachable Redis fails the redis tests (it never
skips them): start it with `scripts/services.sh start`.

Expiry tests use real time with TTLs of a few hundred milliseconds, the same code for both
backends; the in-process backend's injected clock is tested separately at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
import redis.asyncio

from hourglass_core.cluster import WorkerState
from hourglass_core.errors import Unavailable
from hourglass_core.leases.base import (
    DEFAULT_DEAD_RETENTION,
    Lease,
    Leases,
    Membership,
    ReplicaInfo,
    ShardMap,
    WorkerInfo,
    WorkerRecord,
)
from hourglass_core.leases.factory import open_coordination
from hourglass_core.leases.memory import MemoryLeases, MemoryMembership
from hourglass_core.leases.redis import RedisLeases
from hourglass_core.leases.redis_connect import AsyncRedis
from hourglass_core.models import Fire, FireKind, OverlapPolicy

REDIS_URL = os.environ.get("HOURGLASS_REDIS_URL", "redis://127.0.0.1:6379/0")

SHORT = timedelta(milliseconds=200)
RENEWABLE = timedelta(milliseconds=400)
LONG = timedelta(seconds=30)


@dataclass
class Backend:
    kind: str
    leases: Leases
    membership: Membership
    prefix: str
    url: str = REDIS_URL


async def _open(kind: str, prefix: str | None = None, dead_retention: timedelta = DEFAULT_DEAD_RETENTION,
                url: str = REDIS_URL) -> Backend:  # fmt: skip
    if kind == "memory":
        leases, membership = await open_coordination("memory://", dead_retention=dead_retention)
        return Backend(kind, leases, membership, "")
    prefix = prefix or f"hourglass-test:{uuid.uuid4().hex}:"
    try:
        leases, membership = await open_coordination(url, prefix, dead_retention)
    except Unavailable as exc:
        down = str(exc)
    else:
        return Backend(kind, leases, membership, prefix, url)
    pytest.fail(
        f"Redis is not reachable at {url} ({down}). Start it with "
        "`scripts/services.sh start` or set HOURGLASS_REDIS_URL; redis tests never skip.",
        pytrace=False,
    )


async def _close(backend: Backend) -> None:
    await backend.membership.close()
    await backend.leases.close()


async def _delete_prefix(prefix: str, url: str = REDIS_URL) -> None:
    handle = AsyncRedis(url, decode_responses=True)
    try:
        keys = [k async for k in handle.client.scan_iter(match=f"{prefix}*")]
        if keys:
            await handle.client.delete(*keys)
    finally:
        await handle.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("sentinel", marks=pytest.mark.redis)])  # fmt: skip
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    url = request.getfixturevalue("sentinel_url") if request.param == "sentinel" else REDIS_URL
    opened = await _open(request.param, url=url)
    try:
        yield opened
    finally:
        await _close(opened)
        if opened.kind != "memory":
            await _delete_prefix(opened.prefix, url)


@pytest.fixture
async def redis_backend() -> AsyncIterator[Backend]:
    opened = await _open("redis")
    try:
        yield opened
    finally:
        await _close(opened)
        await _delete_prefix(opened.prefix)


@pytest.fixture
async def raw_redis() -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


def _fire(job_id: str = "job-1") -> Fire:
    return Fire(
        due=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        namespace="billing",
        job_id=job_id,
        shard=7,
        attempt=2,
        kind=FireKind.RETRY,
        priority=5,
    )


async def _next(stream: AsyncIterator[tuple[str, Fire]]) -> tuple[str, Fire]:
    return await anext(stream)  # a coroutine, for create_task


async def _acquired(leases: Leases, key: str, owner: str, ttl: timedelta = LONG) -> Lease:
    lease = await leases.acquire(key, owner, ttl)
    assert lease is not None, f"{owner} could not acquire free key {key}"
    return lease


# -- leases ----------------------------------------------------------------------------------


async def test_ping_answers_while_the_backend_is_up(backend: Backend) -> None:
    await backend.leases.ping()


async def test_second_owner_cannot_acquire_a_held_lease(backend: Backend) -> None:
    lease = await _acquired(backend.leases, "leader", "a")
    assert lease.key == "leader" and lease.owner == "a" and lease.token > 0
    assert await backend.leases.acquire("leader", "b", LONG) is None
    assert await backend.leases.holder("leader") == "a"


async def test_holder_of_a_free_key_is_none(backend: Backend) -> None:
    assert await backend.leases.holder("nobody-took-this") is None


async def test_reacquire_by_holder_keeps_token_and_extends(backend: Backend) -> None:
    first = await _acquired(backend.leases, "shard:1", "a", RENEWABLE)
    await asyncio.sleep(0.25)
    again = await _acquired(backend.leases, "shard:1", "a", RENEWABLE)
    assert again.token == first.token
    await asyncio.sleep(0.25)  # past the first ttl, within the re-acquired one
    assert await backend.leases.holder("shard:1") == "a"


async def test_tokens_strictly_increase_across_keys_and_reacquisitions(backend: Backend) -> None:
    leases = backend.leases
    tokens = []
    a1 = await _acquired(leases, "k1", "a")
    tokens.append(a1.token)
    tokens.append((await _acquired(leases, "k2", "a")).token)
    assert await leases.release(a1)
    tokens.append((await _acquired(leases, "k1", "b")).token)
    tokens.append((await _acquired(leases, "k3", "c")).token)
    assert all(earlier < later for earlier, later in pairwise(tokens)), tokens


async def test_renew_extends_lease_past_its_original_ttl(backend: Backend) -> None:
    lease = await _acquired(backend.leases, "shard:2", "a", RENEWABLE)
    await asyncio.sleep(0.25)
    assert await backend.leases.renew(lease)
    await asyncio.sleep(0.25)  # 0.5 s after acquire: expired had it not been renewed
    assert await backend.leases.holder("shard:2") == "a"
    assert await backend.leases.acquire("shard:2", "b", LONG) is None


async def test_expired_lease_goes_to_next_owner_with_larger_token(backend: Backend) -> None:
    old = await _acquired(backend.leases, "shard:3", "a", SHORT)
    await asyncio.sleep(0.3)
    assert await backend.leases.holder("shard:3") is None
    new = await _acquired(backend.leases, "shard:3", "b")
    assert new.token > old.token


async def test_stale_owner_cannot_renew_or_release_after_takeover(backend: Backend) -> None:
    stale = await _acquired(backend.leases, "shard:4", "a", SHORT)
    await asyncio.sleep(0.3)
    await _acquired(backend.leases, "shard:4", "b")
    assert not await backend.leases.renew(stale)
    assert not await backend.leases.release(stale)
    assert await backend.leases.acquire("shard:4", "a", LONG) is None
    assert await backend.leases.holder("shard:4") == "b"


async def test_expired_lease_cannot_be_renewed(backend: Backend) -> None:
    lease = await _acquired(backend.leases, "shard:5", "a", SHORT)
    await asyncio.sleep(0.3)
    assert not await backend.leases.renew(lease)
    assert await backend.leases.holder("shard:5") is None


async def test_old_token_of_same_owner_is_fenced_after_reacquire(backend: Backend) -> None:
    # The owner paused past its ttl and acquired again: its old lease object must be dead.
    old = await _acquired(backend.leases, "shard:6", "a", SHORT)
    await asyncio.sleep(0.3)
    new = await _acquired(backend.leases, "shard:6", "a")
    assert new.token > old.token
    assert not await backend.leases.renew(old)
    assert not await backend.leases.release(old)
    assert await backend.leases.holder("shard:6") == "a"
    assert await backend.leases.renew(new)


async def test_release_lets_another_owner_acquire_at_once(backend: Backend) -> None:
    lease = await _acquired(backend.leases, "leader", "a")
    assert await backend.leases.release(lease)
    assert await backend.leases.holder("leader") is None
    assert not await backend.leases.release(lease)  # already gone
    taken = await _acquired(backend.leases, "leader", "b")
    assert taken.token > lease.token


async def test_owner_may_contain_the_value_separator(backend: Backend) -> None:
    owner = "coord|10.0.0.1|7070"
    lease = await _acquired(backend.leases, "leader", owner)
    assert await backend.leases.holder("leader") == owner
    assert await backend.leases.acquire("leader", "coord|10.0.0.1", LONG) is None
    assert (await _acquired(backend.leases, "leader", owner)).token == lease.token
    assert await backend.leases.renew(lease)


async def test_seed_fencing_makes_next_token_larger_and_never_lowers(backend: Backend) -> None:
    first = await _acquired(backend.leases, "k1", "a")
    await backend.leases.seed_fencing(first.token + 1000)
    seeded = await _acquired(backend.leases, "k2", "a")
    assert seeded.token > first.token + 1000
    await backend.leases.seed_fencing(1)  # lower than the counter: no effect
    after = await _acquired(backend.leases, "k3", "a")
    assert after.token > seeded.token


async def test_concurrent_acquires_of_one_key_have_exactly_one_winner(backend: Backend) -> None:
    results = await asyncio.gather(
        *(backend.leases.acquire("contended", f"owner-{i:02}", LONG) for i in range(20))
    )
    winners = [lease for lease in results if lease is not None]
    assert len(winners) == 1, winners
    assert await backend.leases.holder("contended") == winners[0].owner


async def test_failed_acquires_do_not_consume_tokens(backend: Backend) -> None:
    held = await _acquired(backend.leases, "contended", "a")
    for i in range(10):
        assert await backend.leases.acquire("contended", f"b{i}", LONG) is None
    assert (await _acquired(backend.leases, "other", "c")).token == held.token + 1


async def test_non_positive_ttl_is_rejected(backend: Backend) -> None:
    with pytest.raises(ValueError):
        await backend.leases.acquire("k", "a", timedelta(0))
    with pytest.raises(ValueError):
        await backend.membership.heartbeat(WorkerInfo("w1"), timedelta(seconds=-1))


# -- membership ------------------------------------------------------------------------------


async def test_heartbeat_makes_worker_live_with_its_info(backend: Backend) -> None:
    info = WorkerInfo("w1", frozenset({"echo", "sleep"}), capacity=8, coordinator="c1")
    await backend.membership.heartbeat(info, LONG)
    assert await backend.membership.live_workers() == [info]
    moved = WorkerInfo("w1", frozenset({"echo"}), capacity=4, coordinator="c2")
    await backend.membership.heartbeat(moved, LONG)  # a later heartbeat replaces the info
    assert await backend.membership.live_workers() == [moved]


async def test_live_workers_are_sorted_by_id(backend: Backend) -> None:
    for worker_id in ["w3", "w1", "w10", "w2"]:
        await backend.membership.heartbeat(WorkerInfo(worker_id), LONG)
    live = await backend.membership.live_workers()
    assert [w.worker_id for w in live] == ["w1", "w10", "w2", "w3"]


async def test_worker_without_heartbeat_expires_and_renewed_one_stays(backend: Backend) -> None:
    await backend.membership.heartbeat(WorkerInfo("dies"), SHORT)
    await backend.membership.heartbeat(WorkerInfo("beats"), RENEWABLE)
    await asyncio.sleep(0.25)
    await backend.membership.heartbeat(WorkerInfo("beats"), RENEWABLE)
    await asyncio.sleep(0.25)
    assert [w.worker_id for w in await backend.membership.live_workers()] == ["beats"]


async def test_removed_worker_is_no_longer_live(backend: Backend) -> None:
    await backend.membership.heartbeat(WorkerInfo("w1"), LONG)
    await backend.membership.heartbeat(WorkerInfo("w2"), LONG)
    await backend.membership.remove_worker("w1")
    await backend.membership.remove_worker("never-seen")  # no error
    assert [w.worker_id for w in await backend.membership.live_workers()] == ["w2"]


async def test_inspect_shows_the_held_leases_with_owner_token_and_time_left(backend: Backend) -> None:
    a = await _acquired(backend.leases, "shard:1", "a", LONG)
    b = await _acquired(backend.leases, "leader", "coord|1", RENEWABLE)
    await _acquired(backend.leases, "gone", "c", SHORT)
    await asyncio.sleep(0.25)
    found = await backend.leases.inspect(["shard:1", "leader", "gone", "never-taken"])
    assert sorted(found) == ["leader", "shard:1"]
    assert (found["shard:1"].owner, found["shard:1"].token) == ("a", a.token)
    assert (found["leader"].owner, found["leader"].token) == ("coord|1", b.token)
    assert timedelta(seconds=29) < found["shard:1"].ttl <= LONG
    assert timedelta(0) < found["leader"].ttl <= RENEWABLE - timedelta(milliseconds=200)
    assert await backend.leases.inspect([]) == {}


def _record(records: list[WorkerRecord], worker_id: str) -> WorkerRecord:
    [record] = [r for r in records if r.info.worker_id == worker_id]
    return record


def _near(when: datetime, expected: datetime, slack: float = 0.15) -> bool:
    return abs((when - expected).total_seconds()) <= slack


async def test_workers_lists_a_live_worker_alive_since_its_first_heartbeat_with_its_last_one(backend: Backend) -> None:
    started = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    info = WorkerInfo("w1", frozenset({"echo"}), capacity=8, coordinator="c1", host="box-1", started_at=started,
                      runs_in_progress=3, ran_last_minute=120)  # fmt: skip
    first = datetime.now(UTC)
    await backend.membership.heartbeat(info, LONG)
    await asyncio.sleep(0.2)
    await backend.membership.heartbeat(replace(info, runs_in_progress=1), LONG)
    [record] = await backend.membership.workers()
    assert record.info == replace(info, runs_in_progress=1)  # every field round-trips
    assert record.state is WorkerState.ALIVE and _near(record.since, first)
    assert _near(record.last_heartbeat, first + timedelta(seconds=0.2))
    assert await backend.membership.live_workers() == [record.info]


async def test_a_leaving_worker_is_leaving_from_its_first_leaving_heartbeat(backend: Backend) -> None:
    await backend.membership.heartbeat(WorkerInfo("w1"), LONG)
    await asyncio.sleep(0.1)
    leaving_at = datetime.now(UTC)
    await backend.membership.heartbeat(WorkerInfo("w1", leaving=True), LONG)
    await asyncio.sleep(0.1)
    await backend.membership.heartbeat(WorkerInfo("w1", leaving=True), LONG)
    [record] = await backend.membership.workers()
    assert record.state is WorkerState.LEAVING and _near(record.since, leaving_at)


async def test_a_worker_whose_heartbeat_expired_is_listed_dead_from_its_expiry(backend: Backend) -> None:
    beat = datetime.now(UTC)
    await backend.membership.heartbeat(WorkerInfo("dies"), SHORT)
    await backend.membership.heartbeat(WorkerInfo("lives"), LONG)
    await asyncio.sleep(0.3)
    assert [w.worker_id for w in await backend.membership.live_workers()] == ["lives"]
    records = await backend.membership.workers()
    assert [r.info.worker_id for r in records] == ["dies", "lives"]
    dead = _record(records, "dies")
    assert dead.state is WorkerState.DEAD and _near(dead.since, beat + SHORT) and _near(dead.last_heartbeat, beat)


async def test_a_removed_worker_is_listed_left_and_a_dead_one_stays_dead(backend: Backend) -> None:
    await backend.membership.heartbeat(WorkerInfo("w1", leaving=True), LONG)
    await backend.membership.heartbeat(WorkerInfo("w2"), SHORT)
    await asyncio.sleep(0.3)
    removed_at = datetime.now(UTC)
    await backend.membership.remove_worker("w1")
    await backend.membership.remove_worker("w2")  # already dead: stays dead
    records = await backend.membership.workers()
    assert (_record(records, "w1").state, _record(records, "w2").state) == (WorkerState.LEFT, WorkerState.DEAD)
    assert _near(_record(records, "w1").since, removed_at)


async def test_a_dead_worker_that_beats_again_is_alive_since_then(backend: Backend) -> None:
    await backend.membership.heartbeat(WorkerInfo("w1"), SHORT)
    await asyncio.sleep(0.3)
    assert (await backend.membership.workers())[0].state is WorkerState.DEAD
    back = datetime.now(UTC)
    await backend.membership.heartbeat(WorkerInfo("w1"), LONG)
    [record] = await backend.membership.workers()
    assert record.state is WorkerState.ALIVE and _near(record.since, back)
    assert [w.worker_id for w in await backend.membership.live_workers()] == ["w1"]


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_dead_and_departed_workers_are_forgotten_after_the_retention(kind: str) -> None:
    opened = await _open(kind, dead_retention=timedelta(milliseconds=300))
    try:
        membership = opened.membership
        await membership.heartbeat(WorkerInfo("dead"), SHORT)
        await membership.heartbeat(WorkerInfo("left"), LONG)
        await membership.heartbeat(WorkerInfo("alive"), LONG)
        await membership.remove_worker("left")
        await asyncio.sleep(0.3)  # "dead" died 0.1 s ago, "left" left 0.3 s ago
        assert [r.info.worker_id for r in await membership.workers()] == ["alive", "dead"]
        await asyncio.sleep(0.3)
        assert [r.info.worker_id for r in await membership.workers()] == ["alive"]
    finally:
        await _close(opened)
        if opened.kind == "redis":
            await _delete_prefix(opened.prefix)


async def test_lost_runs_count_once_each_for_their_worker(backend: Backend) -> None:
    await backend.membership.heartbeat(WorkerInfo("w1"), LONG)
    await backend.membership.heartbeat(WorkerInfo("w2"), LONG)
    await backend.membership.note_lost("w1", ["r1", "r2"])
    await backend.membership.note_lost("w1", ["r2", "r3"])  # r2 again: re-sent, counted once
    await backend.membership.note_lost("w2", [])
    records = await backend.membership.workers()
    assert (_record(records, "w1").lost_last_minute, _record(records, "w2").lost_last_minute) == (3, 0)


async def test_replicas_are_listed_while_their_heartbeats_last(backend: Backend) -> None:
    since = datetime(2030, 1, 1, tzinfo=UTC)
    leader = ReplicaInfo("c1", "127.0.0.1:7070", started_at=since, leader_since=since)
    beat = datetime.now(UTC)
    await backend.membership.replica_heartbeat(leader, LONG)
    await backend.membership.replica_heartbeat(ReplicaInfo("c2", "127.0.0.1:7071"), SHORT)
    assert [r.info for r in await backend.membership.replicas()] == [leader, ReplicaInfo("c2", "127.0.0.1:7071")]
    await asyncio.sleep(0.3)
    [record] = await backend.membership.replicas()
    assert record.info == leader and _near(record.last_heartbeat, beat)


async def test_shard_map_is_empty_version_zero_before_first_publish(backend: Backend) -> None:
    assert await backend.membership.shard_map() == ShardMap(0, {})


async def test_published_shard_map_is_read_back(backend: Backend) -> None:
    published = ShardMap(1, {0: "w1", 1: "w2", 63: "w1"})
    await backend.membership.publish_shard_map(published)
    assert await backend.membership.shard_map() == published


async def test_older_or_same_shard_map_version_does_not_overwrite(backend: Backend) -> None:
    newest = ShardMap(3, {0: "w3"})
    await backend.membership.publish_shard_map(newest)
    await backend.membership.publish_shard_map(ShardMap(2, {0: "stale"}))
    await backend.membership.publish_shard_map(ShardMap(3, {0: "same-version"}))
    assert await backend.membership.shard_map() == newest
    await backend.membership.publish_shard_map(ShardMap(4, {0: "w4"}))
    assert await backend.membership.shard_map() == ShardMap(4, {0: "w4"})


async def test_hint_reaches_subscriber_within_a_second(backend: Backend) -> None:
    stream = backend.membership.hints()
    try:
        await backend.membership.publish_hint("w1", _fire())
        assert await asyncio.wait_for(anext(stream), 1.0) == ("w1", _fire())
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_hints_reach_every_stream_in_publish_order(backend: Backend) -> None:
    first, second = backend.membership.hints(), backend.membership.hints()
    try:
        sent = [("w1", _fire("a")), ("w2", _fire("b")), ("w1", _fire("c"))]
        for worker_id, fire in sent:
            await backend.membership.publish_hint(worker_id, fire)
        for stream in (first, second):
            assert [await asyncio.wait_for(anext(stream), 1.0) for _ in sent] == sent
    finally:
        await first.aclose()  # type: ignore[attr-defined]
        await second.aclose()  # type: ignore[attr-defined]


async def test_cancelled_hint_reader_does_not_stop_later_streams(backend: Backend) -> None:
    stream = backend.membership.hints()
    reader = asyncio.create_task(_next(stream))
    await asyncio.sleep(0.05)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    # The cancelled stream is closed; a new one subscribes afresh and gets what follows.
    fresh = backend.membership.hints()
    try:
        await backend.membership.publish_hint("w9", _fire())
        assert await asyncio.wait_for(anext(fresh), 1.0) == ("w9", _fire())
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
    finally:
        await fresh.aclose()  # type: ignore[attr-defined]


async def test_closing_membership_ends_open_hint_streams(backend: Backend) -> None:
    stream = backend.membership.hints()
    reader = asyncio.create_task(_next(stream))
    await asyncio.sleep(0.05)
    await backend.membership.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reader, 1.0)


# -- Redis only ------------------------------------------------------------------------------


@pytest.mark.redis
async def test_tokens_keep_increasing_after_fencing_counter_loss_and_reseed(
    redis_backend: Backend, raw_redis: redis.asyncio.Redis
) -> None:
    leases = redis_backend.leases
    before = [(await _acquired(leases, f"shard:{i}", "a")).token for i in range(5)]
    previous_max = max(before)
    # Redis lost its data (restart without persistence, FLUSHALL): the counter starts over.
    await raw_redis.delete(*[k async for k in raw_redis.scan_iter(match=f"{redis_backend.prefix}*")])
    assert await raw_redis.get(f"{redis_backend.prefix}fencing") is None
    await leases.seed_fencing(previous_max)  # what the store last saw
    after = await _acquired(leases, "shard:0", "b")
    assert after.token > previous_max
    assert (await _acquired(leases, "shard:9", "b")).token > after.token


@pytest.mark.redis
async def test_hint_from_another_process_reaches_subscriber(redis_backend: Backend) -> None:
    other = await _open("redis", redis_backend.prefix)  # another process on the same cluster
    stream = redis_backend.membership.hints()
    try:
        # Our own probe proves the subscription is active before the other side publishes.
        await redis_backend.membership.publish_hint("probe", _fire("probe"))
        assert (await asyncio.wait_for(anext(stream), 1.0))[0] == "probe"
        await other.membership.publish_hint("w2", _fire())
        assert await asyncio.wait_for(anext(stream), 1.0) == ("w2", _fire())
        # A backfilled manual fire keeps its identity (nominal) and its overlap override.
        backfilled = replace(_fire(), kind=FireKind.MANUAL, nominal=datetime(2029, 1, 1, tzinfo=UTC),
                             overlap=OverlapPolicy.SKIP)  # fmt: skip
        await other.membership.publish_hint("w2", backfilled)
        assert await asyncio.wait_for(anext(stream), 1.0) == ("w2", backfilled)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await _close(other)


@pytest.mark.redis
async def test_closing_last_hint_stream_unsubscribes(
    redis_backend: Backend, raw_redis: redis.asyncio.Redis
) -> None:
    channel = f"{redis_backend.prefix}hints"

    async def subscribers() -> int:
        return int(dict(await raw_redis.pubsub_numsub(channel))[channel])

    stream = redis_backend.membership.hints()
    await redis_backend.membership.publish_hint("probe", _fire())
    await asyncio.wait_for(anext(stream), 1.0)
    assert await subscribers() == 1
    reader = asyncio.create_task(_next(stream))
    await asyncio.sleep(0.05)
    reader.cancel()
    for _ in range(40):
        if await subscribers() == 0:
            break
        await asyncio.sleep(0.05)
    assert await subscribers() == 0


@pytest.mark.redis
async def test_shard_map_written_by_one_process_is_read_by_another(redis_backend: Backend) -> None:
    other = await _open("redis", redis_backend.prefix)
    try:
        await redis_backend.membership.publish_shard_map(ShardMap(5, {1: "w1"}))
        assert await other.membership.shard_map() == ShardMap(5, {1: "w1"})
        await other.membership.publish_shard_map(ShardMap(4, {1: "stale"}))
        assert await redis_backend.membership.shard_map() == ShardMap(5, {1: "w1"})
    finally:
        await _close(other)


async def test_unreachable_redis_raises_unavailable() -> None:
    # Port 1 on loopback: nothing listens, connections are refused at once.
    url = "redis://127.0.0.1:1/0"
    with pytest.raises(Unavailable):
        await open_coordination(url, "hourglass-test:")
    leases = RedisLeases(url, "hourglass-test:")
    try:
        with pytest.raises(Unavailable):
            await leases.acquire("k", "a", LONG)
        with pytest.raises(Unavailable):
            await leases.ping()
    finally:
        await leases.close()


async def test_unknown_coordination_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="coordination URL"):
        await open_coordination("zookeeper://127.0.0.1:2181")


# -- in-process only: the injected clock -----------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_backend_expires_by_the_injected_clock() -> None:
    clock = FakeClock()
    leases, membership = MemoryLeases(clock), MemoryMembership(clock)
    lease = await _acquired(leases, "k", "a", timedelta(seconds=10))
    await membership.heartbeat(WorkerInfo("w1"), timedelta(seconds=10))
    clock.now += 9.999
    assert await leases.holder("k") == "a"
    assert [w.worker_id for w in await membership.live_workers()] == ["w1"]
    clock.now += 0.001  # exactly ttl after: expired
    assert await leases.holder("k") is None
    assert await membership.live_workers() == []
    assert not await leases.renew(lease)
    assert (await _acquired(leases, "k", "b")).token == lease.token + 1
