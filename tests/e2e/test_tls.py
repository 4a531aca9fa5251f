"""TLS and mutual TLS on a real coordinator (embedded: SQLite, the gRPC API, a worker in the
same loop that connects with its client certificate), with certificates from
`hourglass certs dev`: who gets through, and who is turned away at the handshake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

import hourglass
from benchmarks.cluster import free_port
from hourglass import cli
from hourglass_core.config import Settings
from hourglass_dev.main import embedded
from hourglass_pb.v1 import worker_pb2 as wpb
from hourglass_pb.v1 import worker_pb2_grpc

HERE = __name__


async def record(ctx: object) -> str:
    return "ran"


@pytest.fixture
async def mtls(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    certs = tmp_path / "certs"
    assert cli.main(["certs", "dev", str(certs), "--worker-name", "dev-worker-*"]) == 0  # the embedded workers
    address = f"127.0.0.1:{free_port()}"
    settings = Settings(
        store=f"sqlite:///{tmp_path / 'hg.db'}", coordination="memory://", num_shards=4, listen=address,
        coordinator=address, executors=f"record={HERE}:record",
        tls_cert_file=str(certs / "coordinator.pem"), tls_key_file=str(certs / "coordinator.key"),
        tls_client_ca_file=str(certs / "ca.pem"),
        tls_ca_file=str(certs / "ca.pem"), tls_client_cert_file=str(certs / "worker.pem"),
        tls_client_key_file=str(certs / "worker.key"),
    )  # fmt: skip
    async with embedded(settings, workers=1):
        yield address, certs


def _client(address: str, credentials: grpc.ChannelCredentials | None) -> hourglass.AsyncClient:
    return hourglass.AsyncClient(address, timeout=5, credentials=credentials, retry=hourglass.CallRetry(max_attempts=1))


async def test_a_client_with_its_certificate_submits_and_the_job_runs_on_a_worker_over_mutual_tls(
    mtls: tuple[str, Path],
) -> None:
    address, certs = mtls
    credentials = hourglass.tls_credentials(str(certs / "ca.pem"), str(certs / "client.pem"), str(certs / "client.key"))
    async with _client(address, credentials) as client:
        spec = hourglass.JobSpec("tls", "record", hourglass.OnceTrigger(datetime.now(UTC) + timedelta(seconds=1)))
        for _ in range(100):  # until the worker, over mutual TLS too, has offered its executors
            try:
                job = await client.submit(spec)
                break
            except hourglass.InvalidArgument:
                await asyncio.sleep(0.1)
        for _ in range(100):
            runs = (await client.runs(job.id)).items
            if runs and runs[0].status.finished:
                break
            await asyncio.sleep(0.1)
        assert runs[0].status is hourglass.RunStatus.SUCCEEDED
    flags = ["--coordinator", address, "--tls-ca", str(certs / "ca.pem"), "--tls-cert", str(certs / "client.pem"),
             "--tls-key", str(certs / "client.key")]  # fmt: skip
    assert await asyncio.to_thread(cli.main, ["get", job.id, *flags]) == 0
    assert await asyncio.to_thread(cli.main, ["get", job.id, "--coordinator", address, "--timeout", "2s"]) == cli.EXIT_UNAVAILABLE


async def test_plaintext_a_missing_client_certificate_or_another_ca_is_turned_away(
    mtls: tuple[str, Path], tmp_path: Path
) -> None:
    address, certs = mtls
    assert cli.main(["certs", "dev", str(tmp_path / "other")]) == 0
    ca, other = str(certs / "ca.pem"), tmp_path / "other"
    mine = (str(certs / "client.pem"), str(certs / "client.key"))
    turned_away = {
        "plaintext": None,
        "no client certificate": hourglass.tls_credentials(ca),
        "another CA": hourglass.tls_credentials(str(other / "ca.pem"), *mine),
        "a certificate another CA signed": hourglass.tls_credentials(ca, str(other / "client.pem"), str(other / "client.key")),
    }
    for what, credentials in turned_away.items():
        async with _client(address, credentials) as client:
            with pytest.raises(hourglass.Unavailable):
                await client.list()
                raise AssertionError(f"{what}: let in")


async def test_without_tokens_a_worker_registers_only_as_what_its_client_certificate_names(
    mtls: tuple[str, Path],
) -> None:
    address, certs = mtls
    worker = grpc.ssl_channel_credentials((certs / "ca.pem").read_bytes(), (certs / "worker.key").read_bytes(),
                                          (certs / "worker.pem").read_bytes())  # fmt: skip

    async def register(worker_id: str) -> grpc.StatusCode | str:
        hello = wpb.WorkerMessage(register=wpb.Register(worker_id=worker_id, executors=["record"], capacity=1))
        async with grpc.aio.secure_channel(address, worker) as channel:
            call = worker_pb2_grpc.WorkerServiceStub(channel).Connect(iter([hello]))
            try:
                async for message in call:
                    return message.WhichOneof("kind")
            except grpc.aio.AioRpcError as error:
                assert "register.worker_id" in (error.details() or "")
                return error.code()
        return grpc.StatusCode.OK

    assert await register("intruder") is grpc.StatusCode.PERMISSION_DENIED  # the certificate says dev-worker-*
    assert await register("dev-worker-9") == "registered"
    async with _client(address, hourglass.tls_credentials(str(certs / "ca.pem"), str(certs / "client.pem"),
                                                         str(certs / "client.key"))) as client:  # fmt: skip
        assert "intruder" not in {w.id for w in await client.workers()}
