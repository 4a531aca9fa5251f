"""The ingest loop: a batch of messages in, one job per message durable, dead letters sent,
then the batch's offsets committed. A crash anywhere before the commit reads the batch again,
and each message's idempotency key (its own, or its position) finds the job it made."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from confluent_kafka import Message, TopicPartition

from hourglass_coordinator.ingest import metrics
from hourglass_coordinator.ingest.decode import Position, check_namespace, dead_letter_headers, decode_spec
from hourglass_coordinator.ingest.kafka import retriable
from hourglass_coordinator.jobs import JobsApi
from hourglass_core.backoff import Backoff, RateLimitedLog
from hourglass_core.errors import HourglassError, InvalidArgument
from hourglass_core.models import JobSpec
from hourglass_core.store.base import Created

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)
T = TypeVar("T")
POLL_S = 0.5
# On SIGTERM, how long the batch in hand may take to become durable and committed; past it the
# batch is left uncommitted, to be read again (into the same jobs) by the partitions' next owner.
STOP_GRACE_S = 10.0


def _position(message: Message) -> Position:
    return Position(message.topic() or "", message.partition() or 0, message.offset() or 0)


def next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """What to commit after `messages`: per partition, the offset after the last one."""
    last: dict[tuple[str, int], int] = {}
    for message in messages:
        at = _position(message)
        last[(at.topic, at.partition)] = max(last.get((at.topic, at.partition), -1), at.offset)
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in sorted(last.items())]


class Source(Protocol):
    """What the loop needs of a consumer (kafka.ConsumerThread)."""

    async def consume(self, count: int, timeout: float) -> list[Message]: ...
    async def commit(self, offsets: Sequence[TopicPartition]) -> None: ...
    async def pause(self, pause: bool) -> None: ...
    async def lag(self) -> int: ...


class Sink(Protocol):
    """What the loop needs of a producer (kafka.Publisher)."""

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> None: ...
    async def flush(self, timeout: float = 30.0) -> None: ...


class Ingest:
    def __init__(self, api: JobsApi, consumer: Source, publisher: Sink, *,
                 dead_letter_topic: str, batch: int, namespaces: frozenset[str] = frozenset()) -> None:  # fmt: skip
        self._api = api
        self._consumer = consumer
        self._publisher = publisher
        self._dead_letter_topic = dead_letter_topic
        self._batch = batch
        self._namespaces = namespaces  # empty: any
        self._pauses = 0  # batches waiting for the store or the broker: paused while any is

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: consume, submit, dead-letter, commit. Two batches are in hand at
        most: the next one is read and written while this one's writes are under way (their
        store round trips overlap), and commits in order, after this one's. An unexpected
        error in a batch ends the loop (raised) with nothing after it committed."""
        previous: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                messages = [m for m in await self._consumer.consume(self._batch, POLL_S) if self._usable(m)]
                if messages:
                    current = asyncio.create_task(self.handle(messages, after=previous), name="ingest-batch")
                    if previous is not None:
                        await self._unless_stopped(previous, stop)
                    previous = current
                elif previous is not None and previous.done():
                    previous.result()
                    previous = None
                metrics.LAG.set(await self._consumer.lag())
        finally:
            if previous is not None:
                await self._unless_stopped(previous, stop)

    async def _unless_stopped(self, handling: asyncio.Task[None], stop: asyncio.Event) -> None:
        """Awaits a batch; once `stop` is set (the store away, say) it has STOP_GRACE_S more,
        then is left uncommitted (read again, into the same jobs, by the next owner)."""
        stopping = asyncio.create_task(stop.wait(), name="ingest-stop")
        try:
            await asyncio.wait({handling, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not handling.done():
                await asyncio.wait({handling}, timeout=STOP_GRACE_S)
            if not handling.done():
                log.warning("stopping with a batch not durable: left uncommitted")
                handling.cancel()
            await asyncio.gather(handling, return_exceptions=True)
            if not handling.cancelled():
                handling.result()  # an unexpected error: raised, so no later batch commits past it
        finally:
            stopping.cancel()

    @staticmethod
    def _usable(message: Message) -> bool:
        error = message.error()
        if error is not None:  # a consumer event (a broker away, a partition's end), not a message
            warn.warning(f"consume-{error.code()}", "kafka: %s", error)
        return error is None

    async def handle(self, messages: Sequence[Message], after: asyncio.Task[None] | None = None) -> None:
        """One batch: every message is a durable job or a durable dead letter before its
        offset is committed, and the batch `after` (read before it) is committed first: an
        offset never passes a message whose job is not durable. Cancelled if `after` was."""
        now = datetime.now(UTC)
        refused: list[tuple[Message, HourglassError]] = []
        specs: list[tuple[Message, JobSpec]] = []
        for message in messages:
            try:
                spec = decode_spec(message.value(), message.headers(), _position(message), now)
                specs.append((message, check_namespace(spec, self._namespaces)))
            except InvalidArgument as error:
                refused.append((message, error))
        outcomes = await self._durably("store", lambda: self._api.submit_each([spec for _, spec in specs]))
        for (message, _), outcome in zip(specs, outcomes, strict=True):
            if isinstance(outcome, Created):
                (metrics.CREATED if outcome.created else metrics.EXISTING).inc()
            else:
                refused.append((message, outcome))
        if refused:
            await self._durably("dead-letter", lambda: self._dead_letter(refused))
        if after is not None:
            await after  # raises if it failed or was abandoned: then nothing here is committed either
        await self._commit(messages)

    async def _dead_letter(self, refused: Sequence[tuple[Message, HourglassError]]) -> None:
        for message, error in refused:
            headers = dead_letter_headers(message.headers(), _position(message), error)
            self._publisher.send(self._dead_letter_topic, message.key(), message.value(), headers)
        await self._publisher.flush()
        metrics.DEAD_LETTERED.inc(len(refused))
        for message, error in refused:
            log.info("dead-lettered %s: %s", _position(message), error)

    async def _commit(self, messages: Sequence[Message]) -> None:
        try:
            await self._durably("commit", lambda: self._consumer.commit(next_offsets(messages)), give_up=True)
        except Exception as error:  # noqa: BLE001 - the partitions moved: their new owner reads them again
            log.warning("offsets not committed (%s): the batch's partitions' next owner re-submits it to the same jobs", error)

    async def _durably(self, what: str, write: Callable[[], Awaitable[T]], give_up: bool = False) -> T:
        """`write()` until it succeeds; while it fails, consumption is paused (backpressure:
        nothing more is read, nothing read is dropped). With `give_up`, an error that no retry
        can cure is raised."""
        backoff: Backoff | None = None
        try:
            while True:
                try:
                    return await write()
                except Exception as error:  # the store or the broker may be away for a while
                    if give_up and not retriable(error):
                        raise
                    if backoff is None:
                        backoff = Backoff(0.1, 5.0)
                        await self._paused(+1)
                    metrics.RETRIES.labels(what).inc()
                    warn.warning(what, "ingest: %s failed, consumption paused (retrying): %s", what, error)
                    await asyncio.sleep(backoff.next_delay())
        finally:
            if backoff is not None:
                await self._paused(-1)

    async def _paused(self, change: int) -> None:
        """Pauses consumption when the first waiting batch starts waiting, resumes it when the
        last one is done (the consumer's calls run in order on its thread)."""
        self._pauses += change
        if self._pauses == (1 if change > 0 else 0):
            metrics.PAUSED.set(1 if change > 0 else 0)
            await self._consumer.pause(change > 0)
