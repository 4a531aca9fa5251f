"""The begun watermark: which fires this worker may have called, told to whoever takes over.

When a worker dies, a fire it claimed that has no result is in one of two states: its executor
began (the run was cut off) or it never did (the fire was only reserved). Its shard's next
owner must tell them apart: a cut-off run follows the job's `on_worker_lost` policy, a fire
that never began runs as the same attempt. So before calling the executor of a fire due at
`d`, a worker makes a watermark `through >= d` durable: a fire due after its holder's watermark
certainly never began (the holder checks its lease right before each call, and a successor
reads the watermark only once that lease has expired).

One write covers every fire due in the next tens of milliseconds, so it costs a few writes a
second while fires run, never a write per fire. Fires ask for it `lead` before they are due,
a lead that follows how long the writes take, so that no fire waits for it; and it reaches only
a little past the fires that asked, so that few fires that never began fall below it when the
worker dies (those count as cut off: the default policy runs them again as the next attempt).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from hourglass_core.backoff import Backoff, RateLimitedLog

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)
MIN_LEAD = timedelta(milliseconds=10)
MAX_LEAD = timedelta(milliseconds=100)
FIRST_LEAD = timedelta(milliseconds=50)  # before any write was timed
# A write covers fires due up to this many leads (and at least REACH_MIN) ahead of now: fewer
# writes (at most about 1 / REACH_MIN a second while fires run) against fewer fires that never
# began below the watermark at a crash.
REACH = 3
REACH_MIN = timedelta(milliseconds=50)
_NEVER = datetime.min.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class BegunMark:
    """`await cover(due)` returns once the watermark is durably at or past `due`; `run()` is
    the loop that writes it (one write at a time, so it only ever grows)."""

    def __init__(
        self,
        save: Callable[[datetime], Awaitable[None]],
        *,
        clock: Callable[[], datetime] = utcnow,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._save = save
        self._clock = clock
        self._timer = timer  # times the writes
        self.durable = _NEVER
        self._wanted = _NEVER
        self._round: asyncio.Future[None] | None = None  # resolved by the next write to finish
        self._wake = asyncio.Event()
        self._latencies: deque[float] = deque(maxlen=32)

    @property
    def lead(self) -> timedelta:
        """How long before its due time a fire should ask to be covered: 1.5 times the slowest
        of the recent writes, within [MIN_LEAD, MAX_LEAD]."""
        if not self._latencies:
            return FIRST_LEAD
        return min(MAX_LEAD, max(MIN_LEAD, timedelta(seconds=1.5 * max(self._latencies))))

    async def cover(self, due: datetime) -> None:
        while self.durable < due:
            self._wanted = max(self._wanted, due)
            if self._round is None:
                self._round = asyncio.get_running_loop().create_future()
            round_ = self._round
            self._wake.set()
            await asyncio.shield(round_)  # one waiter cancelled must not cancel the others' round

    async def run(self) -> None:
        """Forever: writes the watermark whenever a fire asks for more than is durable. Store
        errors back off and try again; fires wait meanwhile (none runs uncovered)."""
        backoff = Backoff(0.05, 1.0)
        round_: asyncio.Future[None] | None = None
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                round_, self._round = self._round, None
                if round_ is None:
                    continue
                while self._wanted > self.durable:
                    target = max(self._wanted, self._clock() + max(REACH * self.lead, REACH_MIN))
                    began = self._timer()
                    try:
                        await self._save(target)
                    except Exception as error:  # noqa: BLE001 - the store may be away for a while
                        warn.warning("begun", "writing the begun watermark failed: %s", error)
                        await asyncio.sleep(backoff.next_delay())
                        continue
                    backoff.reset()
                    self._latencies.append(self._timer() - began)
                    self.durable = max(self.durable, target)
                round_.set_result(None)
        finally:
            for waiting in (round_, self._round):
                if waiting is not None and not waiting.done():
                    waiting.cancel()
            log.info("begun watermark writer stopped at %s", self.durable)
