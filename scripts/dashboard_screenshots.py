"""Screenshots of each dashboard view (`make screenshots`): starts `hourglass dev --demo` on free
ports and a scratch database, lets its demo jobs run for a while, and photographs each page in
headless Chromium into the directory given (default docs/screenshots)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cluster import PYTHONPATH, ROOT, free_port, wait_for_grpc
from tests.e2e.browser import chromium

WARM_UP_S = 40  # a few minutes of lateness would be nicer; this is enough for every view to have rows


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    grpc_port, http_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    with tempfile.TemporaryDirectory() as scratch:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hourglass", "dev", "--demo", "--db", f"{scratch}/dev.db", "--listen",
             f"127.0.0.1:{grpc_port}", "--http", f"127.0.0.1:{http_port}", "--metrics-listen", ""],
            cwd=ROOT, env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_grpc(f"127.0.0.1:{grpc_port}")
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1280, "height": 760})
                page.goto(f"{base}/runs")  # the tail fills while the rest warms up
                time.sleep(WARM_UP_S)
                page.screenshot(path=out / "runs.png")
                for name, path in (("jobs", "/jobs"), ("workers", "/workers"), ("shards", "/shards"),
                                   ("lateness", "/lateness?minutes=5")):  # fmt: skip
                    page.goto(base + path)
                    page.screenshot(path=out / f"{name}.png", full_page=name != "shards")
                page.goto(f"{base}/jobs?prefix=demo:+every")
                page.click("tr[data-job] a")
                page.screenshot(path=out / "job.png", full_page=True)
                page.click("#action-pause")
                page.screenshot(path=out / "confirm.png")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print("\n".join(str(p) for p in sorted(out.glob("*.png"))))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"))
