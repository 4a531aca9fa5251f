"""Authentication and permissions on a real coordinator (embedded: SQLite, the gRPC API, a
worker in the same loop that connects with its own token): one test per refusal, each with
the status the caller sees, and nothing stored by a refused call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

import hourglass
from benchmarks.cluster import free_port
from hourglass_core.auth import WORKER_GRANT, mint
from hourglass_core.config import Settings
from hourglass_dev.main import embedded
from hourglass_pb.v1 import worker_pb2 as wpb
from hourglass_pb.v1 import worker_pb2_grpc

HOUR = timedelta(hours=1)
HERE = __name__


async def record(ctx: object) -> str:
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
        token=cluster.token(WORKER_GRANT, subject="worker"),
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
    assert await connect(secured.token(WORKER_GRANT, subject="w2")) is grpc.StatusCode.OK
