"""The slow start of a Cassandra node that comes back (hourglass_core.store.warm_up)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cassandra.policies import LoadBalancingPolicy

from hourglass_core.store.warm_up import WarmUpPolicy, warm_order


class Fixed(LoadBalancingPolicy):  # type: ignore[misc]
    """A child policy whose plan is always the hosts in the order given."""

    def __init__(self, hosts: list[str]) -> None:
        super().__init__()
        self.hosts = hosts
        self.signals: list[tuple[str, str]] = []

    def make_query_plan(self, working_keyspace: Any = None, query: Any = None) -> Iterator[str]:
        return iter(self.hosts)

    def on_up(self, host: str) -> None:
        self.signals.append(("up", host))

    def on_down(self, host: str) -> None:
        self.signals.append(("down", host))

    def on_remove(self, host: str) -> None:
        self.signals.append(("remove", host))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_warm_order_moves_a_warming_host_last_until_its_chance_comes() -> None:
    plan = ["a", "b", "c"]
    assert warm_order(plan, {"a": 0.0}, now=0.0, warm_up_s=60, chance=lambda: 0.0) == ["b", "c", "a"]
    assert warm_order(plan, {"a": 0.0}, now=30.0, warm_up_s=60, chance=lambda: 0.6) == ["b", "c", "a"]
    assert warm_order(plan, {"a": 0.0}, now=30.0, warm_up_s=60, chance=lambda: 0.4) == ["a", "b", "c"]
    assert warm_order(plan, {"a": 0.0, "b": 0.0}, now=0.0, warm_up_s=60, chance=lambda: 0.0) == ["c", "a", "b"]


def test_hosts_up_at_connect_keep_the_child_plan() -> None:
    child = Fixed(["a", "b", "c"])
    policy = WarmUpPolicy(child, 60, clock=Clock(), chance=lambda: 0.99)
    assert list(policy.make_query_plan()) == ["a", "b", "c"]


def test_a_host_that_comes_back_coordinates_last_then_takes_its_place() -> None:
    clock = Clock()
    child = Fixed(["a", "b", "c"])
    policy = WarmUpPolicy(child, 60, clock=clock, chance=lambda: 0.5)
    policy.on_down("a")
    policy.on_up("a")
    assert child.signals == [("down", "a"), ("up", "a")]  # the child still hears of it
    assert list(policy.make_query_plan()) == ["b", "c", "a"]
    clock.now += 29
    assert list(policy.make_query_plan()) == ["b", "c", "a"]  # chance 0.5 > 29/60
    clock.now += 2
    assert list(policy.make_query_plan()) == ["a", "b", "c"]  # 31/60 > 0.5
    clock.now += 30
    assert list(policy.make_query_plan()) == ["a", "b", "c"]
    assert not policy._warming  # warmed up: forgotten, the plan is the child's again


def test_a_host_down_again_or_removed_is_no_longer_warming() -> None:
    child = Fixed(["a", "b", "c"])
    policy = WarmUpPolicy(child, 60, clock=Clock(), chance=lambda: 0.99)
    policy.on_up("a")
    policy.on_up("b")
    policy.on_down("a")
    policy.on_remove("b")
    assert not policy._warming
    assert list(policy.make_query_plan()) == ["a", "b", "c"]
