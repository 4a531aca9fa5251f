"""Authentication and permissions on a real coordinator (embedded: SQLite, the gRPC API, a
worker in the same loop that connects with its own token): one test per refusal, each with
the status the caller sees, and nothing stored by a refused call. Namespace executor policies
there, and on a secured cluster of processes on Cassandra and Redis."""

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
from benchmarks.cluster import Cluster, free_port
from hourglass import cli
from hourglass_core.auth import WORKER_GRANT, mint
from hourglass_core.config import Settings
from hourglass_core.firing import job_id_for_key
from hourglass_dev.main import embedded
from hourglass_pb.v1 import worker_pb2 as wpb
from hourglass_pb.v1 import worker_pb2_grpc
from hourglass_worker.executors import RunContext
from tests.e2e.workload import wait_for_executor

HOUR = timedelta(hours=1)
HERE = __name__
CALLED: set[str] = set()  # run ids whose `record` executor was called


async def record(ctx: RunContext) -> str:
    CALLED.add(ctx.run_id)
    return "ran"


class Secured:
    def __init__(self, address: str, secret_file: str) -> None:
        self.address = address
        self.secret_file = secret_file

    def token(self, *grants: str, subject: str = "svc", ttl: timedelta = HOUR, now: datetime | None = None) -> str:
        return mint(self.secret_file, subject, grants, ttl, now or datetime.now(UTC), secret=True)

    def client(self, token: str | None) -> hourglass.AsyncClient:
        return hourglass.AsyncClient(self.address, timeout=10, token=token or "",
                                     retry=hourglass.CallRetry(max_attempts=1))  # fmt: skip


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    secret = tmp_path / "jwt-secret"
    secret.write_text("x" * 48)
    address = f"127.0.0.1:{free_port()}"
    cluster = Secured(address, str(secret))
    settings = Settings(
        store=f"sqlite:///{tmp_path / 'hg.db'}", coordination="memory://", num_shards=4, listen=address,
        coordinator=address, executors=f"record={HERE}:record", auth_secret_file=str(secret),
        token=cluster.token(WORKER_GRANT, subject="dev-worker-1"),  # the embedded mode's worker
    )  # fmt: skip
    async with embedded(settings, workers=1):
        yield cluster


def _spec(namespace: str = "billing", at: datetime | None = None) -> hourglass.JobSpec:
    at = at or datetime.now(UTC) + timedelta(days=1)
    return hourglass.JobSpec("report", "record", hourglass.OnceTrigger(at), namespace=namespace)


async def _submit_when_ready(client: hourglass.AsyncClient, spec: hourglass.JobSpec) -> hourglass.Job:
    for _ in range(100):  # until the worker's executors are registered (its stream is up)
        try:
            return await client.submit(spec)
        except hourglass.InvalidArgument:
            await asyncio.sleep(0.1)
    raise AssertionError("the worker never connected with its token")


async def test_a_writer_submits_and_its_job_runs_on_a_worker_that_presented_its_token(secured: Secured) -> None:
    async with secured.client(secured.token("billing:write")) as writer:
        job = await _submit_when_ready(writer, _spec(at=datetime.now(UTC) + timedelta(seconds=1)))
        for _ in range(100):
            runs = (await writer.runs(job.id, namespace="billing")).items
            if runs and runs[0].status.finished:
                break
            await asyncio.sleep(0.1)
        assert runs[0].status is hourglass.RunStatus.SUCCEEDED


async def test_calls_without_a_valid_token_are_unauthenticated_and_store_nothing(secured: Secured) -> None:
    async with secured.client(secured.token("*:admin")) as admin:
        job = await _submit_when_ready(admin, _spec())
        before = (await admin.list(namespace="billing")).items
        forged = Secured(secured.address, secured.secret_file + ".other")
        Path(forged.secret_file).write_text("y" * 48)
        for token, why in (
            (None, "no bearer token"),
            (forged.token("*:admin"), "does not verify"),
            (secured.token("*:admin", ttl=HOUR, now=datetime.now(UTC) - 3 * HOUR), "expired"),
            ("not-a-jwt", "not a JWT"),
        ):
            async with secured.client(token) as caller:
                with pytest.raises(hourglass.Unauthenticated, match=why):
                    await caller.submit(_spec())
                with pytest.raises(hourglass.Unauthenticated):
                    await caller.get(job.id, namespace="billing")
        assert (await admin.list(namespace="billing")).items == before


