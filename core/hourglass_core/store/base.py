"""The `Store` protocol: durable jobs, schedule and runs.

Two implementations: `CassandraStore` (production) and `SqliteStore` (embedded, one machine).
Both pass the same contract suite (tests/contract/test_store_contract.py).

Rules every implementation keeps:
- A method returns only after its writes are durable (Cassandra: acknowledged at the configured
  consistency; SQLite: committed).
- Schedule rows (fires) are never deleted: progress is a per-shard checkpoint, old rows expire.
- Unreachable backend -> `Unavailable`; unknown ids -> `JobNotFound` / `RunNotFound`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hourglass_core.models import Fire, Job, JobEvent, JobFilter, JobState, NamespacePolicy, Page, Run


@dataclass(frozen=True, slots=True)
class Created:
    job: Job
    created: bool  # False: the idempotency key returned a job stored earlier


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """All fires of the shard due at or before `at` have been handled (claimed or dropped)."""

    shard: int
    at: datetime
    token: int


class Store(Protocol):
    async def migrate(self) -> int:
        """Creates or upgrades the schema; idempotent. Returns the schema version now in force."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Returns once the store answers a trivial read (health probes: cheap enough to call
        every second); raises Unavailable, or the backend's error, otherwise."""
        ...

    # -- jobs -----------------------------------------------------------------------------
    async def create_jobs(self, jobs: Sequence[tuple[Job, Fire | None]]) -> list[Created]:
        """Stores each job with its first fire (None: the trigger never fires).

        A job with an idempotency key already used in its namespace is not written: the result
        holds the job stored then, with created=False. Results are in input order. When this
        returns, every created job and its first fire are durable. A keyed job must have the
        id `firing.job_id_for_key(namespace, key)` (JobsApi builds it so; the store does not
        compute it again): the key is then found as its job, and submits racing on one key
        store one job even where the store does not serialise them.
        """
        ...

    async def get_job(self, namespace: str, job_id: str) -> Job:
        """Raises JobNotFound."""
        ...

    async def get_jobs(self, namespace: str, job_ids: Sequence[str]) -> dict[str, Job]:
        """The stored jobs among `job_ids`, by id (ids not stored are left out); for many
        reads at once."""
        ...

    async def list_jobs(
        self, namespace: str, flt: JobFilter, page_size: int, page_token: str
    ) -> Page[Job]:
        """A page of at most page_size matching jobs; next_page_token is empty on the last page.
        Raises InvalidArgument("page_token", ...) for a token this store did not hand out."""
        ...

    async def list_jobs_newest(
        self, namespace: str, flt: JobFilter, page_size: int, page_token: str
    ) -> Page[Job]:
        """As list_jobs, newest first (by created_at, then id, descending), from an index: a
        page reads at most ~10 pages' worth of rows, so a sparse filter may return a short
        (even empty) page with a token to go on. Jobs created after a page was read and newer
        than it are not on the pages that follow."""
        ...

    async def set_job_state(
        self, namespace: str, job_id: str, state: JobState, next_fire: Fire | None, note: str = ""
    ) -> Job:
        """Sets the state, the note and next_fire_time (next_fire.at, or unset); writes
        next_fire's row.
        Returns the job as stored afterwards. Raises JobNotFound."""
        ...

    async def update_job(self, job: Job, expected: Job, next_fire: Fire | None) -> Job:
        """Stores `job`'s updatable fields (codec.UPDATE_COLUMNS: spec, state, next fire time,
        version) and writes next_fire's row, only while the stored job is at `expected`'s
        version and state; else raises FailedPrecondition (JobNotFound if it is gone).
        Returns the job as stored afterwards."""
        ...

    async def record_job_event(self, event: JobEvent) -> None:
        """Keeps an event (one per job, instant and kind) until the runs' retention ends."""
        ...

    async def job_events(self, namespace: str, job_id: str, since: datetime, until: datetime) -> list[JobEvent]:
        """The job's events with since <= at < until, oldest first."""
        ...

    async def delete_job(self, namespace: str, job_id: str) -> None:
        """Removes the job and its listing entry (runs stay until their retention ends).
        Raises JobNotFound."""
        ...

    async def advance_schedule(self, job: Job, next_fire: Fire | None, *, read_at: datetime | None = None) -> None:
        """After a scheduled fire of `job` was claimed: records `next_fire` as the job's next
        fire and writes its row, or (None) marks an ACTIVE job COMPLETED. Idempotent. Never
        turns a PAUSED or CANCELLED job back to ACTIVE, nor one not ACTIVE to COMPLETED, and
        never undoes a move of the schedule made after `job` was read.

        `read_at`: when the read of `job` returned, to a caller that then won the claim of the
        fire. The store may then skip reading the job again: the claim makes the caller the
        only one moving the schedule on from that fire, and a move made later wins."""
        ...

    async def advance_schedules(self, moves: Sequence[tuple[Job, Fire | None, datetime]]) -> None:
        """`advance_schedule(job, next_fire, read_at=read_at)` of each (job, next_fire,
        read_at), by claim winners only, in as few requests as the store can."""
        ...

    # -- schedule -------------------------------------------------------------------------
    async def put_fire(self, fire: Fire) -> None:
        """Writes one schedule row (idempotent: same shard, due, job and attempt = same row)."""
        ...

    async def put_fires(self, fires: Sequence[Fire]) -> None:
        """`put_fire` of each, in as few requests as the store can."""
        ...

    async def due_fires(
        self, shard: int, after: datetime, until: datetime, limit: int
    ) -> list[Fire]:
        """Fires of the shard with after < due <= until, ordered by due, at most `limit`."""
        ...

    async def claim_fire(self, fire: Fire, worker_id: str, token: int) -> bool:
        """True for exactly one caller per (namespace, job_id, due, attempt), ever."""
        ...

    async def claim_fires(self, claims: Sequence[tuple[Fire, str, int]]) -> list[bool]:
        """`claim_fire` of each (fire, worker_id, token), in as few requests as the store can;
        results in input order."""
        ...

    async def steal_claim(self, fire: Fire, from_worker: str, to_worker: str, token: int) -> bool:
        """Moves the fire's claim from `from_worker` (found dead) to `to_worker`; True for
        exactly one caller, and only while `from_worker` still holds the claim."""
        ...

    async def claim_owner(self, fire: Fire) -> str | None:
        """The worker id that claimed the fire, or None if nobody has."""
        ...

    async def load_checkpoint(self, shard: int) -> Checkpoint | None: ...

    async def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Raises StaleOwner when a checkpoint with a larger token was saved for the shard."""
        ...

    async def max_fencing_token(self) -> int:
        """The largest token any saved checkpoint carries (0 if none): seeds the lease counter
        after the lease backend lost its data, so tokens never go backwards."""
        ...

    # -- runs -----------------------------------------------------------------------------
    async def record_run(self, run: Run) -> None:
        """Upserts the run (by id and in its job's run list) and mirrors it on the job:
        RUNNING sets running, last_start_time and last_executor; a finished status clears
        running and sets last_end_time and last_status, and, when it has a start time,
        last_start_time and last_executor as of that start (a short run may have had no
        RUNNING event). A finished run is never turned back to RUNNING by a late or repeated
        event, and the job's last start is that of the run that started last. A run that
        `completes` its job completes it as advance_schedule(read_at=completes.decided_at)
        would (idempotent: an event may be sent again)."""
        ...

    async def record_runs(self, runs: Sequence[Run]) -> None:
        """`record_run` of each run, in as few requests as the store can: for many events at
        once. Durable for every run when it returns; after an error, some may be."""
        ...

    async def get_run(self, run_id: str) -> Run:
        """Raises RunNotFound."""
        ...

    async def list_runs(
        self, namespace: str, job_id: str, page_size: int, page_token: str
    ) -> Page[Run]:
        """The job's runs, newest due first (then highest attempt first)."""
        ...

    # -- begun watermarks -----------------------------------------------------------------
    async def save_begun(self, worker_id: str, through: datetime) -> None:
        """Records that `worker_id` may call executors of fires due up to `through`, and of no
        fire due later. Never lowers what is stored: the highest value written wins, whatever
        order concurrent writes land in. Durable when it returns."""
        ...

    async def load_begun(self, worker_id: str) -> datetime | None:
        """The highest `through` saved for `worker_id` (None: it never called an executor, or
        not within the last week)."""
        ...

    # -- executors ------------------------------------------------------------------------
    async def register_executors(self, names: Iterable[str]) -> None:
        """Remembers executor names some worker offered (submit validates against them)."""
        ...

    async def known_executors(self) -> set[str]: ...

    # -- namespace policies ---------------------------------------------------------------
    async def set_namespace_policy(self, policy: NamespacePolicy) -> None:
        """Stores the policy of `policy.namespace` in place of the one before (whole: the
        names given are all it allows); one with no allowed executors clears it."""
        ...

    async def get_namespace_policy(self, namespace: str) -> NamespacePolicy:
        """The namespace's policy; without one stored, one with no allowed executors (no limit)."""
        ...

    async def namespace_policies(self) -> dict[str, NamespacePolicy]:
        """Every stored policy, by namespace (a namespace left out has no limit): the workers
        read them all at once, every few seconds."""
        ...
