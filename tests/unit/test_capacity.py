"""The capacity model's arithmetic (benchmarks/capacity.py)."""

from __future__ import annotations

import pytest

from benchmarks.capacity import Cluster, Costs, Load, cassandra_cores, plan, redis_ops_per_s, runs_partition_rows, shards_for


def test_at_rf_1_the_model_gives_back_the_measured_cost_per_fire() -> None:
    costs = Costs()
    assert cassandra_cores(Load(1000), Cluster(), costs) == pytest.approx(costs.cassandra_ms)


def test_replication_multiplies_writes_by_rf_and_reads_by_a_quorum() -> None:
    costs = Costs(cassandra_ms=1.0, mutations=1.0, partition_reads=1.0)
    assert cassandra_cores(Load(1000), Cluster(replication=3), costs) == pytest.approx(0.5 * 3 + 0.5 * 2)


def test_redis_sees_no_command_per_fire() -> None:
    assert redis_ops_per_s(Cluster(shards=64, workers=2, coordinators=2)) == pytest.approx(85.33 + 2.67 + 4 + 20 + 2, abs=0.01)


def test_shards_are_a_power_of_two_with_a_few_per_worker() -> None:
    assert (shards_for(2), shards_for(100), shards_for(129)) == (64, 512, 1024)


def test_a_job_firing_every_second_keeps_a_week_of_runs_in_one_partition() -> None:
    assert runs_partition_rows(1.0, Cluster()) == 604_800


def test_a_peak_ten_times_the_average_needs_ten_times_the_cores() -> None:
    average, peak = plan(10_000_000, 1, 3), plan(10_000_000, 10, 3)
    assert peak["peak_fires_per_s"] == pytest.approx(10 * average["peak_fires_per_s"])
    assert peak["cassandra_cores"] == pytest.approx(10 * average["cassandra_cores"])
