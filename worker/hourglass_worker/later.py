"""Fires to look at again later: watched while another worker holds them, or retried with
backoff after a store error (no hot loop while the store is away; a quick catch-up once it is
back), or while the job's schedule may be moving to them."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hourglass_core.backoff import Backoff
from hourglass_core.models import Fire
from hourglass_worker.claiming import Later
from hourglass_worker.timer import FireKey, FireTimer, fire_key

WATCH_EVERY_S = 1.0
# While the store is away, each waiting fire tries again at most this often.
BACKOFF_CAP_S = 2.0
MOVING_TRIES = 6  # with the backoff: a few seconds


@dataclass(slots=True)
class _Waiting:
    life: int  # the shard life the fire was taken in
    backoff: Backoff
    moving: int = 0  # times it looked like a fire the schedule was moving to


class LookAgain:
    """`again(fire, life)` is called for each fire when its time to look again has come."""

    def __init__(self, again: Callable[[Fire, int], None]) -> None:
        self._again = again
        self._timer = FireTimer()
        self._waiting: dict[FireKey, _Waiting] = {}
        self._store_failing = False

    def schedule(self, fire: Fire, life: int, why: Later) -> bool:
        """Schedules another look; False if it is time to stop looking (a row the schedule
        never moved to: a stale one)."""
        waiting = self._entry(fire, life)
        if why is Later.WATCH:
            # Its holder runs it at its due time at the earliest: no point looking before.
            wait = max(WATCH_EVERY_S, (fire.due - datetime.now(UTC)).total_seconds() + 0.2)
            delay = wait * (0.75 + random.random() / 2)
        else:
            if why is Later.MOVING:
                waiting.moving += 1
                if waiting.moving > MOVING_TRIES:
                    self.forget(fire)
                    return False
            delay = waiting.backoff.next_delay()
        self._timer.add(fire, at=datetime.now(UTC) + timedelta(seconds=delay))
        return True

    def forget(self, fire: Fire) -> None:
        self._waiting.pop(fire_key(fire), None)

    def store_failed(self) -> None:
        self._store_failing = True

    def store_answered(self) -> None:
        """After an outage, what waits out a backoff is looked at again at once."""
        if self._store_failing:
            self._store_failing = False
            self._timer.hurry()

    def _entry(self, fire: Fire, life: int) -> _Waiting:
        key = fire_key(fire)
        waiting = self._waiting.get(key)
        if waiting is None or waiting.life != life:
            waiting = self._waiting[key] = _Waiting(life, Backoff(0.1, BACKOFF_CAP_S))
        return waiting

    async def run(self) -> None:
        while True:
            for fire in await self._timer.next_due():
                waiting = self._waiting.get(fire_key(fire))
                if waiting is not None:
                    self._again(fire, waiting.life)
