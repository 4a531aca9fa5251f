"""The WorkerService servicer: one bidirectional stream per connected worker.

Each replica keeps the streams of the workers connected to it, records their heartbeats in the
membership backend, writes their run events to the store (acknowledging each once durable), and
pushes to them their part of the shard map, fire hints and halts.

A stream is the worker its credentials name (worker_identity), and writes only the runs of
fires given to it (run_ownership); anything else ends the stream, with nothing of the refused
message written.

A backend outage does not end a stream: a run event whose write fails is written again, with
backoff, for as long as the stream is open (its worker re-sends it to whichever replica it
reaches next otherwise), and a heartbeat that cannot be recorded is dropped (the next one
follows shortly).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from hourglass_coordinator.metrics import HEARTBEATS, count_recorded, runs_recorded
from hourglass_coordinator.read_cache import ReadCache
from hourglass_coordinator.run_counts import MinuteCount
from hourglass_coordinator.run_ownership import flaw, foreign, strays
from hourglass_coordinator.run_watch import RunWatch
from hourglass_coordinator.worker_identity import Identify, refusal
from hourglass_core import logs, rich_status, wire
from hourglass_core.backoff import Backoff, RateLimitedLog, until_done
from hourglass_core.coalesce import Coalescer, coalesced_writes
from hourglass_core.errors import InvalidArgument
from hourglass_core.leases.base import Membership, ShardMap, WorkerInfo
from hourglass_core.models import Fire, FireKind, Run, RunStatus
from hourglass_core.sharding import shard_of
from hourglass_core.store.base import Store
from hourglass_pb.v1 import worker_pb2 as wpb
from hourglass_pb.v1 import worker_pb2_grpc

log = logging.getLogger(__name__)
trace = logging.getLogger("hourglass_coordinator.trace")  # a line per run recorded, when on
warn = RateLimitedLog(log)
SHARD_MAP_POLL_S = 0.1


class AckTracker:
    """Acknowledges run events up to the highest seq below which every event is written,
    although events are written concurrently and finish out of order."""

    def __init__(self) -> None:
        self._done: set[int] = set()
        self._pending: set[int] = set()
        self.acked = 0

    def start(self, seq: int) -> None:
        self._pending.add(seq)

    def finish(self, seq: int) -> int | None:
        """Marks seq written; returns the new ack watermark when it moved."""
        self._pending.discard(seq)
        self._done.add(seq)
        floor = min(self._pending) if self._pending else None
        ready = sorted(s for s in self._done if floor is None or s < floor)
        if not ready:
            return None
        self._done.difference_update(ready)
        self.acked = max(self.acked, ready[-1])
        return self.acked


class _Connection:
    def __init__(self, info: WorkerInfo) -> None:
        self.info = info
        self.outbox: asyncio.Queue[wpb.CoordinatorMessage | None] = asyncio.Queue()  # None: just wakes
        # The latest assignment not yet sent: it goes out ahead of queued acks and hints (a
        # hand-over waits for it), and a newer one replaces it.
        self.assignment: wpb.CoordinatorMessage | None = None
        self.pushed: tuple[int, ...] | None = None  # the shards last assigned to it
        self.beat: asyncio.Task[None] | None = None  # the heartbeat being recorded
        self.runs_in_progress = 0  # as its last heartbeat said
        self.ran = MinuteCount()  # runs it finished
        self.refused: Any = None  # a grpc.Status that ends the stream: it sent what it may not

    def record(self) -> WorkerInfo:
        """What a heartbeat records: who it is, and its latest figures."""
        return replace(self.info, runs_in_progress=self.runs_in_progress, ran_last_minute=self.ran.total())


# Runs that did not run (and the start records of long runs) do not count as runs finished.
_NOT_RAN = frozenset({RunStatus.RUNNING, RunStatus.SKIPPED, RunStatus.LOST})


def _where(kind: str, index: int) -> str:
    """The field of the stream message that carries the run event `index`."""
    return "run_finished" if kind == "run_finished" else f"run_events.finished[{index}]"


def _peer_host(peer: str) -> str:
    """The address part of a gRPC peer ("ipv4:10.0.0.5:51234", "ipv6:[::1]:51234")."""
    return peer.partition(":")[2].rpartition(":")[0].strip("[]")


class WorkerStreams(worker_pb2_grpc.WorkerServiceServicer):  # type: ignore[misc]  # generated, untyped
    def __init__(
        self,
        replica_id: str,
        store: Store,
        membership: Membership,
        *,
        num_shards: int,
        heartbeat_interval: timedelta,
        worker_timeout: timedelta,
        cache: ReadCache | None = None,
        identify: Identify = lambda _context: None,
    ) -> None:
        self._replica_id = replica_id
        self._identify = identify
        self.watch = RunWatch(lambda fire: membership.publish_hint("", fire), lambda run_id: store.get_run(run_id))
        self._cache = cache or ReadCache(0)
        self._store = store
        self._membership = membership
        self._num_shards = num_shards
        self._heartbeat_interval = heartbeat_interval
        self._worker_timeout = worker_timeout
        self._connections: dict[str, _Connection] = {}
        self._background: set[asyncio.Task[None]] = set()
        # Run events of every stream go to the store together (see coalesce): an item is the
        # events of one message.
        self._runs: Coalescer[None, list[Run], None] = coalesced_writes(
            lambda groups: store.record_runs([run for group in groups for run in group]),
            max_items=4, max_flushing=4, name="run-events",
        )
        self.shard_map = ShardMap(0, {})
        self._recorded = runs_recorded()
        # Told of the runs of each batch once durable (the dashboard's lateness chart); None
        # (the default) costs one test per batch.
        self.on_recorded: Callable[[Sequence[Run]], None] | None = None

    # -- the stream -----------------------------------------------------------------------
    async def Connect(
        self,
        request_iterator: AsyncIterator[wpb.WorkerMessage],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[wpb.CoordinatorMessage]:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("kind") != "register" or not first.register.worker_id:
            why = "the first message must be register with a worker_id"
            await context.abort_with_status(rich_status.status(grpc.StatusCode.INVALID_ARGUMENT, why, field="register"))
            return
        reg = first.register
        try:
            started = wire.from_ts(reg.started_at, reg.HasField("started_at"), "register.started_at")
        except InvalidArgument as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            return
        if (denied := refusal(reg.worker_id, self._identify(context))) is not None:
            log.warning("refused a worker stream: %s", denied)
            await context.abort_with_status(rich_status.status(grpc.StatusCode.PERMISSION_DENIED, denied,
                                                               field="register.worker_id"))  # fmt: skip
            return
        info = WorkerInfo(reg.worker_id, frozenset(reg.executors), reg.capacity, self._replica_id,
                          host=reg.host or _peer_host(context.peer() or ""), started_at=started)  # fmt: skip
        self._in_background(self._register_executors(info.executors), f"executors-{info.worker_id}")
        conn = _Connection(info)
        self._beat(conn)
        self._connections[info.worker_id] = conn
        log.info("worker %s connected (executors %s)", info.worker_id, sorted(info.executors))
        yield wpb.CoordinatorMessage(
            registered=wpb.Registered(
                num_shards=self._num_shards, heartbeat_interval=wire.dur(self._heartbeat_interval)
            )
        )
        self._push_assignment(conn)
        reader = asyncio.create_task(self._read(conn, request_iterator), name=f"read-{info.worker_id}")
        try:
            async for message in self._outgoing(conn, reader):
                yield message
            if conn.refused is not None:
                await context.abort_with_status(conn.refused)
        finally:
            reader.cancel()
            if self._connections.get(info.worker_id) is conn:
                del self._connections[info.worker_id]
            if conn.info.leaving:
                # It said goodbye and hung up: no need to wait out its heartbeat timeout.
                self._in_background(self._membership.remove_worker(info.worker_id), f"remove-{info.worker_id}")
            log.info("worker %s stream closed", info.worker_id)

    @staticmethod
    async def _outgoing(conn: _Connection, reader: asyncio.Task[None]) -> AsyncIterator[wpb.CoordinatorMessage]:
        """What to send the worker, until its side of the stream ends or it is refused: its
        assignment first."""
        while not reader.done() and conn.refused is None:
            if conn.assignment is not None:
                message, conn.assignment = conn.assignment, None
                yield message
                continue
            if conn.outbox.empty():
                get = asyncio.ensure_future(conn.outbox.get())
                done, _ = await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    return
                queued = get.result()
            else:
                queued = conn.outbox.get_nowait()  # no task per message while events stream
            if queued is not None:
                yield queued

    def _in_background(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _register_executors(self, names: frozenset[str]) -> None:
        """Remembered for submit validation. Retried in the background: a worker can connect
        (and keep its shards) while the store is away."""
        backoff = Backoff(0.2, 10.0)
        for _ in range(60):
            try:
                await self._store.register_executors(names)
                return
            except Exception as error:  # noqa: BLE001
                warn.warning("executors", "could not record the executors of a worker: %s", error)
                await asyncio.sleep(backoff.next_delay())

    def _beat(self, conn: _Connection) -> None:
        """Records a heartbeat without holding up the stream (run events keep flowing while
        Redis is slow); one at a time per worker, a beat that finds one in flight is dropped."""
        if conn.beat is None or conn.beat.done():
            conn.beat = asyncio.create_task(self._record_beat(conn.record()), name=f"beat-{conn.info.worker_id}")

    async def _record_beat(self, info: WorkerInfo, after: asyncio.Task[None] | None = None) -> None:
        if after is not None:
            await asyncio.wait({after})
        try:
            await self._membership.heartbeat(info, self._worker_timeout)
        except Exception as error:  # noqa: BLE001 - the next heartbeat follows shortly
            warn.warning("beat", "could not record a heartbeat: %s", error)

    async def _read(self, conn: _Connection, messages: AsyncIterator[wpb.WorkerMessage]) -> None:
        acks = AckTracker()
        writes: set[asyncio.Task[None]] = set()
        try:
            async for message in messages:
                kind = message.WhichOneof("kind")
                if kind == "heartbeat":
                    conn.runs_in_progress = message.heartbeat.runs_in_progress
                    HEARTBEATS.inc()
                    if message.heartbeat.leaving and not conn.info.leaving:
                        # Still alive (it finishes what it claimed) but no longer assignable:
                        # recorded at once, after the beat in flight (which would otherwise
                        # land last and clear the flag until the next beat, half a second on).
                        log.info("worker %s is leaving", conn.info.worker_id)
                        conn.info = replace(conn.info, leaving=True)
                        conn.beat = asyncio.create_task(
                            self._record_beat(conn.record(), after=conn.beat), name=f"leaving-{conn.info.worker_id}"
                        )
                    self._beat(conn)
                elif kind in ("run_finished", "run_events"):
                    events = list(message.run_events.finished) if kind == "run_events" else [getattr(message, kind)]
                    runs = self._vetted(conn, kind, events)
                    if runs is None:
                        return
                    for event in events:
                        acks.start(event.seq)
                    task = asyncio.create_task(self._record(conn, kind, events, runs, acks))
                    writes.add(task)
                    task.add_done_callback(writes.discard)
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        finally:
            # Unacknowledged events are re-sent by the worker to the replica it reaches next.
            for task in writes:
                task.cancel()

    def _refuse(self, conn: _Connection, code: grpc.StatusCode, why: str, field: str) -> None:
        log.warning("refused a message of worker %s: %s: %s", conn.info.worker_id, field, why)
        conn.refused = rich_status.status(code, f"{field}: {why}", field=field)
        conn.outbox.put_nowait(None)  # wakes the stream, which ends with the refusal

    def _vetted(self, conn: _Connection, kind: str, events: Sequence[wpb.RunFinished]) -> list[Run] | None:
        """The runs the events report; None (the stream refused) if one is malformed."""
        sender = conn.info.worker_id
        runs = []
        for i, event in enumerate(events):
            where = _where(kind, i)
            try:
                run = wire.run_from_event(event, sender, field=f"{where}.")
            except InvalidArgument as error:
                self._refuse(conn, grpc.StatusCode.INVALID_ARGUMENT, str(error).removeprefix(f"{error.field}: "),
                             error.field)  # fmt: skip
                return None
            if (bad := flaw(run, sender)) is not None:
                code = grpc.StatusCode.PERMISSION_DENIED if bad[0] == "worker_id" else grpc.StatusCode.INVALID_ARGUMENT
                self._refuse(conn, code, bad[1], f"{where}.{bad[0]}")
                return None
            runs.append(run)
        return runs

    async def _owned(self, conn: _Connection, kind: str, runs: Sequence[Run]) -> bool:
        """Whether every run is the sender's to write (see run_ownership); refuses the stream
        if not. Reads the store only for runs of shards not the sender's in the map."""
        sender, shards = conn.info.worker_id, self._num_shards
        stray = strays(runs, sender, self.shard_map.owners, shards)
        if not stray:
            return True
        whys = await until_done(lambda: asyncio.gather(*(foreign(self._store, runs[i], sender, shards) for i in stray)),
                                warn, "ownership", "checking which worker runs were given to")  # fmt: skip
        for i, why in zip(stray, whys, strict=True):
            if why is not None:
                self._refuse(conn, grpc.StatusCode.PERMISSION_DENIED, why, f"{_where(kind, i)}.run_id")
                return False
        return True

    async def _record(
        self, conn: _Connection, kind: str, events: Sequence[wpb.RunFinished], runs: list[Run], acks: AckTracker
    ) -> None:
        """Writes the runs (those the events report) until they are durable (or the stream
        closes: this task is then cancelled), then acknowledges the events, in one ack; writes
        nothing if one of them is not the sender's to write."""
        if not await self._owned(conn, kind, runs):
            return
        await until_done(lambda: self._runs.call(None, runs), warn, "record", f"recording {len(runs)} runs")
        if trace.isEnabledFor(logging.DEBUG):  # its fields only when it is on
            for run, event in zip(runs, events, strict=True):
                trace.debug("run %s of job %s recorded: %s", run.run_id, run.job_id, run.status.value,
                          extra=logs.fire_fields(run.job_id, run.run_id, shard_of(run.job_id, self._num_shards),
                                                 run.worker_id, event.fencing_token, run.due))  # fmt: skip
        self._count(conn, runs)
        count_recorded(self._recorded, runs)
        if self.on_recorded is not None:
            self.on_recorded(runs)
        if self.watch.watched:
            self._in_background(self.watch.recorded(runs), "watched-runs")
        acked = [watermark for event in events if (watermark := acks.finish(event.seq)) is not None]
        if acked:
            conn.outbox.put_nowait(wpb.CoordinatorMessage(ack=wpb.Ack(seq=max(acked))))

    def _count(self, conn: _Connection, runs: Sequence[Run]) -> None:
        """Counts the runs the worker finished; notes those recorded LOST against the worker
        they were on (a dead one, mostly: the worker that took its shard over reports them)."""
        conn.ran.add(sum(1 for run in runs if run.status not in _NOT_RAN and run.worker_id == conn.info.worker_id))
        lost: dict[str, list[str]] = {}
        for run in runs:
            if run.status is RunStatus.LOST:
                lost.setdefault(run.worker_id, []).append(run.run_id)
        for worker_id, run_ids in lost.items():
            self._in_background(self._note_lost(worker_id, run_ids), f"lost-{worker_id}")

    async def _note_lost(self, worker_id: str, run_ids: list[str]) -> None:
        try:
            await self._membership.note_lost(worker_id, run_ids)
        except Exception as error:  # noqa: BLE001 - a count for people to read, not a record
            warn.warning("lost", "could not count runs lost by %s: %s", worker_id, error)

    # -- pushes ---------------------------------------------------------------------------
    def _push_assignment(self, conn: _Connection) -> None:
        shards = tuple(sorted(s for s, owner in self.shard_map.owners.items() if owner == conn.info.worker_id))
        if conn.pushed == shards:
            return
        conn.assignment = wpb.CoordinatorMessage(
            assignment=wpb.Assignment(version=self.shard_map.version, shards=shards)
        )
        conn.outbox.put_nowait(None)
        conn.pushed = shards

    def adopt(self, shard_map: ShardMap) -> None:
        """Pushes `shard_map` to the local workers whose part changed. Maps are compared by
        content, not version: after the coordination backend lost its data, versions start
        over. An empty version-0 map means "none published" (e.g. just after such a loss)
        and never replaces a real one."""
        if shard_map.version == 0 and not shard_map.owners and self.shard_map.owners:
            return
        if shard_map == self.shard_map:
            return
        self.shard_map = shard_map
        for conn in list(self._connections.values()):
            self._push_assignment(conn)

    async def follow_shard_map(self) -> None:
        """Forever: pushes each new shard map to the local workers."""
        while True:
            try:
                self.adopt(await self._membership.shard_map())
            except Exception as error:  # noqa: BLE001 - the backend may be briefly away
                warn.warning("map", "reading the shard map failed: %s", error)
            await asyncio.sleep(SHARD_MAP_POLL_S)

    async def hint(self, fires: Sequence[Fire]) -> None:
        """Sends fires just written to their shard's owner: directly when its stream is here,
        through the membership backend otherwise. Best effort: workers also read the store."""
        for fire in fires:
            owner = self.shard_map.owners.get(fire.shard)
            if owner is None:
                continue
            if not self._deliver_hint(owner, fire):
                try:
                    await self._membership.publish_hint(owner, fire)
                except Exception as error:  # noqa: BLE001 - a hint is an optimisation
                    log.debug("hint for %s not published: %s", owner, error)

    def _deliver_hint(self, worker_id: str, fire: Fire) -> bool:
        conn = self._connections.get(worker_id)
        if conn is None:
            return False
        if fire.kind is FireKind.HALT:
            halted = wpb.JobHalted(namespace=fire.namespace, job_id=fire.job_id, at=wire.ts(fire.due))
            message = wpb.CoordinatorMessage(job_halted=halted)
        else:
            message = wpb.CoordinatorMessage(fire_hint=wire.fire_to_hint(fire))
        conn.outbox.put_nowait(message)
        return True

    async def relay_hints(self) -> None:
        """Forever: delivers hints published by other replicas to local workers, and makes
        the read cache forget jobs changed through other replicas."""
        while True:
            try:
                hints = self._membership.hints()
                self._cache.clear()  # changes announced while not subscribed were missed
                async for worker_id, fire in hints:
                    if fire.kind is FireKind.CHANGED:
                        self._cache.forget_job(fire.namespace, fire.job_id)
                    elif fire.kind in (FireKind.WATCH, FireKind.RAN):
                        self.watch.heard(fire)
                    else:
                        self._deliver_hint(worker_id, fire)
            except Exception as error:  # noqa: BLE001
                log.warning("hint relay interrupted: %s", error)
                await asyncio.sleep(1.0)

    async def announce_change(self, shard: int, namespace: str, job_id: str) -> None:
        """Tells the other replicas that the job's state changed (see ReadCache)."""
        fire = Fire(due=datetime.now(UTC), namespace=namespace, job_id=job_id, shard=shard, kind=FireKind.CHANGED)
        try:
            await self._membership.publish_hint("", fire)
        except Exception as error:  # noqa: BLE001 - the others' cached copies expire soon anyway
            log.warning("change of job %s not announced: %s", job_id, error)

    async def halt(self, shard: int, namespace: str, job_id: str) -> None:
        """Tells the shard's owner that the job was paused or cancelled (see JobHalted)."""
        owner = self.shard_map.owners.get(shard)
        if owner is None:
            return
        fire = Fire(due=datetime.now(UTC), namespace=namespace, job_id=job_id, shard=shard, kind=FireKind.HALT)
        if not self._deliver_hint(owner, fire):
            try:
                await self._membership.publish_hint(owner, fire)
            except Exception as error:  # noqa: BLE001 - the worker re-checks the job before running
                log.warning("halt of job %s not published: %s", job_id, error)
