"""The committed generated code (Python: proto/hourglass_pb, Go: client/go/gen, TypeScript:
client/typescript/src/gen) is what the
protos generate today: scripts/stubs.sh writes it afresh into a temporary folder, with the
pinned generators, and every file must be the same. `make stubs` fixes a failure here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = {"python": ROOT / "proto" / "hourglass_pb", "go": ROOT / "client" / "go" / "gen",
             "typescript": ROOT / "client" / "typescript" / "src" / "gen"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("stubs")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stubs.sh"), str(out)], env={**os.environ, "PYTHON": sys.executable},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return {"python": out / "python", "go": out / "go" / "client" / "go" / "gen", "typescript": out / "typescript"}


def _differences(committed: Path, fresh: Path) -> str:
    """diff's account of what differs (nothing when the trees are the same), bytecode aside."""
    result = subprocess.run(["diff", "-r", "-u", "-x", "__pycache__", str(committed), str(fresh)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    return result.stdout


@pytest.mark.parametrize("language", sorted(COMMITTED))
def test_committed_stubs_are_what_the_protos_generate(language: str, generated: dict[str, Path]) -> None:
    assert any(generated[language].rglob("*")), f"nothing generated for {language}"
    differences = _differences(COMMITTED[language], generated[language])
    assert not differences, f"stale {language} stubs: run `make stubs`\n{differences[:4000]}"


def test_a_changed_generated_file_is_reported(generated: dict[str, Path], tmp_path: Path) -> None:
    fresh = tmp_path / "gen"
    subprocess.run(["cp", "-r", str(generated["go"]), str(fresh)], check=True)
    edited = fresh / "hourglass" / "v1" / "jobs.pb.go"
    edited.write_text(edited.read_text() + "// edited by hand\n")
    assert "+// edited by hand" in _differences(COMMITTED["go"], fresh)
