"""Operability on real, secured processes (mutual TLS and tokens, Cassandra over TLS): gRPC
health that follows the backends and shutdown, server reflection, rich errors, and the
Prometheus metrics of a coordinator and a worker after real fires."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from benchmarks.cluster import Cluster, free_port, new_cluster
from hourglass_core.tls import channel_credentials
from tests.e2e.conftest import secured

JOB_SERVICE = "hourglass.v1.JobService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class PlainRedis:
    """A redis-server of this test's own on a fixed loopback port, to stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=open(self.directory / "redis.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115 - as long as the process
        )  # fmt: skip
        _until(lambda: _answers(self.port), 10, "redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _answers(port: int) -> bool:
    try:
        with redis.Redis(port=port, socket_timeout=0.5) as client:
            return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


def _until(done: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(why)
        time.sleep(0.1)


def _status(stub: health_pb2_grpc.HealthStub, service: str) -> int:
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[PlainRedis]:
    server = PlainRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_health_is_serving_while_the_backends_answer_and_not_while_redis_is_away_or_at_shutdown(
    tmp_path: Path, cassandra_tls: str, own_redis: PlainRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = secured(new_cluster(tmp_path, "health", secure=True, redis=own_redis.url, store_options=cassandra_tls),
                      monkeypatch)  # fmt: skip
    cluster.migrate()
    try:
        address = cluster.start_coordinator()
        # Mutual TLS, no token: the health service asks for none, the transport for a certificate.
        with grpc.secure_channel(address, cluster.credentials()) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            _until(lambda: _status(stub, "") == SERVING, 10, "never SERVING")
            assert _status(stub, JOB_SERVICE) == SERVING

            own_redis.stop()
            _until(lambda: _status(stub, "") == NOT_SERVING, 10, "still SERVING with Redis away")
            assert _status(stub, JOB_SERVICE) == NOT_SERVING
            own_redis.start()
            _until(lambda: _status(stub, "") == SERVING, 10, "not SERVING again once Redis was back")

            # A watcher hears NOT_SERVING at SIGTERM, before the server stops taking calls.
            watch = stub.Watch(health_pb2.HealthCheckRequest(service=JOB_SERVICE), timeout=30)
            assert next(watch).status == SERVING
            cluster.coordinators[0][1].send_signal(signal.SIGTERM)
            assert next(watch).status == NOT_SERVING
        without_certificate = channel_credentials(str(cluster.tmp / "certs" / "ca.pem"))
        with grpc.secure_channel(address, without_certificate) as channel, pytest.raises(grpc.RpcError):
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    finally:
        cluster.stop()


def _listed_services(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] | None) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    asked = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    [answer] = list(stub.ServerReflectionInfo(asked, metadata=metadata, timeout=10))
    return [service.name for service in answer.list_services_response.service]


def test_reflection_lists_the_services_to_a_caller_with_a_token_and_to_no_one_else(cluster: Cluster) -> None:
    address = cluster.start_coordinator()
    token = cluster.client_env()["HOURGLASS_TOKEN"]
    with grpc.secure_channel(address, cluster.credentials()) as channel:
        listed = _listed_services(channel, (("authorization", f"Bearer {token}"),))
        assert {JOB_SERVICE, "hourglass.v1.WorkerService", "grpc.health.v1.Health"} <= set(listed)
        with pytest.raises(grpc.RpcError) as refused:
            _listed_services(channel, None)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
