"""Schedule control on the real cluster (Cassandra, Redis, a coordinator and a worker process):
through both SDK clients and the CLI, with bad input answered by the right status."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

import hourglass
from benchmarks.cluster import Cluster
from hourglass import cli
from tests.e2e.workload import wait_for_executor

NEW_YORK_SPRING_2027 = datetime(2027, 3, 13, tzinfo=UTC)  # clocks go forward on 2027-03-14


def test_preview_schedule_of_a_stored_job_and_of_a_cron_before_saving_it(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("w1")
    nightly = hourglass.cron("30 2 * * *", tz="America/New_York")
    with hourglass.Client(cluster.address, timeout=30) as client:
        wait_for_executor(client, "echo")
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
        async with hourglass.AsyncClient(cluster.address, timeout=30) as client:
            return await client.preview_schedule(job.id, count=5)

    assert asyncio.run(preview_async()) == found

    monkeypatch.setenv("HOURGLASS_COORDINATOR", cluster.address)
    capsys.readouterr()
    argv = ["preview", "--cron", "30 2 * * *", "--tz", "America/New_York", "--count", "3", "--after", "2027-03-13T00:00:00Z"]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "time zone America/New_York" and len(lines) == 4
    assert lines[2].startswith("2027-03-14T03:00:00-04:00  2027-03-14T07:00:00Z  clocks went forward 1 h")
    assert cli.main(["preview", job.id, "--cron", "* * * * *"]) == 2  # a job or a trigger, not both


def test_delete_job_removes_a_cancelled_job_and_refuses_an_active_one(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("w1")
    with hourglass.Client(cluster.address, timeout=30) as client:
        wait_for_executor(client, "echo")
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
        async with hourglass.AsyncClient(cluster.address, timeout=30) as client:
            await client.cancel(other.id)
            await client.delete(other.id)

    asyncio.run(delete_async())
    monkeypatch.setenv("HOURGLASS_COORDINATOR", cluster.address)
    capsys.readouterr()
    assert cli.main(["delete", other.id]) == 3  # not found: deleted already
    assert "not found" in capsys.readouterr().err
