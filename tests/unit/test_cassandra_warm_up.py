"""The slow start of a Cassandra node that comes back (hourglass_core.store.warm_up)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cassandra.policies import LoadBalancingPolicy
from cassandra.query import BatchType, SimpleStatement

from hourglass_core.store.cassandra import _batch
from hourglass_core.store.cassandra_statements import CQL, Statements, idempotent
from hourglass_core.store.warm_up import MIN_SAMPLES, TRICKLE, WarmUpPolicy, WarmUpSpeculation, share_of, warm_order

READ = SimpleStatement("SELECT * FROM jobs WHERE namespace = ? AND id = ?", is_idempotent=True)
LWT = SimpleStatement(CQL["claim"])  # not idempotent: the driver's default


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


def test_warm_order_moves_a_warming_host_last_unless_its_chance_comes() -> None:
    plan = ["a", "b", "c"]
    assert warm_order(plan, {"a": 0.0}, chance=lambda: 0.0) == ["b", "c", "a"]
    assert warm_order(plan, {"a": 0.5}, chance=lambda: 0.6) == ["b", "c", "a"]
    assert warm_order(plan, {"a": 0.5}, chance=lambda: 0.4) == ["a", "b", "c"]
    assert warm_order(plan, {"a": 0.0, "b": 0.0}, chance=lambda: 0.0) == ["c", "a", "b"]


def test_a_warming_host_keeps_a_growing_share_of_its_place_but_a_trickle_while_slow() -> None:
    assert share_of(0, 60, slow=False) == 0.0
    assert share_of(30, 60, slow=False) == 0.5
    assert share_of(90, 60, slow=False) == 1.0
    assert share_of(30, 60, slow=True) == TRICKLE
    assert share_of(1, 60, slow=True) == 1 / 60


def test_hosts_never_signalled_up_keep_the_child_plan() -> None:
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
    assert list(policy.make_query_plan(None, READ)) == ["b", "c", "a"]
    clock.now += 29
    assert list(policy.make_query_plan(None, READ)) == ["b", "c", "a"]  # chance 0.5 > 29/60
    clock.now += 2
    assert list(policy.make_query_plan(None, READ)) == ["a", "b", "c"]  # 31/60 > 0.5
    assert list(policy.make_query_plan(None, LWT)) == ["b", "c", "a"]  # never while warming
    clock.now += 30
    assert list(policy.make_query_plan(None, READ)) == ["a", "b", "c"]
    assert list(policy.make_query_plan(None, LWT)) == ["a", "b", "c"]
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


def test_while_a_host_is_warming_an_idempotent_request_is_sent_once_more_after_the_delay() -> None:
    clock = Clock()
    policy = WarmUpPolicy(Fixed(["a", "b", "c"]), 60, clock=clock)
    speculation = WarmUpSpeculation(policy, 0.2)
    assert speculation.new_plan("ks", READ).next_execution(None) == -1  # nothing warming
    policy.on_up("a")
    plan = speculation.new_plan("ks", READ)
    assert plan.next_execution(None) == 0.2  # asked before the driver picks a coordinator
    assert plan.next_execution("b") == -1  # once at most
    clock.now += 60
    assert speculation.new_plan("ks", READ).next_execution(None) == -1  # warmed up


def test_every_statement_but_a_lightweight_transaction_is_idempotent() -> None:
    assert not idempotent(CQL["claim"]) and not idempotent(CQL["checkpoint_update"])
    assert idempotent(CQL["job_insert"]) and idempotent(CQL["begun_put"])

    class Prepared:
        is_idempotent = False

    statements = Statements.prepare(lambda cql: Prepared())
    assert statements.claim.is_idempotent is False
    assert statements.begun_put.is_idempotent is True


def test_a_batch_is_idempotent_only_if_every_statement_is() -> None:
    write = SimpleStatement(CQL["begun_put"], is_idempotent=True)
    assert _batch(BatchType.UNLOGGED, [(write, ()), (write, ())]).is_idempotent
    assert not _batch(BatchType.UNLOGGED, [(write, ()), (LWT, ())]).is_idempotent


def _answers(policy: WarmUpPolicy, host: str, seconds: float) -> None:
    for _ in range(MIN_SAMPLES):
        policy.observe(host, seconds)


def test_a_host_still_slow_after_the_warm_up_stays_warming_until_it_is_fast() -> None:
    clock = Clock()
    policy = WarmUpPolicy(Fixed(["a", "b", "c"]), 60, clock=clock, chance=lambda: 0.5)
    policy.on_up("a")
    assert policy.watching
    _answers(policy, "b", 0.005)
    _answers(policy, "c", 0.008)
    _answers(policy, "a", 1.5)  # a node replaced with an empty disk, compacting what it streamed
    clock.now += 90
    assert policy.any_warming()  # past the warm-up, but 300 times slower than "b"
    assert list(policy.make_query_plan(None, READ)) == ["b", "c", "a"]  # chance 0.5 > TRICKLE
    assert list(policy.make_query_plan(None, LWT)) == ["b", "c", "a"]
    for _ in range(60):
        policy.observe("a", 0.006)  # the moving average comes down
    assert not policy.any_warming()
    assert list(policy.make_query_plan(None, READ)) == ["a", "b", "c"]
    assert not policy.watching  # forgotten, latencies too


def test_a_warming_host_is_not_judged_slow_on_too_few_answers_or_without_others_to_compare() -> None:
    clock = Clock()
    policy = WarmUpPolicy(Fixed(["a", "b", "c"]), 60, clock=clock)
    policy.on_up("a")
    _answers(policy, "a", 2.0)
    clock.now += 61
    assert not policy.any_warming()  # nobody else measured: nothing to call it slow against
    policy.on_up("a")
    _answers(policy, "b", 0.005)
    for _ in range(MIN_SAMPLES - 1):
        policy.observe("a", 2.0)
    clock.now += 61
    assert not policy.any_warming()  # one answer short of judging it
