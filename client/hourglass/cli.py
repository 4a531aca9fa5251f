"""The `hourglass` command: run the servers, migrate the store, and drive jobs from a shell.

    hourglass coordinator | worker | ingest | db migrate | dev [--demo]
    hourglass submit --name N --executor E (--at T | --every D | --cron EXPR [--tz Z]) [...]
    hourglass get ID | list [...] | cancel ID | pause ID | resume ID | trigger ID | delete ID | runs ID | run RUN_ID
    hourglass update ID [--version V] [--name N] [--every D | ...] [--params P] [...]
    hourglass backfill ID --since T [--until T] | explain ID --since T [--until T]
    hourglass preview (ID | --at T | --every D | --cron EXPR [--tz Z]) [--count N] [--after T]
    hourglass namespace policy NS [--allow E1,E2 | --clear] | namespace show NS
    hourglass workers [ID] | shards | coordinators

Server commands import the coordinator, worker or store only when run, so the client commands
need nothing beyond the SDK. Exit codes: 0 ok, 1 other error, 2 invalid argument (including
usage errors), 3 not found, 4 failed precondition, 5 unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hourglass import cli_cluster
from hourglass import cli_format as fmt
from hourglass.cli_format import DURATION_HELP, duration, executor_names, label, since_arg, time_arg, timeout_seconds
from hourglass.client import Client
from hourglass_core.config import Settings, from_env, parse_duration, with_overrides
from hourglass_core.errors import (
    FailedPrecondition,
    HourglassError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from hourglass_core.models import (
    DEFAULT_NAMESPACE,
    CronTrigger,
    DstGap,
    DstRepeat,
    IntervalTrigger,
    Job,
    JobChanges,
    JobOptions,
    JobSpec,
    JobState,
    MisfirePolicy,
    OnceTrigger,
    OverlapPolicy,
    Payload,
    RetryPolicy,
    Trigger,
    WorkerLostPolicy,
)
from hourglass_core.tls import channel_credentials
from hourglass_core.trigger_words import iso

EXIT_ERROR, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_PRECONDITION, EXIT_UNAVAILABLE, EXIT_DENIED = 1, 2, 3, 4, 5, 6
Handler = Callable[[argparse.Namespace], int]


# -- submit: arguments to a JobSpec ----------------------------------------------------------


def _trigger(args: argparse.Namespace, now: datetime) -> Trigger:
    start = args.start.resolve(now) if args.start else None
    end = args.end.resolve(now) if args.end else None
    if args.tz is not None and args.cron is None:
        raise InvalidArgument("--tz", "applies only to --cron")
    if (args.dst_gap or args.dst_repeat) and args.cron is None:
        raise InvalidArgument("--dst-gap/--dst-repeat", "apply only to --cron")
    if args.at is not None:
        if start or end:
            raise InvalidArgument("--start/--end", "apply only to --every and --cron")
        return OnceTrigger(at=args.at.resolve(now))
    if args.every is not None:
        if args.every <= timedelta(0):
            raise InvalidArgument("--every", "must be positive")
        return IntervalTrigger(every=args.every, start=start or now, end=end)
    return CronTrigger(expression=args.cron, timezone=args.tz or "UTC", start=start, end=end,
                       dst_gap=DstGap(args.dst_gap or DstGap.SHIFT_FORWARD.value),
                       dst_repeat=DstRepeat(args.dst_repeat or DstRepeat.ONCE.value))  # fmt: skip


def _params(text: str | None, content_type: str | None) -> Payload:
    """A JSON literal, or @FILE (@- for stdin) sent as is."""
    if text is None:
        return Payload(content_type=content_type) if content_type else Payload()
    if text.startswith("@"):
        source = text[1:]
        try:
            data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        except OSError as error:
            raise InvalidArgument("--params", f"cannot read {source!r}: {error.strerror}") from None
        if content_type is None:
            try:
                json.loads(data)
                content_type = "application/json"
            except ValueError:
                content_type = "application/octet-stream"
        return Payload(data, content_type)
    try:
        json.loads(text)
    except ValueError as error:
        raise InvalidArgument("--params", f"is not valid JSON ({error}); use @FILE for other data") from None
    return Payload(text.encode(), content_type or "application/json")


def spec_from_args(args: argparse.Namespace, now: datetime | None = None) -> JobSpec:
    """The JobSpec `hourglass submit` sends. Relative times (+30s) and an interval's default
    start are taken from `now` (default: this machine's clock). Raises InvalidArgument naming
    the flag for combinations argparse cannot check."""
    now = now or datetime.now(UTC)
    defaults = JobOptions()
    backoff = args.backoff or defaults.retry.initial_backoff
    options = JobOptions(
        timeout=args.timeout_run,
        retry=RetryPolicy(
            max_attempts=args.max_attempts,
            initial_backoff=backoff,
            max_backoff=max(defaults.retry.max_backoff, backoff),
        ),
        misfire_policy=MisfirePolicy(args.misfire),
        misfire_grace=defaults.misfire_grace if args.grace is None else args.grace,
        overlap_policy=OverlapPolicy(args.overlap),
        on_worker_lost=WorkerLostPolicy(args.on_worker_lost),
        catchup_window=defaults.catchup_window if args.catchup_window is None else args.catchup_window,
        jitter=args.jitter or timedelta(0),
        max_fires=args.max_fires or 0,
        lateness_slo=args.lateness_slo,
    )
    return JobSpec(
        name=args.name,
        executor=args.executor,
        trigger=_trigger(args, now),
        namespace=args.namespace,
        priority=args.priority,
        params=_params(args.params, args.content_type),
        options=options,
        labels=dict(args.label or []),
        idempotency_key=args.idempotency_key or "",
    )


# -- client commands -------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Client:
    # The flags, if any is given; else the Client reads $HOURGLASS_TLS_*.
    credentials = channel_credentials(args.tls_ca, args.tls_cert, args.tls_key)
    if args.timeout:
        return Client(args.coordinator, timeout=args.timeout, credentials=credentials)
    return Client(args.coordinator, credentials=credentials)


def _more(token: str) -> None:
    if token:
        print(f"(more: --page-token {token})", file=sys.stderr)


def cmd_submit(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    with _client(args) as client:
        job = client.submit(spec)
    print(fmt.dumps(fmt.job_json(job)) if args.json else fmt.job_text(job))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.get(args.job_id, args.namespace)
    print(fmt.dumps(fmt.job_json(job)) if args.json else fmt.job_text(job))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    state = JobState(args.state) if args.state else None
    labels = dict(args.label or [])
    with _client(args) as client:
        if args.all:
            jobs, token = list(client.iter_jobs(args.namespace, state, args.name_prefix, labels, args.page_size)), ""
        else:
            page = client.list(args.namespace, state, args.name_prefix, labels, args.page_size, args.page_token)
            jobs, token = page.items, page.next_page_token
    if args.json:
        print(fmt.dumps([fmt.job_json(j) for j in jobs]))
    else:
        print(fmt.jobs_table(jobs) if jobs else "no jobs")
    _more(token)
    return 0


def cmd_control(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.command == "pause":
            job = client.pause(args.job_id, args.namespace, note=args.note or "")
        else:
            job = getattr(client, args.command)(args.job_id, args.namespace)
    print(fmt.dumps(fmt.job_json(job)) if args.json else f"job {job.id} is {job.state.value}")
    return 0


def cmd_trigger(args: argparse.Namespace) -> int:
    overlap = OverlapPolicy(args.overlap) if args.overlap else None
    with _client(args) as client:
        run_id, due = client.trigger(args.job_id, args.namespace, overlap=overlap)
    print(fmt.dumps({"run_id": run_id, "due": iso(due)}) if args.json else f"run {run_id} due {iso(due)}")
    return 0


def changes_from_args(args: argparse.Namespace, current: Job, now: datetime | None = None) -> JobChanges:
    """What `hourglass update` changes: each flag given; option flags change those options
    only (the others stay as `current` has them)."""
    now = now or datetime.now(UTC)
    trigger = _trigger(args, now) if any(getattr(args, f) is not None for f in ("at", "every", "cron")) else None
    if trigger is None and any(getattr(args, f) for f in ("tz", "dst_gap", "dst_repeat", "start", "end")):
        raise InvalidArgument("--at/--every/--cron", "give the whole new trigger")
    o = current.options
    retry = replace(o.retry, max_attempts=args.max_attempts or o.retry.max_attempts,
                    initial_backoff=args.backoff or o.retry.initial_backoff)  # fmt: skip
    retry = replace(retry, max_backoff=max(retry.max_backoff, retry.initial_backoff))
    options = replace(
        o, retry=retry,
        timeout=args.timeout_run if args.timeout_run is not None else o.timeout,
        misfire_policy=MisfirePolicy(args.misfire) if args.misfire else o.misfire_policy,
        misfire_grace=args.grace if args.grace is not None else o.misfire_grace,
        overlap_policy=OverlapPolicy(args.overlap) if args.overlap else o.overlap_policy,
        on_worker_lost=WorkerLostPolicy(args.on_worker_lost) if args.on_worker_lost else o.on_worker_lost,
        catchup_window=args.catchup_window if args.catchup_window is not None else o.catchup_window,
        jitter=args.jitter if args.jitter is not None else o.jitter,
        max_fires=args.max_fires if args.max_fires is not None else o.max_fires,
        lateness_slo=args.lateness_slo if args.lateness_slo is not None else o.lateness_slo,
    )  # fmt: skip
    return JobChanges(
        name=args.name,
        trigger=trigger,
        priority=args.priority,
        params=_params(args.params, args.content_type) if args.params is not None else None,
        options=options if options != o else None,
        labels=dict(args.label) if args.label else None,
    )


def cmd_update(args: argparse.Namespace) -> int:
    with _client(args) as client:
        current = client.get(args.job_id, args.namespace)
        changes = changes_from_args(args, current)
        job = client.update(args.job_id, args.namespace, version=args.version or current.version, changes=changes)
    print(fmt.dumps(fmt.job_json(job)) if args.json else fmt.job_text(job))
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    since, until = args.since.resolve(now), (args.until.resolve(now) if args.until else now)
    with _client(args) as client:
        times = client.backfill(args.job_id, since, until, args.namespace, per_second=args.per_second)
    if args.json:
        print(fmt.dumps({"occurrences": [iso(t) for t in times]}))
    else:
        print(f"{len(times)} fires backfilled" + (f", {iso(times[0])} to {iso(times[-1])}" if times else ""))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    until = args.until.resolve(now) if args.until else None
    with _client(args) as client:
        found = client.explain(args.job_id, args.since.resolve(now), until, args.namespace, max_fires=args.max_fires)
    print(fmt.dumps(fmt.explain_json(found)) if args.json else fmt.explain_text(found))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete(args.job_id, args.namespace)
    print(fmt.dumps({"id": args.job_id, "deleted": True}) if args.json else f"job {args.job_id} deleted")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    if args.follow:
        return _follow_runs(args)
    if not args.job_id:
        raise InvalidArgument("job_id", "is required (without it, --follow watches the whole namespace)")
    with _client(args) as client:
        page = client.runs(args.job_id, args.namespace, args.page_size, args.page_token)
    if args.json:
        print(fmt.dumps([fmt.run_json(r) for r in page.items]))
    else:
        print(fmt.runs_table(page.items) if page.items else "no runs")
    _more(page.next_page_token)
    return 0


def _follow_runs(args: argparse.Namespace) -> int:
    """One line (or JSON object) per run as it finishes, until interrupted."""
    with _client(args) as client:
        for run, dropped in client.watch_runs(args.job_id or "", args.namespace):
            if dropped:
                print(f"({dropped} runs dropped: this reader fell behind)", file=sys.stderr)
            if args.json:
                print(fmt.dumps(fmt.run_json(run)).replace("\n", " "), flush=True)
            else:
                late = fmt.lateness_ms(run)
                tail = ("" if late is None else f"  late {late:g} ms") + (f"  {run.error}" if run.error else "")
                print(f"{iso(run.ended_at or run.started_at)}  {run.status.value:<9}  {run.run_id}{tail}", flush=True)
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    given = args.at is not None or args.every is not None or args.cron is not None
    if given == (args.job_id is not None):
        raise InvalidArgument("job_id", "give a job id, or a trigger (--at, --every or --cron), not both")
    trigger = _trigger(args, now) if given else None
    after = args.after.resolve(now) if args.after else None
    with _client(args) as client:
        found = client.preview_schedule(args.job_id, args.namespace, trigger=trigger, count=args.count, after=after)
    print(fmt.dumps(fmt.preview_json(found)) if args.json else fmt.preview_text(found))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    with _client(args) as client:
        run = client.get_run(args.run_id)
    print(fmt.dumps(fmt.run_json(run)) if args.json else fmt.run_text(run))
    return 0


def cmd_namespace_policy(args: argparse.Namespace) -> int:
    """Sets (--allow), clears (--clear) or, given neither, shows a namespace's executor policy."""
    with _client(args) as client:
        if args.allow is not None or args.clear:
            policy = client.set_namespace_policy(args.target, args.allow or [])
        else:
            policy = client.get_namespace_policy(args.target)
    print(fmt.dumps(fmt.policy_json(policy)) if args.json else fmt.policy_text(policy))
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    """Lists the workers, or shows one (`hourglass worker` itself runs a worker)."""
    now = datetime.now(UTC)
    with _client(args) as client:
        if args.worker_id:
            worker = client.worker(args.worker_id)
            print(fmt.dumps(cli_cluster.worker_json(worker)) if args.json else cli_cluster.worker_text(worker, now))
            return 0
        workers = client.workers()
    print(fmt.dumps([cli_cluster.worker_json(w) for w in workers]) if args.json else cli_cluster.workers_table(workers, now))
    return 0


def cmd_shards(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.shard_map()
    print(fmt.dumps(cli_cluster.shard_map_json(status)) if args.json else cli_cluster.shard_map_text(status))
    return 0


def cmd_coordinators(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = client.coordinators()
    if args.json:
        print(fmt.dumps(cli_cluster.coordinators_json(found)))
    else:
        print(cli_cluster.coordinators_table(found, datetime.now(UTC)))
    return 0


# -- server commands -------------------------------------------------------------------------


def _settings(args: argparse.Namespace, *names: str) -> Settings:
    """HOURGLASS_* variables, then the flags given on the command line."""
    return with_overrides(from_env(), **{n: getattr(args, n, None) for n in names})


def _logging(args: argparse.Namespace, settings: Settings) -> None:
    from hourglass_core import logs  # structlog: a server dependency

    logs.configure(args.log_level, settings.log_format)
    if os.environ.get("HOURGLASS_TRACE_FIRES") or os.environ.get("HOURGLASS_TRACE"):  # the older name too
        logs.trace_fires()


def cmd_coordinator(args: argparse.Namespace) -> int:
    settings = _settings(args, "listen", "store", "coordination", "num_shards", "insecure", "metrics_listen", "http_listen",
                         "log_format")
    _logging(args, settings)
    from hourglass_coordinator.server import serve  # server dependencies only here

    asyncio.run(serve(settings))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args, "coordinator", "store", "coordination", "capacity", "executors", "worker_id",
                         "metrics_listen", "log_format")  # fmt: skip
    _logging(args, settings)
    from hourglass_worker.main import run_worker  # server dependencies only here

    asyncio.run(run_worker(settings))
    return 0


KAFKA_FLAGS = {  # flag: (setting, help)
    "--brokers": ("kafka_brokers", "Kafka bootstrap servers"),
    "--topic": ("kafka_topic", "topic of job specs"),
    "--group": ("kafka_group", "consumer group (every ingest process of the group shares the topic)"),
    "--dead-letter-topic": ("kafka_dead_letter_topic", "where undecodable or invalid specs go, with the error in headers"),
    "--results-topic": ("kafka_results_topic", "where finished runs of jobs labelled hourglass.results=kafka go ('': off)"),
    "--results-namespaces": ("kafka_results_namespaces", "namespaces whose runs are published (comma-separated)"),
    "--batch": ("kafka_batch", "messages per batch (one store write, one commit)"),
    "--kafka-options": ("kafka_options", "extra librdkafka settings: key=value,..."),
    "--namespaces": ("kafka_namespaces", "the namespaces specs may name, comma-separated ('': any)"),
}


def cmd_ingest(args: argparse.Namespace) -> int:
    settings = _settings(args, "store", "coordination", "num_shards", "metrics_listen", "log_format",
                         *(name for name, _ in KAFKA_FLAGS.values()))  # fmt: skip
    _logging(args, settings)
    from hourglass_coordinator.ingest.main import run_ingest  # server and Kafka dependencies only here

    asyncio.run(run_ingest(settings))
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args, "store", "num_shards")
    from hourglass_core.store.migrate import migrate

    version = asyncio.run(migrate(settings, args.replication))
    from hourglass_core.credentials import redact

    print(f"store {redact(settings.store)}: schema version {version}, {settings.num_shards} shards initialised")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    """Prints a bearer token signed with the configured secret or private key."""
    settings = from_env()
    from hourglass_core.auth import WORKER_GRANT, Role, grant, mint

    if not (settings.auth_secret_file or settings.auth_private_key_file):
        raise ValueError("set HOURGLASS_AUTH_SECRET_FILE or HOURGLASS_AUTH_PRIVATE_KEY_FILE to sign tokens")
    permissions = [grant(ns, Role[args.role.upper()]) for ns in args.namespace or []]
    if args.worker:
        if not args.subject:  # coordinators let a worker register only as what its subject names
            raise ValueError("--worker needs --subject: the worker id the token is for, or a prefix ending in * "
                             "for a fleet of workers sharing it (e.g. --subject 'etl-*')")  # fmt: skip
        permissions.append(WORKER_GRANT)
    if not permissions:
        raise ValueError("--namespace or --worker: a token must grant something")
    key_file = settings.auth_private_key_file or settings.auth_secret_file
    ttl = parse_duration(args.ttl)
    subject = args.subject or "hourglass-cli"
    print(mint(key_file, subject, permissions, ttl, datetime.now(UTC), secret=not settings.auth_private_key_file))
    return 0


def cmd_certs_dev(args: argparse.Namespace) -> int:
    from hourglass_core.dev_certs import write_dev_certificates

    for path in write_dev_certificates(Path(args.directory), args.host or None, args.worker_name):
        print(path)
    return 0


def cmd_dev(args: argparse.Namespace, extra: Sequence[str]) -> int:
    try:
        dev = importlib.import_module("hourglass_dev")
    except ImportError as error:
        print(f"error: hourglass dev is not available in this build ({error})", file=sys.stderr)
        return EXIT_INVALID
    parser = argparse.ArgumentParser(prog="hourglass dev", description="Everything in one process, on SQLite.")
    add_arguments = getattr(dev, "add_arguments", None) or getattr(
        sys.modules.get("hourglass_dev.main"), "add_arguments", None
    )
    if add_arguments is not None:
        add_arguments(parser)
    result = dev.main(parser.parse_args(list(extra)))
    return int(result or 0)


# -- parser ------------------------------------------------------------------------------------


def _client_flags(top: bool) -> argparse.ArgumentParser:
    """Flags every client command takes, before or after the command name (after wins)."""
    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--coordinator", default=default(None),
                   help="coordinator address(es), comma-separated (default $HOURGLASS_COORDINATOR or 127.0.0.1:7070)")
    p.add_argument("--namespace", "-n", default=default(os.environ.get("HOURGLASS_NAMESPACE", DEFAULT_NAMESPACE)),
                   help="namespace (default $HOURGLASS_NAMESPACE or 'default')")
    p.add_argument("--json", action="store_true", default=default(False), help="print JSON for scripts")
    p.add_argument("--timeout", type=timeout_seconds, default=default(None),
                   help=f"per-call deadline ({DURATION_HELP}; default 10s)")
    for flag, what, variable in (("--tls-ca", "the CA that signed the coordinators' certificates", "CA_FILE"),
                                 ("--tls-cert", "a client certificate (mutual TLS)", "CLIENT_CERT_FILE"),
                                 ("--tls-key", "its key", "CLIENT_KEY_FILE")):  # fmt: skip
        p.add_argument(flag, default=default(""), help=f"TLS: {what} (default $HOURGLASS_TLS_{variable})")
    return p