async def test_a_caller_without_the_role_in_the_namespace_is_denied(secured: Secured) -> None:
    async with secured.client(secured.token("*:admin")) as admin:
        job = await _submit_when_ready(admin, _spec())
        before = (await admin.list(namespace="billing")).items
    async with secured.client(secured.token("billing:read", subject="dashboard")) as reader:
        assert (await reader.get(job.id, namespace="billing")).id == job.id
        with pytest.raises(hourglass.PermissionDenied, match="dashboard has no write permission in namespace 'billing'"):
            await reader.submit(_spec())
        with pytest.raises(hourglass.PermissionDenied):
            await reader.cancel(job.id, namespace="billing")
        with pytest.raises(hourglass.PermissionDenied, match="namespace 'ops'"):
            await reader.get(job.id, namespace="ops")  # before any look-up: no NOT_FOUND leaks
    async with secured.client(secured.token("ops:write")) as other:
        with pytest.raises(hourglass.PermissionDenied):
            await other.submit_many([_spec("ops"), _spec("billing")])
        with pytest.raises(hourglass.PermissionDenied):
            await other.get_run(f"billing:{job.id}:20270101T000000.000000Z:1")
    async with secured.client(secured.token("*:admin")) as admin:
        after = (await admin.list(namespace="billing")).items
        assert [j.id for j in after] == [j.id for j in before]
        assert (await admin.get(job.id, namespace="billing")).state is hourglass.JobState.ACTIVE
        assert (await admin.list(namespace="ops")).items == []


async def test_only_a_worker_token_opens_the_worker_stream(secured: Secured) -> None:
    register = wpb.WorkerMessage(register=wpb.Register(worker_id="intruder", executors=["record"], capacity=1))

    async def connect(token: str | None) -> grpc.StatusCode:
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        async with grpc.aio.insecure_channel(secured.address) as channel:
            call = worker_pb2_grpc.WorkerServiceStub(channel).Connect(iter([register]), metadata=metadata)
            try:
                async for _ in call:
                    return grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                return error.code()
        return grpc.StatusCode.OK

    assert await connect(None) is grpc.StatusCode.UNAUTHENTICATED
    assert await connect(secured.token("*:admin")) is grpc.StatusCode.PERMISSION_DENIED
    assert await connect(secured.token(WORKER_GRANT, subject="intruder")) is grpc.StatusCode.OK


async def test_the_cluster_itself_is_read_with_read_in_every_namespace_only(secured: Secured) -> None:
    async with secured.client(secured.token("billing:admin", subject="tenant")) as tenant:
        for read in (tenant.workers(), tenant.worker("dev-worker-1"), tenant.shard_map(), tenant.coordinators()):
            with pytest.raises(hourglass.PermissionDenied, match="tenant has no read permission in every namespace"):
                await read
    async with (secured.client(secured.token("*:read", subject="ops")) as ops,
                secured.client(secured.token("billing:write")) as writer):  # fmt: skip
        await _submit_when_ready(writer, _spec())  # the worker is up
        [worker] = await ops.workers()  # the embedded mode's one worker, on the in-process membership
        assert (worker.id, worker.state) == ("dev-worker-1", hourglass.WorkerState.ALIVE)
        shard_map = await ops.shard_map()
        [coordinator] = await ops.coordinators()
        assert coordinator.leader and shard_map.leader == coordinator.id and len(shard_map.shards) == 4
        with pytest.raises(hourglass.WorkerNotFound):
            await ops.worker("nobody")


# -- namespace executor policies --------------------------------------------------------------

POLICY_REFUSAL = "the policy of namespace 'billing' does not allow executor '{}' (allowed: echo)"
RETRIED_SOON = hourglass.JobOptions(retry=hourglass.RetryPolicy(max_attempts=3, initial_backoff=timedelta(milliseconds=200)))


async def _finished_runs(client: hourglass.AsyncClient, job_id: str, timeout: float = 20) -> list[hourglass.Run]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = (await client.runs(job_id, namespace="billing")).items
        if runs and all(r.status.finished for r in runs):
            return runs
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not run in {timeout} s")


async def test_only_a_namespaces_admin_limits_its_executors_and_a_submit_outside_them_is_refused_storing_nothing(
    secured: Secured,
) -> None:
    async with (secured.client(secured.token("billing:write", subject="ci")) as writer,
                secured.client(secured.token("billing:admin", subject="ops")) as admin):  # fmt: skip
        await _submit_when_ready(writer, _spec())
        with pytest.raises(hourglass.PermissionDenied, match="ci has no admin permission in namespace 'billing'"):
            await writer.set_namespace_policy("billing", ["echo"])
        assert await writer.get_namespace_policy("billing") == hourglass.NamespacePolicy("billing")  # no limit yet
        assert await admin.set_namespace_policy("billing", ["echo"]) == hourglass.NamespacePolicy("billing", frozenset({"echo"}))
        assert (await writer.get_namespace_policy("billing")).allowed_executors == {"echo"}
        before = [j.id for j in (await writer.list(namespace="billing")).items]

        with pytest.raises(hourglass.ExecutorNotAllowed) as refused:
            await writer.submit(replace(_spec(), idempotency_key="refused-1"))
        assert refused.value.field == "job.executor"
        assert str(refused.value) == "job.executor: " + POLICY_REFUSAL.format("record")
        with pytest.raises(hourglass.JobNotFound):
            await writer.get(job_id_for_key("billing", "refused-1"), namespace="billing")
        echo = hourglass.JobSpec("hello", "echo", hourglass.OnceTrigger(datetime.now(UTC) + timedelta(seconds=1)),
                                 namespace="billing", params=hourglass.json_params({"hi": 1}))  # fmt: skip
        with pytest.raises(hourglass.ExecutorNotAllowed) as refused:  # one refused job refuses the batch
            await writer.submit_many([echo, _spec()])
        assert refused.value.field == "jobs[1].executor"
        assert [j.id for j in (await writer.list(namespace="billing")).items] == before

        job = await writer.submit(echo)  # an allowed executor still runs
        [run] = await _finished_runs(writer, job.id)
        assert run.status is hourglass.RunStatus.SUCCEEDED and json.loads(run.result.data) == {"hi": 1}

        assert await admin.set_namespace_policy("billing", []) == hourglass.NamespacePolicy("billing")  # cleared
        assert (await writer.submit(_spec())).executor == "record"


