"""Credentials in store and coordination URLs: parsed into a login and TLS, never shown."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from hourglass_core.credentials import Login, login, read_secret, redact, tls_context
from hourglass_core.dev_certs import write_dev_certificates
from hourglass_core.leases.redis_connect import RedisTarget, parse_redis_url
from hourglass_core.store.factory import _cassandra_tls, open_store


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("cassandra://app:pa%3Ass@h1,h2:9042/ks?rf=3", "cassandra://app:***@h1,h2:9042/ks?rf=3"),
        ("rediss://hourglass:secret@redis:6380/0", "rediss://hourglass:***@redis:6380/0"),
        ("redis://:secret@redis/0", "redis://:***@redis/0"),
        ("redis://user@redis/0?password_file=/run/pw", "redis://user@redis/0?password_file=/run/pw"),
        ("sqlite:///var/lib/hg.db", "sqlite:///var/lib/hg.db"),
    ],
)
def test_redact_hides_the_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_login_comes_from_the_url_or_a_password_file_which_wins(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    assert login("app:in%40url@h:9042", {}, "store URL") == (Login("app", "in@url"), "h:9042")
    assert login("app@h:9042", {"password_file": str(secret)}, "store URL") == (Login("app", "from-file"), "h:9042")
    assert login("app:in-url@h", {"password_file": str(secret)}, "store URL")[0] == Login("app", "from-file")
    assert login("h1,h2:9042", {}, "store URL") == (None, "h1,h2:9042")
    assert "from-file" not in repr(Login("app", "from-file"))


def test_unreadable_or_empty_secret_files_and_a_password_without_user_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match=r"store URL: password_file: .* is empty"):
        login("app@h", {"password_file": str(empty)}, "store URL")
    with pytest.raises(ValueError, match="cannot read"):
        read_secret(str(tmp_path / "absent"), "x")
    with pytest.raises(ValueError, match="needs a user name"):
        login(":pw@h", {}, "store URL")


def test_a_redis_url_gives_its_login_apart_from_the_address(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret")
    target = parse_redis_url(f"rediss://app@r:6380/1?password_file={secret}&ssl_ca_certs=/ca.pem")
    assert target == RedisTarget("rediss://r:6380/1?ssl_ca_certs=%2Fca.pem", Login("app", "s3cret"))
    assert parse_redis_url("redis://:pw@r/0") == RedisTarget("redis://r/0", Login("default", "pw"))
    assert parse_redis_url(f"redis://r/0?password_file={secret}") == RedisTarget("redis://r/0", Login("default", "s3cret"))
    assert parse_redis_url("redis://r:6379/0") == RedisTarget("redis://r:6379/0", None)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("redis://r/0?ssl_ca_certs=/ca.pem", "need TLS: rediss://"),
        ("redis://u:secret@r/0?passwrd_file=/x", r"unknown option\(s\) \['passwrd_file'\]"),
    ],
)
def test_bad_redis_urls_are_refused_without_showing_the_password(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error) as refused:
        parse_redis_url(url)
    assert "secret" not in str(refused.value)


def test_cassandra_tls_is_on_when_asked_for_or_implied_by_a_file(tmp_path: Path) -> None:
    write_dev_certificates(tmp_path)
    ca = str(tmp_path / "ca.pem")
    assert _cassandra_tls("u", {}) is None
    context = _cassandra_tls("u", {"tls_ca_file": ca})
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED and not context.check_hostname
    on = _cassandra_tls("u", {"tls": "1", "tls_check_hostname": "1"})
    assert on is not None and on.check_hostname
    client = tls_context(ca, str(tmp_path / "client.pem"), str(tmp_path / "client.key"))
    assert client.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ValueError, match="tls must be 1 or 0"):
        _cassandra_tls("u", {"tls": "maybe"})


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("cassandra://app:hunter2@h/ks?rf=1.5", "rf must be a whole number"),
        ("cassandra://app:hunter2@h/ks?tls_ca_file=/nonexistent.pem", "TLS files"),
        ("cassandra://app:hunter2@h/ks?colour=blue", "unknown option"),
        ("cassandra://:hunter2@h/ks", "needs a user name"),
    ],
)
async def test_bad_cassandra_urls_are_refused_naming_the_user_not_the_password(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error) as refused:
        await open_store(url)
    assert "hunter2" not in str(refused.value)