def _server_flags(p: argparse.ArgumentParser, *flags: str) -> None:
    helps = {
        "--listen": "gRPC address to listen on", "--store": "cassandra://host:port/keyspace or sqlite:///path.db",
        "--coordination": "redis://host:port/db, redis+sentinel://host:port,.../service or memory://",
        "--num-shards": "shards (fixed for a cluster's life)",
        "--coordinator": "coordinator address(es)", "--capacity": "runs at once",
        "--executors": "extra executors: name=pkg.module:function,...", "--worker-id": "stable worker id",
        "--metrics-listen": "host:port of plain HTTP /metrics and /healthz ('' for none)",
    }
    for flag in flags:
        kind = int if flag in ("--num-shards", "--capacity") else str
        p.add_argument(flag, type=kind, default=argparse.SUPPRESS if flag == "--coordinator" else None,
                       help=helps[flag] + f" (default $HOURGLASS_{flag[2:].upper().replace('-', '_')})")
    p.add_argument("--log-level", default=os.environ.get("HOURGLASS_LOG_LEVEL", "info"),
                   choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", choices=["console", "json"], default=None,
                   help="log lines as text or one JSON object per line (default $HOURGLASS_LOG_FORMAT or console)")


def _trigger_flags(p: argparse.ArgumentParser, *, required: bool) -> None:
    when = p.add_mutually_exclusive_group(required=required)
    when.add_argument("--at", type=time_arg, help="once, at ISO 8601 time with offset, or +DURATION from now")
    when.add_argument("--every", type=duration, help=f"interval ({DURATION_HELP})")
    when.add_argument("--cron", help="cron expression: 5 fields, or 6 with seconds first")
    p.add_argument("--tz", help="IANA time zone of --cron (default UTC)")
    p.add_argument("--dst-gap", choices=[g.value for g in DstGap],
                   help="--cron at a fixed local time that a spring-forward jump skips: fire as the gap ends (default) or skip")
    p.add_argument("--dst-repeat", choices=[r.value for r in DstRepeat],
                   help="--cron at a fixed local time that a fall-back jump repeats: fire at the first (default) or twice")
    p.add_argument("--start", type=time_arg, help="no fire before (anchor of --every; default now)")
    p.add_argument("--end", type=time_arg, help="no fire after")


