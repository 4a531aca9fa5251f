"""Slow start for a Cassandra node that comes back.

A node restarted or replaced answers its first minute slowly: its JIT is cold, its caches are
empty, and it is taking hints or streaming. With every node a replica of every partition (three
nodes, RF 3), token-aware routing makes it the coordinator of a third of the requests the
moment the driver sees it up, and the fires those requests carry run seconds late (15-16 s of
them on this box before this policy). Writes still reach it as a replica: only its turn to
coordinate is eased in, from last in every query plan to its usual place over `warm_up_s`.

Even so, the requests it coordinates in its first seconds took 0.5-1.8 s here (a shard read
of 1.8 s made a 1-second job's fires 2.4 s late). So within `warm_up_s` a lightweight
transaction (which may not be sent twice) never has it as coordinator, and an idempotent request
that has no answer within `retry_after_s` is sent again to the next node of its plan
(`WarmUpSpeculation`): the first answer wins. With no node warming, nothing is sent twice.
"""

from __future__ import annotations

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


def warm_order(plan: Iterable[Any], warming: dict[Any, float], now: float, warm_up_s: float,
               chance: Callable[[], float]) -> list[Any]:
    """`plan` with each warming host (up since `warming[host]`) kept in its place with a chance
    that grows from 0 to 1 over `warm_up_s`, and moved to the end otherwise (always, given a
    `chance` of 1)."""
    first: list[Any] = []
    last: list[Any] = []
    for host in plan:
        since = warming.get(host)
        keep = since is None or chance() < (now - since) / warm_up_s
        (first if keep else last).append(host)
    return first + last


class WarmUpPolicy(WrapperPolicy):  # type: ignore[misc]  # the driver is untyped
    """Wraps a policy: a host the driver sees come back up coordinates less for `warm_up_s`
    (see the module). Hosts up when the driver connects are not warming."""

    def __init__(self, child_policy: LoadBalancingPolicy, warm_up_s: float = 60.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 chance: Callable[[], float] = random.random) -> None:
        super().__init__(child_policy)
        self._warm_up_s = warm_up_s
        self._clock = clock
        self._chance = chance
        # Replaced, never mutated: the driver's threads signal hosts while the event loop plans.
        self._warming: dict[Any, float] = {}

    def on_up(self, host: Any) -> None:
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
        """Whether a host came up less than `warm_up_s` ago."""
        now = self._clock()
        return any(now - since < self._warm_up_s for since in self._warming.values())

    def make_query_plan(self, working_keyspace: Any = None, query: Any = None) -> Iterator[Any]:
        plan = self._child_policy.make_query_plan(working_keyspace, query)
        warming = self._warming
        if not warming:  # nearly always: one dict test per request
            return plan  # type: ignore[no-any-return]
        now = self._clock()
        if all(now - since >= self._warm_up_s for since in warming.values()):
            if self._warming is warming:  # else a host came up meanwhile
                self._warming = {}
            return plan  # type: ignore[no-any-return]
        # A statement that may not be sent twice (a lightweight transaction) is not speculated
        # on, so it never waits for a warming coordinator.
        chance = self._chance if getattr(query, "is_idempotent", False) else _always_last
        return iter(warm_order(plan, warming, now, self._warm_up_s, chance))


def _always_last() -> float:
    return 1.0


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
