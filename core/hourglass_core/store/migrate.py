"""`hourglass db migrate`: create or upgrade a store's schema and give every shard a checkpoint.

Both steps are idempotent, so running this again (or on several machines at once) is harmless.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from hourglass_core.config import Settings
from hourglass_core.errors import StaleOwner
from hourglass_core.store.base import Checkpoint, Store
from hourglass_core.store.factory import open_store

log = logging.getLogger(__name__)


async def initialise(store: Store, num_shards: int, now: datetime | None = None) -> int:
    """Migrates the schema, then saves a checkpoint (at `now`, fencing token 0) for every shard
    in range(num_shards) that has none, so a shard's first owner knows where to start reading.
    Existing checkpoints are never moved: one saved by a shard owner (a larger token) wins over
    ours. Returns the schema version in force."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, not {num_shards}")
    version = await store.migrate()
    at = now or datetime.now(UTC)
    created = 0
    for shard in range(num_shards):
        if await store.load_checkpoint(shard) is not None:
            continue
        try:
            await store.save_checkpoint(Checkpoint(shard, at, 0))
            created += 1
        except StaleOwner:
            pass  # an owner saved one between our read and write: it is initialised
    log.info("schema version %d; %d of %d shard checkpoints created", version, created, num_shards)
    return version


async def migrate(settings: Settings, replication: str | None = None) -> int:
    """Opens the store `settings.store` names, runs `initialise` for `settings.num_shards` shards
    and closes it; a keyspace it creates gets `replication` (default: the URL's). Returns the
    schema version. Raises ValueError for a bad store URL or replication, Unavailable when the
    store cannot be reached."""
    store = await open_store(settings.store, replication=replication)
    try:
        return await initialise(store, settings.num_shards)
    finally:
        await store.close()
