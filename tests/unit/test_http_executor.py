"""The guarded http executor: which addresses a job's URL may reach (pure), and the executor
against a real HTTP server on this machine (refused by default; allowed when the operator
opens private addresses: redirects re-checked, answers capped, the job's timeout kept)."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hourglass_core.models import Payload
from hourglass_worker.executors import ExecutorFailed, RunContext
from hourglass_worker.http_executor import HttpExecutor, HttpPolicy

HITS: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        HITS.append(self.path)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.partition("to=")[2])
            self.end_headers()
            return
        if self.path == "/slow":
            time.sleep(2)
        body = b"x" * 2_000_000 if self.path == "/big" else b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def _ctx(url: str, timeout: timedelta | None = None) -> RunContext:
    return RunContext("ns", "job", "run", 1, datetime.now(UTC), Payload(json.dumps({"url": url}).encode()),
                      timeout=timeout)  # fmt: skip


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
])  # fmt: skip
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert "non-public address" in (HttpPolicy().refusal("host", ipaddress.ip_address(address)) or "")
    assert HttpPolicy(allow_private=True).refusal("host", ipaddress.ip_address(address)) is None


def test_public_addresses_pass_and_an_allowlist_limits_the_hosts() -> None:
    public = ipaddress.ip_address("93.184.215.14")
    assert HttpPolicy().refusal("example.com", public) is None
    assert HttpPolicy().refusal("v6.example.com", ipaddress.ip_address("2606:4700::1111")) is None
    listed = HttpPolicy.parse("api.example.com, *.hooks.example.com", False, 1024)
    assert listed.refusal("api.example.com", public) is None
    assert listed.refusal("a.hooks.example.com", public) is None
    assert "not in the http executor's allowed hosts" in (listed.refusal("example.com", public) or "")


def test_a_url_naming_this_machine_is_refused_before_any_request(port: int) -> None:
    HITS.clear()
    for url in (f"http://127.0.0.1:{port}/", f"http://localhost:{port}/", f"http://[::ffff:127.0.0.1]:{port}/"):
        with pytest.raises(ExecutorFailed, match="non-public address"):
            HttpExecutor()(_ctx(url))
    with pytest.raises(ExecutorFailed, match="http\\(s\\) URL"):
        HttpExecutor()(_ctx("file:///etc/passwd"))
    assert HITS == []


def test_with_private_addresses_opened_it_calls_and_checks_every_redirect(port: int) -> None:
    executor = HttpExecutor(HttpPolicy(allow_private=True))
    assert executor(_ctx(f"http://127.0.0.1:{port}/ok"))["body"] == "hello"
    assert executor(_ctx(f"http://127.0.0.1:{port}/redirect?to=/ok"))["status"] == 200
    only_localhost = HttpExecutor(HttpPolicy(allow_hosts=("localhost",), allow_private=True))
    HITS.clear()
    with pytest.raises(ExecutorFailed, match="not in the http executor's allowed hosts"):
        only_localhost(_ctx(f"http://localhost:{port}/redirect?to=http://127.0.0.1:{port}/ok"))
    assert ["/redirect?to=http://127.0.0.1:" + str(port) + "/ok"] == HITS  # the redirect's target was never called


def test_answers_are_capped_and_the_jobs_timeout_is_kept(port: int) -> None:
    with pytest.raises(ExecutorFailed, match="larger than 1000 bytes"):
        HttpExecutor(HttpPolicy(allow_private=True, max_response_bytes=1000))(_ctx(f"http://127.0.0.1:{port}/big"))
    started = time.monotonic()
    with pytest.raises(ExecutorFailed):
        HttpExecutor(HttpPolicy(allow_private=True))(_ctx(f"http://127.0.0.1:{port}/slow", timedelta(milliseconds=300)))
    assert time.monotonic() - started < 1.5
