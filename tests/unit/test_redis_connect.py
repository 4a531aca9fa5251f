"""Coordination URLs naming Redis Sentinel: what they connect to, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from hourglass_core.credentials import Login
from hourglass_core.leases.redis_connect import AsyncRedis, RedisTarget, parse_redis_url, sync_client


def test_a_sentinel_url_names_every_sentinel_the_service_and_the_servers_login(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    target = parse_redis_url(f"redis+sentinel://app@10.0.0.1:26379,[::1]:26380,s3:26381/hg?db=2&password_file={secret}")
    assert target == RedisTarget("redis://sentinel/2", Login("app", "s3cret"),
                                 (("10.0.0.1", 26379), ("::1", 26380), ("s3", 26381)), "hg")  # fmt: skip


def test_a_tls_sentinel_url_keeps_its_tls_options_and_the_sentinels_own_login(tmp_path: Path) -> None:
    secret = tmp_path / "sentinel-pw"
    secret.write_text("watch")
    target = parse_redis_url(f"rediss+sentinel://:pw@h:26379/primary?ssl_ca_certs=/ca.pem"
                             f"&sentinel_username=mon&sentinel_password_file={secret}")  # fmt: skip
    assert target.address == "rediss://sentinel/0?ssl_ca_certs=%2Fca.pem"
    assert target.login == Login("default", "pw") and target.sentinel_login == Login("mon", "watch")
    assert target.sentinels == (("h", 26379),) and target.service == "primary"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("redis+sentinel://u:secret@h:26379/", "name the Sentinel service as the path"),
        ("redis+sentinel://u:secret@h/svc", "sentinel 'h' is not host:port"),
        ("redis+sentinel://h:26379/svc?ssl_ca_certs=/ca.pem", r"need TLS: rediss:// or rediss\+sentinel://"),
        ("redis://u:secret@h/0?sentinel_username=x", r"unknown option\(s\) \['sentinel_username'\]"),
        ("sentinel://u:secret@h:26379/svc", "unsupported scheme 'sentinel'"),
    ],
)
def test_bad_sentinel_urls_are_refused_naming_what_is_wrong_without_the_password(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error) as refused:
        parse_redis_url(url)
    assert "secret" not in str(refused.value)


async def test_tls_through_sentinel_reaches_both_the_sentinels_and_the_primary_over_tls() -> None:
    url = "rediss+sentinel://app:pw@127.0.0.1:1,127.0.0.1:2/svc?ssl_ca_certs=/ca.pem&sentinel_username=mon"
    handle = AsyncRedis(url, socket_timeout=1.5)  # builds clients only: nothing is connected yet
    try:
        assert handle.sentinel is not None and len(handle.sentinel.sentinels) == 2
        for sentinel in handle.sentinel.sentinels:
            kwargs = sentinel.connection_pool.connection_kwargs
            assert issubclass(sentinel.connection_pool.connection_class, redis.asyncio.SSLConnection)
            assert kwargs["ssl_ca_certs"] == "/ca.pem" and kwargs["socket_timeout"] == 1.5
            assert kwargs["username"] == "mon" and not kwargs.get("password")  # their own login
        primary = handle.client.connection_pool
        assert issubclass(primary.connection_class, redis.asyncio.sentinel.SentinelManagedSSLConnection)
        assert primary.connection_kwargs["username"] == "app" and primary.connection_kwargs["password"] == "pw"
    finally:
        await handle.aclose()
    blocking = sync_client(url)
    assert issubclass(blocking.connection_pool.connection_class, redis.sentinel.SentinelManagedSSLConnection)
