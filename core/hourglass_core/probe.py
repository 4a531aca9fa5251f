"""Whether the backends answer, asked every second: what a process's health checks report.

Each check is a cheap call (`Store.ping`, `Leases.ping`) bounded by a timeout, so a backend
that hangs counts as away as surely as one that refuses connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)
INTERVAL_S = 1.0
TIMEOUT_S = 2.0

Check = Callable[[], Awaitable[None]]


class BackendProbe:
    """Runs every check each `interval` seconds, all at once. `ok` is False until the first
    round found every backend answering, and again from the first round in which one did not
    (no hysteresis here: probes that act on it, such as Kubernetes', count failures themselves).
    `on_change(ok)` is awaited whenever `ok` changes."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        *,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
        interval: float = INTERVAL_S,
        timeout: float = TIMEOUT_S,
    ) -> None:
        self._checks = dict(checks)
        self._on_change = on_change
        self._interval = interval
        self._timeout = timeout
        self.ok = False
        self.failing: dict[str, str] = {}  # check name -> why, as of the last round

    def why(self) -> str:
        """What the last round found wrong ("" when ok)."""
        if self.ok:
            return ""
        return "; ".join(f"{name}: {why}" for name, why in self.failing.items()) or "not probed yet"

    async def _one(self, check: Check) -> str | None:
        try:
            await asyncio.wait_for(check(), self._timeout)
            return None
        except TimeoutError:
            return f"no answer within {self._timeout:g} s"
        except Exception as error:  # noqa: BLE001 - any failure means "not answering"
            return str(error) or type(error).__name__

    async def check(self) -> bool:
        """One round; returns (and records) whether every backend answered."""
        names = list(self._checks)
        answers = await asyncio.gather(*(self._one(self._checks[n]) for n in names))
        failing = {name: why for name, why in zip(names, answers, strict=True) if why is not None}
        ok = not failing
        if ok != self.ok or failing.keys() != self.failing.keys():
            if ok:
                log.info("health: every backend answers (%s)", ", ".join(names))
            else:
                log.warning("health: not answering: %s", "; ".join(f"{n}: {why}" for n, why in failing.items()))
        self.failing = failing
        if ok != self.ok:
            self.ok = ok
            if self._on_change is not None:
                await self._on_change(ok)
        return ok

    async def run(self) -> None:
        """Forever: a round at once, then one every interval."""
        while True:
            await self.check()
            await asyncio.sleep(self._interval)
