"""Each replica records itself in the coordination backend, once a second, so that any replica
can list them all (ListCoordinators): its address, its start, since when it leads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from hourglass_core.backoff import RateLimitedLog
from hourglass_core.leases.base import Membership, ReplicaInfo

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)
ANNOUNCE_EVERY_S = 1.0
# Missing two announcements in a row takes a replica off the list.
ANNOUNCE_TTL = timedelta(seconds=3 * ANNOUNCE_EVERY_S)


async def announce(membership: Membership, replica: Callable[[], ReplicaInfo]) -> None:
    """Forever: records `replica()` as up."""
    while True:
        try:
            await membership.replica_heartbeat(replica(), ANNOUNCE_TTL)
        except Exception as error:  # noqa: BLE001 - the backend may be briefly away
            warn.warning("announce", "could not announce this replica: %s", error)
        await asyncio.sleep(ANNOUNCE_EVERY_S)
