"""Credentials to the backends on the real parts: the secured cluster's Redis serves TLS only
and lets in one ACL user whose password comes from a file; the password never reaches a log,
and a wrong or missing one is refused with a message that names neither."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import hourglass
from benchmarks.cassandra_login import USER as CASSANDRA_USER
from benchmarks.cassandra_login import password_file, store_url
from benchmarks.chaos_judge import drop_keyspace
from benchmarks.cluster import ROOT, Cluster
from benchmarks.secured_redis import USER, SecuredRedis
from hourglass_core.dev_certs import write_dev_certificates
from hourglass_core.errors import Unavailable
from hourglass_core.leases.factory import open_coordination
from hourglass_core.store.factory import open_store
from tests.contract.test_store_contract import make_job
from tests.e2e.workload import wait_for_executor


def test_a_cluster_on_a_password_protected_tls_redis_runs_jobs_and_logs_no_password(
    cluster: Cluster, secured_redis: SecuredRedis
) -> None:
    assert cluster.redis.startswith(f"rediss://{USER}@") and "password_file=" in cluster.redis
    cluster.start_coordinator()
    cluster.start_worker("w1")
    with hourglass.Client(cluster.address, timeout=10) as client:
        wait_for_executor(client, "echo")
        job = client.submit(hourglass.JobSpec(name="via-secured-redis", executor="echo",
                                              trigger=hourglass.once(datetime.now(UTC))))  # fmt: skip
        deadline = time.monotonic() + 30
        while not [r for r in client.runs(job.id).items if r.status.finished]:
            assert time.monotonic() < deadline, cluster.logs()
            time.sleep(0.2)
    password = secured_redis.password_file.read_text().strip()
    cluster.stop()
    logs = [log.read_text() for log in cluster.tmp.glob("*.log")]
    assert len(logs) >= 2 and not any(password in log for log in logs)


@pytest.mark.parametrize("how", ["wrong password", "no user", "plaintext"])
async def test_redis_refuses_a_wrong_login_without_the_message_showing_it(
    secured_redis: SecuredRedis, tmp_path: Path, how: str
) -> None:
    bad = tmp_path / "bad-password"
    bad.write_text("not-the-password\n")
    url = {
        "wrong password": secured_redis.url.replace(str(secured_redis.password_file), str(bad)),
        "no user": secured_redis.url.replace(f"{USER}@", "").replace(f"password_file={secured_redis.password_file}&", ""),
        "plaintext": secured_redis.url.replace("rediss://", "redis://").partition("&ssl_ca_certs")[0],
    }[how]
    with pytest.raises(Unavailable) as refused:
        await open_coordination(url)
    assert "not-the-password" not in str(refused.value)
    assert secured_redis.password_file.read_text().strip() not in str(refused.value)


def test_a_password_in_the_store_url_is_redacted_in_errors_and_the_startup_line(tmp_path: Path) -> None:
    """The CLI's answer to a bad store URL, and a coordinator's log, name the user, not the password."""
    env = {"PYTHONPATH": ":".join(str(ROOT / p) for p in ("client", "core", "coordinator", "worker", "proto")),
           "HOURGLASS_STORE": "cassandra://admin:s3cret-pw@127.0.0.1:9042/ks?rf=x"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "hourglass", "db", "migrate"], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert done.returncode != 0
    assert "rf must be a whole number" in done.stderr or "rf must be a number" in done.stderr, done.stderr
    assert "admin:***@" in done.stderr and "s3cret-pw" not in done.stderr + done.stdout


async def test_cassandra_over_tls_verifies_the_node_and_serves_the_same_data(cassandra_tls: str, tmp_path: Path) -> None:
    keyspace = f"hg_tls_{secrets.token_hex(4)}"
    encrypted = await open_store(store_url(Cluster.cassandra, keyspace, [cassandra_tls]), migrate=True)
    plain = await open_store(store_url(Cluster.cassandra, keyspace))
    try:
        assert encrypted._cluster.ssl_context is not None  # type: ignore[attr-defined]
        job, _ = make_job("tls", 0, name="over-tls", next_fire_time=None)
        await encrypted.create_jobs([(job, None)])
        assert (await plain.get_job("tls", job.id)).name == "over-tls"
    finally:
        await plain.close()
        await encrypted.close()
        drop_keyspace(Cluster.cassandra, keyspace)
    other_ca = tmp_path / "other"
    write_dev_certificates(other_ca)
    with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
        await open_store(store_url(Cluster.cassandra, keyspace, [f"tls_ca_file={other_ca / 'ca.pem'}"]))


async def test_cassandra_lets_in_its_role_with_the_right_password_only_and_says_so_naming_no_password(
    cassandra_up: None, tmp_path: Path,
) -> None:
    """The test suite's node authenticates (PasswordAuthenticator, scripts/services.sh): no
    login, a wrong password or an unknown user is refused as Unavailable with the node's
    reason, naming neither password; the role hourglass with its password gets in."""
    keyspace = f"hg_login_{secrets.token_hex(4)}"
    right = password_file().read_text().strip()
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password-" + secrets.token_hex(8))
    refused = {
        "no login": (f"cassandra://{Cluster.cassandra}/{keyspace}", "requires authentication"),
        "a wrong password": (f"cassandra://{CASSANDRA_USER}@{Cluster.cassandra}/{keyspace}?password_file={wrong}", "incorrect"),
        "an unknown user": (f"cassandra://nobody:{right}@{Cluster.cassandra}/{keyspace}", "incorrect"),
    }
    for what, (url, reason) in refused.items():
        try:
            await (await open_store(url)).close()
        except Unavailable as error:
            message = str(error)
        else:
            raise AssertionError(f"{what}: let in; a node started before it authenticated? `make services-stop services`")
        assert reason in message, f"{what}: {message}"
        assert right not in message and wrong.read_text() not in message, what
    store = await open_store(store_url(Cluster.cassandra, keyspace), migrate=True)
    try:
        job, _ = make_job("login", 0, name="logged-in", next_fire_time=None)
        await store.create_jobs([(job, None)])
        assert (await store.get_job("login", job.id)).name == "logged-in"
    finally:
        await store.close()
        drop_keyspace(Cluster.cassandra, keyspace)
