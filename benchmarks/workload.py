"""The operations the load generator offers (see loadgen: "benchmarks.workload:<name>").

Each is a factory ``(stubs, params) -> call(i)`` run inside a generator process. Requests are
built from a template message per process, so a call costs a copy and a few field writes,
not a rebuild of the whole spec. Jobs name the ``bench_probe`` executor (benchmarks/probe.py):
it records each execution and does nothing else.

params every factory understands: ``timeout`` (s, set by loadgen), ``namespace``,
``idempotency`` (send a unique idempotency key per job, as the SDK does; default True),
``at_us`` (once-trigger time in µs since the epoch; default 30 days from now, so the job
does not fire during the benchmark).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from benchmarks import probe
from hourglass_pb.v1 import jobs_pb2 as pb

Call = Callable[[int], Awaitable[Any]]
FAR_FUTURE_S = 30 * 24 * 3600
PARAMS = b'{"report": "daily", "customer": 4711, "region": "eu-west"}'  # a typical small payload


def far_future_us() -> int:
    return (int(time.time()) + FAR_FUTURE_S) * 1_000_000


def spec_template(params: dict[str, Any]) -> pb.JobSpec:
    spec = pb.JobSpec(
        namespace=params.get("namespace", "bench"),
        name="bench",
        executor=params.get("executor", probe.NAME),
        params=pb.Payload(data=PARAMS, content_type="application/json"),
        labels={"suite": "bench"},
    )
    set_once(spec, params.get("at_us") or far_future_us())
    return spec


def set_once(spec: pb.JobSpec, at_us: int) -> None:
    spec.trigger.once.at.FromMicroseconds(at_us)


def set_interval(spec: pb.JobSpec, start_us: int, every_us: int, end_us: int) -> None:
    """An interval trigger anchored at `start_us`, every `every_us`, no fire after `end_us`."""
    spec.trigger.Clear()
    spec.trigger.interval.every.FromMicroseconds(every_us)
    spec.trigger.start.FromMicroseconds(start_us)
    spec.trigger.end.FromMicroseconds(end_us)


def _key_prefix() -> str:
    return uuid.uuid4().hex[:16]


def submit_one(stubs: Sequence[Any], params: dict[str, Any]) -> Call:
    """SubmitJob of one far-future once-job per call. Returns the job id if ``collect_ids``."""
    template = pb.SubmitJobRequest(job=spec_template(params))
    idem, collect, timeout = params.get("idempotency", True), params.get("collect_ids", False), params["timeout"]
    prefix, n = _key_prefix(), len(stubs)

    async def call(i: int) -> str | None:
        req = pb.SubmitJobRequest()
        req.CopyFrom(template)
        req.job.name = f"bench-{i}"
        if idem:
            req.job.idempotency_key = f"{prefix}-{i}"
        resp = await stubs[i % n].SubmitJob(req, timeout=timeout)
        return resp.job.id if collect else None

    return call


def submit_batch(stubs: Sequence[Any], params: dict[str, Any]) -> Call:
    """SubmitJobs of ``batch`` far-future once-jobs per call. Returns the number of jobs
    created (or their ids with ``collect_ids``)."""
    template = spec_template(params)
    batch, idem = int(params.get("batch", 500)), params.get("idempotency", True)
    collect, timeout = params.get("collect_ids", False), params["timeout"]
    prefix, n = _key_prefix(), len(stubs)

    async def call(i: int) -> int | list[str]:
        req = pb.SubmitJobsRequest()
        for k in range(batch):
            spec = req.jobs.add()
            spec.CopyFrom(template)
            spec.name = f"bench-{i}-{k}"
            if idem:
                spec.idempotency_key = f"{prefix}-{i}-{k}"
        resp = await stubs[i % n].SubmitJobs(req, timeout=timeout)
        if collect:
            return [r.job.id for r in resp.results]
        return sum(1 for r in resp.results if r.created)

    return call


def fire_feed(stubs: Sequence[Any], params: dict[str, Any]) -> Call:
    """Call i submits jobs i*batch ... (i+1)*batch - 1 of a steady firing schedule: job j is a
    once-job due at ``start_us + j * interval_us``. Returns [(job id, due µs)]."""
    template = spec_template(params)
    batch, interval_us, start_us = int(params["batch"]), int(params["interval_us"]), int(params["start_us"])
    idem, timeout, n = params.get("idempotency", True), params["timeout"], len(stubs)
    prefix = _key_prefix()

    async def call(i: int) -> list[tuple[str, int]]:
        req = pb.SubmitJobsRequest()
        dues = [start_us + (i * batch + k) * interval_us for k in range(batch)]
        for k, due in enumerate(dues):
            spec = req.jobs.add()
            spec.CopyFrom(template)
            spec.name = f"fire-{i}-{k}"
            set_once(spec, due)
            if idem:
                spec.idempotency_key = f"{prefix}-{i}-{k}"
        resp = await stubs[i % n].SubmitJobs(req, timeout=timeout)
        return [(r.job.id, due) for r, due in zip(resp.results, dues, strict=True)]

    return call


def recurring_feed(stubs: Sequence[Any], params: dict[str, Any]) -> Call:
    """Call i submits jobs i*batch ... (i+1)*batch - 1 of ``jobs`` interval jobs, every
    ``every_us`` from ``start_us`` to ``end_us``, job j anchored ``j * every_us / jobs`` after
    ``start_us`` (so their fires come at a steady rate). Returns [(job id, anchor µs)]."""
    template = spec_template(params)
    batch, jobs = int(params["batch"]), int(params["jobs"])
    every_us, start_us, end_us = int(params["every_us"]), int(params["start_us"]), int(params["end_us"])
    timeout, n = params["timeout"], len(stubs)
    prefix = _key_prefix()

    async def call(i: int) -> list[tuple[str, int]]:
        req = pb.SubmitJobsRequest()
        anchors = [start_us + j * every_us // jobs for j in range(i * batch, min(jobs, (i + 1) * batch))]
        for j, anchor in enumerate(anchors):
            spec = req.jobs.add()
            spec.CopyFrom(template)
            spec.name = f"recurring-{i}-{j}"
            set_interval(spec, anchor, every_us, end_us)
            spec.idempotency_key = f"{prefix}-{i}-{j}"
        resp = await stubs[i % n].SubmitJobs(req, timeout=timeout)
        return [(r.job.id, anchor) for r, anchor in zip(resp.results, anchors, strict=True)]

    return call


def read_mix(stubs: Sequence[Any], params: dict[str, Any]) -> Call:
    """Reads and writes, ``reads_per_write`` to 1: call i is a SubmitJob when
    i % (reads_per_write + 1) == 0, else GetJob, ListRuns and GetRun in turn over the given
    ``job_ids`` and ``runs`` ([(job id, run id)]). Returns the kind of call made."""
    job_ids: list[str] = params["job_ids"]
    runs: list[tuple[str, str]] = params["runs"]
    namespace, timeout, n = params.get("namespace", "bench"), params["timeout"], len(stubs)
    every = int(params.get("reads_per_write", 10)) + 1
    submit = submit_one(stubs, params)
    kinds = itertools.cycle(("get_job", "list_runs", "get_run"))
    page = int(params.get("page_size", 10))

    async def call(i: int) -> str:
        stub = stubs[i % n]
        if i % every == 0:
            await submit(i)
            return "submit"
        kind = next(kinds)
        if kind == "get_job":
            await stub.GetJob(pb.GetJobRequest(namespace=namespace, id=job_ids[i % len(job_ids)]), timeout=timeout)
        elif kind == "list_runs":
            job_id = runs[i % len(runs)][0]
            await stub.ListRuns(
                pb.ListRunsRequest(namespace=namespace, job_id=job_id, page_size=page), timeout=timeout
            )
        else:
            await stub.GetRun(pb.GetRunRequest(run_id=runs[i % len(runs)][1]), timeout=timeout)
        return kind

    return call


def get_job(stubs: Sequence[Any], params: dict[str, Any]) -> Call:
    """GetJob over ``job_ids`` in turn (a pure read load)."""
    job_ids: list[str] = params["job_ids"]
    namespace, timeout, n = params.get("namespace", "bench"), params["timeout"], len(stubs)

    async def call(i: int) -> None:
        await stubs[i % n].GetJob(pb.GetJobRequest(namespace=namespace, id=job_ids[i % len(job_ids)]), timeout=timeout)

    return call