async def test_a_job_accepted_before_its_namespaces_policy_narrowed_fails_with_the_policy_when_it_fires(
    secured: Secured,
) -> None:
    async with (secured.client(secured.token("billing:write")) as writer,
                secured.client(secured.token("billing:admin")) as admin):  # fmt: skip
        await _submit_when_ready(writer, _spec())
        job = await writer.submit(replace(_spec(at=datetime.now(UTC) + timedelta(seconds=4)), options=RETRIED_SOON))
        await admin.set_namespace_policy("billing", ["echo"])  # the worker reads it within 2 s
        [run] = await _finished_runs(writer, job.id)
        assert (run.status, run.attempt, run.error) == (hourglass.RunStatus.FAILED, 1, POLICY_REFUSAL.format("record"))
        assert run.run_id not in CALLED and run.started_at is None  # the executor was never called
        await asyncio.sleep(1.5)  # a retry would have run by now
        assert len((await writer.runs(job.id, namespace="billing")).items) == 1
        assert (await writer.get(job.id, namespace="billing")).state is hourglass.JobState.COMPLETED


@pytest.mark.cassandra
def test_on_a_cluster_a_narrowed_policy_refuses_submits_and_fails_the_fires_of_jobs_accepted_before(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("w1")
    writer_token = mint(str(cluster.tmp / "jwt-secret"), "ci", ["billing:write"], HOUR, datetime.now(UTC), secret=True)
    sleep = hourglass.JobSpec("nap", "sleep", hourglass.OnceTrigger(datetime.now(UTC) + HOUR), namespace="billing",
                              params=hourglass.json_params({"seconds": 0.1}), options=RETRIED_SOON)  # fmt: skip
    with (hourglass.Client(cluster.address, timeout=30) as admin,  # $HOURGLASS_TOKEN: *:admin
          hourglass.Client(cluster.address, timeout=30, token=writer_token) as writer):  # fmt: skip
        wait_for_executor(admin, "sleep")
        with pytest.raises(hourglass.PermissionDenied, match="ci has no admin permission"):
            writer.set_namespace_policy("billing", ["echo"])
        before = writer.submit(replace(sleep, trigger=hourglass.OnceTrigger(datetime.now(UTC) + timedelta(seconds=6))))

        assert cli.main(["--coordinator", cluster.address, "namespace", "policy", "billing", "--allow", "echo"]) == 0
        assert capsys.readouterr().out == "namespace billing: executors limited to echo\n"
        with pytest.raises(hourglass.ExecutorNotAllowed) as refused_submit:
            writer.submit(replace(sleep, idempotency_key="refused-2"))
        assert str(refused_submit.value) == "job.executor: " + POLICY_REFUSAL.format("sleep")
        with pytest.raises(hourglass.JobNotFound):
            writer.get(job_id_for_key("billing", "refused-2"), namespace="billing")
        echo = writer.submit(hourglass.JobSpec("hello", "echo", hourglass.OnceTrigger(datetime.now(UTC) + timedelta(seconds=1)),
                                               namespace="billing"))  # fmt: skip

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            runs = {j.id: writer.runs(j.id, namespace="billing").items for j in (before, echo)}
            if all(r and r[0].status.finished for r in runs.values()):
                break
            time.sleep(0.2)
        assert [r.status for r in runs[echo.id]] == [hourglass.RunStatus.SUCCEEDED], cluster.logs()
        [refused] = runs[before.id]
        assert (refused.status, refused.attempt, refused.error) == (
            hourglass.RunStatus.FAILED, 1, POLICY_REFUSAL.format("sleep"))
        time.sleep(1.5)  # a retry would have run by now
        assert len(writer.runs(before.id, namespace="billing").items) == 1

        assert cli.main(["--coordinator", cluster.address, "namespace", "show", "billing", "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == {"namespace": "billing", "allowed_executors": ["echo"]}
