"""buf's checks of proto/ (buf.yaml): the STANDARD lint rules, and no breaking change against
the committed baseline image proto/buf-baseline.binpb (the API as released). Each check is
also shown to fail on a proto that breaks it, in a copy of the repository's proto files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUF = str(Path(sys.executable).parent / "buf")  # the buf-bin wheel's binary, beside python
BASELINE = ROOT / "proto" / "buf-baseline.binpb"


def _buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BUF, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _findings(result: subprocess.CompletedProcess[str]) -> set[tuple[str, str]]:
    """(file, rule) of each finding buf printed with --error-format json."""
    return {(Path(f["path"]).name, f["type"]) for f in map(json.loads, result.stdout.splitlines())}


def _copy(tmp_path: Path) -> Path:
    """A workspace of its own: buf.yaml and the .proto files, to change without touching the tree."""
    shutil.copy(ROOT / "buf.yaml", tmp_path)
    shutil.copytree(ROOT / "proto" / "hourglass", tmp_path / "proto" / "hourglass")
    return tmp_path


def test_protos_pass_buf_lint() -> None:
    result = _buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_protos_make_no_breaking_change_against_the_baseline() -> None:
    result = _buf("breaking", "--against", str(BASELINE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_removed_field_is_reported_as_breaking(tmp_path: Path) -> None:
    work = _copy(tmp_path)
    jobs = work / "proto" / "hourglass" / "v1" / "jobs.proto"
    text = jobs.read_text()
    assert "  string idempotency_key = 9;\n" in text
    jobs.write_text(text.replace("  string idempotency_key = 9;\n", ""))
    result = _buf("breaking", "--against", str(BASELINE), "--error-format", "json", cwd=work)
    assert result.returncode != 0
    assert _findings(result) == {("jobs.proto", "FIELD_NO_DELETE")}
    assert "idempotency_key" in result.stdout


def test_lint_exceptions_cover_only_the_files_that_predate_buf(tmp_path: Path) -> None:
    """A new file must name its RPC messages the standard way: the exceptions in buf.yaml are
    kept to jobs.proto and worker.proto."""
    work = _copy(tmp_path)
    v1 = work / "proto" / "hourglass" / "v1"
    options = [line for line in (v1 / "jobs.proto").read_text().splitlines() if line.startswith("option ")]
    (v1 / "extra.proto").write_text("\n".join([
        'syntax = "proto3";', "package hourglass.v1;", *options,
        "service ExtraService {", "  rpc GetThing(Thing) returns (Thing);", "}", "message Thing {}", "",
    ]))  # fmt: skip
    result = _buf("lint", "--error-format", "json", cwd=work)
    assert result.returncode != 0
    assert _findings(result) == {
        ("extra.proto", "RPC_REQUEST_STANDARD_NAME"),
        ("extra.proto", "RPC_RESPONSE_STANDARD_NAME"),
        ("extra.proto", "RPC_REQUEST_RESPONSE_UNIQUE"),
    }
