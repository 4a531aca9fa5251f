"""The ingest loop's promises, with a stand-in consumer and producer (no broker) and a SQLite
store that is away for a while: nothing is committed before it is durable, consumption is
paused while the store is away, and a refused commit is left to the partition's next owner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from hourglass_coordinator.ingest import loop
from hourglass_coordinator.ingest.loop import Ingest
from hourglass_coordinator.jobs import JobsApi
from hourglass_core import wire
from hourglass_core.errors import Unavailable
from hourglass_core.models import Fire, JobFilter
from hourglass_core.store.base import Store
from hourglass_core.store.factory import open_store
from hourglass_pb.v1 import jobs_pb2 as pb


class Consumer:
    def __init__(self, commit_error: KafkaError | None = None) -> None:
        self.events: list[str] = []
        self.commit_error = commit_error

    async def consume(self, count: int, timeout: float) -> list[Message]:
        return []

    async def commit(self, offsets: Sequence[TopicPartition]) -> None:
        self.events.append("commit " + ",".join(f"{tp.partition}:{tp.offset}" for tp in offsets))
        if self.commit_error is not None:
            raise KafkaException(self.commit_error)

    async def pause(self, pause: bool) -> None:
        self.events.append("pause" if pause else "resume")

    async def lag(self) -> int:
        return 0


class Producer:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[tuple[bytes | None, list[tuple[str, bytes]]]] = []
        self.acked: list[bytes | None] = []
        self.failures = failures

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> None:
        self.sent.append((key, list(headers)))

    async def flush(self, timeout: float = 30.0) -> None:
        if self.failures:
            self.failures -= 1
            self.sent.clear()
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "broker away"))
        self.acked += [key for key, _ in self.sent]
        self.sent.clear()


class AwayFor:
    """The store, its job writes failing `failures` times first (as Cassandra away does)."""

    def __init__(self, store: Store, failures: int, events: list[str]) -> None:
        self._store, self.failures, self._events = store, failures, events

    async def create_jobs(self, jobs: Sequence[Any]) -> Any:
        if self.failures:
            self.failures -= 1
            self._events.append("store away")
            raise Unavailable("store away")
        self._events.append(f"stored {len(jobs)}")
        return await self._store.create_jobs(jobs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    opened = await open_store("sqlite://:memory:", migrate=True)
    await opened.register_executors(frozenset({"echo"}))
    yield opened
    await opened.close()


def _message(partition: int, offset: int, value: bytes) -> Message:
    return Message(topic="jobs", partition=partition, offset=offset, key=f"{partition}/{offset}".encode(), value=value)


def _spec(name: str) -> bytes:
    spec = pb.JobSpec(name=name, executor="echo")
    spec.trigger.once.at.CopyFrom(wire.ts(datetime.now(UTC) + timedelta(hours=1)))
    return spec.SerializeToString()


async def _nothing(fires: Sequence[Fire]) -> None:
    return None


def _ingest(store: Store, consumer: Consumer, producer: Producer, namespaces: frozenset[str] = frozenset()) -> Ingest:
    api = JobsApi(store, num_shards=4, max_params_bytes=1024, hint=_nothing)
    return Ingest(api, consumer, producer, dead_letter_topic="dead", batch=100, namespaces=namespaces)


async def test_a_store_away_pauses_consumption_and_nothing_is_committed_before_the_jobs_are_durable(store: Store) -> None:
    consumer = Consumer()
    away = AwayFor(store, 3, consumer.events)
    await _ingest(cast(Store, away), consumer, Producer()).handle(
        [_message(0, 5, _spec("a")), _message(1, 9, _spec("b")), _message(0, 6, _spec("c"))])
    assert consumer.events == ["store away", "pause", "store away", "store away", "stored 3", "resume", "commit 0:7,1:10"]
    jobs = await store.list_jobs("default", JobFilter(), 10, "")
    assert sorted((j.name, j.idempotency_key) for j in jobs.items) == [("a", "jobs/0/5"), ("b", "jobs/1/9"), ("c", "jobs/0/6")]


async def test_a_batch_read_again_makes_no_second_job(store: Store) -> None:
    batch = [_message(2, 0, _spec("once")), _message(2, 1, _spec("twice"))]
    await _ingest(store, Consumer(), Producer()).handle(batch)
    await _ingest(store, Consumer(), Producer()).handle(batch)  # the commit was lost: read again
    jobs = await store.list_jobs("default", JobFilter(), 10, "")
    assert sorted(j.name for j in jobs.items) == ["once", "twice"]


async def test_refused_messages_are_dead_lettered_before_the_commit_even_while_the_broker_is_away(store: Store) -> None:
    consumer, producer = Consumer(), Producer(failures=2)
    await _ingest(store, consumer, producer).handle([_message(0, 0, b"\xff\x01"), _message(0, 1, _spec("")),
                                                     _message(0, 2, _spec("fine"))])  # fmt: skip
    assert producer.acked == [b"0/0", b"0/1"]
    assert consumer.events == ["pause", "resume", "commit 0:3"]


async def test_a_spec_naming_a_namespace_the_topic_may_not_submit_to_is_dead_lettered(store: Store) -> None:
    producer = Producer()
    spec = pb.JobSpec.FromString(_spec("elsewhere"))
    spec.namespace = "payroll"
    await _ingest(store, Consumer(), producer, frozenset({"default"})).handle(
        [_message(0, 0, spec.SerializeToString()), _message(0, 1, _spec("here"))])
    assert producer.acked == [b"0/0"]
    jobs = await store.list_jobs("default", JobFilter(), 10, "")
    assert [j.name for j in jobs.items] == ["here"]


async def test_a_commit_refused_because_the_partition_moved_is_left_to_its_next_owner(store: Store) -> None:
    consumer = Consumer(commit_error=KafkaError(KafkaError.ILLEGAL_GENERATION, "rebalanced"))
    await _ingest(store, consumer, Producer()).handle([_message(0, 0, _spec("x"))])
    assert consumer.events == ["commit 0:1"]  # tried once, not retried, not raised



async def test_a_stop_while_the_store_is_away_leaves_the_batch_uncommitted_after_the_grace(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "STOP_GRACE_S", 0.2)

    class OneBatch(Consumer):
        async def consume(self, count: int, timeout: float) -> list[Message]:
            if self.events:
                await asyncio.sleep(timeout)
                return []
            self.events.append("consumed")
            return [_message(0, 0, _spec("x"))]

    consumer = OneBatch()
    stop = asyncio.Event()
    running = asyncio.create_task(_ingest(cast(Store, AwayFor(store, 10**6, [])), consumer, Producer()).run(stop))
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert consumer.events == ["consumed", "pause", "resume"]  # no commit


async def test_a_batch_written_before_the_one_read_before_it_commits_after_it(store: Store) -> None:
    class TwoBatches(Consumer):
        def __init__(self) -> None:
            super().__init__()
            self.batches = [[_message(0, 0, _spec("slow"))], [_message(0, 1, _spec("fast"))]]

        async def consume(self, count: int, timeout: float) -> list[Message]:
            if self.batches:
                return self.batches.pop(0)
            await asyncio.sleep(0.05)
            return []

    class SlowFirst(AwayFor):
        async def create_jobs(self, jobs: Sequence[Any]) -> Any:
            name = jobs[0][0].name
            if name == "slow":
                await asyncio.sleep(0.3)
            self._events.append(f"stored {name}")
            return await self._store.create_jobs(jobs)

    consumer = TwoBatches()
    stop = asyncio.Event()
    running = asyncio.create_task(_ingest(cast(Store, SlowFirst(store, 0, consumer.events)), consumer, Producer()).run(stop))
    while len(consumer.events) < 4:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(running, 5)
    # Both written at once; the later batch's offset waits for the earlier one's.
    assert consumer.events == ["stored fast", "stored slow", "commit 0:1", "commit 0:2"]


async def test_a_shutdown_step_that_will_not_end_is_given_up_after_its_time() -> None:
    from hourglass_coordinator.ingest.main import _bounded

    release = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:  # as a step that swallows its cancellation would
            await release.wait()

    assert not await _bounded("stuck", stuck(), timeout=0.1)
    release.set()
    assert await _bounded("quick", asyncio.sleep(0), timeout=1)