def _submit_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True)
    p.add_argument("--executor", required=True, help="an executor registered on the workers (e.g. echo, http)")
    _trigger_flags(p, required=True)
    p.add_argument("--params", help="JSON, or @FILE (@- for stdin) sent as is")
    p.add_argument("--content-type", help="of params (default application/json, or octet-stream for non-JSON files)")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--timeout-run", type=duration, help="cancel a run taking longer")
    p.add_argument("--max-attempts", type=int, default=1, help="attempts per fire, the first included (default 1)")
    p.add_argument("--backoff", type=duration, help="delay before the first retry (default 1s, doubling)")
    p.add_argument("--misfire", choices=[m.value for m in MisfirePolicy], default=MisfirePolicy.RUN_ONCE.value)
    p.add_argument("--grace", type=duration, help="lateness before a fire counts as misfired (default 60s)")
    p.add_argument("--overlap", choices=[o.value for o in OverlapPolicy], default=OverlapPolicy.ALLOW.value)
    p.add_argument("--on-worker-lost", choices=[w.value for w in WorkerLostPolicy], default=WorkerLostPolicy.RETRY.value,
                   help="a run cut off by its worker's death: retry it as the next attempt (default) or record it lost")
    _schedule_option_flags(p)
    p.add_argument("--label", type=label, action="append", metavar="KEY=VALUE", help="repeatable")
    p.add_argument("--idempotency-key", help="resubmitting with the same key returns the first job")


