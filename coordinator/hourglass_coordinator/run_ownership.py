"""Which run events a worker's stream may write: the runs of fires given to that worker.

A worker reports the runs of fires it claimed in its shards, and, as a shard's new owner, those
a dead worker left cut off (LOST, naming that worker). A stream's events are checked before
anything is written:
- `flaw`: namespace, job id and run id present, the run id spelling out that job and attempt,
  and only a LOST run naming another worker;
- the run's shard is the sender's in the replica's shard map (`strays`: no read, the common
  case), or else `foreign` finds the fire's claim, or the run's record, naming the sender (a
  shard that moved on while its former owner finished what it had claimed; a map that lags).
A run of another worker's shard that it neither claimed nor ran is not the sender's to write,
so a worker cannot overwrite (or complete the job of) a run given to another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from hourglass_core import claims
from hourglass_core.errors import RunNotFound
from hourglass_core.models import Fire, Run, RunStatus
from hourglass_core.sharding import shard_of
from hourglass_core.store.base import Store


def flaw(run: Run, sender: str) -> tuple[str, str] | None:
    """(field, why) for an event no worker sends; None if it is well-formed."""
    for field in ("namespace", "job_id", "run_id"):
        if not getattr(run, field):
            return field, "is empty"
    # Cheaper than spelling the id out again (run_id_for): the part that names the run's key.
    if not (run.run_id.startswith(f"{run.namespace}:{run.job_id}:") and run.run_id.endswith(f":{run.attempt}")):
        return "run_id", f"{run.run_id!r} is not an id of attempt {run.attempt} of job {run.job_id!r}"
    if run.worker_id != sender and run.status is not RunStatus.LOST:
        return "worker_id", f"only a run recorded LOST may name another worker than the sender ({run.worker_id!r})"
    return None


def strays(runs: Sequence[Run], sender: str, owners: Mapping[int, str], num_shards: int) -> list[int]:
    """The indices of the runs whose shard the shard map does not give to `sender`."""
    return [i for i, run in enumerate(runs) if owners.get(shard_of(run.job_id, num_shards)) != sender]


async def foreign(store: Store, run: Run, sender: str, num_shards: int) -> str | None:
    """Why `sender` may not write `run` (of a shard not its own now); None when the fire's
    claim names it or the run's record says it ran there."""
    fire = Fire(run.due, run.namespace, run.job_id, shard_of(run.job_id, num_shards), run.attempt)
    holder, recorded = await asyncio.gather(store.claim_owner(fire), _recorded(store, run.run_id))
    claimer = claims.parse(holder).worker_id if holder is not None else None
    if sender in (claimer, recorded):
        return None
    return f"run {run.run_id} was not given to worker {sender!r} (its fire was claimed by {claimer or 'nobody'})"


async def _recorded(store: Store, run_id: str) -> str | None:
    """The worker the run's record names, if it has one."""
    try:
        return (await store.get_run(run_id)).worker_id
    except RunNotFound:
        return None
