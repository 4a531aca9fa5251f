"""Workers cannot pose as each other, on a secured cluster of real processes (Cassandra and
Redis, mutual TLS, tokens): a worker token registers only as the worker it names, and a
worker's stream writes only runs given to it. What a stream may not send ends it with the
status naming the field, nothing of it is written, and the run's real owner completes it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

import hourglass
from benchmarks.cluster import Cluster
from hourglass_core import wire
from hourglass_core.firing import job_id_for_key, run_id_for
from hourglass_core.models import JobCompletion, Payload, Run, RunStatus
from hourglass_core.sharding import shard_of
from hourglass_core.tls import channel_credentials
from hourglass_pb.v1 import worker_pb2 as wpb

pytestmark = pytest.mark.e2e
CONNECT = "/hourglass.v1.WorkerService/Connect"
FORGED = b'"forged"'


async def _stream(cluster: Cluster, token_for: str, worker_id: str, *sent: bytes | wpb.WorkerMessage) -> tuple[str, str]:
    """Opens a worker stream with a token for `token_for` (and the workers' certificate),
    registers as `worker_id`, sends `sent` and keeps the stream open: ("registered" or the
    status code's name, the details) of how it ends within 20 s."""
    register = wpb.WorkerMessage(register=wpb.Register(worker_id=worker_id, executors=["sleep"], capacity=1))

    async def messages() -> AsyncIterator[bytes]:
        for message in (register, *sent):
            yield message if isinstance(message, bytes) else message.SerializeToString()
        await asyncio.sleep(30)  # open: the refusal, not the end of the requests, ends it

    paths = cluster._tls("worker")
    credentials = channel_credentials(*paths.values())
    assert credentials is not None
    metadata = (("authorization", f"Bearer {cluster.worker_token(token_for)}"),)
    async with grpc.aio.secure_channel(cluster.address, credentials) as channel:
        call = channel.stream_stream(CONNECT)(messages(), metadata=metadata, timeout=20)
        kinds = []
        try:
            async for answer in call:
                kinds.append(wpb.CoordinatorMessage.FromString(answer).WhichOneof("kind"))
                if not sent and kinds == ["registered"]:
                    return "registered", ""
        except grpc.aio.AioRpcError as error:
            return error.code().name, error.details() or ""
    return "ended", ""


def _event(run: Run, seq: int = 1, **raw: object) -> wpb.WorkerMessage:
    event = wire.run_finished_to_pb(run, seq)
    for name, value in raw.items():
        if isinstance(value, Timestamp):
            getattr(event, name).CopyFrom(value)
        else:
            setattr(event, name, value)
    return wpb.WorkerMessage(run_events=wpb.RunEvents(finished=[event]))


def test_a_worker_token_registers_only_as_the_workers_it_names_and_a_refusal_records_nothing(cluster: Cluster) -> None:
    cluster.start_coordinator()
    assert asyncio.run(_stream(cluster, "w-a", "w-a"))[0] == "registered"
    code, details = asyncio.run(_stream(cluster, "w-a", "w-b"))
    assert code == "PERMISSION_DENIED" and "register.worker_id 'w-b'" in details and "'w-a'" in details
    assert asyncio.run(_stream(cluster, "pool-*", "pool-7"))[0] == "registered"  # a fleet's token
    assert asyncio.run(_stream(cluster, "pool-*", "w-b"))[0] == "PERMISSION_DENIED"
    # A worker of the fleet started with its token and no id takes one under the prefix.
    cluster.workers["fleet"] = cluster._spawn(["worker"], "fleet.log", HOURGLASS_TOKEN=cluster.worker_token("pool-*"))
    with hourglass.Client(cluster.address, timeout=30) as client:
        deadline = time.monotonic() + 60
        while not [w for w in client.workers() if w.id.startswith("pool-") and w.id != "pool-7"]:
            assert time.monotonic() < deadline, cluster.logs()
            time.sleep(0.5)
        ids = {w.id for w in client.workers()}
        assert "w-b" not in ids and {"w-a", "pool-7"} < ids and len(ids) == 3, ids


async def _owned_by(client: hourglass.AsyncClient, worker_id: str) -> set[int]:
    return {s.shard for s in (await client.shard_map()).shards if s.owner == worker_id}


async def test_a_worker_cannot_write_a_run_given_to_another_and_the_owners_run_completes(cluster: Cluster) -> None:
    cluster.start_coordinator()
    cluster.start_worker("w1")
    async with hourglass.AsyncClient(cluster.address, timeout=30) as client:
        for _ in range(120):  # w1 is up and owns every shard
            if len(await _owned_by(client, "w1")) == cluster.num_shards:
                break
            await asyncio.sleep(0.5)
        # A legitimate worker w2 (its own token) connects: it may get shards from w1, but a
        # shard w1 still has after that stays w1's (shards move as little as they can).
        assert (await _stream(cluster, "w2", "w2"))[0] == "registered"
        await asyncio.sleep(2)
        kept = await _owned_by(client, "w1")
        assert kept
        key = next(k for k in map(str, range(1000)) if shard_of(job_id_for_key("default", k), cluster.num_shards) in kept)
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
        spec = hourglass.JobSpec("owned", "sleep", hourglass.OnceTrigger(due), idempotency_key=key,
                                 params=hourglass.Payload(json.dumps({"seconds": 0.5}).encode(), "application/json"))  # fmt: skip
        job = await client.submit(spec)
        run_id = run_id_for(job.namespace, job.id, due, 1)
        forged = Run(job.namespace, job.id, run_id, due, 1, RunStatus.SUCCEEDED, "w2", due, due,
                     result=Payload(FORGED), completes=JobCompletion(due, 1))  # fmt: skip

        # Before the fire: w2 may not write w1's run (nor complete its job).
        code, details = await _stream(cluster, "w2", "w2", _event(forged))
        assert code == "PERMISSION_DENIED" and "run_events.finished[0].run_id" in details, details
        # Malformed events: refused, naming the field.
        far = Timestamp(seconds=10**12)  # past the year 9999
        refusals: dict[str, bytes | wpb.WorkerMessage] = {
            "run_events.finished[0].job_id": _event(forged, job_id=""),
            "run_events.finished[0].due": _event(forged, due=far),
            "run_events.finished[0].status": _event(forged, status=99),
            "run_events.finished[0].run_id": _event(forged, run_id=f"{job.namespace}:{job.id}:x:2"),
            "run_events.finished[0].worker_id": _event(forged, worker_id="w1"),  # a success put on w1
            "request": b"\xff\xff\xff",
        }
        for field, message in refusals.items():
            code, details = await _stream(cluster, "w2", "w2", message)
            assert code in ("INVALID_ARGUMENT", "PERMISSION_DENIED") and field in details, (field, code, details)
        assert (await client.get(job.id)).state is hourglass.JobState.ACTIVE

        # w1 runs it as it would have.
        for _ in range(120):
            run = next(iter((await client.runs(job.id)).items), None)
            if run is not None and run.status.finished:
                break
            await asyncio.sleep(0.5)
        assert run is not None and (run.run_id, run.status, run.worker_id) == (run_id, hourglass.RunStatus.SUCCEEDED, "w1")
        assert json.loads(run.result.data) == {"slept": 0.5}
        assert (await client.get(job.id)).state is hourglass.JobState.COMPLETED

        # After it: a later "result" from w2 changes nothing.
        late = Run(job.namespace, job.id, run_id, due, 1, RunStatus.FAILED, "w2", due, datetime.now(UTC) + timedelta(hours=1),
                   error="forged")  # fmt: skip
        assert (await _stream(cluster, "w2", "w2", _event(late)))[0] == "PERMISSION_DENIED"
        again = await client.get_run(run_id)
        assert (again.status, again.worker_id, again.result.data, again.error) == (run.status, "w1", run.result.data, "")
