"""Behaviour of hourglass_core.sharding: stable job->shard hashing, balanced sticky assignment."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hourglass_core.sharding import assign_shards, moves, shard_of


def workers_named(n: int) -> list[str]:
    return [f"worker-{i:02d}" for i in range(n)]


def assert_complete_and_balanced(
    assignment: dict[int, str], workers: list[str], num_shards: int
) -> None:
    assert sorted(assignment) == list(range(num_shards))
    assert set(assignment.values()) <= set(workers)
    counts = Counter(assignment.values())
    low, high = num_shards // len(set(workers)), -(-num_shards // len(set(workers)))
    assert all(low <= counts.get(w, 0) <= high for w in set(workers))


# ------------------------------------------------------------------------------------------
# shard_of


def test_shard_of_is_pinned_to_crc32_of_utf8() -> None:
    # Values a change of hash would break: existing jobs would be looked up in the wrong shard.
    assert shard_of("hello", 1024) == 646  # crc32(b"hello") == 907060870
    assert shard_of("job-1", 16) == 15
    assert shard_of("ünïcode", 1024) == 170
    assert shard_of("", 7) == 0


@pytest.mark.parametrize("num_shards", [1, 2, 7, 64, 1000])
def test_shard_of_is_in_range(num_shards: int) -> None:
    assert all(0 <= shard_of(f"job-{i}", num_shards) < num_shards for i in range(500))


def test_shard_of_spreads_job_ids_roughly_evenly() -> None:
    counts = Counter(shard_of(f"job-{i}", 16) for i in range(16_000))
    assert min(counts.values()) > 800 and max(counts.values()) < 1200


def test_shard_of_rejects_zero_shards() -> None:
    with pytest.raises(ValueError):
        shard_of("job", 0)


# ------------------------------------------------------------------------------------------
# assign_shards


def test_no_workers_gives_an_empty_map() -> None:
    assert assign_shards([], 16, {0: "gone"}) == {}


def test_zero_shards_gives_an_empty_map() -> None:
    assert assign_shards(["a"], 0, {}) == {}


def test_fresh_assignment_is_balanced_and_contiguous_by_worker_id() -> None:
    assert assign_shards(["b", "a"], 5, {}) == {0: "a", 1: "a", 2: "a", 3: "b", 4: "b"}


@pytest.mark.parametrize("num_workers", [1, 2, 3, 5, 7, 16, 33])
@pytest.mark.parametrize("num_shards", [1, 2, 10, 64, 100, 257])
def test_assignment_is_complete_and_balanced(num_workers: int, num_shards: int) -> None:
    workers = workers_named(num_workers)
    assert_complete_and_balanced(assign_shards(workers, num_shards, {}), workers, num_shards)


def test_more_workers_than_shards_leaves_some_workers_idle() -> None:
    assignment = assign_shards(workers_named(10), 3, {})
    assert len(assignment) == 3 and len(set(assignment.values())) == 3


def test_unchanged_membership_moves_nothing() -> None:
    workers = workers_named(5)
    first = assign_shards(workers, 64, {})
    assert assign_shards(workers, 64, first) == first


@pytest.mark.parametrize(("num_workers", "num_shards"), [(1, 64), (3, 64), (4, 64), (7, 100), (15, 256)])
def test_joining_worker_takes_only_its_share(num_workers: int, num_shards: int) -> None:
    workers = workers_named(num_workers)
    before = assign_shards(workers, num_shards, {})
    after = assign_shards([*workers, "newcomer"], num_shards, before)
    assert_complete_and_balanced(after, [*workers, "newcomer"], num_shards)
    moved = {s for s in after if after[s] != before[s]}
    assert all(after[s] == "newcomer" for s in moved)
    assert moves(before, after) == num_shards // (num_workers + 1)


@pytest.mark.parametrize(("num_workers", "num_shards"), [(2, 64), (3, 64), (4, 5), (7, 100), (16, 256)])
def test_leaving_worker_moves_only_its_own_shards(num_workers: int, num_shards: int) -> None:
    workers = workers_named(num_workers)
    before = assign_shards(workers, num_shards, {})
    leaver = workers[num_workers // 2]
    survivors = [w for w in workers if w != leaver]
    after = assign_shards(survivors, num_shards, before)
    assert_complete_and_balanced(after, survivors, num_shards)
    moved = {s for s in after if after[s] != before[s]}
    assert moved == {s for s, w in before.items() if w == leaver}


def test_order_and_duplicates_of_workers_do_not_matter() -> None:
    previous = {0: "c", 1: "c", 2: "c", 3: "gone", 4: "a"}
    expected = assign_shards(["a", "b", "c"], 8, previous)
    assert assign_shards(["c", "b", "a", "b"], 8, previous) == expected
    assert assign_shards(("b", "a", "c"), 8, dict(reversed(list(previous.items())))) == expected


def test_overloaded_previous_owner_keeps_its_quota_and_gives_up_the_rest() -> None:
    previous = {s: "a" for s in range(6)}
    after = assign_shards(["a", "b"], 6, previous)
    assert after == {0: "a", 1: "a", 2: "a", 3: "b", 4: "b", 5: "b"}


def test_shards_beyond_num_shards_in_previous_are_ignored() -> None:
    after = assign_shards(["a", "b"], 2, {0: "a", 1: "b", 5: "a", 9: "b"})
    assert after == {0: "a", 1: "b"}


def test_shards_of_unknown_previous_owners_are_reassigned() -> None:
    after = assign_shards(["a", "b"], 4, {0: "x", 1: "y", 2: "a", 3: "b"})
    assert after[2] == "a" and after[3] == "b"
    assert_complete_and_balanced(after, ["a", "b"], 4)


def test_shard_count_growth_keeps_existing_shards_in_place_where_quota_allows() -> None:
    workers = workers_named(4)
    before = assign_shards(workers, 16, {})
    after = assign_shards(workers, 32, before)
    assert all(after[s] == before[s] for s in before)
    assert_complete_and_balanced(after, workers, 32)


# ------------------------------------------------------------------------------------------
# moves


def test_moves_counts_changed_gained_and_dropped_shards() -> None:
    assert moves({0: "a", 1: "b"}, {0: "a", 1: "c"}) == 1
    assert moves({0: "a"}, {0: "a", 1: "b"}) == 1
    assert moves({0: "a", 1: "b"}, {0: "a"}) == 1
    assert moves({}, {}) == 0


# ------------------------------------------------------------------------------------------
# Properties

PROPERTY = settings(max_examples=150, deadline=None)
worker_sets = st.lists(
    st.sampled_from([f"w{i}" for i in range(12)]), min_size=1, max_size=12, unique=True
)


# Previous owners include two workers (w12, w13) that are never live, and shards beyond the
# current count, as after a shrink.
previous_maps = st.dictionaries(
    st.integers(min_value=0, max_value=90), st.sampled_from([f"w{i}" for i in range(14)]), max_size=90
)


@PROPERTY
@given(workers=worker_sets, num_shards=st.integers(min_value=0, max_value=80), previous=previous_maps)
def test_property_assignment_is_complete_balanced_and_deterministic(
    workers: list[str], num_shards: int, previous: dict[int, str]
) -> None:
    assignment = assign_shards(workers, num_shards, previous)
    assert_complete_and_balanced(assignment, workers, num_shards)
    assert assign_shards(list(reversed(workers)), num_shards, previous) == assignment


@PROPERTY
@given(workers=worker_sets, num_shards=st.integers(min_value=0, max_value=80), previous=previous_maps)
def test_property_assignment_keeps_as_many_shards_as_balance_allows(
    workers: list[str], num_shards: int, previous: dict[int, str]
) -> None:
    # Upper bound on what any balanced map can keep: each worker keeps at most its quota, and
    # only `extra` workers may hold base + 1.
    assignment = assign_shards(workers, num_shards, previous)
    base, extra = divmod(num_shards, len(workers))
    held = sorted(
        (sum(1 for s, w in previous.items() if w == worker and s < num_shards) for worker in workers),
        reverse=True,
    )
    best = sum(min(h, base + (1 if rank < extra else 0)) for rank, h in enumerate(held))
    kept = sum(1 for s, w in assignment.items() if previous.get(s) == w)
    assert kept == best


@PROPERTY
@given(workers=worker_sets, num_shards=st.integers(min_value=1, max_value=80))
def test_property_a_stable_membership_is_a_fixed_point(workers: list[str], num_shards: int) -> None:
    first = assign_shards(workers, num_shards, {})
    assert moves(first, assign_shards(workers, num_shards, first)) == 0
