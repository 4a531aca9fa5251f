"""Sampling profiles of the processes under test, taken with py-spy while a scenario runs.

py-spy attaches from outside (no change to the servers) and samples without pausing them
(``--nonblocking``). Each profile is written as collapsed stacks (``*.folded``: open it in
speedscope.app or feed it to flamegraph.pl), and summarised here: the functions where the
samples were (self) and the calls under which they were (inclusive).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

IDLE_LEAVES = ("select (selectors.py", "Condition.wait", "_worker (concurrent", "Event.wait", "Queue.get")


def find() -> str | None:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


def summarise(folded: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares (% of samples) of the busiest frames in a collapsed-stack file."""
    self_: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        if any(frames[-1].startswith(leaf) for leaf in IDLE_LEAVES):
            continue  # a thread waiting, not working
        total += count
        self_[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count

    def share(c: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in c.most_common(top)]

    ours = Counter({f: n for f, n in incl.items() if _ours(f)})
    return {"samples": total, "self": share(self_), "inclusive": share(incl), "hourglass": share(ours)}


def _ours(frame: str) -> bool:
    """A frame of Hourglass's own code, below the entry points every sample passes through."""
    return ("hourglass_" in frame or "(hourglass/" in frame) and not any(
        entry in frame for entry in ("hourglass/cli.py", "hourglass/__main__.py", "worker/main.py", "server.py")
    )


class Profiler:
    """Records `names` (keys of `pids`) for `seconds` each, starting `after` seconds from
    `start()`, in the background."""

    def __init__(self, pids: dict[str, int], names: list[str], seconds: float, out: Path,
                 after: float = 0.0, native: bool = False) -> None:
        self._pids, self._names, self._seconds, self._out, self._native = pids, names, seconds, out, native
        self._after = after
        self._procs: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        self._timer = threading.Timer(self._after, self._start)
        self._timer.daemon = True
        self._timer.start()

    def _start(self) -> None:
        exe = find()
        if exe is None:
            return
        self._out.mkdir(parents=True, exist_ok=True)
        for name in self._names:
            if name not in self._pids:
                continue
            path = self._out / f"{name}.folded"
            cmd = [exe, "record", "--pid", str(self._pids[name]), "--duration", str(int(self._seconds)),
                   "--rate", "200", "--format", "raw", "--output", str(path), "--nonblocking"]
            if self._native:
                cmd.append("--native")
            self._procs.append((name, path, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))

    def finish(self) -> dict[str, Any]:
        """Waits for the recordings (a scenario shorter than `after` gets none) and summarises."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
        out: dict[str, Any] = {}
        for name, path, proc in self._procs:
            try:
                _, err = proc.communicate(timeout=self._seconds + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                continue
            if path.exists():
                out[name] = {"file": str(path), **summarise(path)}
            else:
                out[name] = {"error": err.decode(errors="replace")[-300:]}
        return out
