"""The SDK against a fake in-process JobService: status codes become domain errors, retries
happen exactly where they are safe, and submits carry an idempotency key."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import grpc.aio
import pytest

import hourglass
from hourglass._common import Attempts, CallRetry, channel_target, error_from_status
from hourglass_core import cluster_wire, rich_status, wire
from hourglass_core.cluster import WorkerState, WorkerStatus
from hourglass_core.models import Job, JobSpec, JobState, Run, RunStatus
from hourglass_pb.v1 import jobs_pb2 as pb
from hourglass_pb.v1 import jobs_pb2_grpc

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FAST = CallRetry(initial_backoff=0.005, max_backoff=0.02)
Code = grpc.StatusCode


def _job(job_id: str, spec: JobSpec | None = None, state: JobState = JobState.ACTIVE) -> Job:
    spec = spec or JobSpec(name="n", executor="echo", trigger=hourglass.OnceTrigger(at=T0))
    return Job(
        namespace=spec.namespace, id=job_id, name=spec.name, executor=spec.executor, trigger=spec.trigger,
        priority=spec.priority, params=spec.params, options=spec.options, labels=spec.labels,
        idempotency_key=spec.idempotency_key, state=state, created_at=T0, shard=1,
    )


class FakeJobService(jobs_pb2_grpc.JobServiceServicer):  # type: ignore[misc]
    """Records every request; `script[method]` lists (code, details) to fail the next calls with."""

    def __init__(self) -> None:
        self.calls: dict[str, list[object]] = {}
        self.script: dict[str, list[grpc.Status]] = {}
        self.delays: dict[str, list[float]] = {}

    def fail(self, method: str, *codes: grpc.StatusCode, details: str = "scripted", field: str = "",
             retry_after: float | None = None) -> None:  # fmt: skip
        """The next calls fail with `codes`, with google.rpc details where `field` or
        `retry_after` is given."""
        self.script[method] = [rich_status.status(code, details, field=field, retry_after=retry_after) for code in codes]

    async def _enter(self, method: str, request: object, context: grpc.aio.ServicerContext) -> None:
        self.calls.setdefault(method, []).append(request)
        delays = self.delays.get(method)
        if delays:
            await asyncio.sleep(delays.pop(0))
        script = self.script.get(method)
        if script:
            await context.abort_with_status(script.pop(0))

    async def SubmitJob(self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext) -> pb.SubmitJobResponse:
        await self._enter("SubmitJob", request, context)
        spec = wire.spec_from_pb(request.job, T0)
        return pb.SubmitJobResponse(job=wire.job_to_pb(_job("j-1", spec)), created=True)

    async def SubmitJobs(self, request: pb.SubmitJobsRequest, context: grpc.aio.ServicerContext) -> pb.SubmitJobsResponse:
        await self._enter("SubmitJobs", request, context)
        jobs = [_job(f"j-{i}", wire.spec_from_pb(s, T0)) for i, s in enumerate(request.jobs)]
        return pb.SubmitJobsResponse(results=[pb.SubmitJobResponse(job=wire.job_to_pb(j), created=True) for j in jobs])

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        await self._enter("GetJob", request, context)
        return wire.job_to_pb(_job(request.id))

    async def ListJobs(self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext) -> pb.ListJobsResponse:
        await self._enter("ListJobs", request, context)
        if not request.page_token:
            return pb.ListJobsResponse(jobs=[wire.job_to_pb(_job("a")), wire.job_to_pb(_job("b"))], next_page_token="p2")
        return pb.ListJobsResponse(jobs=[wire.job_to_pb(_job("c"))])

    async def CancelJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.Job:
        await self._enter("CancelJob", request, context)
        return wire.job_to_pb(_job(request.id, state=JobState.CANCELLED))

    async def GetRun(self, request: pb.GetRunRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        await self._enter("GetRun", request, context)
        run = Run(namespace="default", job_id="j", run_id=request.run_id, due=T0, attempt=1,
                  status=RunStatus.SUCCEEDED, started_at=T0 + timedelta(milliseconds=3))
        return wire.run_to_pb(run)


    async def GetWorker(self, request: pb.GetWorkerRequest, context: grpc.aio.ServicerContext) -> pb.Worker:
        await self._enter("GetWorker", request, context)
        return cluster_wire.worker_to_pb(WORKER)

    async def ListWorkers(self, request: pb.ListWorkersRequest, context: grpc.aio.ServicerContext) -> pb.ListWorkersResponse:
        await self._enter("ListWorkers", request, context)
        return pb.ListWorkersResponse(workers=[cluster_wire.worker_to_pb(WORKER)])


WORKER = WorkerStatus("w1", WorkerState.LEAVING, T0, T0 + timedelta(seconds=3), host="box", started_at=T0,
                      executors=frozenset({"echo"}), capacity=8, runs_in_progress=1, shards={3: 41, 5: 44},
                      ran_last_minute=9, lost_last_minute=1, coordinator="c1")  # fmt: skip


class ServerThread:
    """A grpc.aio server on 127.0.0.1:<free port>, in its own thread and event loop, so both the
    blocking and the asyncio client can call it."""

    def __init__(self, servicer: FakeJobService) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-job-service", daemon=True)
        self.thread.start()
        self.servicer = servicer
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> int:
        self.server = grpc.aio.server()
        jobs_pb2_grpc.add_JobServiceServicer_to_server(self.servicer, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return int(port)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    thread = ServerThread(FakeJobService())
    yield thread
    thread.stop()


@pytest.fixture
def fake(server: ServerThread) -> FakeJobService:
    server.servicer.__init__()  # type: ignore[misc]  # a clean script and call log per test
    return server.servicer


@pytest.fixture
def client(server: ServerThread) -> Iterator[hourglass.Client]:
    with hourglass.Client(f"127.0.0.1:{server.port}", timeout=5, retry=FAST) as c:
        yield c


def _spec(key: str = "") -> JobSpec:
    return JobSpec(name="report", executor="echo", trigger=hourglass.once(T0), idempotency_key=key)


# -- the mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "details", "expected", "text"),
    [
        (Code.INVALID_ARGUMENT, "job.trigger.cron.timezone: unknown zone", hourglass.InvalidArgument,
         "job.trigger.cron.timezone: unknown zone"),
        (Code.INVALID_ARGUMENT, "page token is garbage", hourglass.InvalidArgument, "page token is garbage"),
        (Code.NOT_FOUND, "nothing here", hourglass.NotFound, "nothing here"),
        (Code.FAILED_PRECONDITION, "job j is cancelled", hourglass.FailedPrecondition, "job j is cancelled"),
        (Code.UNAVAILABLE, "cassandra down", hourglass.Unavailable, "cassandra down"),
        (Code.DEADLINE_EXCEEDED, "too slow", hourglass.DeadlineExceeded, "too slow"),
        (Code.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!", hourglass.Unavailable,
         "coordinator overloaded: Concurrent RPC limit exceeded!"),
        (Code.INTERNAL, "boom", hourglass.HourglassError, "INTERNAL: boom"),
    ],
)
def test_each_status_code_becomes_its_domain_error(
    code: grpc.StatusCode, details: str, expected: type[Exception], text: str
) -> None:
    error = error_from_status(code, details)
    assert type(error) is expected
    assert str(error) == text


def test_invalid_argument_field_is_parsed_from_the_message_or_empty() -> None:
    named = error_from_status(Code.INVALID_ARGUMENT, "jobs[3].labels['a b']: too long")
    assert isinstance(named, hourglass.InvalidArgument) and named.field == "jobs[3].labels['a b']"
    unnamed = error_from_status(Code.INVALID_ARGUMENT, "bad request")
    assert isinstance(unnamed, hourglass.InvalidArgument) and unnamed.field == ""


def test_a_refused_executor_is_executor_not_allowed_with_its_field_and_other_denials_are_plain() -> None:
    why = "the policy of namespace 'billing' does not allow executor 'http' (allowed: echo)"
    refused = error_from_status(Code.PERMISSION_DENIED, f"jobs[2].executor: {why}")
    assert isinstance(refused, hourglass.ExecutorNotAllowed) and isinstance(refused, hourglass.PermissionDenied)
    assert refused.field == "jobs[2].executor" and str(refused) == f"jobs[2].executor: {why}"
    denied = error_from_status(Code.PERMISSION_DENIED, "svc has no admin permission in namespace 'billing'")
    assert type(denied) is hourglass.PermissionDenied


def test_a_policy_takes_a_list_of_names_not_one_string(client: hourglass.Client) -> None:
    with pytest.raises(TypeError, match="not one string"):
        client.set_namespace_policy("billing", "echo")


def test_deadline_exceeded_is_an_unavailable() -> None:
    assert issubclass(hourglass.DeadlineExceeded, hourglass.Unavailable)


def test_not_found_names_the_job_or_run_asked_for(client: hourglass.Client, fake: FakeJobService) -> None:
    fake.fail("GetJob", Code.NOT_FOUND)
    with pytest.raises(hourglass.JobNotFound, match="'j-9' not found in namespace 'team'"):
        client.get("j-9", namespace="team")
    fake.fail("GetRun", Code.NOT_FOUND)
    with pytest.raises(hourglass.RunNotFound, match="'r-1'"):
        client.get_run("r-1")
    fake.fail("GetWorker", Code.NOT_FOUND)
    with pytest.raises(hourglass.WorkerNotFound, match="'w-7'"):
        client.worker("w-7")


async def test_a_worker_reads_back_as_the_server_described_it(
    client: hourglass.Client, server: ServerThread, fake: FakeJobService
) -> None:
    fake.fail("ListWorkers", Code.UNAVAILABLE)  # a read: retried
    assert client.workers() == [WORKER]
    async with hourglass.AsyncClient(f"127.0.0.1:{server.port}", retry=FAST) as aclient:
        assert await aclient.worker("w1") == WORKER
    assert len(fake.calls["ListWorkers"]) == 2


# -- retries ------------------------------------------------------------------------------------


def test_get_succeeds_on_the_third_attempt_after_two_unavailable(client: hourglass.Client, fake: FakeJobService) -> None:
    fake.fail("GetJob", Code.UNAVAILABLE, Code.UNAVAILABLE)
    assert client.get("j-1").id == "j-1"
    assert len(fake.calls["GetJob"]) == 3


async def test_async_get_succeeds_on_the_third_attempt_after_two_unavailable(
    server: ServerThread, fake: FakeJobService
) -> None:
    fake.fail("GetJob", Code.UNAVAILABLE, Code.UNAVAILABLE)
    async with hourglass.AsyncClient(f"127.0.0.1:{server.port}", retry=FAST) as client:
        job = await client.get("j-1")
        run = await client.get_run("r-1")
        ids = [j.id async for j in client.iter_jobs(page_size=2)]
    assert job.id == "j-1" and run.run_id == "r-1" and ids == ["a", "b", "c"]
    assert len(fake.calls["GetJob"]) == 3


def test_retries_stop_after_max_attempts(client: hourglass.Client, fake: FakeJobService) -> None:
    fake.fail("GetJob", *[Code.UNAVAILABLE] * 10)
    with pytest.raises(hourglass.Unavailable, match="5 attempts"):
        client.get("j-1")
    assert len(fake.calls["GetJob"]) == 5


def test_reads_retry_a_deadline_that_passed(server: ServerThread, fake: FakeJobService) -> None:
    fake.delays["GetJob"] = [1.0]  # the first attempt outlives its 0.2 s deadline
    with hourglass.Client(f"127.0.0.1:{server.port}", timeout=0.2, retry=FAST) as client:
        assert client.get("j-1").id == "j-1"
    assert len(fake.calls["GetJob"]) == 2


def test_writes_do_not_retry_deadline_exceeded(client: hourglass.Client, fake: FakeJobService) -> None:
    fake.fail("CancelJob", Code.DEADLINE_EXCEEDED)
    with pytest.raises(hourglass.DeadlineExceeded):
        client.cancel("j-1")
    assert len(fake.calls["CancelJob"]) == 1


def test_cancel_is_retried_on_unavailable(client: hourglass.Client, fake: FakeJobService) -> None:
    fake.fail("CancelJob", Code.UNAVAILABLE)
    assert client.cancel("j-1").state is JobState.CANCELLED
    assert len(fake.calls["CancelJob"]) == 2


def test_invalid_argument_is_raised_at_once_with_its_field(client: hourglass.Client, fake: FakeJobService) -> None:
    fake.fail("SubmitJob", Code.INVALID_ARGUMENT, details="job.executor: no worker offers executor 'x'")
    with pytest.raises(hourglass.InvalidArgument) as caught:
        client.submit(_spec())
    assert caught.value.field == "job.executor"
    assert len(fake.calls["SubmitJob"]) == 1


def test_the_bad_request_names_the_field_when_the_message_does_not(client: hourglass.Client, fake: FakeJobService) -> None:
    fake.fail("SubmitJob", Code.INVALID_ARGUMENT, details="not a cron expression", field="job.trigger.cron.expression")
    with pytest.raises(hourglass.InvalidArgument) as caught:
        client.submit(_spec())
    assert caught.value.field == "job.trigger.cron.expression"
    assert str(caught.value) == "job.trigger.cron.expression: not a cron expression"


def test_a_retry_waits_as_long_as_the_retry_info_asks(client: hourglass.Client, fake: FakeJobService) -> None:
    fake.fail("GetJob", Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, details="busy", retry_after=0.2)
    started = time.monotonic()
    assert client.get("j-1").id == "j-1"
    assert time.monotonic() - started >= 0.4  # FAST alone waits at most 0.02 s a retry
    assert len(fake.calls["GetJob"]) == 3


async def test_the_async_client_waits_as_asked_and_an_error_says_how_long(server: ServerThread, fake: FakeJobService) -> None:
    fake.fail("GetJob", *[Code.RESOURCE_EXHAUSTED] * 2, details="busy", retry_after=0.15)
    retry = CallRetry(max_attempts=2, initial_backoff=0.005, max_backoff=0.02)
    async with hourglass.AsyncClient(f"127.0.0.1:{server.port}", retry=retry) as client:
        started = time.monotonic()
        with pytest.raises(hourglass.Unavailable, match="coordinator overloaded: busy") as caught:
            await client.get("j-1")
    assert time.monotonic() - started >= 0.15
    assert caught.value.retry_after == pytest.approx(0.15)


def test_details_that_do_not_match_their_status_are_ignored() -> None:
    status = rich_status.status(Code.INVALID_ARGUMENT, "job.name: too long", field="job.name")

    class Call:  # what grpc hands a client: here with another message than the details'
        def code(self) -> grpc.StatusCode:
            return Code.INVALID_ARGUMENT

        def details(self) -> str:
            return "rewritten by a proxy"

        def trailing_metadata(self) -> object:
            return status.trailing_metadata

    assert rich_status.read(Call()) == rich_status.NONE
    assert rich_status.read(object()) == rich_status.NONE


# -- idempotent submits ---------------------------------------------------------------------------


def test_submit_without_key_gets_one_and_every_retry_carries_it(client: hourglass.Client, fake: FakeJobService) -> None:
    fake.fail("SubmitJob", Code.UNAVAILABLE)
    job = client.submit(_spec())
    keys = [r.job.idempotency_key for r in fake.calls["SubmitJob"]]  # type: ignore[attr-defined]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1] == job.idempotency_key


def test_submit_refused_by_an_overloaded_coordinator_is_retried_with_its_key(
    client: hourglass.Client, fake: FakeJobService
) -> None:
    fake.fail("SubmitJob", Code.RESOURCE_EXHAUSTED)
    job = client.submit(_spec())
    keys = [r.job.idempotency_key for r in fake.calls["SubmitJob"]]  # type: ignore[attr-defined]
    assert len(keys) == 2 and keys[0] == keys[1] == job.idempotency_key


def test_each_submit_call_gets_its_own_key(client: hourglass.Client, fake: FakeJobService) -> None:
    client.submit(_spec())
    client.submit(_spec())
    first, second = (r.job.idempotency_key for r in fake.calls["SubmitJob"])  # type: ignore[attr-defined]
    assert first != second


def test_submit_keeps_the_callers_key(client: hourglass.Client, fake: FakeJobService) -> None:
    assert client.submit(_spec("mine")).idempotency_key == "mine"


def test_submit_with_idempotent_false_is_sent_once_without_key(client: hourglass.Client, fake: FakeJobService) -> None:
    fake.fail("SubmitJob", Code.UNAVAILABLE)
    with pytest.raises(hourglass.Unavailable):
        client.submit(_spec(), idempotent=False)
    assert [r.job.idempotency_key for r in fake.calls["SubmitJob"]] == [""]  # type: ignore[attr-defined]


def test_submit_many_keys_every_spec_and_retries(client: hourglass.Client, fake: FakeJobService) -> None:
    fake.fail("SubmitJobs", Code.UNAVAILABLE)
    jobs = client.submit_many([_spec(), _spec("given")])
    assert [j.id for j in jobs] == ["j-0", "j-1"]
    first, second = fake.calls["SubmitJobs"]
    assert [s.idempotency_key for s in first.jobs] == [s.idempotency_key for s in second.jobs]  # type: ignore[attr-defined]
    assert first.jobs[0].idempotency_key and first.jobs[1].idempotency_key == "given"  # type: ignore[attr-defined]


def test_iter_jobs_follows_page_tokens(client: hourglass.Client, fake: FakeJobService) -> None:
    assert [j.id for j in client.iter_jobs(page_size=2, state=JobState.ACTIVE)] == ["a", "b", "c"]
    first, second = fake.calls["ListJobs"]
    assert (first.page_token, second.page_token) == ("", "p2")  # type: ignore[attr-defined]
    assert first.state == pb.JOB_STATE_ACTIVE  # type: ignore[attr-defined]


# -- pure parts -----------------------------------------------------------------------------------


def test_backoff_grows_with_jitter_and_stops_at_the_time_budget() -> None:
    policy = CallRetry(max_attempts=10, initial_backoff=1.0, max_backoff=4.0, multiplier=2.0, max_elapsed=6.0)
    assert [policy.backoff(n, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 4.0]
    assert policy.backoff(3, rng=lambda: 0.0) == 2.0  # jitter keeps at least half
    now = [0.0]
    attempts = Attempts(policy, 1.0, frozenset({Code.UNAVAILABLE}), clock=lambda: now[0], rng=lambda: 1.0)
    delays = []
    while True:
        attempts.start()
        now[0] += 0.5  # each attempt fails after half a second
        delay = attempts.failed(Code.UNAVAILABLE)
        if delay is None:
            break
        delays.append(delay)
        now[0] += delay
    assert delays == [1.0, 2.0]  # a third wait (4 s) would end past the 6 s budget
    assert attempts.failed(Code.INVALID_ARGUMENT) is None


def test_a_retry_info_longer_than_the_backoff_sets_the_wait_within_the_budget() -> None:
    policy = CallRetry(max_attempts=10, initial_backoff=0.1, max_backoff=1.0, max_elapsed=5.0)
    attempts = Attempts(policy, 1.0, frozenset({Code.UNAVAILABLE}), clock=lambda: 0.0, rng=lambda: 1.0)
    attempts.start()
    assert attempts.failed(Code.UNAVAILABLE, retry_after=2.0) == 2.0
    assert attempts.failed(Code.UNAVAILABLE, retry_after=0.01) == 0.1  # the backoff, when longer
    assert attempts.failed(Code.UNAVAILABLE, retry_after=6.0) is None  # past the time budget


def test_several_addresses_make_one_round_robin_target() -> None:
    target, options = channel_target("127.0.0.1:7070, 127.0.0.1:7071")
    assert target == "ipv4:127.0.0.1:7070,127.0.0.1:7071"
    assert ("grpc.lb_policy_name", "round_robin") in options
    assert channel_target("[::1]:7070,[::1]:7071")[0] == "ipv6:[::1]:7070,[::1]:7071"
    assert channel_target("coord.internal:7070")[0] == "coord.internal:7070"


def test_address_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURGLASS_COORDINATOR", "10.0.0.1:9000")
    assert channel_target()[0] == "10.0.0.1:9000"
    monkeypatch.delenv("HOURGLASS_COORDINATOR")
    assert channel_target()[0] == "127.0.0.1:7070"
