"""Opens the `Leases` and `Membership` pair named by a coordination URL (`Settings.coordination`)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from hourglass_core.credentials import redact
from hourglass_core.leases.base import DEFAULT_DEAD_RETENTION, Leases, Membership
from hourglass_core.leases.memory import MemoryLeases, MemoryMembership
from hourglass_core.leases.redis import DEFAULT_PREFIX, RedisLeases, RedisMembership, SharedRedis
from hourglass_core.leases.redis_connect import SCHEMES as REDIS_SCHEMES


async def open_coordination(
    url: str, prefix: str = DEFAULT_PREFIX, dead_retention: timedelta = DEFAULT_DEAD_RETENTION
) -> tuple[Leases, Membership]:
    """`redis://host:port/db` (also `rediss://`, `unix://`, and `redis+sentinel://` /
    `rediss+sentinel://` through Redis Sentinel: see `redis_connect`): a Redis pair sharing one client,
    checked with a PING (raises Unavailable if Redis does not answer); its connections close
    when both are closed. `memory://`: a new in-process pair (`prefix` unused), only for a
    single process. Raises ValueError for any other URL. `dead_retention`: how long dead and
    departed workers stay listed.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        return MemoryLeases(), MemoryMembership(dead_retention=dead_retention)
    if scheme in REDIS_SCHEMES:
        shared = SharedRedis(url)
        leases = RedisLeases(shared, prefix)
        membership = RedisMembership(shared, prefix, dead_retention=dead_retention)
        try:
            await shared.ping()
        except BaseException:
            await leases.close()
            await membership.close()
            raise
        return leases, membership
    raise ValueError(
        f"unsupported coordination URL {redact(url)!r}: expected redis://host:port/db, rediss://..., "
        "unix:///path.sock, redis+sentinel://host:port[,host:port...]/service or memory://"
    )
