"""The ingest process's Prometheus metrics (served by ops_http with --metrics-listen)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MESSAGES = Counter(
    "hourglass_ingest_messages",
    "Kafka messages handled, by outcome: `created` (a new job), `existing` (its job existed: a "
    "message read again after a crash, or a key sent twice), `dead_lettered` (refused).",
    ["outcome"],
)
CREATED = MESSAGES.labels("created")
EXISTING = MESSAGES.labels("existing")
DEAD_LETTERED = MESSAGES.labels("dead_lettered")
LAG = Gauge(
    "hourglass_ingest_consumer_lag",
    "Messages in the partitions this process consumes not yet read by it (high watermark - position).",
)
PAUSED = Gauge("hourglass_ingest_paused", "1 while consumption is paused because the store or the broker is away.")
RETRIES = Counter("hourglass_ingest_retries", "Writes retried while the store or the broker was away.", ["what"])
RESULTS = Counter("hourglass_ingest_results_published", "Finished runs published to the results topic.")
