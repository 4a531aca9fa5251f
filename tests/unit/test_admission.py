"""The admission limit on a real grpc.aio server: calls beyond it are refused at once with
RESOURCE_EXHAUSTED and a RetryInfo the SDK reads; every call that ends, however, makes room."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

import hourglass
from hourglass_coordinator.admission import RETRY_AFTER_S, Admission, method_kinds
from hourglass_core import rich_status
from hourglass_pb.v1 import jobs_pb2 as pb
from hourglass_pb.v1 import jobs_pb2_grpc
from tests.unit.test_sdk_errors import FakeJobService

ONCE = hourglass.CallRetry(max_attempts=1)


class Served:
    def __init__(self, server: grpc.aio.Server, fake: FakeJobService, admission: Admission, port: int) -> None:
        self.server, self.fake, self.admission, self.address = server, fake, admission, f"127.0.0.1:{port}"


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    fake = FakeJobService()
    admission = Admission(1, method_kinds([pb.DESCRIPTOR.services_by_name["JobService"]]))
    server = grpc.aio.server(interceptors=[admission])
    jobs_pb2_grpc.add_JobServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield Served(server, fake, admission, port)
    await server.stop(None)


async def test_a_call_beyond_the_limit_is_refused_with_a_retry_info_and_room_comes_back(served: Served) -> None:
    served.fake.delays["GetJob"] = [0.5]
    async with hourglass.AsyncClient(served.address, retry=ONCE) as client:
        slow = asyncio.create_task(client.get("j-1"))
        await asyncio.sleep(0.2)
        assert served.admission.in_flight == 1
        with pytest.raises(hourglass.Unavailable, match="coordinator overloaded: coordinator busy") as caught:
            await client.get("j-2")
        assert caught.value.retry_after == RETRY_AFTER_S
        async with grpc.aio.insecure_channel(served.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raw:
                await jobs_pb2_grpc.JobServiceStub(channel).GetJob(pb.GetJobRequest(id="j-3"))
        assert raw.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert rich_status.read(raw.value).retry_after == RETRY_AFTER_S
        assert (await slow).id == "j-1"
        assert [r.id for r in served.fake.calls["GetJob"]] == ["j-1"]  # type: ignore[attr-defined]  # refused unread
        assert served.admission.in_flight == 0
        assert (await client.get("j-4")).id == "j-4"


async def test_calls_that_fail_or_are_cancelled_make_room_too(served: Served) -> None:
    served.fake.fail("GetJob", grpc.StatusCode.NOT_FOUND)
    served.fake.delays["CancelJob"] = [5.0]
    async with hourglass.AsyncClient(served.address, retry=ONCE) as client:
        with pytest.raises(hourglass.JobNotFound):
            await client.get("gone")
        assert served.admission.in_flight == 0
        cancelled = asyncio.create_task(client.cancel("j-1"))
        await asyncio.sleep(0.2)
        assert served.admission.in_flight == 1
        cancelled.cancel()
        for _ in range(50):
            if served.admission.in_flight == 0:
                break
            await asyncio.sleep(0.02)
        assert served.admission.in_flight == 0
        assert (await client.get("j-2")).id == "j-2"


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_concurrent_rpcs must be at least 1"):
        Admission(0, {})
