"""A Redis that lets in only an ACL user with a password, over TLS only: the coordination
store as a production deployment runs it, for the secured test cluster."""

from __future__ import annotations

import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from benchmarks.cluster import free_port
from hourglass_core.dev_certs import write_dev_certificates

USER = "hourglass"


@dataclass
class SecuredRedis:
    url: str  # rediss://hourglass@127.0.0.1:PORT/0?password_file=...&ssl_ca_certs=...
    password_file: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_secured_redis(directory: Path, timeout: float = 10.0) -> SecuredRedis:
    """Starts redis-server on a free loopback port serving TLS only (certificates from
    `write_dev_certificates`); the default user is off, `hourglass` has a random password kept
    in a file. Returns once it answers that user."""
    certs = directory / "certs"
    write_dev_certificates(certs)
    password = secrets.token_urlsafe(24)
    password_file = directory / "redis-password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    acl = directory / "users.acl"  # in a file, not on the command line, where `ps` would show it
    acl.write_text(f"user default off\nuser {USER} on >{password} ~* &* +@all\n")
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--aclfile", str(acl), "--tls-cert-file", str(certs / "coordinator.pem"),
         "--tls-key-file", str(certs / "coordinator.key"), "--tls-ca-cert-file", str(certs / "ca.pem"),
         "--tls-auth-clients", "no"],
        stdout=open(directory / "redis.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115 - as long as the process
    )  # fmt: skip
    url = f"rediss://{USER}@127.0.0.1:{port}/0?password_file={password_file}&ssl_ca_certs={certs / 'ca.pem'}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = redis.Redis(host="127.0.0.1", port=port, username=USER, password=password, ssl=True,
                                 ssl_ca_certs=str(certs / "ca.pem"), socket_timeout=1)  # fmt: skip
            client.ping()
            client.close()
            return SecuredRedis(url, password_file, process)
        except redis.exceptions.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"secured redis-server did not start; see {directory / 'redis.log'}") from None
            time.sleep(0.05)
