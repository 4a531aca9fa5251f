"""`Leases` and `Membership` in Redis: many processes, one Redis (standalone, or the primary
Redis Sentinel names: see `redis_connect`).

Key layout (P is the key prefix, default "hourglass:"):
    P fencing          string   fencing counter; only INCR or raised by seed_fencing
    P lease:<key>      string   "<owner>|<token>", PX ttl
    P workers          zset     live worker id -> expiry (Redis server time, epoch ms)
    P worker_info      hash     worker id -> "<last heartbeat ms>|<WorkerInfo as JSON>"
    P worker_state     hash     worker id -> "<alive|leaving|dead|left>|<since ms>", written
                                only when the state changes
    P workers_gone     zset     dead or left worker id -> since (ms); kept for the retention
    P workers_lost     zset     "<worker id>|<run id>" -> when noted (ms); kept a minute
    P replicas         zset     coordinator replica id -> expiry (ms)
    P replica_info     hash     replica id -> "<last heartbeat ms>|<ReplicaInfo as JSON>"
    P shard_map        string   {"version": n, "owners": {"<shard>": "<worker id>"}}
    P hints            channel  pub/sub hints, JSON (see `_encode_hint`)

Every read-check-write is one Lua script, so it is atomic and can be retried: a retried acquire
by the same owner finds itself holding the lease and returns the same token. Expiry is decided
by the Redis server's clock (PX, TIME), never by the clients' clocks. Connection errors and
timeouts (after a short retry) raise `Unavailable`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from hourglass_core.cluster import COUNT_WINDOW, WorkerState
from hourglass_core.errors import Unavailable
from hourglass_core.leases.base import (
    DEFAULT_DEAD_RETENTION,
    Lease,
    ReplicaInfo,
    ReplicaRecord,
    ShardMap,
    WorkerInfo,
    WorkerRecord,
)
from hourglass_core.leases.memory import DEFAULT_HINT_BUFFER, HintFanout, HintStream, ttl_seconds
from hourglass_core.leases.redis_connect import AsyncRedis
from hourglass_core.models import Fire, FireKind, OverlapPolicy

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "hourglass:"

# Errors that mean "Redis cannot answer right now" (ReadOnlyError: we reached a replica, e.g.
# during a failover), as opposed to bugs such as a Lua error.
_DOWN: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    OSError,
)


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    try:
        yield
    except _DOWN as exc:
        raise Unavailable(f"redis: {what}: {str(exc) or type(exc).__name__}") from exc


# KEYS[1] lease, KEYS[2] fencing counter; ARGV[1] owner, ARGV[2] ttl ms -> token or nil.
# The token is taken only when the lease is granted, so failed attempts burn none. '%d', not
# tostring: Lua 5.1 numbers print as "1e+15" from 10^14 on.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current then
  local holder, token = string.match(current, '^(.*)|(%d+)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return token
  end
  return false
end
local token = redis.call('INCR', KEYS[2])
token = string.format('%d', token)
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""

# KEYS[1] lease; ARGV[1] "owner|token", ARGV[2] ttl ms -> 1 if renewed.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] lease; ARGV[1] "owner|token" -> 1 if released.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1] fencing counter; ARGV[1] at_least. Raises the counter, never lowers it.
_SEED_FENCING = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

# Server time in ms: one clock for every client, however skewed theirs are.
_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Server time as an integer string ('%d', not tostring: see _ACQUIRE).
_MS = "local function ms(value) return string.format('%d', value) end\n"

# KEYS[1] zset of the live, KEYS[2] hash of their infos; ARGV[1] id, ARGV[2] info JSON,
# ARGV[3] ttl ms. Live until the expiry; the info carries the beat's time.
_BEAT = (
    _NOW_MS
    + _MS
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ms(now) .. '|' .. ARGV[2])
"""
)

# As _BEAT on workers and worker_info, KEYS[3] worker_state, KEYS[4] workers_gone; ARGV[4]
# state (alive or leaving), written only when it changes.
_HEARTBEAT = (
    _BEAT
    + """
local current = redis.call('HGET', KEYS[3], ARGV[1])
if not current or string.match(current, '^(%a+)|') ~= ARGV[4] then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4] .. '|' .. ms(now))
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return 1
"""
)

