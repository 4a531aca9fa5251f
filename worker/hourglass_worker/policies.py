"""The namespaces' executor policies as a worker holds them: all read from the store every few
seconds, looked up (one dict read) before each executor call.

Why the worker checks too: coordinators check a job's executor when it is submitted, so a job
accepted before its namespace's policy was narrowed would otherwise go on calling an executor
the policy now forbids. A policy is in force on every worker within REFRESH_S (plus a read)
of being set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hourglass_core.backoff import Backoff, RateLimitedLog
from hourglass_core.models import NamespacePolicy

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)
REFRESH_S = 2.0

Read = Callable[[], Awaitable[dict[str, NamespacePolicy]]]


class Policies:
    def __init__(self, read: Read, every_s: float = REFRESH_S) -> None:
        self._read = read
        self._every_s = every_s
        self._by_namespace: dict[str, NamespacePolicy] = {}
        # Set once a read succeeded: until then a fire waits rather than run unchecked.
        self.loaded = asyncio.Event()

    def refusal(self, namespace: str, executor: str) -> str | None:
        """Why a fire of `namespace` may not call `executor`; None if it may."""
        policy = self._by_namespace.get(namespace)
        return None if policy is None else policy.refusal(executor)

    async def refresh(self) -> None:
        self._by_namespace = await self._read()
        self.loaded.set()

    async def run(self) -> None:
        """Forever: reads every policy each `every_s`. While the store is away the policies
        read last stay in force; it is tried again within a second (fires wait for the first
        read, so a worker started while the store was away must not lag behind its return)."""
        backoff = Backoff(0.1, min(self._every_s, 1.0))
        while True:
            try:
                await self.refresh()
                backoff.reset()
                delay = self._every_s
            except Exception as error:  # noqa: BLE001 - the store may be away for a while
                warn.warning("policies", "reading the namespaces' executor policies failed: %s", error)
                delay = backoff.next_delay()
            await asyncio.sleep(delay)
