"""The client API's logic (JobsApi) on the embedded store: which fires it hints to workers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hourglass_coordinator.jobs import JobsApi
from hourglass_core.models import Fire, JobSpec, OnceTrigger
from hourglass_core.store.base import Store

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


async def test_only_fires_due_within_the_workers_lookahead_are_hinted(fresh_sqlite_store: Store) -> None:
    hinted: list[Fire] = []

    async def hint(fires: Sequence[Fire]) -> None:
        hinted.extend(fires)

    api = JobsApi(fresh_sqlite_store, num_shards=4, max_params_bytes=1024, hint=hint,
                  clock=lambda: NOW, hint_within=timedelta(seconds=3))  # fmt: skip
    soon, later = NOW + timedelta(seconds=2), NOW + timedelta(hours=1)
    created = await api.submit(
        [JobSpec(name="soon", executor="echo", trigger=OnceTrigger(at=soon)),
         JobSpec(name="later", executor="echo", trigger=OnceTrigger(at=later))]
    )
    assert [c.job.next_fire_time for c in created] == [soon, later]
    # The far one is read by its shard's owner in time; hinted, it would be claimed an hour early.
    assert [(f.job_id, f.due) for f in hinted] == [(created[0].job.id, soon)]
