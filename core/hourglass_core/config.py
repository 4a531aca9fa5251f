"""Settings shared by the coordinator and the worker, read from flags and HOURGLASS_* variables.

Each field's environment variable is HOURGLASS_ + its upper-case name (e.g. HOURGLASS_STORE).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class Settings:
    # Where jobs live: cassandra://host[,host]:port/keyspace or sqlite:///path.db
    store: str = "cassandra://127.0.0.1:9042/hourglass"
    # Leases and membership: redis://host:port/db or memory:// (single process only)
    coordination: str = "redis://127.0.0.1:6379/0"
    # Key prefix in Redis, so several clusters can share one Redis.
    redis_prefix: str = "hourglass:"
    # Coordinator gRPC address to listen on / to connect to.
    listen: str = "127.0.0.1:7070"
    coordinator: str = "127.0.0.1:7070"
    # Fixed for a cluster's life: a job's shard is hash(id) % num_shards.
    num_shards: int = 64
    leader_ttl: timedelta = timedelta(seconds=3)
    # No longer than worker_timeout: a dead worker's shard leases must have expired by the
    # time it is declared dead, or its shards wait out the leases, not the timeout, to move.
    shard_lease_ttl: timedelta = timedelta(seconds=3)
    heartbeat_interval: timedelta = timedelta(milliseconds=500)
    # A worker that has not sent a heartbeat for this long is dead; its shards move.
    worker_timeout: timedelta = timedelta(seconds=3)
    # Coordinator: how long a dead worker (or one that shut down) stays listed by ListWorkers.
    dead_worker_retention: timedelta = timedelta(minutes=5)
    # Workers read this far ahead into an in-memory timer.
    lookahead: timedelta = timedelta(seconds=3)
    # How often a worker reads each of its shards. Fires due within the lookahead reach it
    # without a read (hints, next fires, retries), so a read every second finds the rest at
    # least lookahead - 1 s ahead; each read costs Cassandra about half a millisecond of CPU.
    poll_interval: timedelta = timedelta(seconds=1)
    # How far behind real time the read cursor trails, to catch rows written just late.
    read_margin: timedelta = timedelta(seconds=2)
    max_params_bytes: int = 1024 * 1024
    # Coordinator: BackfillJob's limits: the longest range, the most fires, and the release
    # rate (fires a second per backfill, also the most a caller may ask for).
    backfill_max_range: timedelta = timedelta(days=7)
    backfill_max_fires: int = 1000
    backfill_rate: int = 10
    # Coordinator: how long GetJob and ListRuns answers are served from memory (finished runs
    # and settled jobs: a minute). Job state changes made through the API are seen at once;
    # changes made by workers (run progress, schedule moves) up to this much later. 0: off.
    read_cache_ttl: timedelta = timedelta(seconds=1)
    # Coordinator: calls served at once (worker streams included); beyond it a call is refused
    # at once with RESOURCE_EXHAUSTED and a RetryInfo, which the SDK retries after, instead of
    # queueing until every caller's deadline has passed and starving heartbeats meanwhile.
    max_concurrent_rpcs: int = 512
    # Worker: fires started a second per shard while working through a backlog (fires more
    # than 5 s late, after an outage or a takeover); 0: no pacing.
    catchup_rate: int = 200
    # Worker: runs at once, and extra executors ("name=package.module:function,...").
    capacity: int = 64
    executors: str = ""
    # Worker: the http executor may call only these hosts (comma-separated, "*.example.com"
    # patterns; empty: any) and, unless allowed, only public addresses; its answers are capped.
    http_allow_hosts: str = ""
    http_allow_private: bool = False
    http_max_response_bytes: int = 1024 * 1024
    worker_id: str = ""
    # Authentication (coordinator): files of what verifies callers' bearer tokens (JWT): an
    # HS256 shared secret, a PEM public key (RS256 / ES256), a JWKS. None given: every caller
    # is let in (only sensible on loopback). Private-key file for `hourglass token create`.
    auth_secret_file: str = ""
    auth_public_key_file: str = ""
    auth_jwks_file: str = ""
    auth_private_key_file: str = ""
    # The bearer token a worker (cluster:worker), the CLI or the SDK sends.
    token: str = ""
    # TLS (coordinator): its certificate and key (PEM); with a client CA, every caller must
    # present a certificate that CA signed (mutual TLS).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    # Coordinator: listen beyond loopback without TLS and tokens all the same.
    insecure: bool = False
    # Coordinator and worker: host:port of a plain HTTP port serving /metrics (Prometheus) and
    # /healthz; empty: none. Read-only, but unauthenticated: it shows namespace and executor
    # names and counts, so keep it on loopback or a network only the scraper reaches.
    metrics_listen: str = ""
    # Coordinator: host:port of the web dashboard (HTTPS with the coordinator's certificate when
    # it has one; the same bearer tokens and permissions as the API); empty: none.
    http_listen: str = ""
    # TLS (workers; the CLI and the SDK read the same variables): the CA that signed the
    # coordinators' certificates, and a client certificate and key where they ask for one.
    tls_ca_file: str = ""
    tls_client_cert_file: str = ""
    tls_client_key_file: str = ""
    # Coordinator, worker and `hourglass dev`: log lines as readable text ("console") or one
    # JSON object per line ("json": timestamp, level, logger, event and the line's fields).
    log_format: str = "console"
    # `hourglass ingest` (see hourglass_coordinator.ingest): the Kafka brokers, the topic of job
    # specs and the consumer group that shares its partitions, where undecodable or invalid
    # specs go, and (empty: off) where finished runs of jobs labelled hourglass.results=kafka
    # go, watched in these namespaces (comma-separated). Messages handled per batch; extra
    # librdkafka settings ("key=value,...": security.protocol, sasl.*, ssl.*, ...). Whoever
    # may produce to the topic may submit jobs: kafka_namespaces (comma-separated; empty: any)
    # limits the namespaces its specs may name.
    kafka_brokers: str = "127.0.0.1:9092"
    kafka_topic: str = "hourglass.jobs"
    kafka_group: str = "hourglass-ingest"
    kafka_dead_letter_topic: str = "hourglass.jobs.dead"
    kafka_results_topic: str = ""
    kafka_results_namespaces: str = "default"
    kafka_batch: int = 1000
    kafka_options: str = ""
    kafka_namespaces: str = ""


def _parse(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        return value.lower() in {"1", "true", "yes", "on"}
    if isinstance(like, int):
        return int(value)
    if isinstance(like, timedelta):
        return parse_duration(value)
    return value


def parse_duration(text: str) -> timedelta:
    """'250ms', '3s', '2m', '1h' or a bare number of seconds."""
    text = text.strip()
    for suffix, unit in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return timedelta(seconds=float(text[: -len(suffix)]) * unit)
    return timedelta(seconds=float(text))


def from_env(base: Settings | None = None, environ: dict[str, str] | None = None) -> Settings:
    """`base` overridden by every HOURGLASS_<FIELD> variable that is set."""
    base = base or Settings()
    env = os.environ if environ is None else environ
    changes = {
        f.name: _parse(env[f"HOURGLASS_{f.name.upper()}"], getattr(base, f.name))
        for f in fields(base)
        if f"HOURGLASS_{f.name.upper()}" in env
    }
    return replace(base, **changes)


def with_overrides(settings: Settings, **overrides: Any) -> Settings:
    """`settings` with the given fields replaced, ignoring None (flags not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    parsed = {k: _parse(v, getattr(settings, k)) if isinstance(v, str) else v for k, v in given.items()}
    return replace(settings, **parsed)
