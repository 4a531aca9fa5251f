"""The backend probe: ok only while every check answers in time, changes reported once each."""

from __future__ import annotations

import asyncio

from hourglass_core.errors import Unavailable
from hourglass_core.probe import BackendProbe


class Backend:
    def __init__(self) -> None:
        self.up = True
        self.hang = False

    async def ping(self) -> None:
        if self.hang:
            await asyncio.sleep(10)
        if not self.up:
            raise Unavailable("redis: ping: Connection refused")


async def test_ok_only_while_every_backend_answers_and_each_change_is_reported_once() -> None:
    store, redis = Backend(), Backend()
    changes: list[bool] = []

    async def changed(ok: bool) -> None:
        changes.append(ok)

    probe = BackendProbe({"store": store.ping, "coordination": redis.ping}, on_change=changed)
    assert not probe.ok  # nothing asked yet
    assert await probe.check() and await probe.check()
    redis.up = False
    assert not await probe.check()
    assert probe.failing == {"coordination": "redis: ping: Connection refused"}
    assert not await probe.check()
    redis.up = True
    assert await probe.check()
    assert changes == [True, False, True] and probe.failing == {}


async def test_a_backend_that_does_not_answer_in_time_is_away() -> None:
    store = Backend()
    probe = BackendProbe({"store": store.ping}, timeout=0.05)
    store.hang = True
    assert not await probe.check()
    assert probe.failing == {"store": "no answer within 0.05 s"}
