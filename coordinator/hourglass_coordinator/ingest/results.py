"""Finished runs of jobs labelled `hourglass.results=kafka`, published to a results topic keyed
by job id (value: a hourglass.v1.Run in protobuf binary).

Design: the ingest process follows runs as WatchRuns does (run_watch: the replicas that record
runs of a watched namespace point it at each once durable, over Redis), reads each run and its
job's labels, and produces the labelled ones. Nothing is added to the fire path when no ingest
process publishes results, and workers and coordinators need no Kafka client. The price: a
run that finishes while no ingest process publishes, or whose pointer Redis loses, is not
published (it stays in the store: `hourglass runs`); each publishing process sends every
result, so run one publisher, or let consumers drop repeats by the hourglass-run-id header."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from cachetools import TTLCache

from hourglass_coordinator.ingest import metrics
from hourglass_coordinator.ingest.decode import CONTENT_TYPE, RUN_ID, RUN_STATUS
from hourglass_coordinator.ingest.kafka import Publisher
from hourglass_coordinator.run_watch import RunWatch
from hourglass_core import wire
from hourglass_core.errors import NotFound
from hourglass_core.models import Job, Run

log = logging.getLogger(__name__)
LABEL = "hourglass.results"
LABEL_VALUE = "kafka"
LABELS_TTL_S = 60.0  # an update that adds or removes the label applies within this long

GetJob = Callable[[str, str], Awaitable[Job]]


def wants_results(job: Job) -> bool:
    return job.labels.get(LABEL) == LABEL_VALUE


class ResultsPublisher:
    def __init__(self, watch: RunWatch, get_job: GetJob, publisher: Publisher, topic: str) -> None:
        self._watch = watch
        self._get_job = get_job
        self._publisher = publisher
        self._topic = topic
        self._wanted: TTLCache[tuple[str, str], bool] = TTLCache(100_000, LABELS_TTL_S)

    async def run(self, namespaces: Sequence[str]) -> None:
        """Forever: publishes the finished runs of labelled jobs in `namespaces`."""
        await asyncio.gather(*(self._follow(namespace) for namespace in namespaces))

    async def _follow(self, namespace: str) -> None:
        async for run, dropped in self._watch.watch(namespace, ""):
            if dropped:
                log.warning("results: %d runs of namespace %s went by unpublished (this process fell behind)",
                            dropped, namespace)
            if run.status.finished and await self._wants(run):
                self.publish(run)

    async def _wants(self, run: Run) -> bool:
        key = (run.namespace, run.job_id)
        wanted = self._wanted.get(key)
        if wanted is None:
            try:
                wanted = wants_results(await self._get_job(run.namespace, run.job_id))
            except NotFound:
                wanted = False  # deleted meanwhile
            except Exception as error:  # noqa: BLE001 - the store away: this result is not published
                log.warning("results: job %s not read, run %s not published: %s", run.job_id, run.run_id, error)
                return False
            self._wanted[key] = wanted
        return wanted

    def publish(self, run: Run) -> None:
        headers = [(CONTENT_TYPE, b"application/x-protobuf"), (RUN_ID, run.run_id.encode()),
                   (RUN_STATUS, run.status.value.encode())]  # fmt: skip
        self._publisher.send(self._topic, run.job_id.encode(), wire.run_to_pb(run).SerializeToString(), headers)
        metrics.RESULTS.inc()