# Keys as for _HEARTBEAT, KEYS[5] workers_lost; ARGV[1] retention ms, ARGV[2] count window
# ms. Live workers whose heartbeat expired become dead from their expiry; the dead and left
# past the retention, and lost runs past the window, are forgotten (nothing else cleans them).
_SETTLE = (
    _NOW_MS
    + _MS
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES')
for i = 1, #expired, 2 do
  redis.call('HSET', KEYS[3], expired[i], 'dead|' .. expired[i + 1])
  redis.call('ZADD', KEYS[4], expired[i + 1], expired[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local forgotten = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[1]))
for _, id in ipairs(forgotten) do
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[1]))
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - tonumber(ARGV[2]))
"""
)

# The hash values of the members of a zset, in its order (members without one left out).
_INFOS_OF = """
local function infos_of(set, hash)
  local infos = {}
  for _, id in ipairs(redis.call('ZRANGE', set, 0, -1)) do
    local info = redis.call('HGET', hash, id)
    if info then
      infos[#infos + 1] = info
    end
  end
  return infos
end
"""

# -> info values of the live workers.
_LIVE_WORKERS = _SETTLE + _INFOS_OF + "return infos_of(KEYS[1], KEYS[2])\n"

# -> {now, {id, info, state, ...} of the live, dead and left, {lost members of the window}}.
_WORKERS = (
    _SETTLE
    + """
local found = {}
for _, set in ipairs({KEYS[1], KEYS[4]}) do
  for _, id in ipairs(redis.call('ZRANGE', set, 0, -1)) do
    local info = redis.call('HGET', KEYS[2], id)
    if info then
      found[#found + 1] = id
      found[#found + 1] = info
      found[#found + 1] = redis.call('HGET', KEYS[3], id) or ''
    end
  end
end
return {ms(now), found, redis.call('ZRANGE', KEYS[5], 0, -1)}
"""
)

# Keys as for _HEARTBEAT; ARGV[1] id. A live worker becomes left; any other stays as it is
# (one whose heartbeat expired is dead: the next settling records it so).
_REMOVE_WORKER = (
    _NOW_MS
    + _MS
    + """
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expiry and tonumber(expiry) > now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], 'left|' .. ms(now))
  redis.call('ZADD', KEYS[4], now, ARGV[1])
end
return 1
"""
)

# KEYS[1] workers_lost; ARGV[1] "<worker id>|", ARGV[2..] run ids. The first note counts.
_NOTE_LOST = (
    _NOW_MS
    + """
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'NX', now, ARGV[1] .. ARGV[i])
end
return 1
"""
)

# As _BEAT on replicas and replica_info.
_REPLICA_HEARTBEAT = _BEAT + "return 1\n"

# KEYS as for _REPLICA_HEARTBEAT -> {now, info values of the live replicas}; drops the others.
_REPLICAS = (
    _NOW_MS
    + _MS
    + _INFOS_OF
    + """
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('HDEL', KEYS[2], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {ms(now), infos_of(KEYS[1], KEYS[2])}
"""
)

# KEYS: lease keys -> {value, ms left, ...}; a free key gives '' and -2.
_INSPECT = """
local out = {}
for _, key in ipairs(KEYS) do
  out[#out + 1] = redis.call('GET', key) or ''
  out[#out + 1] = redis.call('PTTL', key)
end
return out
"""

# KEYS[1] shard map; ARGV[1] version, ARGV[2] map JSON -> 1 if stored. A map whose version is
# not newer than the stored one comes from a stale leader and must not overwrite it.
_PUBLISH_SHARD_MAP = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(cjson.decode(current)['version']) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class SharedRedis:
    """One `redis.asyncio.Redis` client (and connection pool) for the leases and membership of
    one process; its connections are closed when the last user detaches.

    Timeouts are short (`timeout` seconds to connect and per reply) and failed commands are
    retried twice, so an unreachable Redis raises `Unavailable` within a few seconds.
    """

    def __init__(self, url: str, *, timeout: float = 2.0, health_check_interval: int = 5) -> None:
        self.timeout = timeout
        # A standalone Redis or, through Sentinel, whichever server is the primary now.
        self._handle = AsyncRedis(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=health_check_interval,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2),
        )
        self.client: Redis = self._handle.client
        self._users = 0

    def attach(self) -> Redis:
        self._users += 1
        return self.client

    async def detach(self) -> None:
        self._users -= 1
        if self._users == 0:
            await self._handle.aclose()

    async def ping(self) -> None:
        """Raises Unavailable unless Redis answers."""
        with _unavailable("ping"):
            await self.client.ping()


def _shared(redis_or_url: SharedRedis | str) -> SharedRedis:
    return SharedRedis(redis_or_url) if isinstance(redis_or_url, str) else redis_or_url


def _text(value: bytes | str | None) -> str | None:
    # The client decodes replies (decode_responses=True); its stubs still allow bytes.
    return value.decode() if isinstance(value, bytes) else value


def _ttl_ms(ttl: timedelta) -> int:
    return max(1, round(ttl_seconds(ttl) * 1000))


class RedisLeases:
    """`Leases` in Redis. Tokens come from one counter (`P fencing`) for all keys.

    `redis`: a URL (own client) or a `SharedRedis` used with a `RedisMembership`.
    """

    def __init__(self, redis: SharedRedis | str, prefix: str = DEFAULT_PREFIX) -> None:
        self._shared = _shared(redis)
        client = self._shared.attach()
        self._prefix = prefix
        self._fencing_key = f"{prefix}fencing"
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._seed = client.register_script(_SEED_FENCING)
        self._inspect = client.register_script(_INSPECT)
        self._client = client
        self._closed = False

    def _key(self, key: str) -> str:
        return f"{self._prefix}lease:{key}"

    async def acquire(self, key: str, owner: str, ttl: timedelta) -> Lease | None:
        with _unavailable(f"acquire {key!r}"):
            token = await self._acquire(
                keys=[self._key(key), self._fencing_key], args=[owner, _ttl_ms(ttl)]
            )
        return None if token is None else Lease(key, owner, int(token), ttl)

    async def renew(self, lease: Lease) -> bool:
        with _unavailable(f"renew {lease.key!r}"):
            done = await self._renew(
                keys=[self._key(lease.key)],
                args=[f"{lease.owner}|{lease.token}", _ttl_ms(lease.ttl)],
            )
        return bool(done)

    async def release(self, lease: Lease) -> bool:
        with _unavailable(f"release {lease.key!r}"):
            done = await self._release(
                keys=[self._key(lease.key)], args=[f"{lease.owner}|{lease.token}"]
            )
        return bool(done)

    async def holder(self, key: str) -> str | None:
        with _unavailable(f"holder {key!r}"):
            value = _text(await self._client.get(self._key(key)))
        # The owner may itself contain "|"; the token after the last one never does.
        return None if value is None else value.rpartition("|")[0]

    async def inspect(self, keys: Sequence[str]) -> dict[str, Lease]:
        if not keys:
            return {}
        with _unavailable("inspect"):
            found: list[Any] = await self._inspect(keys=[self._key(k) for k in keys])
        out: dict[str, Lease] = {}
        for key, value, left in zip(keys, found[::2], found[1::2], strict=True):
            owner, _, token = (_text(value) or "").rpartition("|")
            if token and int(left) > 0:
                out[key] = Lease(key, owner, int(token), timedelta(milliseconds=int(left)))
        return out

    async def seed_fencing(self, at_least: int) -> None:
        if at_least < 0:
            raise ValueError(f"at_least must not be negative, got {at_least}")
        with _unavailable("seed_fencing"):
            await self._seed(keys=[self._fencing_key], args=[at_least])

    async def ping(self) -> None:
        await self._shared.ping()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._shared.detach()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _from_iso(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value)


def _ms_time(ms: int | str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def _stamped(text: str) -> tuple[datetime | None, str]:
    """A record stored as "<ms>|<JSON>": its time and its JSON (a record without the time,
    written before records carried it, gives None)."""
    if text.startswith("{"):
        return None, text
    ms, _, rest = text.partition("|")
    return _ms_time(ms), rest


def _encode_worker(worker: WorkerInfo) -> str:
    return json.dumps(
        {
            "worker_id": worker.worker_id,
            "executors": sorted(worker.executors),
            "capacity": worker.capacity,
            "coordinator": worker.coordinator,
            "leaving": worker.leaving,
            "host": worker.host,
            "started_at": _iso(worker.started_at),
            "runs_in_progress": worker.runs_in_progress,
            "ran_last_minute": worker.ran_last_minute,
        }
    )


def _decode_worker(text: str) -> WorkerInfo:
    data = json.loads(_stamped(text)[1])
    return WorkerInfo(
        worker_id=data["worker_id"],
        executors=frozenset(data["executors"]),
        capacity=int(data["capacity"]),
        coordinator=data["coordinator"],
        leaving=bool(data.get("leaving", False)),
        host=data.get("host", ""),
        started_at=_from_iso(data.get("started_at")),
        runs_in_progress=int(data.get("runs_in_progress", 0)),
        ran_last_minute=int(data.get("ran_last_minute", 0)),
    )


def _decode_record(info: str, state: str, lost: int, now: datetime) -> WorkerRecord:
    worker = _decode_worker(info)
    beat = _stamped(info)[0] or now
    name, _, since = state.partition("|")
    try:
        current = WorkerState(name)
    except ValueError:  # no state recorded (a record older than states): judged by its flag
        current, since = (WorkerState.LEAVING if worker.leaving else WorkerState.ALIVE), ""
    return WorkerRecord(worker, current, _ms_time(since) if since else beat, beat, lost)


def _encode_replica(replica: ReplicaInfo) -> str:
    return json.dumps({"replica_id": replica.replica_id, "address": replica.address,
                       "started_at": _iso(replica.started_at), "leader_since": _iso(replica.leader_since)})  # fmt: skip


def _decode_replica(text: str, now: datetime) -> ReplicaRecord:
    beat, body = _stamped(text)
    data = json.loads(body)
    info = ReplicaInfo(data["replica_id"], data.get("address", ""), _from_iso(data.get("started_at")),
                       _from_iso(data.get("leader_since")))  # fmt: skip
    return ReplicaRecord(info, beat or now)


def _encode_shard_map(shard_map: ShardMap) -> str:
    owners = {str(shard): owner for shard, owner in sorted(shard_map.owners.items())}
    return json.dumps({"version": shard_map.version, "owners": owners})


def _decode_shard_map(text: str) -> ShardMap:
    data = json.loads(text)
    return ShardMap(int(data["version"]), {int(s): o for s, o in data["owners"].items()})


def _encode_hint(worker_id: str, fire: Fire) -> str:
    # ISO 8601 keeps the microseconds and the offset, so the Fire compares equal on arrival.
    return json.dumps(
        {
            "worker_id": worker_id,
            "due": fire.due.isoformat(),
            "namespace": fire.namespace,
            "job_id": fire.job_id,
            "shard": fire.shard,
            "attempt": fire.attempt,
            "kind": fire.kind.value,
            "priority": fire.priority,
            # A backfilled or jittered fire's identity, and a manual fire's overlap override.
            "nominal": None if fire.nominal is None else fire.nominal.isoformat(),
            "overlap": None if fire.overlap is None else fire.overlap.value,
        }
    )


def _decode_hint(text: str) -> tuple[str, Fire]:
    data: dict[str, Any] = json.loads(text)
    fire = Fire(
        due=datetime.fromisoformat(data["due"]),
        namespace=data["namespace"],
        job_id=data["job_id"],
        shard=int(data["shard"]),
        attempt=int(data["attempt"]),
        kind=FireKind(data["kind"]),
        priority=int(data["priority"]),
        nominal=datetime.fromisoformat(data["nominal"]) if data.get("nominal") else None,
        overlap=OverlapPolicy(data["overlap"]) if data.get("overlap") else None,
    )
    return data["worker_id"], fire


class RedisMembership:
    """`Membership` in Redis.

    Hints use Redis pub/sub: at most once, only to subscribers connected when they are
    published (workers poll their shards anyway). One subscription per instance feeds every
    open `hints()` stream; it starts with the first stream and stops when the last one closes.
    """

    def __init__(
        self,
        redis: SharedRedis | str,
        prefix: str = DEFAULT_PREFIX,
        *,
        hint_buffer: int = DEFAULT_HINT_BUFFER,
        dead_retention: timedelta = DEFAULT_DEAD_RETENTION,
    ) -> None:
        self._shared = _shared(redis)
        client = self._shared.attach()
        self._client = client
        # live, info, state, gone, lost: the keys of every worker script, in this order.
        self._worker_keys = [f"{prefix}{name}" for name in ("workers", "worker_info", "worker_state", "workers_gone",
                                                             "workers_lost")]  # fmt: skip
        self._replica_keys = [f"{prefix}replicas", f"{prefix}replica_info"]
        self._settle_args = [_ttl_ms(dead_retention), _ttl_ms(COUNT_WINDOW)]
        self._shard_map_key = f"{prefix}shard_map"
        self._channel = f"{prefix}hints"
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._live_workers = client.register_script(_LIVE_WORKERS)
        self._workers = client.register_script(_WORKERS)
        self._remove_worker = client.register_script(_REMOVE_WORKER)
        self._note_lost = client.register_script(_NOTE_LOST)
        self._replica_heartbeat = client.register_script(_REPLICA_HEARTBEAT)
        self._replicas = client.register_script(_REPLICAS)
        self._publish_shard_map = client.register_script(_PUBLISH_SHARD_MAP)
        self._fanout = HintFanout(hint_buffer, on_idle=self._stop_listener)
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._stopping: set[asyncio.Task[None]] = set()
        self._closed = False

    async def heartbeat(self, worker: WorkerInfo, ttl: timedelta) -> None:
        state = WorkerState.LEAVING if worker.leaving else WorkerState.ALIVE
        with _unavailable(f"heartbeat {worker.worker_id!r}"):
            await self._heartbeat(
                keys=self._worker_keys[:4],
                args=[worker.worker_id, _encode_worker(worker), _ttl_ms(ttl), state.value],
            )

    async def live_workers(self) -> list[WorkerInfo]:
        with _unavailable("live_workers"):
            infos: list[str] = await self._live_workers(keys=self._worker_keys, args=self._settle_args)
        return sorted((_decode_worker(i) for i in infos), key=lambda w: w.worker_id)

    async def remove_worker(self, worker_id: str) -> None:
        with _unavailable(f"remove_worker {worker_id!r}"):
            await self._remove_worker(keys=self._worker_keys[:4], args=[worker_id])

    async def workers(self) -> list[WorkerRecord]:
        with _unavailable("workers"):
            now_ms, found, lost = await self._workers(keys=self._worker_keys, args=self._settle_args)
        now = _ms_time(now_ms)
        lost_by = Counter(member.rpartition("|")[0] for member in lost)
        records = [_decode_record(info, state, lost_by[worker_id], now)
                   for worker_id, info, state in zip(found[::3], found[1::3], found[2::3], strict=True)]  # fmt: skip
        return sorted(records, key=lambda r: r.info.worker_id)

    async def note_lost(self, worker_id: str, run_ids: Sequence[str]) -> None:
        if not run_ids:
            return
        with _unavailable(f"note_lost {worker_id!r}"):
            await self._note_lost(keys=self._worker_keys[4:], args=[f"{worker_id}|", *run_ids])

    async def replica_heartbeat(self, replica: ReplicaInfo, ttl: timedelta) -> None:
        with _unavailable(f"replica_heartbeat {replica.replica_id!r}"):
            await self._replica_heartbeat(
                keys=self._replica_keys, args=[replica.replica_id, _encode_replica(replica), _ttl_ms(ttl)]
            )

    async def replicas(self) -> list[ReplicaRecord]:
        with _unavailable("replicas"):
            now_ms, infos = await self._replicas(keys=self._replica_keys)
        now = _ms_time(now_ms)
        return sorted((_decode_replica(i, now) for i in infos), key=lambda r: r.info.replica_id)

    async def publish_shard_map(self, shard_map: ShardMap) -> None:
        """Stores the map unless the stored one has the same or a newer version (a stale
        leader's map is ignored)."""
        with _unavailable("publish_shard_map"):
            stored = await self._publish_shard_map(
                keys=[self._shard_map_key],
                args=[shard_map.version, _encode_shard_map(shard_map)],
            )
        if not stored:
            log.info("ignored shard map version %d: a newer one is published", shard_map.version)

    async def shard_map(self) -> ShardMap:
        with _unavailable("shard_map"):
            text = _text(await self._client.get(self._shard_map_key))
        return ShardMap(0, {}) if text is None else _decode_shard_map(text)

    async def publish_hint(self, worker_id: str, fire: Fire) -> None:
        listener, subscribed = self._listener, self._subscribed
        if listener is not None and not listener.done() and not subscribed.is_set():
            # A hints() stream of this instance is still subscribing. Pub/sub only reaches
            # subscribed connections, so wait: a hint published after hints() returned must
            # reach it. Bounded: if subscribing fails, the publish below reports it.
            with suppress(TimeoutError):
                await asyncio.wait_for(subscribed.wait(), self._shared.timeout)
        with _unavailable("publish_hint"):
            await self._client.publish(self._channel, _encode_hint(worker_id, fire))

    def hints(self) -> HintStream:
        """Every hint published after the subscription is active (at once for hints published
        through this instance), until the stream is closed; it ends when the membership closes.

        Raises Unavailable (after the hints already received) when the subscription is lost;
        call hints() again to resubscribe. Must be called with an event loop running.
        """
        stream = self._fanout.open()
        if self._listener is None or self._listener.done():
            self._subscribed = asyncio.Event()
            self._listener = asyncio.create_task(
                self._listen(self._subscribed), name=f"hourglass-hints-listener[{self._channel}]"
            )
        return stream

    def _stop_listener(self) -> None:
        # Nobody listens any more: unsubscribe. Keep a reference until the task is done (the
        # loop holds tasks only weakly), and forget it now so the next hints() starts afresh.
        listener, self._listener = self._listener, None
        if listener is not None and not listener.done():
            listener.cancel()
            self._stopping.add(listener)
            listener.add_done_callback(self._stopping.discard)

    async def _listen(self, subscribed: asyncio.Event) -> None:
        me = asyncio.current_task()
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            while True:
                # A bounded wait rather than a blocking read, so the health check (a PING on
                # an idle connection) runs and a dead connection is noticed.
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    subscribed.set()
                elif message["type"] == "message" and self._listener is me:
                    try:
                        hint = _decode_hint(message["data"])
                    except (ValueError, KeyError, TypeError):
                        log.warning("dropped a malformed hint: %.200r", message["data"])
                        continue
                    self._fanout.publish(*hint)
        except _DOWN as exc:
            log.warning("hint subscription on %s lost: %s", self._channel, exc)
            if self._listener is me:
                self._fanout.fail(Unavailable(f"redis: hints subscription lost: {exc}"))
        except Exception as exc:
            log.exception("hint listener on %s failed", self._channel)
            if self._listener is me:
                self._fanout.fail(exc)
        finally:
            subscribed.set()  # wake publish_hint callers waiting for this subscription
            # Disconnecting drops the subscription on the server; no UNSUBSCRIBE round trip
            # that could hang on a dead connection.
            with suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            log.info("hint listener on %s stopped", self._channel)

    async def close(self) -> None:
        """Ends every open hints() stream, unsubscribes and closes the connection (if no
        RedisLeases still shares it)."""
        if self._closed:
            return
        self._closed = True
        self._fanout.close()
        self._stop_listener()
        for task in list(self._stopping):
            with suppress(asyncio.CancelledError):
                await task
        await self._shared.detach()
