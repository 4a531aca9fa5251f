"""ExplainJob's pure part: fires expected across updates, and what became of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hourglass_core import wire
from hourglass_core.errors import InvalidArgument
from hourglass_core.explain import explain
from hourglass_core.firing import run_id_for
from hourglass_core.models import (
    FireFate,
    IntervalTrigger,
    Job,
    JobEvent,
    JobEventKind,
    JobOptions,
    JobState,
    Payload,
    Run,
    RunStatus,
)
from hourglass_pb.v1 import jobs_pb2 as pb

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def _job(trigger: IntervalTrigger) -> Job:
    return Job("ns", "j", "n", "echo", trigger, 0, Payload(), JobOptions(), {}, "", JobState.ACTIVE,
               created_at=T0 - M, shard=0, next_fire_time=T0 + 10 * M)  # fmt: skip


def _ran(at: datetime, manual: bool = False) -> Run:
    return Run("ns", "j", run_id_for("ns", "j", at, 1), at, 1, RunStatus.SUCCEEDED, "w",
               started_at=at + timedelta(seconds=1), ended_at=at + timedelta(seconds=2), manual=manual)  # fmt: skip


def test_fires_before_an_update_follow_the_trigger_it_replaced() -> None:
    every_2m = IntervalTrigger(every=2 * M, start=T0)
    every_3m = IntervalTrigger(every=3 * M, start=T0 + 4 * M)
    updated = JobEvent("ns", "j", T0 + 3 * M, JobEventKind.UPDATED, 2, "trigger", previous_trigger=every_2m)
    runs = [_ran(T0), _ran(T0 + 2 * M), _ran(T0 + 4 * M), _ran(T0 + 7 * M)]
    found = explain(_job(every_3m), runs, [updated], T0, T0 + 9 * M, now=T0 + 9 * M, limit=100)
    assert [(f.at - T0, f.fate) for f in found.fires] == [
        (0 * M, FireFate.RAN), (2 * M, FireFate.RAN), (4 * M, FireFate.RAN), (7 * M, FireFate.RAN)
    ]  # fmt: skip


def test_a_manual_run_at_an_instant_the_trigger_does_not_name_is_listed_as_triggered() -> None:
    every_2m = IntervalTrigger(every=2 * M, start=T0)
    odd = T0 + 3 * M + timedelta(seconds=7)
    found = explain(_job(every_2m), [_ran(T0), _ran(odd, manual=True)], [], T0, T0 + 4 * M, T0 + 5 * M, 100)
    extra = [f for f in found.fires if not f.expected]
    assert [(f.at, f.fate) for f in extra] == [(odd, FireFate.RAN)] and extra[0].why.startswith("triggered")
    missed = [f for f in found.fires if f.fate is FireFate.MISSED]
    assert [f.at for f in missed] == [T0 + 2 * M] and "no run recorded" in missed[0].why


def test_an_update_mask_naming_an_unknown_or_fixed_field_is_refused() -> None:
    request = pb.UpdateJobRequest(id="j", version=1)
    request.update_mask.paths.append("executor")
    with pytest.raises(InvalidArgument) as caught:
        wire.changes_from_pb(request, T0)
    assert caught.value.field == "update_mask"
    request = pb.UpdateJobRequest(id="j", version=1)
    request.update_mask.paths.append("trigger")
    with pytest.raises(InvalidArgument) as caught:
        wire.changes_from_pb(request, T0)
    assert caught.value.field == "job.trigger"
