"""Two coordinator replicas with read caches: a job's state changed through one is served by
the other at once (the change is announced through the coordination backend, Redis in
production), although the other holds the job cached for a minute."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from hourglass_coordinator.jobs import JobsApi
from hourglass_coordinator.read_cache import ReadCache
from hourglass_coordinator.worker_streams import WorkerStreams
from hourglass_core.leases.base import Membership
from hourglass_core.leases.factory import open_coordination
from hourglass_core.models import Fire, FireKind, JobSpec, JobState, OnceTrigger
from hourglass_core.store.base import Store

REDIS_URL = os.environ.get("HOURGLASS_REDIS_URL", "redis://127.0.0.1:6379/0")
SHARDS = 4


async def _no_hint(fires: Sequence[Fire]) -> None:
    return None


@asynccontextmanager
async def _replica(name: str, store: Store, membership: Membership) -> AsyncIterator[JobsApi]:
    cache = ReadCache(60.0)
    streams = WorkerStreams(name, store, membership, num_shards=SHARDS, heartbeat_interval=timedelta(seconds=1),
                            worker_timeout=timedelta(seconds=3), cache=cache)  # fmt: skip
    relay = asyncio.create_task(streams.relay_hints())
    # Publishing waits for this replica's own subscription, so from here on it hears the others.
    await membership.publish_hint("", Fire(datetime.now(UTC), "-", "-", 0, kind=FireKind.CHANGED))
    try:
        yield JobsApi(store, num_shards=SHARDS, max_params_bytes=1024, hint=_no_hint, halt=streams.halt,
                      announce_change=streams.announce_change, cache=cache)  # fmt: skip
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def memberships(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Membership, Membership]]:
    """What two replicas use to coordinate: one in-process backend, or two Redis connections."""
    if request.param == "memory":
        leases, membership = await open_coordination("memory://")
        yield membership, membership
        await membership.close()
        await leases.close()
        return
    prefix = f"hourglass-test:{uuid.uuid4().hex}:"
    opened = [await open_coordination(REDIS_URL, prefix) for _ in range(2)]
    yield opened[0][1], opened[1][1]
    for leases, membership in opened:
        await membership.close()
        await leases.close()


async def _eventually_state(api: JobsApi, ns: str, job_id: str, state: JobState) -> JobState:
    deadline = asyncio.get_running_loop().time() + 2.0
    while (seen := (await api.get(ns, job_id)).state) is not state and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    return seen


async def test_a_state_changed_through_one_replica_is_served_by_the_other_at_once(
    store: Store, memberships: tuple[Membership, Membership], ns: str
) -> None:
    await store.register_executors(["echo"])
    async with _replica("a", store, memberships[0]) as a, _replica("b", store, memberships[1]) as b:
        specs = [JobSpec(name=f"j{i}", executor="echo", namespace=ns,
                         trigger=OnceTrigger(at=datetime.now(UTC) + timedelta(days=1))) for i in range(2)]  # fmt: skip
        one, two = (c.job for c in await a.submit(specs))
        assert (await b.get(ns, one.id)).state is JobState.ACTIVE
        # b serves its copy: a change written behind its back (not announced) is not seen.
        await store.set_job_state(ns, one.id, JobState.PAUSED, None)
        assert (await b.get(ns, one.id)).state is JobState.ACTIVE
        assert (await b.get(ns, two.id)).state is JobState.ACTIVE

        await a.cancel(ns, one.id)
        await a.pause(ns, two.id)
        assert await _eventually_state(b, ns, one.id, JobState.CANCELLED) is JobState.CANCELLED
        assert await _eventually_state(b, ns, two.id, JobState.PAUSED) is JobState.PAUSED
        await b.resume(ns, two.id)
        assert await _eventually_state(a, ns, two.id, JobState.ACTIVE) is JobState.ACTIVE
