"""A worker's identity is what its credentials name, and it writes only runs given to it: the
pure rules (names and fleets, the run checks, the default worker id). The same against a real
coordinator: tests/e2e/test_access.py and tests/e2e/test_worker_claims.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hourglass_coordinator.run_ownership import flaw, strays
from hourglass_coordinator.worker_identity import Credential, refusal
from hourglass_core.auth import WORKER_GRANT, mint, names_worker
from hourglass_core.dev_certs import write_dev_certificates
from hourglass_core.firing import run_id_for
from hourglass_core.models import Run, RunStatus
from hourglass_core.sharding import shard_of
from hourglass_worker.identity import credential_name, worker_id_for

DUE = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("name", "worker_id", "may"), [
    ("w1", "w1", True),
    ("w1", "w10", False),
    ("w1", "", False),
    ("etl-*", "etl-7f3a", True),
    ("etl-*", "etl-", True),
    ("etl-*", "billing-1", False),
    ("etl-*", "etl", False),
    ("*", "anything", True),
    ("", "w1", False),
])  # fmt: skip
def test_a_name_is_one_worker_id_or_a_fleet_prefix(name: str, worker_id: str, may: bool) -> None:
    assert names_worker(name, worker_id) is may


def test_a_worker_registering_as_another_than_its_credential_names_is_refused_naming_the_field() -> None:
    token = Credential("token subject", ("w-a",))
    why = refusal("w-b", token)
    assert why is not None and why.startswith("register.worker_id 'w-b'") and "'w-a'" in why
    assert refusal("w-a", token) is None
    certificate = Credential("client certificate", ("hourglass-worker", "etl-*"))
    assert refusal("etl-3", certificate) is None
    assert refusal("billing-3", certificate) is not None
    assert refusal("w", Credential("token subject", ())) is not None  # nothing named: nothing allowed
    assert refusal("anyone", None) is None  # no credentials at all (plaintext on loopback)


def _run(job_id: str = "job-1", **changes: Any) -> Run:
    run = Run("billing", job_id, run_id_for("billing", job_id, DUE, 1), DUE, 1, RunStatus.SUCCEEDED, "w1")
    return replace(run, **changes)


def test_a_well_formed_run_event_has_no_flaw() -> None:
    assert flaw(_run(), "w1") is None
    assert flaw(_run(status=RunStatus.LOST, worker_id="dead"), "w1") is None  # a takeover's report


@pytest.mark.parametrize(("changes", "field"), [
    ({"namespace": ""}, "namespace"),
    ({"job_id": ""}, "job_id"),
    ({"run_id": ""}, "run_id"),
    ({"run_id": run_id_for("billing", "other-job", DUE, 1)}, "run_id"),
    ({"run_id": run_id_for("ops", "job-1", DUE, 1)}, "run_id"),
    ({"attempt": 2}, "run_id"),
    ({"worker_id": "w2"}, "worker_id"),  # a finished run put on another worker's account
])  # fmt: skip
def test_a_run_event_no_worker_sends_is_flawed_naming_the_field(changes: dict[str, Any], field: str) -> None:
    found = flaw(_run(**changes), "w1")
    assert found is not None and found[0] == field


def test_only_runs_of_shards_the_map_gives_the_sender_pass_without_a_read() -> None:
    runs = [_run(f"job-{i}") for i in range(20)]
    owners = {shard: ("w1" if shard % 2 else "w2") for shard in range(4)}
    stray = strays(runs, "w1", owners, 4)
    assert stray == [i for i, run in enumerate(runs) if shard_of(run.job_id, 4) % 2 == 0]
    assert strays(runs, "w1", {}, 4) == list(range(20))  # no map yet: every run is looked up


def test_a_worker_without_a_configured_id_takes_the_one_its_credential_names(tmp_path: Path) -> None:
    assert worker_id_for("w-7", "host-1-abc") == "w-7"
    assert worker_id_for("etl-*", "host-1-abc") == "etl-host-1-abc"
    assert worker_id_for("*", "host-1-abc") == worker_id_for(None, "host-1-abc") == "worker-host-1-abc"
    secret = tmp_path / "secret"
    secret.write_text("s" * 40)
    token = mint(str(secret), "etl-*", [WORKER_GRANT], timedelta(hours=1), DUE, secret=True)
    assert credential_name(token, "") == "etl-*"
    assert credential_name("not-a-jwt", "") is None
    write_dev_certificates(tmp_path / "certs", worker_name="pool-*")
    assert credential_name("", str(tmp_path / "certs" / "worker.pem")) == "pool-*"
    assert credential_name("", "") is None
