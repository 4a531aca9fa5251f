"""Opens the store and the coordination backends a Settings names."""

from __future__ import annotations

from hourglass_core.config import Settings
from hourglass_core.leases.base import Leases, Membership
from hourglass_core.leases.factory import open_coordination
from hourglass_core.store.base import Store
from hourglass_core.store.factory import open_store
from hourglass_core.store.measured import measured

Backends = tuple[Store, Leases, Membership]


async def open_backends(settings: Settings) -> Backends:
    """The store (its calls' latency measured: see store.measured), leases and membership."""
    store = measured(await open_store(settings.store))
    leases, membership = await open_coordination(settings.coordination, settings.redis_prefix,
                                                 settings.dead_worker_retention)  # fmt: skip
    return store, leases, membership
