"""Operability on real, secured processes (mutual TLS and tokens, Cassandra over TLS): gRPC
health that follows the backends and shutdown, server reflection, rich errors, and the
Prometheus metrics of a coordinator and a worker after real fires."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import redis
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from prometheus_client.parser import text_string_to_metric_families

import hourglass
from benchmarks.cluster import Cluster, client_credentials_from_env, free_port, new_cluster
from hourglass_core import wire
from hourglass_core.tls import channel_credentials
from hourglass_pb.v1 import jobs_pb2 as pb
from hourglass_pb.v1 import jobs_pb2_grpc
from tests.e2e.conftest import secured
from tests.e2e.waiting import until
from tests.e2e.workload import now, wait_for_executor

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
        until("redis-server answering", lambda: _answers(self.port), 10)

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
            until("SERVING", lambda: _status(stub, "") == SERVING, 10)
            assert _status(stub, JOB_SERVICE) == SERVING

            own_redis.stop()
            until("NOT_SERVING with Redis away", lambda: _status(stub, "") == NOT_SERVING, 10)
            assert _status(stub, JOB_SERVICE) == NOT_SERVING
            own_redis.start()
            until("SERVING again once Redis is back", lambda: _status(stub, "") == SERVING, 10)

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


def test_an_invalid_argument_carries_a_bad_request_naming_the_field_and_the_sdk_reads_it(cluster: Cluster) -> None:
    address = cluster.start_coordinator()
    cluster.start_worker("w1")
    with hourglass.Client(address) as client:
        wait_for_executor(client, "echo")  # else the executor is what the submit is refused for
    spec = hourglass.JobSpec("bad", "echo", hourglass.cron("99 * * * *"))
    credentials = client_credentials_from_env()  # mutual TLS and the test's token
    assert credentials is not None
    with grpc.secure_channel(address, credentials) as channel, pytest.raises(grpc.RpcError) as raw:
        jobs_pb2_grpc.JobServiceStub(channel).SubmitJob(pb.SubmitJobRequest(job=wire.spec_to_pb(spec)), timeout=10)
    assert raw.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(raw.value)
    assert status is not None and len(status.details) == 1
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    [violation] = bad.field_violations
    assert violation.field == "job.trigger.cron.expression"
    assert raw.value.details() == f"{violation.field}: {violation.description}"
    with hourglass.Client(address) as client, pytest.raises(hourglass.InvalidArgument) as caught:
        client.submit(spec)
    assert caught.value.field == "job.trigger.cron.expression"


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}  # fmt: skip


def _sample(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def test_a_worker_and_a_coordinator_count_the_fires_that_ran_and_their_lateness(cluster: Cluster) -> None:
    ports = {"coordinator": free_port(), "worker": free_port()}
    cluster.start_coordinator(HOURGLASS_METRICS_LISTEN=f"127.0.0.1:{ports['coordinator']}")
    cluster.start_worker("w1", HOURGLASS_METRICS_LISTEN=f"127.0.0.1:{ports['worker']}")
    namespace = "ops-metrics"
    retry = hourglass.JobOptions(retry=hourglass.RetryPolicy(max_attempts=2, initial_backoff=timedelta(milliseconds=200)))
    with hourglass.Client(cluster.address, timeout=30) as client:
        wait_for_executor(client, "echo")
        at = now() + timedelta(seconds=2)
        specs = [hourglass.JobSpec(f"ok-{i}", "echo", hourglass.once(at + i * timedelta(milliseconds=50)), namespace=namespace)
                 for i in range(12)]  # fmt: skip
        specs += [hourglass.JobSpec(f"fails-{i}", "fail", hourglass.once(at), namespace=namespace, options=retry)
                  for i in range(3)]  # fmt: skip
        # Lateness SLOs: two jobs due 5 s ago (they run at once, ~5 s late) breach a 1 s SLO; a
        # job on time keeps a 1-day one; a manual run of a late job is not judged.
        slo = "ops-slo"
        late = [hourglass.JobSpec(f"late-{i}", "echo", hourglass.once(now() - timedelta(seconds=5)), namespace=slo,
                                  options=hourglass.JobOptions(lateness_slo=timedelta(seconds=1))) for i in range(2)]
        kept = hourglass.JobSpec("kept", "echo", hourglass.once(at), namespace=slo,
                                 options=hourglass.JobOptions(lateness_slo=timedelta(days=1)))
        jobs = client.submit_many(specs)
        slo_jobs = client.submit_many([*late, kept])
        deadline = time.monotonic() + 60
        while sum(len([r for r in client.runs(j.id, j.namespace).items if r.status.finished])
                  for j in jobs + slo_jobs) < 12 + 3 * 2 + 3:  # fmt: skip
            assert time.monotonic() < deadline, "the fires did not all finish"
            time.sleep(0.5)
        client.trigger(slo_jobs[0].id, slo)
        until("the manual run finished", lambda: len(client.runs(slo_jobs[0].id, slo).items) == 2, 30)
        reports = [client.get(job.id, slo).slo_report for job in slo_jobs]
        assert [(r.checked, r.breaches) for r in reports if r is not None] == [(1, 1), (1, 1), (1, 0)]
        assert all(timedelta(seconds=4) < r.worst < timedelta(seconds=30) for r in reports[:2] if r is not None)
        assert client.get(jobs[0].id, namespace).slo_report is None  # no SLO, no report

    worker = _scrape(ports["worker"])
    fires = {outcome: _sample(worker, "hourglass_fires_total", namespace=namespace, executor=executor, outcome=outcome)
             for executor, outcome in (("echo", "succeeded"), ("fail", "failed"))}  # fmt: skip
    assert fires == {"succeeded": 12, "failed": 6}
    assert _sample(worker, "hourglass_runs_retried_total", namespace=namespace, cause="failed") == 3
    for executor, count in (("echo", 12), ("fail", 6)):
        labels = {"namespace": namespace, "executor": executor}
        assert _sample(worker, "hourglass_fire_lateness_seconds_count", **labels) == count
        buckets = [value for (name, key), value in worker.items()
                   if name == "hourglass_fire_lateness_seconds_bucket" and set(labels.items()) <= key]  # fmt: skip
        assert len(buckets) == 16 and sorted(buckets) == [
            _sample(worker, "hourglass_fire_lateness_seconds_bucket", **labels, le=le)
            for le in ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0",
                       "10.0", "30.0", "60.0", "+Inf")]  # fmt: skip
        assert max(buckets) == count
    assert _sample(worker, "hourglass_lateness_slo_breaches_total", namespace="ops-slo") == 2
    assert _sample(worker, "hourglass_lateness_slo_breaches_total", namespace=namespace) == 0
    assert _sample(worker, "hourglass_shards_owned") == cluster.num_shards
    assert _sample(worker, "hourglass_store_request_seconds_count", operation="claim_fires") > 0
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['worker']}/healthz", timeout=10) as answer:
        assert (answer.status, answer.read()) == (200, b"ok\n")

    coordinator = _scrape(ports["coordinator"])
    recorded = {status: _sample(coordinator, "hourglass_runs_recorded_total", namespace=namespace, status=status)
                for status in ("succeeded", "failed")}  # fmt: skip
    assert recorded == {"succeeded": 12, "failed": 6}
    assert _sample(coordinator, "hourglass_leader") == 1
    assert _sample(coordinator, "hourglass_worker_heartbeats_total") > 0
    assert _sample(coordinator, "hourglass_rpc_seconds_count", method="hourglass.v1.JobService/SubmitJobs", code="OK") == 2
    assert _sample(coordinator, "hourglass_store_request_seconds_count", operation="record_runs") > 0
