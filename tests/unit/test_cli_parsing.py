"""The `hourglass` command: flags to a JobSpec, clear usage errors, output, exit codes, and
`db migrate` on SQLite. No coordinator is started: client commands run against a fake Client."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

import hourglass
from hourglass import cli, cli_cluster, cli_format
from hourglass_core.cluster import CoordinatorStatus, ShardMapStatus, ShardStatus, WorkerState, WorkerStatus
from hourglass_core.models import (
    CronTrigger,
    DstGap,
    DstRepeat,
    IntervalTrigger,
    Job,
    JobSpec,
    JobState,
    MisfirePolicy,
    NamespacePolicy,
    OnceTrigger,
    OverlapPolicy,
    Page,
)

NOW = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
BASE = ["submit", "--name", "nightly", "--executor", "echo"]
ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def spec(*argv: str) -> JobSpec:
    return cli.spec_from_args(parse(*BASE, *argv), now=NOW)


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# -- triggers ------------------------------------------------------------------------------------


def test_at_takes_an_iso_time_with_offset_and_normalises_to_utc() -> None:
    assert spec("--at", "2026-12-01T10:00:00+01:00").trigger == OnceTrigger(at=datetime(2026, 12, 1, 9, tzinfo=UTC))
    assert spec("--at", "2026-12-01T09:00:00Z").trigger == OnceTrigger(at=datetime(2026, 12, 1, 9, tzinfo=UTC))


def test_at_plus_duration_is_relative_to_now() -> None:
    assert spec("--at", "+90s").trigger == OnceTrigger(at=NOW + timedelta(seconds=90))


def test_at_without_offset_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, *BASE, "--at", "2026-12-01T09:00:00")
    assert "add a UTC offset" in err and "2026-12-01T09:00:00Z" in err


@pytest.mark.parametrize(("text", "every"), [
    ("10s", timedelta(seconds=10)), ("500ms", timedelta(milliseconds=500)), ("1m", timedelta(minutes=1)),
    ("2h", timedelta(hours=2)), ("15", timedelta(seconds=15)),
])
def test_every_accepts_duration_units_and_anchors_at_now(text: str, every: timedelta) -> None:
    assert spec("--every", text).trigger == IntervalTrigger(every=every, start=NOW)


def test_every_with_start_and_end() -> None:
    trigger = spec("--every", "1m", "--start", "2026-04-01T00:00:00Z", "--end", "+1h").trigger
    assert trigger == IntervalTrigger(
        every=timedelta(minutes=1), start=datetime(2026, 4, 1, tzinfo=UTC), end=NOW + timedelta(hours=1)
    )


def test_cron_with_time_zone_and_default_utc() -> None:
    assert spec("--cron", "30 2 * * *", "--tz", "Europe/Paris").trigger == CronTrigger("30 2 * * *", "Europe/Paris")
    assert spec("--cron", "*/5 * * * * *").trigger == CronTrigger("*/5 * * * * *", "UTC")


@pytest.mark.parametrize("bad", ["10x", "ten", "1m30", "-5s", "inf", ""])
def test_bad_duration_is_a_clear_usage_error(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    err = usage_error(capsys, *BASE, f"--every={bad}")
    assert "argument --every: invalid duration" in err
    assert "500ms" in err or "negative" in err


def test_exactly_one_trigger_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert "one of the arguments --at --every --cron is required" in usage_error(capsys, *BASE)
    assert "not allowed with argument" in usage_error(capsys, *BASE, "--every", "1s", "--cron", "* * * * *")


def test_tz_without_cron_names_the_flag() -> None:
    with pytest.raises(hourglass.InvalidArgument) as caught:
        spec("--every", "1s", "--tz", "Europe/Paris")
    assert caught.value.field == "--tz"


# -- options, labels, params ---------------------------------------------------------------------


def test_options_map_onto_job_options() -> None:
    s = spec("--every", "1m", "--priority", "7", "--timeout-run", "30s", "--max-attempts", "4", "--backoff", "2s",
             "--misfire", "skip", "--grace", "5s", "--overlap", "queue_one", "--idempotency-key", "k-1",
             "--namespace", "team")
    o = s.options
    assert (s.priority, s.idempotency_key, s.namespace) == (7, "k-1", "team")
    assert o.timeout == timedelta(seconds=30)
    assert (o.retry.max_attempts, o.retry.initial_backoff) == (4, timedelta(seconds=2))
    assert (o.misfire_policy, o.misfire_grace, o.overlap_policy) == (
        MisfirePolicy.SKIP, timedelta(seconds=5), OverlapPolicy.QUEUE_ONE)


def test_defaults_match_the_models() -> None:
    s = spec("--every", "1s")
    assert s.options == hourglass.JobOptions() and s.labels == {} and s.idempotency_key == "" and s.namespace == "default"


def test_backoff_above_the_default_cap_raises_the_cap() -> None:
    retry = spec("--every", "1h", "--max-attempts", "2", "--backoff", "10m").options.retry
    assert retry.max_backoff >= retry.initial_backoff == timedelta(minutes=10)


def test_labels_repeat_and_values_may_contain_equals() -> None:
    assert spec("--every", "1s", "--label", "team=finance", "--label", "q=a=b").labels == {"team": "finance", "q": "a=b"}


def test_bad_label_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid label 'team'" in usage_error(capsys, *BASE, "--every", "1s", "--label", "team")


def test_params_json_literal_is_checked_and_typed() -> None:
    params = spec("--every", "1s", "--params", '{"a": 1}').params
    assert (params.data, params.content_type) == (b'{"a": 1}', "application/json")
    with pytest.raises(hourglass.InvalidArgument, match="not valid JSON") as caught:
        spec("--every", "1s", "--params", "{a: 1}")
    assert caught.value.field == "--params"


def test_params_from_file_are_sent_as_is(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"url": "https://example.org"}\n')
    (tmp_path / "p.bin").write_bytes(b"\x00\xffraw")
    from_json = spec("--every", "1s", "--params", f"@{tmp_path / 'p.json'}").params
    assert from_json.data == b'{"url": "https://example.org"}\n' and from_json.content_type == "application/json"
    raw = spec("--every", "1s", "--params", f"@{tmp_path / 'p.bin'}").params
    assert raw.data == b"\x00\xffraw" and raw.content_type == "application/octet-stream"
    typed = spec("--every", "1s", "--params", f"@{tmp_path / 'p.bin'}", "--content-type", "image/png").params
    assert typed.content_type == "image/png"


def test_params_from_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(hourglass.InvalidArgument, match="cannot read"):
        spec("--every", "1s", "--params", f"@{tmp_path / 'nope.json'}")


def test_client_flags_work_before_and_after_the_command() -> None:
    before = parse("--coordinator", "a:1", "--json", "--timeout", "3s", "-n", "x", "get", "j")
    assert (before.coordinator, before.json, before.timeout, before.namespace) == ("a:1", True, 3.0, "x")
    after = parse("--coordinator", "a:1", "get", "j", "--coordinator", "b:2", "--json")
    assert (after.coordinator, after.json, after.namespace, after.timeout) == ("b:2", True, "default", None)


def test_dotted_helpers_build_the_same_triggers() -> None:
    assert hourglass.every(10, start=NOW) == IntervalTrigger(timedelta(seconds=10), NOW)
    assert hourglass.cron("0 * * * *", tz="Asia/Tokyo") == CronTrigger("0 * * * *", "Asia/Tokyo")
    assert hourglass.once(NOW) == OnceTrigger(NOW)
    with pytest.raises(hourglass.InvalidArgument):
        hourglass.once(datetime(2026, 1, 1))  # naive
    assert json.loads(hourglass.json_params({"a": [1]}).data) == {"a": [1]}


# -- running commands against a fake client ------------------------------------------------------


def _job(job_id: str, state: JobState = JobState.ACTIVE) -> Job:
    return Job(namespace="default", id=job_id, name=f"name-{job_id}", executor="echo", trigger=OnceTrigger(NOW),
               priority=0, params=hourglass.json_params({"a": 1}), options=hourglass.JobOptions(), labels={},
               idempotency_key="", state=state, created_at=NOW, shard=3, next_fire_time=NOW)


class FakeClient:
    error: Exception | None = None
    submitted: ClassVar[list[JobSpec]] = []
    policies: ClassVar[dict[str, NamespacePolicy]] = {}

    def __init__(self, address: str | None = None, **kwargs: Any) -> None:
        self.address = address

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _maybe_fail(self) -> None:
        if FakeClient.error is not None:
            raise FakeClient.error

    def get(self, job_id: str, namespace: str = "default") -> Job:
        self._maybe_fail()
        return _job(job_id)

    def submit(self, spec: JobSpec) -> Job:
        self._maybe_fail()
        FakeClient.submitted.append(spec)
        return _job("new")

    def list(self, *args: Any) -> Page[Job]:
        return Page([_job("a"), _job("bb", JobState.PAUSED)], "tok")

    def pause(self, job_id: str, namespace: str, *, note: str = "") -> Job:
        self._maybe_fail()
        return replace(_job(job_id, JobState.PAUSED), note=note)

    def set_namespace_policy(self, namespace: str, allowed_executors: Sequence[str]) -> NamespacePolicy:
        self._maybe_fail()
        FakeClient.policies[namespace] = NamespacePolicy(namespace, frozenset(allowed_executors))
        return FakeClient.policies[namespace]

    def get_namespace_policy(self, namespace: str) -> NamespacePolicy:
        self._maybe_fail()
        return FakeClient.policies.get(namespace, NamespacePolicy(namespace))

    def workers(self) -> Sequence[WorkerStatus]:
        self._maybe_fail()
        return WORKERS

    def worker(self, worker_id: str) -> WorkerStatus:
        self._maybe_fail()
        for worker in WORKERS:
            if worker.id == worker_id:
                return worker
        raise hourglass.WorkerNotFound(worker_id)

    def shard_map(self) -> ShardMapStatus:
        return SHARD_MAP

    def coordinators(self) -> Sequence[CoordinatorStatus]:
        return [CoordinatorStatus("coord-a", "127.0.0.1:7070", NOW - timedelta(hours=1), NOW, True, NOW - timedelta(minutes=5)),
                CoordinatorStatus("coord-b", "127.0.0.1:7071", NOW - timedelta(hours=1), NOW, False)]  # fmt: skip


WORKERS = [
    WorkerStatus("worker-1", WorkerState.ALIVE, NOW - timedelta(minutes=4, seconds=12), NOW - timedelta(seconds=0.3),
                 host="box-1", started_at=NOW - timedelta(minutes=4, seconds=12), executors=frozenset({"echo", "http"}),
                 capacity=64, runs_in_progress=2, shards={0: 12, 2: 14}, ran_last_minute=118, coordinator="coord-a"),
    WorkerStatus("worker-2", WorkerState.DEAD, NOW - timedelta(seconds=12), NOW - timedelta(seconds=15), host="box-2",
                 capacity=64, lost_last_minute=3),
]  # fmt: skip
SHARD_MAP = ShardMapStatus(
    version=7, leader="coord-a", leader_token=5, leader_since=NOW - timedelta(minutes=5), read_at=NOW,
    shards=[ShardStatus(0, "worker-1", "worker-1", 12, NOW + timedelta(seconds=2.4), NOW - timedelta(seconds=2.8),
                        timedelta(seconds=2.8)),
            ShardStatus(1, "worker-1", "worker-2", 9, NOW + timedelta(seconds=0.5), NOW - timedelta(seconds=9),
                        timedelta(seconds=9)),
            ShardStatus(2)],
)  # fmt: skip


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeClient]]:
    FakeClient.error, FakeClient.submitted, FakeClient.policies = None, [], {}
    monkeypatch.setattr(cli, "Client", FakeClient)
    yield FakeClient


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (hourglass.InvalidArgument("job.name", "must not be empty"), 2),
        (hourglass.JobNotFound("default", "j"), 3),
        (hourglass.FailedPrecondition("job j is cancelled"), 4),
        (hourglass.Unavailable("down"), 5),
        (hourglass.HourglassError("INTERNAL: boom"), 1),
    ],
)
def test_errors_print_a_message_and_exit_with_their_code(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str], error: Exception, code: int
) -> None:
    fake_client.error = error
    assert cli.main(["pause", "j"]) == code
    assert capsys.readouterr().err == f"error: {error}\n"


def test_get_json_has_iso_times(fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["get", "j1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["id"] == "j1" and out["next_fire_time"] == "2026-03-29T00:30:00Z" and out["params"]["json"] == {"a": 1}


def test_list_prints_an_aligned_table_and_the_next_token(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["list"]) == 0
    captured = capsys.readouterr()
    header, first, second = captured.out.splitlines()
    assert header.split() == ["ID", "NAME", "STATE", "NEXT", "FIRE"]
    assert header.index("NAME") == first.index("name-a") == second.index("name-bb")
    assert "--page-token tok" in captured.err


def test_submit_sends_the_parsed_spec(fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*BASE, "--cron", "0 3 * * *", "--tz", "Europe/Berlin", "--json"]) == 0
    assert fake_client.submitted[0].trigger == CronTrigger("0 3 * * *", "Europe/Berlin")
    assert json.loads(capsys.readouterr().out)["id"] == "new"


def test_dev_without_its_module_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "hourglass_dev", None)  # makes the import fail
    assert cli.main(["dev", "--demo"]) == 2
    assert "not available in this build" in capsys.readouterr().err


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


# -- db migrate ------------------------------------------------------------------------------------


def test_db_migrate_creates_schema_and_every_shard_checkpoint_idempotently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOURGLASS_STORE", raising=False)
    url = f"sqlite:///{tmp_path / 'hg.db'}"
    assert cli.main(["db", "migrate", "--store", url, "--num-shards", "4"]) == 0
    assert "schema version 11" in capsys.readouterr().out

    async def checkpoints() -> list[object]:
        from hourglass_core.store.factory import open_store

        store = await open_store(url)
        try:
            return [await store.load_checkpoint(s) for s in range(5)]
        finally:
            await store.close()

    first = asyncio.run(checkpoints())
    assert all(c is not None for c in first[:4]) and first[4] is None
    assert cli.main(["db", "migrate", "--store", url, "--num-shards", "4"]) == 0
    assert asyncio.run(checkpoints()) == first  # a second run moves nothing


def test_db_migrate_rejects_a_bad_store_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["db", "migrate", "--store", "postgres://x"]) == 2
    assert "unknown scheme" in capsys.readouterr().err


# -- packaging -----------------------------------------------------------------------------------


def test_the_sdk_and_cli_import_no_server_dependency() -> None:
    code = (
        "import sys, hourglass, hourglass.cli; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'cassandra', 'redis', 'rich', 'hourglass_coordinator', 'hourglass_worker', 'hourglass_dev'}]; "
        "assert not bad, bad"
    )
    env = {"PYTHONPATH": ":".join(str(ROOT / p) for p in ("client", "core", "coordinator", "worker", "proto"))}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_on_worker_lost_defaults_to_retry_and_takes_record() -> None:
    assert spec("--every", "10s").options.on_worker_lost is hourglass.WorkerLostPolicy.RETRY
    recorded = spec("--every", "10s", "--on-worker-lost", "record")
    assert recorded.options.on_worker_lost is hourglass.WorkerLostPolicy.RECORD


def test_on_worker_lost_outside_its_choices_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--on-worker-lost" in usage_error(capsys, *BASE, "--every", "10s", "--on-worker-lost", "sometimes")


def test_runs_and_run_show_why_a_fire_did_not_run() -> None:
    skipped = hourglass.Run("default", "j1", "r1", NOW, 1, hourglass.RunStatus.SKIPPED, "w1", ended_at=NOW,
                            error="the previous run was still going", reason=hourglass.RunReason.OVERLAP)
    ok = hourglass.Run("default", "j1", "r2", NOW, 1, hourglass.RunStatus.SUCCEEDED, "w1", NOW, NOW)
    header, first, second = cli_format.runs_table([skipped, ok]).splitlines()
    assert "REASON" in header.split() and "overlap" in first.split() and "overlap" not in second
    text = cli_format.run_text(skipped)
    assert "reason: overlap" in " ".join(text.split()) and "the previous run was still going" in text
    assert cli_format.run_json(skipped)["reason"] == "overlap" and cli_format.run_json(ok)["reason"] is None


def test_dst_policies_go_with_cron_only(fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*BASE, "--cron", "30 1 * * *", "--tz", "Europe/London", "--dst-gap", "skip", "--dst-repeat", "twice"]
    assert cli.main(argv) == 0
    assert fake_client.submitted[-1].trigger == CronTrigger("30 1 * * *", "Europe/London", dst_gap=DstGap.SKIP,
                                                            dst_repeat=DstRepeat.TWICE)  # fmt: skip
    capsys.readouterr()
    assert cli.main([*BASE, "--every", "10s", "--dst-repeat", "twice"]) == 2
    assert "--dst-gap/--dst-repeat: apply only to --cron" in capsys.readouterr().err


def test_pause_keeps_its_note_and_submit_takes_the_schedule_options(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["pause", "j", "--note", "vendor outage", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["note"] == "vendor outage"
    assert cli.main(["submit", "--name", "n", "--executor", "echo", "--every", "1m", "--jitter", "10s",
                     "--catchup-window", "5m", "--max-fires", "3", "--lateness-slo", "250ms"]) == 0  # fmt: skip
    options = fake_client.submitted[-1].options
    assert (options.jitter, options.catchup_window, options.max_fires, options.lateness_slo) == (
        timedelta(seconds=10), timedelta(minutes=5), 3, timedelta(milliseconds=250))


def test_namespace_policy_sets_clears_and_shows_a_namespaces_executors(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["namespace", "policy", "billing", "--allow", "http, echo,"]) == 0
    assert fake_client.policies["billing"].allowed_executors == {"echo", "http"}
    assert capsys.readouterr().out == "namespace billing: executors limited to echo, http\n"
    assert cli.main(["namespace", "show", "billing", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"namespace": "billing", "allowed_executors": ["echo", "http"]}
    assert cli.main(["namespace", "policy", "billing"]) == 0  # neither flag: shows it
    assert "limited to echo, http" in capsys.readouterr().out
    assert cli.main(["namespace", "policy", "billing", "--clear"]) == 0
    assert fake_client.policies["billing"] == NamespacePolicy("billing")
    assert capsys.readouterr().out == "namespace billing: no executor policy (every executor the workers load)\n"


def test_namespace_policy_usage_errors_and_a_refusal_exit_with_their_codes(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    assert "names no executor" in usage_error(capsys, "namespace", "policy", "billing", "--allow", " , ")
    assert "not allowed with argument" in usage_error(capsys, "namespace", "policy", "billing", "--allow", "echo", "--clear")
    usage_error(capsys, "namespace", "show")  # the namespace is required
    fake_client.error = hourglass.PermissionDenied("svc has no admin permission in namespace 'billing'")
    assert cli.main(["namespace", "policy", "billing", "--allow", "echo"]) == 6
    assert "no admin permission" in capsys.readouterr().err
    assert cli.main(["namespace"]) == 2  # no action: its usage


# -- the cluster ------------------------------------------------------------------------------------


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> None:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:  # type: ignore[override]
            return cls.fromtimestamp(NOW.timestamp(), tz)

    monkeypatch.setattr(cli, "datetime", Frozen)


@pytest.mark.usefixtures("frozen_now")
def test_workers_lists_each_workers_state_for_how_long_and_its_last_heartbeat(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["workers"]) == 0
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "STATE", "FOR", "HOST", "LAST", "BEAT", "SHARDS", "RUNNING", "RAN/MIN", "LOST/MIN"]
    assert first.split() == ["worker-1", "alive", "4m12s", "box-1", "0.3s", "2", "2/64", "118", "0"]
    assert second.split() == ["worker-2", "dead", "12s", "box-2", "15s", "0", "0/64", "0", "3"]
    assert header.index("HOST") == first.index("box-1")
    assert cli.main(["workers", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["shards"] == [{"shard": 0, "token": 12}, {"shard": 2, "token": 14}]
    assert (listed[1]["state"], listed[1]["since"], listed[1]["started_at"]) == ("dead", "2026-03-29T00:29:48Z", None)


@pytest.mark.usefixtures("frozen_now")
def test_workers_with_an_id_shows_that_worker_and_an_unknown_one_exits_3(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["workers", "worker-1"]) == 0
    shown = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert shown["state"].strip() == "alive for 4m12s (since 2026-03-29T00:25:48Z)"
    assert shown["last heartbeat"].strip() == "2026-03-29T00:29:59.700000Z (0.3s ago)"
    assert shown["shards"].strip() == "0 (token 12), 2 (token 14)"
    assert shown["last minute"].strip() == "118 ran, 0 lost"
    assert cli.main(["workers", "worker-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["executors"] == ["echo", "http"]
    assert cli.main(["workers", "nope"]) == 3
    assert "worker 'nope' not found" in capsys.readouterr().err


def test_shards_shows_the_leader_then_each_shards_owner_lease_and_checkpoint_lag(
    fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["shards"]) == 0
    head, header, *rows = capsys.readouterr().out.splitlines()
    assert head == "shard map v7, leader coord-a (token 5) since 2026-03-29T00:25:00Z"
    assert header.split() == ["SHARD", "OWNER", "LEASE", "HOLDER", "TOKEN", "LEASE", "LEFT", "CHECKPOINT", "LAG"]
    assert [r.split() for r in rows] == [["0", "worker-1", "worker-1", "12", "2.4s", "2.8s"],
                                         ["1", "worker-1", "worker-2", "9", "0.5s", "9.0s"],  # a hand-over
                                         ["2", "-", "-", "-", "-", "-"]]  # fmt: skip
    assert cli.main(["shards", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["version"], out["leader"], out["leader_token"]) == (7, "coord-a", 5)
    assert out["shards"][0] == {"shard": 0, "owner": "worker-1", "lease_holder": "worker-1", "token": 12,
                                "lease_expires_at": "2026-03-29T00:30:02.400000Z",
                                "checkpoint": "2026-03-29T00:29:57.200000Z", "checkpoint_lag_s": 2.8}  # fmt: skip
    assert out["shards"][2]["owner"] is None and out["shards"][2]["checkpoint_lag_s"] is None


@pytest.mark.usefixtures("frozen_now")
def test_coordinators_marks_the_leader(fake_client: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["coordinators"]) == 0
    _, leader, other = capsys.readouterr().out.splitlines()
    assert "since 2026-03-29T00:25:00Z" in leader and "since" not in other
    assert cli.main(["coordinators", "--json"]) == 0
    assert [c["leader"] for c in json.loads(capsys.readouterr().out)] == [True, False]


@pytest.mark.parametrize(("span", "text"), [
    (timedelta(seconds=0.34), "0.3s"), (timedelta(seconds=12.4), "12s"), (timedelta(minutes=4, seconds=12), "4m12s"),
    (timedelta(hours=2, minutes=5, seconds=9), "2h5m"), (timedelta(seconds=-1), "0.0s"),
])  # fmt: skip
def test_ages_read_as_people_say_them(span: timedelta, text: str) -> None:
    assert cli_cluster.age(span) == text
