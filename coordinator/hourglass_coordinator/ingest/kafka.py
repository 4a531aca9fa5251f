"""The Kafka client configuration and the calls the ingest loop makes on it, in one thread.

confluent-kafka's calls block (librdkafka does the I/O in its own threads); every consumer call
runs on one dedicated thread, so they never overlap and the event loop never waits on them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

T = TypeVar("T")
# librdkafka defaults that do not suit a job intake: a SIGKILLed member's partitions would wait
# 45 s for its session to end; an unknown group would start at the end and skip what was sent.
Config = dict[str, str | int | bool]
CONSUMER_DEFAULTS: Config = {
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 2_000,
}
# A dead letter or a result is acknowledged by every in-sync replica, and sent once.
PRODUCER_DEFAULTS: Config = {"acks": "all", "enable.idempotence": True, "linger.ms": 5}


def parse_options(text: str) -> dict[str, str]:
    """`key=value,key=value` (librdkafka settings) to a dict; ValueError naming a bad item."""
    options: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"kafka option {item!r} is not key=value")
        options[key.strip()] = value.strip()
    return options


def consumer_config(brokers: str, group: str, extra: Mapping[str, str]) -> Config:
    return {**CONSUMER_DEFAULTS, "bootstrap.servers": brokers, "group.id": group, **extra}


def producer_config(brokers: str, extra: Mapping[str, str]) -> Config:
    return {**PRODUCER_DEFAULTS, "bootstrap.servers": brokers, **extra}


def retriable(error: BaseException) -> bool:
    """Whether a Kafka error may pass if tried again (a broker away: yes; a commit refused
    because the partition moved to another member: no, the new owner takes over)."""
    if not isinstance(error, KafkaException):
        return True
    kafka_error = error.args[0] if error.args else None
    return not isinstance(kafka_error, KafkaError) or kafka_error.retriable() or kafka_error.code() in (
        KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._MSG_TIMED_OUT, KafkaError._ALL_BROKERS_DOWN
    )


class ConsumerThread:
    """A Consumer whose every call runs on one thread of its own."""

    def __init__(self, config: Mapping[str, str | int | bool], topic: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="kafka-consumer")
        self._consumer = Consumer(dict(config))
        self._consumer.subscribe([topic])

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def consume(self, count: int, timeout: float) -> list[Message]:
        return await self._call(lambda: self._consumer.consume(count, timeout))

    async def commit(self, offsets: Sequence[TopicPartition]) -> None:
        """Synchronously; raises KafkaException if the broker refused any partition's."""
        done = await self._call(lambda: self._consumer.commit(offsets=list(offsets), asynchronous=False))
        failed = [tp for tp in done if tp.error is not None]
        if failed:
            raise KafkaException(failed[0].error)

    async def pause(self, pause: bool) -> None:
        """Stops (or restarts) fetching for every assigned partition: nothing is read while the
        store is away; what was read and not committed is read again by whoever owns it next."""
        def act() -> None:
            assigned = self._consumer.assignment()
            if assigned:
                (self._consumer.pause if pause else self._consumer.resume)(assigned)

        await self._call(act)

    async def lag(self) -> int:
        """Messages in the assigned partitions after this consumer's position (from the
        watermarks its last fetches saw: no broker round trip)."""
        def measure() -> int:
            total = 0
            for tp in self._consumer.position(self._consumer.assignment()):
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0 and tp.offset >= 0:
                    total += max(0, high - tp.offset)
            return total

        return await self._call(measure)

    async def close(self) -> None:
        """Leaves the group at once (its partitions move without waiting out the session)."""
        await self._call(self._consumer.close)
        self._pool.shutdown(wait=False)


class Publisher:
    """A producer whose sends are awaited until the brokers acknowledged them."""

    def __init__(self, config: Mapping[str, str | int | bool]) -> None:
        self._producer = Producer(dict(config))
        self._failed: KafkaError | None = None

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> None:
        """Queued (librdkafka batches and retries it); `flush` waits for it."""
        self._producer.produce(topic, value=value, key=key, headers=[(k, v) for k, v in headers], on_delivery=self._delivered)
        self._producer.poll(0)

    def _delivered(self, error: KafkaError | None, _message: object) -> None:
        if error is not None:
            self._failed = error

    async def flush(self, timeout: float = 30.0) -> None:
        """Waits until every queued message was acknowledged; raises KafkaException if one
        could not be delivered (send it again: a message sent twice is a duplicate at worst)."""
        left = await asyncio.to_thread(self._producer.flush, timeout)
        failed, self._failed = self._failed, None
        if failed is not None:
            raise KafkaException(failed)
        if left:
            raise KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, f"{left} messages not acknowledged in {timeout:g}s"))
