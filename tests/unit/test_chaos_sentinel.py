"""The measurements of chaos scenarios 11 and 12: shard moves against the minimum, and the
pause in firing around a fault."""

from __future__ import annotations

from benchmarks.chaos_faults import Snapshot
from benchmarks.chaos_sentinel import Change, firing_pause, minimum_moves, shard_moves

S = 1_000_000


def _snap(at_s: float, owners: dict[int, str]) -> Snapshot:
    return Snapshot(int(at_s * S), {shard: (owner, 1) for shard, owner in owners.items()}, None)


def test_a_shard_moves_when_another_worker_takes_it_not_when_its_owner_takes_it_back() -> None:
    history = [
        _snap(0, {0: "a", 1: "a", 2: "b"}),
        _snap(1, {0: "a", 2: "b"}),  # shard 1 free for a while ...
        _snap(2, {0: "a", 1: "a", 2: "b"}),  # ... and taken back by a: no move
        _snap(3, {0: "c", 1: "a", 2: "c"}),  # two moves
        _snap(9, {0: "a", 1: "a", 2: "c"}),  # after the window
    ]
    assert shard_moves(history, since_us=1 * S, until_us=5 * S) == 2
    assert shard_moves(history, since_us=0, until_us=10 * S) == 3


def test_the_minimum_is_the_leavers_shards_plus_a_floor_share_for_each_joiner() -> None:
    changes = [Change(0, "w1", False, 3, 5), Change(1, "w1", True, 0, 6), Change(2, "w2", False, 2, 5)]
    assert minimum_moves(16, changes) == 3 + 16 // 6 + 2


def test_the_firing_pause_is_the_longest_gap_ending_after_the_fault() -> None:
    calls = [int(t * S) for t in (8.5, 9.0, 9.1, 10.2, 12.7, 12.8)]
    assert firing_pause(calls, fault_us=10 * S) == (2.5, 2.7)
    assert firing_pause([], fault_us=10 * S) == (0.0, 0.0)


def test_the_lease_watch_keeps_the_first_answer_after_redis_failed_even_unchanged() -> None:
    """A promoted replica that kept every lease answers as the old primary did: that answer
    is the evidence that the shards are leased there, so it is kept."""
    from benchmarks.chaos_faults import Changes

    changes = Changes()
    leases = ((0, ("w1", 3)),)
    assert changes.worth_keeping(leases)
    assert not changes.worth_keeping(leases)
    changes.failed()
    changes.failed()
    assert changes.worth_keeping(leases)
    assert not changes.worth_keeping(leases)
    assert changes.worth_keeping(((0, ("w2", 4)),))


def test_leases_on_the_promoted_primary_are_looked_for_from_the_first_failed_poll() -> None:
    """The watch may see the promoted replica (every lease kept: nothing changed) before the
    scenario learns of the promotion: the answer counts from the poll that failed, not from
    when the scenario noticed."""
    from benchmarks.chaos_faults import LeaseWatch, Snapshot

    watch = LeaseWatch("redis://unused", "hg:", 1)
    leased = {0: ("w1", 3)}
    watch.history = [Snapshot(1 * S, leased, None), Snapshot(5 * S, leased, ("c1", 1))]
    watch.failures = [2 * S, 3 * S]
    everything = lambda s: len(s.shards) == 1  # noqa: E731
    assert watch.first_after_a_failure(2 * S, everything) == 5 * S  # before wait_promoted returned at 6 s
    assert watch.first_after_a_failure(4 * S, everything) is None  # no failed poll after the fault
    assert watch.first(6 * S, everything) is None  # what the check looked for before
