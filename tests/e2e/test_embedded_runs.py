"""Run records in the embedded mode (SQLite, in-process leases, coordinator and worker in this
event loop, the real gRPC API): their times are measured, not planned, and halting a job leaves
no record of fires due after the halt."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

import hourglass
from benchmarks.cluster import free_port
from hourglass_core import wire
from hourglass_core.config import Settings
from hourglass_dev.main import embedded
from hourglass_pb.v1 import jobs_pb2 as pb
from hourglass_pb.v1 import jobs_pb2_grpc as pb_grpc
from hourglass_worker.executors import RunContext

# (job id, attempt) -> when the executor was called, by the executor's own clock.
CALLED: dict[tuple[str, int], datetime] = {}
HERE = __name__


async def record(ctx: RunContext) -> None:
    CALLED[(ctx.job_id, ctx.attempt)] = datetime.now(UTC)


async def block_loop(ctx: RunContext) -> None:
    """Holds the worker's event loop for params {"seconds": s}: whatever is due meanwhile
    starts late."""
    CALLED[(ctx.job_id, ctx.attempt)] = datetime.now(UTC)
    time.sleep(json.loads(ctx.params.data)["seconds"])


async def nap(ctx: RunContext) -> None:
    CALLED[(ctx.job_id, ctx.attempt)] = datetime.now(UTC)
    await asyncio.sleep(json.loads(ctx.params.data)["seconds"])


@pytest.fixture
def address() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
async def client(tmp_path: Path, address: str) -> AsyncIterator[hourglass.AsyncClient]:
    settings = Settings(
        store=f"sqlite:///{tmp_path / 'hg.db'}", coordination="memory://", num_shards=4,
        listen=address, coordinator=address,
        executors=f"record={HERE}:record,block={HERE}:block_loop,nap={HERE}:nap",
    )  # fmt: skip
    async with embedded(settings, workers=1), hourglass.AsyncClient(address, timeout=10) as c:
        await _wait_for_executors(c)
        yield c


async def _wait_for_executors(client: hourglass.AsyncClient) -> None:
    probe = hourglass.JobSpec("probe", "record", hourglass.OnceTrigger(datetime.now(UTC) + timedelta(days=1)))
    for _ in range(100):
        try:
            job = await client.submit(replace(probe, executor="block"), idempotent=False)
            await client.cancel(job.id)
            return
        except hourglass.InvalidArgument:
            await asyncio.sleep(0.1)
    raise AssertionError("the worker never offered its executors")


async def _runs_when_done(client: hourglass.AsyncClient, job_ids: list[str], timeout: float = 20) -> list[hourglass.Run]:
    deadline = time.monotonic() + timeout
    while True:
        runs = [r for i in job_ids for r in (await client.runs(i)).items]
        if len(runs) >= len(job_ids) and all(r.status.finished for r in runs):
            return runs
        assert time.monotonic() < deadline, runs
        await asyncio.sleep(0.1)


def once(name: str, executor: str, at: datetime, params: dict[str, float] | None = None) -> hourglass.JobSpec:
    payload = hourglass.Payload(json.dumps(params).encode(), "application/json") if params else hourglass.Payload()
    return hourglass.JobSpec(name, executor, hourglass.OnceTrigger(at), params=payload)


async def test_recorded_start_of_near_term_once_jobs_is_the_executors_own_clock_within_2ms(
    client: hourglass.AsyncClient,
) -> None:
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    jobs = await client.submit_many([once(f"near-{i}", "record", at + timedelta(milliseconds=37 * i)) for i in range(20)])
    runs = await _runs_when_done(client, [j.id for j in jobs])
    for run in runs:
        assert run.status is hourglass.RunStatus.SUCCEEDED, run
        assert run.started_at is not None and run.ended_at is not None and run.lateness is not None
        called = CALLED[(run.job_id, run.attempt)]
        assert abs(run.started_at - called) <= timedelta(milliseconds=2), (run, called)
        assert run.lateness == run.started_at - run.due
        assert run.ended_at >= run.started_at


async def test_a_fire_held_up_by_a_blocked_worker_loop_records_the_lateness_it_really_had(
    client: hourglass.AsyncClient,
) -> None:
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    blocker, late = await client.submit_many([
        once("blocker", "block", at, {"seconds": 0.6}),
        once("held-up", "record", at + timedelta(milliseconds=100)),
    ])  # fmt: skip
    runs = {r.job_id: r for r in await _runs_when_done(client, [blocker.id, late.id])}
    held = runs[late.id]
    assert held.lateness is not None and held.started_at is not None
    # Called once the loop was free again, about 0.5 s after its due time, and recorded so.
    assert held.lateness >= timedelta(milliseconds=400), held
    assert abs(held.started_at - CALLED[(late.id, 1)]) <= timedelta(milliseconds=2)


async def test_cancelling_a_fast_recurring_job_leaves_no_run_due_after_the_cancel(
    client: hourglass.AsyncClient,
) -> None:
    start = datetime.now(UTC) + timedelta(seconds=1)
    spec = hourglass.JobSpec("every-300ms", "record", hourglass.IntervalTrigger(timedelta(milliseconds=300), start))
    job = await client.submit(spec)
    await asyncio.sleep(2.5)
    await client.cancel(job.id)
    cancelled_at = datetime.now(UTC)
    await asyncio.sleep(3.5)  # past the workers' lookahead: every fire prepared before the cancel came due
    runs = (await client.runs(job.id, page_size=100)).items
    assert len(runs) >= 4, runs
    for run in runs:
        assert run.due <= cancelled_at, f"a run of a fire due after the cancel: {run}"
        assert run.ended_at is None or run.ended_at >= run.due, f"a run that ended before it was due: {run}"
        assert run.status is hourglass.RunStatus.SUCCEEDED, run
    assert not [k for k, t in CALLED.items() if k[0] == job.id and t > cancelled_at + timedelta(milliseconds=50)]
    assert (await client.get(job.id)).last_status is hourglass.RunStatus.SUCCEEDED


async def test_an_unknown_on_worker_lost_is_refused_naming_the_field_and_stores_nothing(
    client: hourglass.AsyncClient, address: str
) -> None:
    spec = pb.JobSpec(name="bad", executor="record", trigger=pb.Trigger(once=pb.OnceTrigger(at=wire.ts(datetime.now(UTC)))))
    spec.options.on_worker_lost = 9  # type: ignore[assignment]
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pb_grpc.JobServiceStub(channel).SubmitJob(pb.SubmitJobRequest(job=spec))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "job.options.on_worker_lost" in (raised.value.details() or "")
    assert not [j for j in (await client.list()).items if j.name == "bad"]


async def test_a_long_run_shows_as_running_while_it_goes_and_a_short_one_only_when_done(
    client: hourglass.AsyncClient,
) -> None:
    at = datetime.now(UTC) + timedelta(seconds=1)
    long, short = await client.submit_many([once("long", "nap", at, {"seconds": 2.5}), once("short", "record", at)])
    await asyncio.sleep((at - datetime.now(UTC)).total_seconds() + 1.6)
    [going] = (await client.runs(long.id)).items
    assert going.status is hourglass.RunStatus.RUNNING and going.started_at is not None, going
    assert abs(going.started_at - CALLED[(long.id, 1)]) <= timedelta(milliseconds=2)
    assert (await client.get(long.id)).running
    [done] = (await client.runs(short.id)).items
    assert done.status is hourglass.RunStatus.SUCCEEDED
    job = await client.get(short.id)
    assert (job.last_start_time, job.last_executor) == (done.started_at, "dev-worker-1")
    [finished] = await _runs_when_done(client, [long.id])
    assert finished.status is hourglass.RunStatus.SUCCEEDED and finished.started_at == going.started_at
    assert not (await client.get(long.id)).running
