"""The worker's and coordinator's in-memory parts: ack watermark, timer, executors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hourglass_coordinator.run_counts import MinuteCount
from hourglass_coordinator.worker_streams import AckTracker, WorkerStreams, _Connection, _peer_host
from hourglass_core import wire
from hourglass_core.firing import run_id_for
from hourglass_core.leases.base import ShardMap, WorkerInfo
from hourglass_core.leases.memory import MemoryMembership
from hourglass_core.models import Fire, Payload, Run, RunReason, RunStatus
from hourglass_pb.v1 import worker_pb2 as wpb
from hourglass_worker.executors import RunContext, load_executors, to_payload
from hourglass_worker.link import CoordinatorLink
from hourglass_worker.runner import Runner
from hourglass_worker.timer import FireTimer


def test_ack_watermark_waits_for_every_earlier_event() -> None:
    acks = AckTracker()
    for seq in (1, 2, 3):
        acks.start(seq)
    assert acks.finish(2) is None  # 1 is still being written
    assert acks.finish(1) == 2
    assert acks.finish(3) == 3


async def test_timer_returns_due_fires_by_priority_then_due_time() -> None:
    timer = FireTimer()
    now = datetime.now(UTC)
    low = Fire(due=now - timedelta(milliseconds=5), namespace="d", job_id="a", shard=0, priority=0)
    high = Fire(due=now - timedelta(milliseconds=1), namespace="d", job_id="b", shard=0, priority=5)
    later = Fire(due=now + timedelta(seconds=30), namespace="d", job_id="c", shard=0)
    for fire in (low, later, high):
        timer.add(fire)
    due = await asyncio.wait_for(timer.next_due(), 1)
    assert [f.job_id for f in due] == ["b", "a"]
    assert len(timer) == 1


async def test_a_waiting_timer_wakes_for_a_fire_added_ahead_of_the_one_it_waits_for() -> None:
    timer = FireTimer()
    now = datetime.now(UTC)
    timer.add(Fire(due=now + timedelta(seconds=30), namespace="d", job_id="late", shard=0))
    waiting = asyncio.create_task(timer.next_due())
    await asyncio.sleep(0.01)
    timer.add(Fire(due=now + timedelta(seconds=20), namespace="d", job_id="later", shard=0))
    timer.add(Fire(due=now + timedelta(milliseconds=50), namespace="d", job_id="soon", shard=0))
    timer.add(Fire(due=now + timedelta(seconds=40), namespace="d", job_id="last", shard=0))
    due = await asyncio.wait_for(waiting, 1)
    assert [f.job_id for f in due] == ["soon"]
    assert datetime.now(UTC) >= now + timedelta(milliseconds=50) and len(timer) == 3


def _ctx(params: dict[str, object]) -> RunContext:
    return RunContext("d", "j", "r", 1, datetime.now(UTC), Payload(json.dumps(params).encode(), "application/json"))


async def test_runner_reports_success_failure_and_timeout() -> None:
    executors = load_executors("")
    runner = Runner(capacity=2)
    ok = await runner.run(executors["echo"], _ctx({"x": 1}), None)
    assert ok is not None and ok.status is RunStatus.SUCCEEDED and json.loads(ok.result.data) == {"x": 1}
    failed = await runner.run(executors["fail"], _ctx({"message": "nope"}), None)
    assert failed is not None and failed.status is RunStatus.FAILED and failed.error == "nope"
    slow = await runner.run(executors["sleep"], _ctx({"seconds": 5}), timedelta(milliseconds=50))
    assert slow is not None and slow.status is RunStatus.TIMED_OUT
    runner.close()


async def test_runner_calls_nothing_once_the_lease_check_before_it_is_stale() -> None:
    """As after a SIGSTOP between the check and the call: the executor is not called at all."""
    calls: list[str] = []

    def blocking(ctx: RunContext) -> str:
        calls.append("blocking")
        return "ran"

    async def on_loop(ctx: RunContext) -> str:
        calls.append("on_loop")
        return "ran"

    runner = Runner(capacity=1)
    stale = time.monotonic() - 0.001
    assert await runner.run(blocking, _ctx({}), None, start_by=stale) is None
    assert await runner.run(on_loop, _ctx({}), None, start_by=stale) is None
    assert calls == []
    fresh = time.monotonic() + 5
    assert (await runner.run(blocking, _ctx({}), None, start_by=fresh)) is not None and calls == ["blocking"]
    runner.close()


def test_operator_executor_entries_are_validated() -> None:
    assert "dumps" in load_executors("dumps=json:dumps")
    with pytest.raises(ValueError, match=r"not name=package\.module:function"):
        load_executors("oops")
    with pytest.raises(ValueError, match="cannot load"):
        load_executors("x=no_such_module_here:f")


def test_results_become_payloads_with_content_types() -> None:
    assert to_payload({"a": 1}).content_type == "application/json"
    assert to_payload("hi").data == b"hi"
    assert to_payload(None).data == b""


def test_shard_book_holds_the_checkpoint_behind_unfinished_fires_and_ignores_rereads() -> None:
    from hourglass_worker.book import ShardBook

    book = ShardBook()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    early = Fire(due=t0, namespace="d", job_id="a", shard=1)
    late = Fire(due=t0 + timedelta(seconds=5), namespace="d", job_id="b", shard=1)
    assert book.take(early) and book.take(late)
    assert not book.take(early)  # a re-read of the same fire
    bound = t0 + timedelta(seconds=10)
    assert book.handled_through(1, bound) < early.due
    book.handled(early)
    assert early.due < book.handled_through(1, bound) < late.due
    book.passed(1, book.handled_through(1, bound))
    assert not book.take(late)  # still ahead of the cursor: remembered
    book.retry_later(late)
    assert book.take(late)  # offered again after a failure
    book.handled(late)
    assert book.handled_through(1, bound) == bound


def test_shard_book_counts_fires_in_hand_over_every_shard() -> None:
    from hourglass_worker.book import ShardBook

    book = ShardBook()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    fires = [Fire(due=t0, namespace="d", job_id=f"j{i}", shard=i % 3) for i in range(5)]
    assert not book.has_seen(fires[0]) and book.pending_total() == 0
    for fire in fires:
        book.take(fire)
    assert book.has_seen(fires[0]) and book.pending_total() == 5
    book.handled(fires[1])
    book.drop_shard(2)  # j2 (shard 2) goes with its shard
    assert book.pending_total() == 3


async def test_a_heartbeat_sent_now_goes_out_ahead_of_queued_run_events_which_go_together() -> None:
    leaving = wpb.Heartbeat(leaving=True)
    link = CoordinatorLink(["unused:1"], wpb.Register(worker_id="w1"), lambda m: None, lambda: leaving,
                           timedelta(seconds=60))  # fmt: skip
    now = datetime.now(UTC)
    for n in range(3):
        link.run_finished(Run("d", "j", f"r{n}", now, 1, RunStatus.SUCCEEDED, "w1", now, now))
    await link.send_heartbeat()  # the worker is leaving: the leader must learn it first
    messages = link._messages()
    sent = [await anext(messages) for _ in range(3)]
    assert [m.WhichOneof("kind") for m in sent] == ["register", "heartbeat", "run_events"]
    # The queued events go together, in one message, in order.
    assert [e.run_id for e in sent[2].run_events.finished] == ["r0", "r1", "r2"]


async def test_an_assignment_goes_to_the_worker_ahead_of_queued_acks_and_hints() -> None:
    conn = _Connection(WorkerInfo("w1", frozenset({"echo"}), 8, "replica"))
    for seq in (1, 2):
        conn.outbox.put_nowait(wpb.CoordinatorMessage(ack=wpb.Ack(seq=seq)))
    conn.assignment = wpb.CoordinatorMessage(assignment=wpb.Assignment(version=2, shards=[3, 4]))
    reader = asyncio.create_task(asyncio.sleep(3600))  # the worker's side stays open
    outgoing = WorkerStreams._outgoing(conn, reader)
    kinds = [(await anext(outgoing)).WhichOneof("kind") for _ in range(3)]
    assert kinds == ["assignment", "ack", "ack"]
    reader.cancel()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(outgoing), 1)


def _run(n: int, status: RunStatus, worker_id: str = "w1", **more: Any) -> Run:
    """Run `n` of job d/j (a fire of its own), reported by w1."""
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(microseconds=n)
    return Run("d", "j", run_id_for("d", "j", due, 1), due, 1, status, worker_id, **more)


def _streams(store: Any, membership: MemoryMembership | None = None) -> WorkerStreams:
    """A servicer whose shard map gives every shard to w1 (it may write runs of job j)."""
    streams = WorkerStreams("replica", store, membership or MemoryMembership(), num_shards=4,
                            heartbeat_interval=timedelta(seconds=1), worker_timeout=timedelta(seconds=3))  # fmt: skip
    streams.adopt(ShardMap(1, dict.fromkeys(range(4), "w1")))
    return streams


class _RecordingStore:
    def __init__(self) -> None:
        self.writes: list[list[str]] = []

    async def record_runs(self, runs: list[Run]) -> None:
        self.writes.append([r.run_id for r in runs])


async def test_a_message_of_many_run_events_is_written_together_and_acknowledged_once() -> None:
    store = _RecordingStore()
    streams = _streams(store)
    conn = _Connection(WorkerInfo("w1", frozenset({"echo"}), 8, "replica"))
    now = datetime.now(UTC)
    runs = [_run(n, RunStatus.SUCCEEDED, started_at=now, ended_at=now) for n in range(3)]
    events = [wire.run_finished_to_pb(run, n + 1) for n, run in enumerate(runs)]

    async def messages() -> AsyncIterator[wpb.WorkerMessage]:
        yield wpb.WorkerMessage(run_events=wpb.RunEvents(finished=events))
        await asyncio.sleep(3600)  # the stream stays open

    reader = asyncio.create_task(streams._read(conn, messages()))
    ack = await asyncio.wait_for(conn.outbox.get(), 5)
    reader.cancel()
    assert store.writes == [[run.run_id for run in runs]]
    assert ack is not None and ack.WhichOneof("kind") == "ack" and ack.ack.seq == 3
    assert conn.outbox.empty()


def test_a_minute_count_forgets_what_is_a_minute_old() -> None:
    now = [1000.0]
    count = MinuteCount(lambda: now[0])
    count.add(3)
    now[0] += 30.5
    count.add()
    count.add(2)
    assert count.total() == 6
    now[0] += 29.5  # 60 s after the first three: they no longer count
    assert count.total() == 3
    now[0] += 120  # the buckets come round again: old counts never add to new ones
    count.add()
    assert count.total() == 1


async def test_a_stream_counts_the_runs_its_worker_finished_and_notes_runs_lost_against_their_worker() -> None:
    membership = MemoryMembership()
    await membership.heartbeat(WorkerInfo("dead-w"), timedelta(seconds=30))
    streams = _streams(_RecordingStore(), membership)
    conn = _Connection(WorkerInfo("w1", frozenset({"echo"}), 8, "replica"))
    now = datetime.now(UTC)
    runs = [_run(0, RunStatus.SUCCEEDED, started_at=now, ended_at=now),
            _run(1, RunStatus.FAILED, started_at=now, ended_at=now),
            _run(2, RunStatus.SKIPPED, ended_at=now, reason=RunReason.OVERLAP),
            _run(3, RunStatus.RUNNING, started_at=now),
            _run(4, RunStatus.LOST, "dead-w", ended_at=now, reason=RunReason.WORKER_LOST)]
    events = [wire.run_finished_to_pb(run, n + 1) for n, run in enumerate(runs)]

    async def messages() -> AsyncIterator[wpb.WorkerMessage]:
        yield wpb.WorkerMessage(heartbeat=wpb.Heartbeat(runs_in_progress=5))
        yield wpb.WorkerMessage(run_events=wpb.RunEvents(finished=events))
        await asyncio.sleep(3600)

    reader = asyncio.create_task(streams._read(conn, messages()))
    await asyncio.wait_for(conn.outbox.get(), 5)  # the ack: written
    await asyncio.sleep(0.05)  # the lost note goes in the background
    reader.cancel()
    assert (conn.record().ran_last_minute, conn.record().runs_in_progress) == (2, 5)
    lost = {r.info.worker_id: r.lost_last_minute for r in await membership.workers()}
    assert lost == {"dead-w": 1, "w1": 0}  # w1: recorded by its heartbeat


def test_a_peers_host_is_its_address_without_the_port() -> None:
    assert _peer_host("ipv4:10.0.0.5:51234") == "10.0.0.5"
    assert _peer_host("ipv6:[::1]:51234") == "::1"
    assert _peer_host("") == ""
