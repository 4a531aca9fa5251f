"""The metrics' pure parts and their edges, on real parts: the operations port over HTTP, the
store measured at its edge (SQLite), calls timed by method and code on a real grpc.aio server."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from prometheus_client import REGISTRY

import hourglass
from hourglass_coordinator.metrics import RpcMetrics
from hourglass_core.ops_http import OpsServer, split_address
from hourglass_core.store.factory import open_store
from hourglass_core.store.measured import OPERATIONS, measured
from hourglass_core.store.sqlite import SqliteStore
from hourglass_pb.v1 import jobs_pb2_grpc
from hourglass_worker.metrics import OUTCOMES, fire_metrics
from tests.unit.test_sdk_errors import FakeJobService


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Verdict:
    ok, why = False, "store: no answer within 2 s"


@pytest.fixture
def ops() -> Iterator[tuple[OpsServer, type[Verdict]]]:
    server = OpsServer("127.0.0.1:0", lambda: (Verdict.ok, Verdict.why))
    server.start()
    yield server, Verdict
    server.stop()


def test_the_operations_port_serves_metrics_and_health(ops: tuple[OpsServer, type[Verdict]]) -> None:
    server, verdict = ops
    base = f"http://127.0.0.1:{server.port}"
    fire_metrics()[("ops-test", "echo")].outcomes[hourglass.RunStatus.SUCCEEDED].inc()
    status, text = _get(f"{base}/metrics")
    assert status == 200
    assert 'hourglass_fires_total{executor="echo",namespace="ops-test",outcome="succeeded"} 1.0' in text
    assert _get(f"{base}/healthz") == (503, "unhealthy: store: no answer within 2 s\n")
    verdict.ok = True
    assert _get(f"{base}/healthz") == (200, "ok\n")
    assert _get(f"{base}/jobs")[0] == 404


def test_a_port_in_use_or_a_bad_address_is_refused_naming_it(ops: tuple[OpsServer, type[Verdict]]) -> None:
    server, _ = ops
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{server.port} for metrics"):
        OpsServer(f"127.0.0.1:{server.port}", lambda: (True, "")).start()
    for bad in ("9464", "host:", ":9464", "localhost:http"):
        with pytest.raises(ValueError, match="metrics_listen"):
            split_address(bad)
    assert split_address("[::1]:9464") == ("::1", 9464)


async def test_the_store_is_measured_at_its_edge_per_operation() -> None:
    store = measured(await open_store("sqlite://:memory:", migrate=True))
    try:
        before = _value("hourglass_store_request_seconds_count", operation="get_jobs")
        await store.get_jobs("default", ["a", "b"])
        await store.ping()
        assert _value("hourglass_store_request_seconds_count", operation="get_jobs") == before + 1
        assert "ping" in OPERATIONS and "migrate" not in OPERATIONS
        assert isinstance(store._store, SqliteStore)  # type: ignore[attr-defined]  # what is measured
    finally:
        await store.close()  # not measured: passed through


def test_each_namespace_and_executor_gets_its_children_once_with_every_outcome() -> None:
    fires = fire_metrics()
    first = fires[("billing", "http")]
    assert fires[("billing", "http")] is first
    assert set(first.outcomes) == set(OUTCOMES)
    assert hourglass.RunStatus.LOST not in first.outcomes  # recorded by whoever takes the shard


@pytest.fixture
async def timed_server() -> AsyncIterator[tuple[FakeJobService, str]]:
    fake = FakeJobService()
    server = grpc.aio.server(interceptors=[RpcMetrics()])
    jobs_pb2_grpc.add_JobServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield fake, f"127.0.0.1:{port}"
    await server.stop(None)


async def test_calls_are_timed_by_method_and_code(timed_server: tuple[FakeJobService, str]) -> None:
    fake, address = timed_server
    get = "hourglass.v1.JobService/GetJob"
    ok, missing = (_value("hourglass_rpc_seconds_count", method=get, code=c) for c in ("OK", "NOT_FOUND"))
    fake.fail("GetJob", grpc.StatusCode.NOT_FOUND)
    async with hourglass.AsyncClient(address, retry=hourglass.CallRetry(max_attempts=1)) as client:
        with pytest.raises(hourglass.JobNotFound):
            await client.get("gone")
        await client.get("j-1")
    assert _value("hourglass_rpc_seconds_count", method=get, code="OK") == ok + 1
    assert _value("hourglass_rpc_seconds_count", method=get, code="NOT_FOUND") == missing + 1
