"""The worker's stream to a coordinator replica: reconnects, and re-sends every run event the
coordinator has not acknowledged, so no result is lost when a replica goes away. Events that
queue up while the stream is busy go out together, in one message."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta

import grpc

from hourglass_core import wire
from hourglass_core.models import Run
from hourglass_pb.v1 import worker_pb2 as wpb
from hourglass_pb.v1 import worker_pb2_grpc

log = logging.getLogger(__name__)
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 2.0
EVENTS_PER_MESSAGE = 64


class CoordinatorLink:
    def __init__(
        self,
        addresses: Sequence[str],
        register: wpb.Register,
        on_message: Callable[[wpb.CoordinatorMessage], None],
        heartbeat: Callable[[], wpb.Heartbeat],
        heartbeat_interval: timedelta,
        *,
        token: str = "",
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._credentials = credentials  # TLS; plaintext when None
        self._addresses = list(addresses)
        # The worker's bearer token (cluster:worker) where the coordinators ask for one.
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._register = register
        self._on_message = on_message
        self._heartbeat = heartbeat
        self._heartbeat_interval = heartbeat_interval.total_seconds()
        self._max_gap = 3 * self._heartbeat_interval  # a longer one breaks a run of heartbeats
        self._seq = 0
        self._unacked: dict[int, wpb.RunFinished] = {}
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._outbox: asyncio.Queue[wpb.RunFinished | None] = asyncio.Queue()  # None: just wakes
        self._beat_now = False
        self._all_acked = asyncio.Event()
        self._all_acked.set()
        self.connected = asyncio.Event()
        self._heartbeat_sent_at = float("-inf")  # loop time
        # Since when heartbeats have gone out without a gap long enough to matter (loop time).
        self._beating_since = float("inf")

    # -- events ---------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def run_finished(self, run: Run, token: int = 0) -> asyncio.Future[None]:
        """Queues the event (`token`: the fencing token its fire was claimed under, for the
        coordinator's log lines); the future is done once a replica acknowledged it (it is durable)."""
        seq = self._next_seq()
        event = wire.run_finished_to_pb(run, seq, token)
        self._unacked[seq] = event
        self._all_acked.clear()
        self._outbox.put_nowait(event)
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[seq] = durable
        return durable

    def _ack(self, seq: int) -> None:
        for done in [s for s in self._unacked if s <= seq]:
            del self._unacked[done]
            waiter = self._waiters.pop(done, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if not self._unacked:
            self._all_acked.set()

    async def send_heartbeat(self) -> None:
        """Sends a heartbeat next, ahead of queued run events (e.g. one that says the worker is
        leaving: its shards move only once the coordinator has read it)."""
        self._beat_now = True
        self._outbox.put_nowait(None)

    def beating_since(self) -> float:
        """Since when (loop time) heartbeats have gone out with no pause longer than three
        heartbeat intervals, up to now; infinity while they are paused. A worker whose
        heartbeats paused (it was frozen, or cut off from every replica) may have been declared
        dead meanwhile and its claims taken over, however fresh its heartbeats are again."""
        if asyncio.get_running_loop().time() - self._heartbeat_sent_at > self._max_gap:
            return float("inf")
        return self._beating_since

    def _beat_sent(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._heartbeat_sent_at > self._max_gap:
            self._beating_since = now  # a pause: the run of heartbeats starts again here
        self._heartbeat_sent_at = now

    @property
    def unacked(self) -> int:
        return len(self._unacked)

    async def flush(self, timeout: float) -> bool:
        """Waits until every event is acknowledged; False on timeout."""
        try:
            await asyncio.wait_for(self._all_acked.wait(), timeout)
            return True
        except TimeoutError:
            return False

    # -- the connection -------------------------------------------------------------------
    async def run(self) -> None:
        """Forever: keep one stream open to some replica."""
        attempt = 0
        while True:
            address = self._addresses[attempt % len(self._addresses)]
            try:
                await self._session(address)
                attempt = 0
            except grpc.aio.AioRpcError as error:
                log.warning("stream to %s ended: %s", address, error.code().name)
            except Exception as error:  # noqa: BLE001
                log.warning("stream to %s failed: %s", address, error)
            self.connected.clear()
            attempt += 1
            await asyncio.sleep(min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2 ** min(attempt, 5)))

    async def _session(self, address: str) -> None:
        options = [("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 5_000)]
        channel = (grpc.aio.secure_channel(address, self._credentials, options=options) if self._credentials is not None
                   else grpc.aio.insecure_channel(address, options=options))  # fmt: skip
        async with channel:
            stub = worker_pb2_grpc.WorkerServiceStub(channel)
            # Re-send in order what the last replica did not acknowledge; then live events.
            self._outbox = asyncio.Queue()
            for seq in sorted(self._unacked):
                self._outbox.put_nowait(self._unacked[seq])
            call = stub.Connect(self._messages(), metadata=self._metadata)
            async for message in call:
                kind = message.WhichOneof("kind")
                if kind == "registered":
                    self.connected.set()
                    log.info("connected to coordinator %s", address)
                elif kind == "ack":
                    self._ack(message.ack.seq)
                else:
                    self._on_message(message)

    async def _messages(self) -> AsyncIterator[wpb.WorkerMessage]:
        yield wpb.WorkerMessage(register=self._register)
        outbox = self._outbox
        loop = asyncio.get_running_loop()
        self._beat_sent()  # registering records a heartbeat too
        last_heartbeat = loop.time()
        while True:
            # Heartbeats go out on time even under a steady stream of run events.
            if self._beat_now or loop.time() - last_heartbeat >= self._heartbeat_interval:
                self._beat_now = False
                last_heartbeat = loop.time()
                yield wpb.WorkerMessage(heartbeat=self._heartbeat())
                self._beat_sent()
            wait = max(0.0, last_heartbeat + self._heartbeat_interval - loop.time())
            try:
                event = await asyncio.wait_for(outbox.get(), wait)
            except TimeoutError:
                continue
            events = [] if event is None else [event]
            while not outbox.empty() and len(events) < EVENTS_PER_MESSAGE:
                if (more := outbox.get_nowait()) is not None:
                    events.append(more)
            if events:
                yield wpb.WorkerMessage(run_events=wpb.RunEvents(finished=events))
