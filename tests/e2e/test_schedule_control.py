"""Schedule control on the real cluster (Cassandra, Redis, a coordinator and a worker process):
through both SDK clients and the CLI, with bad input answered by the right status."""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

import hourglass
from benchmarks.cluster import Cluster
from hourglass import cli
from tests.e2e.waiting import until
from tests.e2e.workload import wait_for_executor

NEW_YORK_SPRING_2027 = datetime(2027, 3, 13, tzinfo=UTC)  # clocks go forward on 2027-03-14


@pytest.fixture
def address(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """A coordinator and a worker offering `echo`; the CLI is pointed at the coordinator."""
    cluster.start_coordinator()
    cluster.start_worker("w1")
    with hourglass.Client(cluster.address, timeout=30) as client:
        wait_for_executor(client, "echo")
    monkeypatch.setenv("HOURGLASS_COORDINATOR", cluster.address)
    return cluster.address


def test_preview_schedule_of_a_stored_job_and_of_a_cron_before_saving_it(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    nightly = hourglass.cron("30 2 * * *", tz="America/New_York")
    with hourglass.Client(address, timeout=30) as client:
        job = client.submit(hourglass.JobSpec(name="nightly", executor="echo", trigger=nightly))
        found = client.preview_schedule(job.id, count=5)
        assert found.timezone == "America/New_York" and len(found.fires) == 5
        assert found.fires[0].at == job.next_fire_time
        assert all(f.local_time.endswith(("T02:30:00-05:00", "T02:30:00-04:00", "T03:00:00-04:00")) for f in found.fires)

        spring = client.preview_schedule(trigger=nightly, count=3, after=NEW_YORK_SPRING_2027)
        assert [f.local_time for f in spring.fires] == [
            "2027-03-13T02:30:00-05:00", "2027-03-14T03:00:00-04:00", "2027-03-15T02:30:00-04:00",
        ]  # fmt: skip
        assert "did not exist" in spring.fires[1].dst_note and not spring.fires[0].dst_note
        twice = client.submit(hourglass.JobSpec(name="twice", executor="echo", trigger=hourglass.cron(
            "30 1 * * *", tz="America/New_York", dst_repeat=hourglass.DstRepeat.TWICE, dst_gap=hourglass.DstGap.SKIP)))
        assert client.get(twice.id).trigger == twice.trigger
        fall = client.preview_schedule(trigger=twice.trigger, count=3, after=datetime(2026, 10, 31, 12, tzinfo=UTC))
        assert [f.local_time for f in fall.fires] == [
            "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00",
        ]  # fmt: skip

        for bad, field in (
            (dict(trigger=hourglass.cron("61 * * * *")), "trigger.cron.expression"),
            (dict(trigger=hourglass.cron("0 * * * *", tz="Mars/Olympus")), "trigger.cron.timezone"),
            (dict(trigger=hourglass.once(datetime(2020, 1, 1, tzinfo=UTC))), "trigger"),
            (dict(trigger=nightly, count=1001), "count"),
        ):
            with pytest.raises(hourglass.InvalidArgument) as caught:
                client.preview_schedule(**bad)  # type: ignore[arg-type]
            assert caught.value.field == field
        with pytest.raises(hourglass.JobNotFound):
            client.preview_schedule("no-such-job")

    async def preview_async() -> hourglass.SchedulePreview:
        async with hourglass.AsyncClient(address, timeout=30) as client:
            return await client.preview_schedule(job.id, count=5)

    assert asyncio.run(preview_async()) == found

    capsys.readouterr()
    argv = ["preview", "--cron", "30 2 * * *", "--tz", "America/New_York", "--count", "3", "--after", "2027-03-13T00:00:00Z"]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "time zone America/New_York" and len(lines) == 4
    assert lines[2].startswith("2027-03-14T03:00:00-04:00  2027-03-14T07:00:00Z  clocks went forward 1 h")
    assert cli.main(["preview", job.id, "--cron", "* * * * *"]) == 2  # a job or a trigger, not both


def test_delete_job_removes_a_cancelled_job_and_refuses_an_active_one(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with hourglass.Client(address, timeout=30) as client:
        spec = hourglass.JobSpec(name="doomed", executor="echo", trigger=hourglass.every(timedelta(hours=1)))
        job, other = client.submit(spec), client.submit(spec)
        with pytest.raises(hourglass.FailedPrecondition):
            client.delete(job.id)
        client.cancel(job.id)
        client.delete(job.id)
        with pytest.raises(hourglass.JobNotFound):
            client.get(job.id)
        assert job.id not in {j.id for j in client.iter_jobs()} and other.id in {j.id for j in client.iter_jobs()}
        with pytest.raises(hourglass.JobNotFound):
            client.delete(job.id)

    async def delete_async() -> None:
        async with hourglass.AsyncClient(address, timeout=30) as client:
            await client.cancel(other.id)
            await client.delete(other.id)

    asyncio.run(delete_async())
    capsys.readouterr()
    assert cli.main(["delete", other.id]) == 3  # not found: deleted already
    assert "not found" in capsys.readouterr().err


def test_trigger_job_runs_a_paused_job_now_marked_manual_and_leaves_its_schedule(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with hourglass.Client(address, timeout=30) as client:
        spec = hourglass.JobSpec(name="hourly", executor="echo", trigger=hourglass.every(timedelta(hours=1)),
                                 params=hourglass.json_params({"n": 1}))  # fmt: skip
        job = client.submit(spec)
        paused = client.pause(job.id)
        run_id, due = client.trigger(job.id)
        run = _wait_for_run(client, run_id)
        assert run.status is hourglass.RunStatus.SUCCEEDED and run.manual and run.due == due
        assert run.lateness is not None and run.lateness < timedelta(seconds=5)
        assert client.get(job.id).state is hourglass.JobState.PAUSED and client.get(job.id).next_fire_time is None
        assert paused.next_fire_time is None

        active = client.submit(replace(spec, name="active"))
        run_id, _ = client.trigger(active.id)
        assert _wait_for_run(client, run_id).manual
        assert client.get(active.id).next_fire_time == active.next_fire_time  # the schedule did not move
        client.cancel(active.id)
        with pytest.raises(hourglass.FailedPrecondition):
            client.trigger(active.id)

    async def trigger_async() -> str:
        async with hourglass.AsyncClient(address, timeout=30) as client:
            run_id, _ = await client.trigger(job.id)
            return run_id

    with hourglass.Client(address, timeout=30) as client:
        assert _wait_for_run(client, asyncio.run(trigger_async())).manual
    capsys.readouterr()
    assert cli.main(["trigger", job.id]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run default:{job.id}:") and " due " in out
    assert cli.main(["trigger", "no-such-job"]) == 3


def _wait_for_run(client: hourglass.Client, run_id: str, timeout: float = 30) -> hourglass.Run:
    deadline = time.monotonic() + timeout
    while True:
        try:
            run = client.get_run(run_id)
            if run.status.finished:
                return run
        except hourglass.RunNotFound:
            pass
        assert time.monotonic() < deadline, f"run {run_id} did not finish in {timeout} s"
        time.sleep(0.2)


def _runs_due(client: hourglass.Client, job_id: str, after: datetime) -> list[hourglass.Run]:
    return [r for r in client.iter_runs(job_id) if r.due > after and r.status.finished]


def test_update_job_runs_the_next_fires_under_the_new_spec_and_refuses_a_stale_version(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with hourglass.Client(address, timeout=30) as client:
        spec = hourglass.JobSpec(name="often", executor="echo", trigger=hourglass.every(timedelta(seconds=1)),
                                 params=hourglass.json_params({"v": 1}))  # fmt: skip
        job = client.submit(spec)
        start = datetime.now(UTC)
        until("the job ran twice", lambda: len(_runs_due(client, job.id, start)) >= 2, 20)
        updated = client.update(job.id, version=job.version,
                                changes=hourglass.JobChanges(params=hourglass.json_params({"v": 2})))  # fmt: skip
        changed_at = datetime.now(UTC)
        assert updated.version == 2 and updated.params.data == b'{"v":2}'
        with pytest.raises(hourglass.FailedPrecondition, match="stale"):
            client.update(job.id, version=1, changes=hourglass.JobChanges(name="late"))
        with pytest.raises(hourglass.InvalidArgument) as caught:
            client.update(job.id, version=2, changes=hourglass.JobChanges(trigger=hourglass.every(timedelta(0))))
        assert "trigger" in caught.value.field
        # Fires due after the update run under the new params: none prepared earlier runs old ones.
        until("3 runs after the update", lambda: len(_runs_due(client, job.id, changed_at)) >= 3, 20)
        after = _runs_due(client, job.id, changed_at)
        assert {r.result.data for r in after} == {b'{"v":2}'}, [(r.due, r.result.data) for r in after]
        dues = sorted(r.due for r in after)
        assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(dues))  # none skipped
    capsys.readouterr()
    assert cli.main(["update", job.id, "--name", "renamed", "--every", "1h"]) == 0
    assert re.search(r"^version:\s+3$", capsys.readouterr().out, re.MULTILINE)
    assert cli.main(["update", job.id, "--version", "1", "--name", "x"]) == 4


def test_backfill_runs_each_past_occurrence_once_and_explain_tells_what_became_of_them(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=10)
    with hourglass.Client(address, timeout=30) as client:
        job = client.submit(hourglass.JobSpec(name="daily-ish", executor="echo",
                                              trigger=hourglass.every(timedelta(minutes=1), start=start)))  # fmt: skip
        times = client.backfill(job.id, start, start + timedelta(minutes=4), per_second=5)
        assert times == [start + timedelta(minutes=i) for i in range(4)]
        until("the backfill ran", lambda: len(_runs_due(client, job.id, start - timedelta(seconds=1))) >= 4, 30)
        again = client.backfill(job.id, start, start + timedelta(minutes=4), per_second=10)
        assert again == times
        time.sleep(3)  # the second backfill's fires are released and found claimed already
        runs = [r for r in client.iter_runs(job.id) if r.due < start + timedelta(minutes=4)]
        assert sorted(r.due for r in runs) == times and all(r.manual and r.attempt == 1 for r in runs)
        assert all(r.run_id == f"default:{job.id}:{r.due.strftime('%Y%m%dT%H%M%S.%fZ')}:1" for r in runs)
        with pytest.raises(hourglass.InvalidArgument) as caught:
            client.backfill(job.id, now, now - timedelta(minutes=1))
        assert caught.value.field == "until"

        found = client.explain(job.id, start)
        fates = {f.at: f.fate for f in found.fires}
        assert [fates[t] for t in times] == [hourglass.FireFate.RAN] * 4
        assert all("backfilled" in f.why for f in found.fires if f.at in times)
        assert [e.kind for e in found.events] == [hourglass.JobEventKind.BACKFILLED] * 2
    capsys.readouterr()
    assert cli.main(["explain", job.id, "--since", "11m"]) == 0
    out = capsys.readouterr().out
    assert "backfilled: succeeded" in out and "events:" in out
    assert cli.main(["backfill", job.id, "--since", "10m", "--until", "9m"]) == 0
    assert "1 fires backfilled" in capsys.readouterr().out


def test_watch_runs_streams_a_jobs_runs_and_a_namespaces_as_they_finish(address: str) -> None:
    with hourglass.Client(address, timeout=30) as client:
        job = client.submit(hourglass.JobSpec(name="watched", executor="echo", namespace="watch-e2e",
                                              trigger=hourglass.every(timedelta(seconds=1))))  # fmt: skip
        other = client.submit(hourglass.JobSpec(name="other", executor="echo", namespace="watch-e2e",
                                                trigger=hourglass.every(timedelta(seconds=1))))  # fmt: skip
        seen: list[hourglass.Run] = []
        stream = client.watch_runs(job.id, "watch-e2e")
        for run, dropped in stream:
            seen.append(run)
            assert dropped == 0
            if len(seen) == 3:
                break
        stream.close()
        assert {r.job_id for r in seen} == {job.id} and all(r.status is hourglass.RunStatus.SUCCEEDED for r in seen)
        assert client.get_run(seen[-1].run_id) == seen[-1]
        with pytest.raises(hourglass.JobNotFound):
            next(iter(client.watch_runs("no-such-job", "watch-e2e")))

    async def watch_namespace() -> set[str]:
        async with hourglass.AsyncClient(address, timeout=30) as aclient:
            jobs: set[str] = set()
            async for run, _ in aclient.watch_runs(namespace="watch-e2e"):
                jobs.add(run.job_id)
                if len(jobs) == 2:
                    return jobs
        return jobs

    assert asyncio.run(asyncio.wait_for(watch_namespace(), 30)) == {job.id, other.id}


def test_a_long_run_is_streamed_as_it_starts_and_a_triggers_overlap_override_applies(address: str) -> None:
    with hourglass.Client(address, timeout=30) as client:
        job = client.submit(hourglass.JobSpec(name="slow", executor="sleep", trigger=hourglass.every(timedelta(hours=1)),
                                              params=hourglass.json_params({"seconds": 2.5})))  # fmt: skip
        client.pause(job.id, note="only by hand")
        stream = client.watch_runs(job.id)
        time.sleep(0.5)  # the watch is announced
        first, _ = client.trigger(job.id, overlap=hourglass.OverlapPolicy.SKIP)
        time.sleep(0.3)
        second, _ = client.trigger(job.id, overlap=hourglass.OverlapPolicy.SKIP)
        events = [(run.run_id, run.status) for run, _ in itertools.islice(stream, 3)]
        stream.close()
        assert (first, hourglass.RunStatus.RUNNING) in events and (first, hourglass.RunStatus.SUCCEEDED) in events
        assert events.index((first, hourglass.RunStatus.RUNNING)) < events.index((first, hourglass.RunStatus.SUCCEEDED))
        skipped = _wait_for_run(client, second)
        assert skipped.status is hourglass.RunStatus.SKIPPED and skipped.reason is hourglass.RunReason.OVERLAP
        assert client.get(job.id).note == "only by hand"


def test_jitter_max_fires_and_the_catch_up_window_on_the_cluster(cluster: Cluster) -> None:
    cluster.start_coordinator()
    with hourglass.Client(cluster.address, timeout=30) as client:
        # No worker yet: a job whose fires fall behind by more than its catch-up window.
        cluster.start_worker("w0")
        wait_for_executor(client, "echo")
        cluster.kill_worker("w0", signal.SIGTERM)
        time.sleep(4)  # the leader moves its shards away: nobody owns them now
        behind = client.submit(hourglass.JobSpec(
            name="behind", executor="echo", trigger=hourglass.every(timedelta(seconds=1)),
            options=hourglass.JobOptions(catchup_window=timedelta(seconds=2))))  # fmt: skip
        time.sleep(5)
        cluster.start_worker("w1")
        jittered = client.submit(hourglass.JobSpec(
            name="jittered", executor="echo", trigger=hourglass.every(timedelta(seconds=2)),
            options=hourglass.JobOptions(jitter=timedelta(seconds=1))))  # fmt: skip
        limited = client.submit(hourglass.JobSpec(
            name="limited", executor="echo", trigger=hourglass.every(timedelta(milliseconds=500)),
            options=hourglass.JobOptions(max_fires=3)))  # fmt: skip

        until("max_fires ended the job", lambda: client.get(limited.id).state is hourglass.JobState.COMPLETED, 30)
        time.sleep(1)
        assert len(list(client.iter_runs(limited.id))) == 3 and client.get(limited.id).fired == 3

        until("the jittered job ran 4 times", lambda: len(_runs_due(client, jittered.id, jittered.created_at)) >= 4, 30)
        runs = _runs_due(client, jittered.id, jittered.created_at)
        assert isinstance(jittered.trigger, hourglass.IntervalTrigger)
        anchor = jittered.trigger.start
        assert all((r.due - anchor) % timedelta(seconds=2) == timedelta(0) for r in runs)  # its times
        late = [r.lateness for r in runs]
        assert all(x is not None and timedelta(0) <= x < timedelta(seconds=1.5) for x in late), late
        assert len({round(x.total_seconds(), 2) for x in late if x is not None}) > 1  # not one fixed delay

        until("the fire behind its catch-up window recorded",
              lambda: any(r.reason is hourglass.RunReason.CATCHUP for r in client.iter_runs(behind.id)), 30)
        skipped = [r for r in client.iter_runs(behind.id) if r.reason is hourglass.RunReason.CATCHUP]
        assert all(r.status is hourglass.RunStatus.SKIPPED and "catch-up window" in r.error for r in skipped)
        until("the schedule going on after the skip",
              lambda: any(r.status is hourglass.RunStatus.SUCCEEDED for r in client.iter_runs(behind.id)), 30)


def test_a_fire_already_prepared_runs_once_after_an_update_or_a_quick_pause_and_resume(address: str) -> None:
    """Both drop the fire a worker prepared ahead of time (its claim is marked dropped); the job
    then wants that very fire again, which must still run, once, under the current spec."""
    with hourglass.Client(address, timeout=30) as client:
        at = datetime.now(UTC) + timedelta(seconds=2.5)  # within the lookahead: prepared at once
        updated = client.submit(hourglass.JobSpec(name="soon", executor="echo", trigger=hourglass.once(at),
                                                  params=hourglass.json_params({"v": 1})))  # fmt: skip
        resumed = client.submit(hourglass.JobSpec(name="soon2", executor="echo",
                                                  trigger=hourglass.every(timedelta(hours=1), start=at)))  # fmt: skip
        time.sleep(1.0)
        client.update(updated.id, version=1, changes=hourglass.JobChanges(params=hourglass.json_params({"v": 2})))
        client.pause(resumed.id)
        time.sleep(0.3)
        client.resume(resumed.id)
        since = at - timedelta(seconds=1)
        for job in (updated, resumed):
            until(f"the prepared fire of {job.name} ran",
                  lambda job=job: len(_runs_due(client, job.id, since)) >= 1, 20)  # type: ignore[misc]
        time.sleep(2)
        runs = {job.name: list(client.iter_runs(job.id)) for job in (updated, resumed)}
        assert [r.result.data for r in runs["soon"]] == [b'{"v":2}'] and len(runs["soon2"]) == 1
        assert all(r.due == at and r.attempt == 1 for rs in runs.values() for r in rs)
