"""In-process `Leases` and `Membership`: the embedded single-process mode, and fast tests.

Same guarantees as the Redis backend, within one process and one event loop. No method awaits
between reading and writing its state, so on a single event loop every call is atomic without
locks. Expiry follows an injected clock (`() -> float` seconds, default `time.monotonic`), so
tests can move time by hand.

`HintFanout` (one bounded buffer per open `hints()` stream) is shared with the Redis backend,
which feeds it from its pub/sub subscription.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hourglass_core.cluster import COUNT_WINDOW, WorkerState
from hourglass_core.leases.base import (
    DEFAULT_DEAD_RETENTION,
    Lease,
    ReplicaInfo,
    ReplicaRecord,
    ShardMap,
    WorkerInfo,
    WorkerRecord,
)
from hourglass_core.models import Fire

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Hints are a latency optimisation (workers poll their shards anyway): a consumer that falls this
# far behind loses the oldest ones instead of growing memory without bound.
DEFAULT_HINT_BUFFER = 10_000


def ttl_seconds(ttl: timedelta) -> float:
    """`ttl` in seconds; raises ValueError unless it is at least 1 ms (Redis' PX resolution)."""
    seconds = ttl.total_seconds()
    if seconds < 0.001:
        raise ValueError(f"ttl must be at least 1 ms, got {ttl!r}")
    return seconds


@dataclass(slots=True)
class _Held:
    owner: str
    token: int
    expires_at: float  # clock() value; held while clock() < expires_at


class MemoryLeases:
    """`Leases` in process memory. Tokens come from one counter for all keys, starting at 1."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._fencing = 0

    def _live(self, key: str, now: float) -> _Held | None:
        held = self._held.get(key)
        if held is not None and held.expires_at <= now:
            del self._held[key]  # expired: forget it, as Redis would
            return None
        return held

    async def acquire(self, key: str, owner: str, ttl: timedelta) -> Lease | None:
        seconds = ttl_seconds(ttl)
        now = self._clock()
        held = self._live(key, now)
        if held is not None:
            if held.owner != owner:
                return None
            held.expires_at = now + seconds  # re-acquire by the holder: renew, keep the token
            return Lease(key, owner, held.token, ttl)
        self._fencing += 1
        self._held[key] = _Held(owner, self._fencing, now + seconds)
        return Lease(key, owner, self._fencing, ttl)

    async def renew(self, lease: Lease) -> bool:
        seconds = ttl_seconds(lease.ttl)
        now = self._clock()
        held = self._live(lease.key, now)
        if held is None or held.owner != lease.owner or held.token != lease.token:
            return False
        held.expires_at = now + seconds
        return True

    async def release(self, lease: Lease) -> bool:
        held = self._live(lease.key, self._clock())
        if held is None or held.owner != lease.owner or held.token != lease.token:
            return False
        del self._held[lease.key]
        return True

    async def holder(self, key: str) -> str | None:
        held = self._live(key, self._clock())
        return None if held is None else held.owner

    async def inspect(self, keys: Sequence[str]) -> dict[str, Lease]:
        now = self._clock()
        found = {key: held for key in keys if (held := self._live(key, now)) is not None}
        return {key: Lease(key, h.owner, h.token, timedelta(seconds=h.expires_at - now)) for key, h in found.items()}

    async def seed_fencing(self, at_least: int) -> None:
        if at_least < 0:
            raise ValueError(f"at_least must not be negative, got {at_least}")
        self._fencing = max(self._fencing, at_least)

    async def ping(self) -> None:
        pass  # in this process: always there

    async def close(self) -> None:
        pass


class HintStream:
    """One `hints()` iterator: yields (worker id, fire) in publish order.

    Ends (StopAsyncIteration) when its membership closes; raises the error its feed failed with
    (e.g. `Unavailable`) after the hints buffered before it. `aclose()`, or cancelling a pending
    `__anext__` (as with an async generator), detaches it from the feed for good.
    """

    def __init__(self, fanout: HintFanout, buffer: int) -> None:
        self._fanout = fanout
        self._items: deque[tuple[str, Fire]] = deque(maxlen=buffer)
        self._wake = asyncio.Event()
        self._ended = False
        self._error: BaseException | None = None
        self._warned = False

    def __aiter__(self) -> HintStream:
        return self

    async def __anext__(self) -> tuple[str, Fire]:
        while True:
            if self._items:
                return self._items.popleft()
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._ended:
                raise StopAsyncIteration
            self._wake.clear()
            try:
                await self._wake.wait()
            except asyncio.CancelledError:
                self._detach()
                raise

    async def aclose(self) -> None:
        self._detach()
        self._items.clear()

    def _detach(self) -> None:
        if not self._ended:
            self._ended = True
            self._fanout._remove(self)

    def _push(self, hint: tuple[str, Fire]) -> None:
        if len(self._items) == self._items.maxlen and not self._warned:
            self._warned = True
            log.warning("hint consumer too slow: dropping the oldest buffered hints")
        self._items.append(hint)
        self._wake.set()

    def _end(self, error: BaseException | None) -> None:
        self._ended = True
        self._error = error
        self._wake.set()


class HintFanout:
    """Delivers every published hint to every open stream (one bounded buffer each).

    `on_idle` is called when the last stream detaches by itself (not on `fail`/`close`), so a
    feed can stop its subscription while nobody listens.
    """

    def __init__(
        self, buffer: int = DEFAULT_HINT_BUFFER, on_idle: Callable[[], None] | None = None
    ) -> None:
        self._buffer = buffer
        self._on_idle = on_idle
        self._streams: set[HintStream] = set()

    def __len__(self) -> int:
        return len(self._streams)

    def open(self) -> HintStream:
        stream = HintStream(self, self._buffer)
        self._streams.add(stream)
        return stream

    def publish(self, worker_id: str, fire: Fire) -> None:
        for stream in self._streams:
            stream._push((worker_id, fire))

    def fail(self, error: BaseException) -> None:
        """Every open stream raises `error` once its buffered hints are read, then ends."""
        streams, self._streams = self._streams, set()
        for stream in streams:
            stream._end(error)

    def close(self) -> None:
        """Every open stream ends once its buffered hints are read."""
        streams, self._streams = self._streams, set()
        for stream in streams:
            stream._end(None)

    def _remove(self, stream: HintStream) -> None:
        if stream in self._streams:
            self._streams.discard(stream)
            if not self._streams and self._on_idle is not None:
                self._on_idle()


@dataclass(slots=True)
class _Member:
    info: WorkerInfo
    beat_at: float  # clock() of its last heartbeat
    expires_at: float  # live while clock() < expires_at
    state: WorkerState
    since: float


class MemoryMembership:
    """`Membership` in process memory; hints go to every stream opened by `hints()` before
    `publish_hint` is called."""

    def __init__(
        self,
        clock: Clock = time.monotonic,
        *,
        hint_buffer: int = DEFAULT_HINT_BUFFER,
        dead_retention: timedelta = DEFAULT_DEAD_RETENTION,
    ) -> None:
        self._clock = clock
        self._members: dict[str, _Member] = {}  # live, dead and left
        self._lost: dict[str, dict[str, float]] = {}  # worker id -> run id -> when noted
        self._replicas: dict[str, tuple[ReplicaInfo, float, float]] = {}  # id -> (info, beat_at, expires_at)
        self._dead_retention = dead_retention.total_seconds()
        self._shard_map = ShardMap(0, {})
        self._fanout = HintFanout(hint_buffer)

    def _wall(self, at: float, now: float) -> datetime:
        """A clock() value as a UTC datetime (the injected clock need not be wall time)."""
        return datetime.now(UTC) - timedelta(seconds=now - at)

    def _settle(self, now: float) -> None:
        """Expired members are dead from their expiry; the dead and left past the retention go."""
        for member in self._members.values():
            if member.state in (WorkerState.ALIVE, WorkerState.LEAVING) and member.expires_at <= now:
                member.state, member.since = WorkerState.DEAD, member.expires_at
        for worker_id in [w for w, m in self._members.items() if not _live(m) and m.since <= now - self._dead_retention]:
            del self._members[worker_id]
        for worker_id in [w for w in self._lost if w not in self._members]:
            del self._lost[worker_id]

    async def heartbeat(self, worker: WorkerInfo, ttl: timedelta) -> None:
        seconds = ttl_seconds(ttl)
        now = self._clock()
        self._settle(now)
        state = WorkerState.LEAVING if worker.leaving else WorkerState.ALIVE
        member = self._members.get(worker.worker_id)
        since = member.since if member is not None and member.state is state else now
        self._members[worker.worker_id] = _Member(worker, now, now + seconds, state, since)

    async def live_workers(self) -> list[WorkerInfo]:
        self._settle(self._clock())
        return [m.info for _, m in sorted(self._members.items()) if _live(m)]

    async def remove_worker(self, worker_id: str) -> None:
        now = self._clock()
        self._settle(now)
        member = self._members.get(worker_id)
        if member is not None and _live(member):
            member.state, member.since = WorkerState.LEFT, now

    async def workers(self) -> list[WorkerRecord]:
        now = self._clock()
        self._settle(now)
        window = COUNT_WINDOW.total_seconds()
        return [
            WorkerRecord(m.info, m.state, self._wall(m.since, now), self._wall(m.beat_at, now),
                         sum(1 for at in self._lost.get(w, {}).values() if at > now - window))
            for w, m in sorted(self._members.items())
        ]  # fmt: skip

    async def note_lost(self, worker_id: str, run_ids: Sequence[str]) -> None:
        now = self._clock()
        window = COUNT_WINDOW.total_seconds()
        noted = {r: at for r, at in self._lost.get(worker_id, {}).items() if at > now - window}
        for run_id in run_ids:
            noted.setdefault(run_id, now)
        self._lost[worker_id] = noted

    async def replica_heartbeat(self, replica: ReplicaInfo, ttl: timedelta) -> None:
        now = self._clock()
        self._replicas[replica.replica_id] = (replica, now, now + ttl_seconds(ttl))

    async def replicas(self) -> list[ReplicaRecord]:
        now = self._clock()
        self._replicas = {r: v for r, v in self._replicas.items() if v[2] > now}
        return [ReplicaRecord(info, self._wall(beat_at, now)) for _, (info, beat_at, _) in sorted(self._replicas.items())]

    async def publish_shard_map(self, shard_map: ShardMap) -> None:
        """Stores the map unless the stored one has the same or a newer version (a stale
        leader's map is ignored)."""
        if shard_map.version <= self._shard_map.version:
            log.info(
                "ignored shard map version %d: version %d is already published",
                shard_map.version,
                self._shard_map.version,
            )
            return
        # Copy: the caller may keep mutating its dict; readers must see what was published.
        self._shard_map = ShardMap(shard_map.version, dict(shard_map.owners))

    async def shard_map(self) -> ShardMap:
        return ShardMap(self._shard_map.version, dict(self._shard_map.owners))

    async def publish_hint(self, worker_id: str, fire: Fire) -> None:
        self._fanout.publish(worker_id, fire)

    def hints(self) -> HintStream:
        """Every hint published after this call, until the stream is closed or the membership
        is (then it ends)."""
        return self._fanout.open()

    async def close(self) -> None:
        self._fanout.close()


def _live(member: _Member) -> bool:
    return member.state in (WorkerState.ALIVE, WorkerState.LEAVING)
