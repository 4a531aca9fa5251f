"""Slow start for a Cassandra node that comes back.

A node restarted or replaced answers its first minute slowly: its JIT is cold, its caches are
empty, and it is taking hints or streaming. With every node a replica of every partition (three
nodes, RF 3), token-aware routing makes it the coordinator of a third of the requests the
moment the driver sees it up, and the fires those requests carry run seconds late (15-16 s of
them on this box before this policy). Writes still reach it as a replica: only its turn to
coordinate is eased in, from last in every query plan to its usual place over `warm_up_s`, and
a node still slow by then (its moving average of request latency, fed by `observe`, over twice
the fastest other node's) stays warming until it is fast.

Even so, the requests it coordinates in its first seconds took 0.5-1.8 s here (a shard read
of 1.8 s made a 1-second job's fires 2.4 s late). So while it warms up a lightweight
transaction (which may not be sent twice) never has it as coordinator, and an idempotent request
that has no answer within `retry_after_s` is sent again to the next node of its plan
(`WarmUpSpeculation`): the first answer wins. With no node warming, nothing is sent twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cassandra.policies import (
    ConstantSpeculativeExecutionPolicy,
    LoadBalancingPolicy,
    NoSpeculativeExecutionPlan,
    SpeculativeExecutionPlan,
    SpeculativeExecutionPolicy,
    WrapperPolicy,
)

log = logging.getLogger(__name__)
# A warming host whose requests take this many times as long as the fastest other host's (on
# average, once it has answered MIN_SAMPLES) is still cold: it keeps only TRICKLE of its place,
# enough to go on measuring it, and it stays warming past `warm_up_s` until it is fast. A node
# replaced with an empty disk answered in 1-4 s for more than a minute after it was up.
SLOW_FACTOR = 2.0
MIN_SAMPLES = 20
TRICKLE = 0.05
_WEIGHT = 0.1  # of each new observation in a host's moving average


def warm_order(plan: Iterable[Any], shares: dict[Any, float], chance: Callable[[], float]) -> list[Any]:
    """`plan` with each warming host (a key of `shares`) kept in its place with the chance its
    share gives (0 to 1), and moved to the end otherwise."""
    first: list[Any] = []
    last: list[Any] = []
    for host in plan:
        share = shares.get(host)
        keep = share is None or chance() < share
        (first if keep else last).append(host)
    return first + last


def share_of(elapsed_s: float, warm_up_s: float, slow: bool) -> float:
    """How much of its place a host warming for `elapsed_s` keeps: growing from 0 to 1 over
    `warm_up_s`, TRICKLE at most while it is slow."""
    ramp = min(1.0, elapsed_s / warm_up_s)
    return min(ramp, TRICKLE) if slow else ramp


class WarmUpPolicy(WrapperPolicy):  # type: ignore[misc]  # the driver is untyped
    """Wraps a policy: a host the driver sees come back up coordinates less for `warm_up_s`,
    and for as long after as it answers slowly (see the module; `observe` feeds it the
    latencies). The driver may signal every host up as it connects: they then warm up together,
    which reorders nothing much (a host is judged slow only against hosts not warming)."""

    def __init__(self, child_policy: LoadBalancingPolicy, warm_up_s: float = 60.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 chance: Callable[[], float] = random.random) -> None:
        super().__init__(child_policy)
        self._warm_up_s = warm_up_s
        self._clock = clock
        self._chance = chance
        # Replaced, never mutated: the driver's threads signal hosts while the event loop plans.
        self._warming: dict[Any, float] = {}
        self._latency: dict[Any, tuple[float, int]] = {}  # moving average (s) and samples, while watching

    @property
    def watching(self) -> bool:
        """Whether latencies are wanted: a host is (or was until the last plan) warming."""
        return bool(self._warming)

    def observe(self, host: Any, seconds: float) -> None:
        """A request first sent to `host` took `seconds` (sent again meanwhile or not: it had not
        answered by then)."""
        average, samples = self._latency.get(host, (seconds, 0))
        self._latency[host] = (average + _WEIGHT * (seconds - average), samples + 1)

    def _slow(self, host: Any) -> bool:
        average, samples = self._latency.get(host, (0.0, 0))
        others = [a for h, (a, n) in list(self._latency.items()) if h != host and h not in self._warming and n >= MIN_SAMPLES]
        return samples >= MIN_SAMPLES and bool(others) and average > SLOW_FACTOR * min(others)

    def _all_warmed(self, warming: dict[Any, float], now: float) -> bool:
        return all(now - since >= self._warm_up_s and not self._slow(host) for host, since in warming.items())

    def on_up(self, host: Any) -> None:
        self._latency.pop(host, None)  # what it answered before it went down says nothing now
        self._warming = {**self._warming, host: self._clock()}
        self._child_policy.on_up(host)

    def on_down(self, host: Any) -> None:
        self._forget(host)
        self._child_policy.on_down(host)

    def on_remove(self, host: Any) -> None:
        self._forget(host)
        self._child_policy.on_remove(host)

    def check_supported(self) -> None:  # WrapperPolicy does not pass this one on
        self._child_policy.check_supported()

    def _forget(self, host: Any) -> None:
        self._warming = {h: t for h, t in self._warming.items() if h != host}

    def any_warming(self) -> bool:
        """Whether a host is warming: up less than `warm_up_s` ago, or still slow."""
        warming = self._warming
        return bool(warming) and not self._all_warmed(warming, self._clock())  # no clock read in steady state

    def make_query_plan(self, working_keyspace: Any = None, query: Any = None) -> Iterator[Any]:
        plan = self._child_policy.make_query_plan(working_keyspace, query)
        warming = self._warming
        if not warming:  # nearly always: one dict test per request
            return plan  # type: ignore[no-any-return]
        now = self._clock()
        if self._all_warmed(warming, now):
            if self._warming is warming:  # else a host came up meanwhile
                self._warming = {}
                self._latency = {}
                log.info("cassandra %s warmed up after %s s: coordinating its full share again",
                         ", ".join(map(str, warming)), ", ".join(f"{now - since:.0f}" for since in warming.values()))  # fmt: skip
            return plan  # type: ignore[no-any-return]
        # A statement that may not be sent twice (a lightweight transaction) is not speculated
        # on, so it never waits for a warming coordinator.
        if not getattr(query, "is_idempotent", False):
            return iter(warm_order(plan, dict.fromkeys(warming, 0.0), self._chance))
        shares = {host: share_of(now - since, self._warm_up_s, self._slow(host)) for host, since in warming.items()}
        return iter(warm_order(plan, shares, self._chance))


class WarmUpSpeculation(SpeculativeExecutionPolicy):  # type: ignore[misc]  # the driver is untyped
    """While a node is warming (see WarmUpPolicy), sends an idempotent request that has no
    answer after `retry_after_s` once more, to the next node of its plan; the first answer wins.
    Any slow request, not only those the warming node coordinates: the driver asks for the plan
    before it has picked a coordinator. The driver asks only for statements marked idempotent."""

    def __init__(self, policy: WarmUpPolicy, retry_after_s: float) -> None:
        self._policy = policy
        self._once = ConstantSpeculativeExecutionPolicy(retry_after_s, 1)

    def new_plan(self, keyspace: Any, statement: Any) -> SpeculativeExecutionPlan:
        if not self._policy.any_warming():  # nearly always
            return _NEVER
        return self._once.new_plan(keyspace, statement)


_NEVER = NoSpeculativeExecutionPlan()
