"""Log configuration: JSON lines that parse and hold a fire's fields, readable console lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from hourglass_core import logs
from hourglass_core.backoff import RateLimitedLog
from hourglass_core.config import from_env
from hourglass_core.firing import run_id_for
from hourglass_core.models import Fire


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure() replaces the root logger's handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


DUE = datetime(2026, 12, 6, 10, 0, 0, 250_000, tzinfo=UTC)
FIRE = Fire(due=DUE, namespace="default", job_id="job-1", shard=5, attempt=2)


def test_json_line_parses_and_holds_the_fire_fields(restored_logging: None) -> None:
    out = io.StringIO()
    logs.configure("info", "json", out)
    logging.getLogger("hourglass_worker.trace").info("start %s", FIRE.job_id, extra=logs.of_fire(FIRE, "w-1", 42))
    line = json.loads(out.getvalue().strip())
    assert line["event"] == "start job-1"
    assert line["level"] == "info"
    assert line["logger"] == "hourglass_worker.trace"
    assert datetime.fromisoformat(line["timestamp"]).tzinfo is not None
    assert (line["job"], line["shard"], line["worker"], line["token"]) == ("job-1", 5, "w-1", 42)
    assert line["run"] == run_id_for("default", "job-1", DUE, 2)  # the attempt's run id
    assert line["due"] == DUE.isoformat()


def test_json_exception_is_one_line_with_its_traceback(restored_logging: None) -> None:
    out = io.StringIO()
    logs.configure("info", "json", out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("x").exception("run failed", extra=logs.fire_fields("j", "r", 1, "w", 3))
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert "RuntimeError: boom" in record["exception"] and record["run"] == "r"


def test_console_line_is_text_with_fields_as_key_values(restored_logging: None) -> None:
    out = io.StringIO()
    logs.configure("info", "console", out)
    logging.getLogger("hourglass_coordinator.server").info("listening on %s", "127.0.0.1:7070", extra={"shard": 3})
    text = out.getvalue()
    assert "listening on 127.0.0.1:7070" in text and "shard=3" in text and "[info]" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_level_below_the_configured_one_is_not_written(restored_logging: None) -> None:
    out = io.StringIO()
    logs.configure("warning", "json", out)
    logging.getLogger("x").info("quiet")
    assert out.getvalue() == ""
    assert not logging.getLogger("x").isEnabledFor(logging.INFO)  # what the per-fire guards ask


def test_unknown_format_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="console, json"):
        logs.formatter("xml")


def test_log_format_setting_comes_from_its_variable() -> None:
    assert from_env(environ={}).log_format == "console"
    assert from_env(environ={"HOURGLASS_LOG_FORMAT": "json"}).log_format == "json"


def test_rate_limited_warning_builds_its_fields_only_for_lines_written(restored_logging: None) -> None:
    out = io.StringIO()
    logs.configure("info", "json", out)
    built: list[int] = []

    def fields() -> dict[str, object]:
        built.append(1)
        return logs.of_fire(FIRE, "w-1", 7)

    warn = RateLimitedLog(logging.getLogger("x"), every=60.0)
    for _ in range(3):
        warn.warning("k", "failed", fields=fields)
    assert len(built) == 1
    assert json.loads(out.getvalue().splitlines()[0])["token"] == 7


def test_log_format_flag_of_the_servers_overrides_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from hourglass import cli

    monkeypatch.setenv("HOURGLASS_LOG_FORMAT", "json")
    for command in ("coordinator", "worker"):
        assert cli._settings(cli.build_parser().parse_args([command]), "log_format").log_format == "json"
        flagged = cli.build_parser().parse_args([command, "--log-format", "console"])
        assert cli._settings(flagged, "log_format").log_format == "console"
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["worker", "--log-format", "xml"])


def test_hourglass_dev_takes_the_log_format_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from hourglass_dev.main import add_arguments, dev_settings

    monkeypatch.delenv("HOURGLASS_LOG_FORMAT", raising=False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert dev_settings(parser.parse_args([])).log_format == "console"
    assert dev_settings(parser.parse_args(["--log-format", "json"])).log_format == "json"


def test_the_chaos_judge_reads_a_lease_line_as_the_console_format_writes_it(restored_logging: None) -> None:
    from benchmarks.chaos_scenarios import lease_taken

    out = io.StringIO()
    logs.configure("info", "console", out)
    before = datetime.now(UTC).timestamp()
    logging.getLogger("hourglass_worker.worker").info("worker %s owns shard %d (token %d)", "w-2", 17, 40,
                                                     extra={"shard": 17, "worker": "w-2", "token": 40})  # fmt: skip
    parsed = lease_taken(out.getvalue().splitlines()[0])
    assert parsed is not None and parsed[:3] == ("w-2", 17, 40)
    assert abs(parsed[3] / 1e6 - before) < 5
    assert lease_taken("2026-12-06T10:00:00Z [info] worker w-2 released shard 17 [hourglass_worker.worker]") is None
