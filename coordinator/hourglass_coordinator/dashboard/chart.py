"""The lateness chart as server-rendered SVG: no chart library, no script.

A log scale from 1 ms to 60 s (lateness spans orders of magnitude: a healthy cluster fires
within milliseconds, a backlog is seconds late), one line per series, gaps where no run
started.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from hourglass_coordinator.dashboard.lateness import SlotStats

LOW, HIGH = 0.001, 60.0
TICKS = ((0.001, "1 ms"), (0.01, "10 ms"), (0.1, "100 ms"), (1.0, "1 s"), (10.0, "10 s"), (60.0, "60 s"))
SERIES = (("p50", "#2b7bb9"), ("p99", "#e07b00"), ("max", "#c0392b"))
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28


def y_of(seconds: float, height: int) -> float:
    """The vertical position of a lateness on the log scale (clamped to 1 ms .. 60 s)."""
    clamped = min(max(seconds, LOW), HIGH)
    share = (math.log10(clamped) - math.log10(LOW)) / (math.log10(HIGH) - math.log10(LOW))
    return TOP + (1 - share) * (height - TOP - BOTTOM)


def _paths(points: Sequence[SlotStats], attr: str, width: int, height: int) -> list[str]:
    """Polyline point lists of a series, broken where a slot had no runs."""
    step = (width - LEFT - RIGHT) / max(len(points) - 1, 1)
    runs: list[list[str]] = [[]]
    for i, point in enumerate(points):
        if point.count == 0:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(f"{LEFT + i * step:.1f},{y_of(getattr(point, attr), height):.1f}")
    return [" ".join(run) for run in runs if run]


def lateness_svg(points: Sequence[SlotStats], width: int = 720, height: int = 240) -> str:
    """An SVG document of the series' p50, p99 and max lateness over time."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             'role="img" aria-label="run lateness over time" class="chart">']
    for value, label in TICKS:
        y = y_of(value, height)
        parts.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{label}</text>')
    if points:
        for index in sorted({0, len(points) // 2, len(points) - 1}):
            x = LEFT + index * (width - LEFT - RIGHT) / max(len(points) - 1, 1)
            when = datetime.fromtimestamp(points[index].start, UTC).strftime("%H:%M:%S")
            anchor = "start" if index == 0 else "end" if index == len(points) - 1 else "middle"
            parts.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="{anchor}" class="tick">{when}</text>')
    for attr, colour in SERIES:
        for line in _paths(points, attr, width, height):
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{line}" data-series="{attr}"/>')
    for i, (attr, colour) in enumerate(SERIES):
        x = LEFT + 10 + i * 70
        parts.append(f'<rect x="{x}" y="{TOP}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="{TOP + 9}" class="tick">{escape(attr)}</text>')
    parts.append("</svg>")
    return "".join(parts)