def _schedule_option_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catchup-window", type=duration,
                   help="a fire found later than this after an outage is recorded skipped, not run (default 1h)")
    p.add_argument("--jitter", type=duration, help="run each fire up to this much late, fixed per fire (default 0)")
    p.add_argument("--max-fires", type=int, help="stop after this many scheduled fires (default: no limit)")
    p.add_argument("--lateness-slo", type=duration,
                   help="count a run that starts later than this after its schedule's time as an SLO breach "
                        "(shown by `hourglass get`; default: no SLO)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hourglass", parents=[_client_flags(True)],
        description="Hourglass: a distributed job scheduler.",
        epilog="exit codes: 1 error, 2 invalid argument, 3 not found, 4 failed precondition, 5 unavailable",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    flags = [_client_flags(False)]

    def command(name: str, handler: Handler, summary: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=flags, help=summary, description=summary)
        p.set_defaults(handler=handler)
        return p

    _submit_flags(command("submit", cmd_submit, "submit a job"))
    command("get", cmd_get, "show a job").add_argument("job_id")
    p = command("list", cmd_list, "list jobs")
    p.add_argument("--state", choices=[s.value for s in JobState])
    p.add_argument("--name-prefix", default="")
    p.add_argument("--label", type=label, action="append", metavar="KEY=VALUE", help="repeatable; all must match")
    p.add_argument("--page-size", type=int, default=100)
    p.add_argument("--page-token", default="")
    p.add_argument("--all", action="store_true", help="every page")
    for name, summary in (("cancel", "cancel a job (final)"), ("pause", "pause a job"), ("resume", "resume a paused job")):
        p = command(name, cmd_control, summary)
        p.add_argument("job_id")
        if name == "pause":
            p.add_argument("--note", help="why: kept on the job until it is resumed")
    p = command("trigger", cmd_trigger, "run a job once now, beside its schedule (also while paused)")
    p.add_argument("job_id")
    p.add_argument("--overlap", choices=[o.value for o in OverlapPolicy], help="for this run, in place of the job's")
    p = command("update", cmd_update, "change a job's name, trigger, priority, params, options or labels")
    p.add_argument("job_id")
    p.add_argument("--version", type=int, help="the version you read (default: the job's current one)")
    p.add_argument("--name")
    _trigger_flags(p, required=False)
    p.add_argument("--params", help="JSON, or @FILE (@- for stdin) sent as is")
    p.add_argument("--content-type", help="of params")
    p.add_argument("--priority", type=int)
    p.add_argument("--timeout-run", type=duration)
    p.add_argument("--max-attempts", type=int)
    p.add_argument("--backoff", type=duration)
    p.add_argument("--misfire", choices=[m.value for m in MisfirePolicy])
    p.add_argument("--grace", type=duration)
    p.add_argument("--overlap", choices=[o.value for o in OverlapPolicy])
    p.add_argument("--on-worker-lost", choices=[w.value for w in WorkerLostPolicy])
    _schedule_option_flags(p)
    p.add_argument("--label", type=label, action="append", metavar="KEY=VALUE", help="repeatable; replaces all labels")
    p = command("backfill", cmd_backfill, "run the fires a job's trigger would have produced in a past range")
    p.add_argument("job_id")
    p.add_argument("--since", type=since_arg, required=True, help="ISO 8601, or DURATION ago (e.g. 2h)")
    p.add_argument("--until", type=since_arg, help="ISO 8601, or DURATION ago (default now)")
    p.add_argument("--per-second", type=float, default=0.0, help="fires released a second (default: the server's, 10)")
    p = command("explain", cmd_explain, "why a job did or did not run: every expected fire and what became of it")
    p.add_argument("job_id")
    p.add_argument("--since", type=since_arg, required=True, help="ISO 8601, or DURATION ago (e.g. 1h)")
    p.add_argument("--until", type=since_arg, help="ISO 8601, or DURATION ago (default now)")
    p.add_argument("--max-fires", type=int, default=100, help="1-1000 (default 100)")
    command("delete", cmd_delete, "delete a cancelled or completed job (its runs stay until retention)").add_argument("job_id")
    p = command("runs", cmd_runs, "a job's runs, newest first; --follow: each run as it finishes")
    p.add_argument("job_id", nargs="?")
    p.add_argument("--follow", "-f", action="store_true", help="stream runs as they finish (no job: the namespace's)")
    p.add_argument("--page-size", type=int, default=100)
    p.add_argument("--page-token", default="")
    command("run", cmd_run, "show a run").add_argument("run_id")
    p = command("preview", cmd_preview, "the next fire times of a job, or of a trigger before submitting it")
    p.add_argument("job_id", nargs="?")
    _trigger_flags(p, required=False)
    p.add_argument("--count", type=int, default=10, help="how many fire times, 1-1000 (default 10)")
    p.add_argument("--after", type=time_arg, help="fire times after this (ISO 8601 or +DURATION; default now)")

    p = command("workers", cmd_workers, "the workers, live and dead or left lately; or one of them (needs *:read)")
    p.add_argument("worker_id", nargs="?", metavar="ID", help="show this worker: heartbeat, state, shards and tokens")
    command("shards", cmd_shards, "the shard map: leader, each shard's owner, lease and checkpoint lag (needs *:read)")
    command("coordinators", cmd_coordinators, "the coordinator replicas and the leader (needs *:read)")

    namespace_parser = sub.add_parser("namespace", help="a namespace's settings: its executor policy")
    namespace_parser.set_defaults(handler=lambda _: _usage(namespace_parser))
    namespaces = namespace_parser.add_subparsers(dest="namespace_command", metavar="ACTION")
    summary = "limit the executors a namespace's jobs may use (admin), or lift the limit; shows it given neither"
    p = namespaces.add_parser("policy", parents=flags, help=summary, description=summary)
    p.add_argument("target", metavar="NAMESPACE")
    allow = p.add_mutually_exclusive_group()
    allow.add_argument("--allow", type=executor_names, metavar="E1,E2",
                       help="the executors allowed (all of them), comma-separated")
    allow.add_argument("--clear", action="store_true", help="no limit: every executor the workers load")
    p.set_defaults(handler=cmd_namespace_policy)
    summary = "show a namespace's executor policy"
    p = namespaces.add_parser("show", parents=flags, help=summary, description=summary)
    p.add_argument("target", metavar="NAMESPACE")
    p.set_defaults(handler=cmd_namespace_policy, allow=None, clear=False)

    p = sub.add_parser("coordinator", help="run a coordinator replica")
    _server_flags(p, "--listen", "--store", "--coordination", "--num-shards", "--metrics-listen")
    p.add_argument("--http", dest="http_listen", default=None,
                   help="host:port of the web dashboard ('' for none; default $HOURGLASS_HTTP_LISTEN)")
    p.add_argument("--insecure", action="store_true", default=None,
                   help="listen beyond loopback without TLS and bearer tokens all the same (default $HOURGLASS_INSECURE)")
    p.set_defaults(handler=cmd_coordinator)
    p = sub.add_parser("worker", help="run a worker")
    _server_flags(p, "--coordinator", "--store", "--coordination", "--capacity", "--executors", "--worker-id",
                  "--metrics-listen")  # fmt: skip
    p.set_defaults(handler=cmd_worker)
    p = sub.add_parser("ingest", help="submit a job for each message of a Kafka topic (see README, Kafka)")
    _server_flags(p, "--store", "--coordination", "--num-shards", "--metrics-listen")
    for flag, (name, what) in KAFKA_FLAGS.items():
        p.add_argument(flag, dest=name, type=int if flag == "--batch" else str, metavar=flag[2:].upper().replace("-", "_"),
                       help=f"{what} (default $HOURGLASS_{name.upper()})")
    p.set_defaults(handler=cmd_ingest)
    db_parser = sub.add_parser("db", help="store administration")
    db_parser.set_defaults(handler=lambda _: _usage(db_parser))
    db = db_parser.add_subparsers(dest="db_command", metavar="ACTION")
    p = db.add_parser("migrate", help="create or upgrade the schema and shard checkpoints (idempotent)")
    p.add_argument("--store", help="store URL (default $HOURGLASS_STORE)")
    p.add_argument("--num-shards", type=int, help="shards (default $HOURGLASS_NUM_SHARDS)")
    p.add_argument("--replication", help="a new keyspace's replication: SimpleStrategy:1 (one node, the default) or "
                   "NetworkTopologyStrategy:DC=N[,DC=N] (default: the store URL's replication= or rf=)")
    p.set_defaults(handler=cmd_db_migrate)
    token_parser = sub.add_parser("token", help="bearer tokens for callers and workers")
    token_parser.set_defaults(handler=lambda _: _usage(token_parser))
    tokens = token_parser.add_subparsers(dest="token_command", metavar="ACTION")
    p = tokens.add_parser("create", help="print a token signed with $HOURGLASS_AUTH_SECRET_FILE or _PRIVATE_KEY_FILE")
    p.add_argument("--namespace", action="append", help="a namespace it grants the role in (repeatable; * for all)")
    p.add_argument("--role", choices=["read", "write", "admin"], default="read", help="default read")
    p.add_argument("--worker", action="store_true", help="also grant cluster:worker (the workers' stream; needs --subject)")
    p.add_argument("--subject", help="who the token names (sub; default hourglass-cli); for a worker, the worker id "
                   "it may register as, or a prefix ending in * for a fleet (etl-*)")
    p.add_argument("--ttl", default="24h", help="how long it is valid (default 24h)")
    p.set_defaults(handler=cmd_token_create)
    certs_parser = sub.add_parser("certs", help="certificates for TLS")
    certs_parser.set_defaults(handler=lambda _: _usage(certs_parser))
    certs = certs_parser.add_subparsers(dest="certs_command", metavar="ACTION")
    p = certs.add_parser("dev", help="write a local CA and coordinator, worker and client certificates (not for production)")
    p.add_argument("directory")
    p.add_argument("--host", action="append", help="a name or address the coordinator certificate covers (repeatable)")
    p.add_argument("--worker-name", help="the worker id the worker certificate is for, or a prefix ending in * "
                   "(default hourglass-worker-*)")
    p.set_defaults(handler=cmd_certs_dev)
    sub.add_parser("dev", add_help=False, help="everything in one process on SQLite (see: hourglass dev --help)")
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_INVALID


def exit_code(error: BaseException) -> int:
    if isinstance(error, InvalidArgument | ValueError):
        return EXIT_INVALID
    if isinstance(error, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(error, FailedPrecondition):
        return EXIT_PRECONDITION
    if isinstance(error, Unavailable):
        return EXIT_UNAVAILABLE
    if isinstance(error, Unauthenticated | PermissionDenied):
        return EXIT_DENIED
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `hourglass` command; returns its exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "dev":
        return cmd_dev(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        return _usage(parser)
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as error:
        print(f"error: {error}; the servers need: pip install 'hourglass-scheduler[server]'", file=sys.stderr)
        return EXIT_ERROR
    except (HourglassError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return exit_code(error)


if __name__ == "__main__":
    sys.exit(main())
