"""Results on disk: one JSON per scenario, a Markdown table against the targets, PNG plots."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

FIRING_TARGET = "lateness p50 ≤ 5 ms, p99 ≤ 25 ms, p99.9 ≤ 100 ms; 0 lost, 0 duplicates"
RSS_LIMIT_MIB = 256.0
Result = dict[str, Any]


def _f(result: Result | None, key: str) -> Any:
    return None if result is None else result.get("figures", {}).get(key)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        value = int(value)
    if isinstance(value, float):
        value = f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}".rstrip("0").rstrip(".")
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{value}{unit}"


def _all(*checks: bool | None) -> bool | None:
    if any(c is None for c in checks):
        return None
    return all(checks)


def _le(value: Any, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _ge(value: Any, limit: float) -> bool | None:
    return None if value is None else value >= limit


Row = tuple[str, str, Callable[[dict[str, Result]], tuple[str, bool | None]]]


def _p99_ratio(r: dict[str, Result]) -> float | None:
    """Celery's firing p99 over Hourglass's, from the same run."""
    ours, peer = _f(r.get("firing"), "lateness_p99_ms"), _f(r.get("celery-peer"), "lateness_p99_ms")
    return None if not ours or peer is None else round(peer / ours, 2)

TARGETS: list[Row] = [
    ("1. submit at 1000 rps", "p99 ≤ 20 ms, 0 errors", lambda r: (
        f"p50 {_fmt(_f(r.get('submit'), 'p50_ms'), ' ms')}, p99 {_fmt(_f(r.get('submit'), 'p99_ms'), ' ms')}, "
        f"p99.9 {_fmt(_f(r.get('submit'), 'p99.9_ms'), ' ms')}, {_fmt(_f(r.get('submit'), 'errors'))} errors "
        f"(offered {_fmt((r.get('submit') or {}).get('params', {}).get('rate'))}/s, "
        f"achieved {_fmt(_f(r.get('submit'), 'achieved_rate'))}/s)",
        _all(_le(_f(r.get("submit"), "p99_ms"), 20), _le(_f(r.get("submit"), "errors"), 0),
             _ge((r.get("submit") or {}).get("params", {}).get("rate"), 1000)))),
    ("2. max sustained single submits", "≥ 3,000 /s", lambda r: (
        f"{_fmt(_f(r.get('max-submit'), 'max_sustained_rate'))} /s",
        _ge(_f(r.get("max-submit"), "max_sustained_rate"), 3000))),
    ("3. batch submit", "≥ 20,000 jobs/s", lambda r: (
        f"{_fmt(_f(r.get('batch'), 'max_sustained_jobs_per_s'))} jobs/s sustained "
        f"(peak {_fmt(_f(r.get('batch'), 'peak_achieved_jobs_per_s'))})",
        _ge(_f(r.get("batch"), "max_sustained_jobs_per_s"), 20000))),
    ("3b. Kafka ingestion (1 ingest process)", "none set (issue 19)", lambda r: (
        f"{_fmt(_f(r.get('ingest'), 'messages_per_s'))} messages/s to durable jobs "
        f"({_fmt((r.get('ingest') or {}).get('params', {}).get('messages'))} messages, "
        f"{_fmt(_f(r.get('ingest'), 'end_to_end_s'), ' s')} with start-up)",
        None)),
    ("4. firing 1000/s for 5 min (once-jobs)", FIRING_TARGET, lambda r: _firing(r.get("firing"))),
    ("4c. firing 1000/s for 5 min (recurring jobs)", FIRING_TARGET, lambda r: _firing(r.get("firing-recurring"))),
    ("4b. the same firing on Celery ETA tasks (peer, same run)", "Hourglass's p99 ≥ 10x lower", lambda r: (
        f"Celery p50 {_fmt(_f(r.get('celery-peer'), 'lateness_p50_ms'), ' ms')}, "
        f"p99 {_fmt(_f(r.get('celery-peer'), 'lateness_p99_ms'), ' ms')}, "
        f"p99.9 {_fmt(_f(r.get('celery-peer'), 'lateness_p99.9_ms'), ' ms')}; "
        f"{_fmt(_f(r.get('celery-peer'), 'lost'))} lost, {_fmt(_f(r.get('celery-peer'), 'duplicates'))} duplicates; "
        f"Hourglass's p99 {_fmt(_p99_ratio(r), 'x')} lower",
        _ge(_p99_ratio(r), 10))),
    ("5. reads (10:1 read:write)", "≥ 5,000 /s, p99 ≤ 10 ms", lambda r: (
        f"{_fmt(_f(r.get('reads'), 'max_rate_p99_10ms'))} /s with p99 ≤ 10 ms; "
        f"{_fmt(_f(r.get('reads'), 'max_sustained_rate_p99_50ms'))} /s with p99 ≤ 50 ms",
        _ge(_f(r.get("reads"), "max_rate_p99_10ms"), 5000))),
    ("6. 1M jobs stored", "every figure within 10 %", lambda r: (
        (r.get("scale") or {}).get("summary", "not run"),
        (r.get("scale") or {}).get("figures", {}).get("within_10_percent"))),
    ("memory", f"peak RSS of each coordinator and worker ≤ {RSS_LIMIT_MIB:g} MiB", lambda r: _memory(r)),
]


def _firing(result: Result | None) -> tuple[str, bool | None]:
    """A firing scenario's row: lateness, lost, duplicated, at what rate for how long."""
    params = (result or {}).get("params", {})
    text = (
        f"p50 {_fmt(_f(result, 'lateness_p50_ms'), ' ms')}, p99 {_fmt(_f(result, 'lateness_p99_ms'), ' ms')}, "
        f"p99.9 {_fmt(_f(result, 'lateness_p99.9_ms'), ' ms')}, max {_fmt(_f(result, 'lateness_max_ms'), ' ms')}; "
        f"{_fmt(_f(result, 'lost'))} lost, {_fmt(_f(result, 'duplicates'))} duplicates "
        f"of {_fmt(_f(result, 'expected'))} (rate {_fmt(params.get('rate'))}/s, {_fmt(params.get('duration_s'))} s)"
    )
    return text, _all(_le(_f(result, "lateness_p50_ms"), 5), _le(_f(result, "lateness_p99_ms"), 25),
                      _le(_f(result, "lateness_p99.9_ms"), 100), _le(_f(result, "lost"), 0),
                      _le(_f(result, "duplicates"), 0), _ge(params.get("rate"), 1000))  # fmt: skip


def peak_rss(results: dict[str, Result]) -> dict[str, float]:
    """The highest RSS (sampled, or the kernel's VmHWM) of each coordinator and worker."""
    peaks: dict[str, float] = {}
    for result in results.values():
        for part in [result, *(result.get("scaled", {}) or {}).values()]:
            procs = (part.get("monitor") or {}).get("processes", {})
            for name, p in procs.items():
                if name.startswith(("coordinator", "worker")):
                    peaks[name] = max(peaks.get(name, 0.0), p["peak_rss_mib"], p.get("vm_hwm_mib") or 0.0)
    return peaks


def _memory(results: dict[str, Result]) -> tuple[str, bool | None]:
    peaks = peak_rss(results)
    if not peaks:
        return "—", None
    text = ", ".join(f"{n} {v:.0f} MiB" for n, v in sorted(peaks.items()))
    return text, all(v <= RSS_LIMIT_MIB for v in peaks.values())


def _mark(ok: bool | None) -> str:
    return {True: "✅ met", False: "❌ missed", None: "—"}[ok]


def markdown(env: dict[str, Any], results: dict[str, Result], quick: bool) -> str:
    m, v = env["machine"], env["versions"]
    lines = [
        "# Hourglass benchmark — latest run",
        "",
        f"- date: {env['date']}{' (quick mode: short, low-rate smoke; figures are not comparable)' if quick else ''}",
        f"- machine: {m['cores']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, load average at start "
        f"{m['load_average']}",
        f"- versions: Python {v['python']}, grpcio {v['grpcio']}, protobuf {v['protobuf']}, cassandra-driver "
        f"{v['cassandra-driver']}, Cassandra {v['cassandra']}, Redis {v['redis_server']}, "
        f"Hourglass {v['hourglass_commit']}{' (+ uncommitted changes)' if v['hourglass_worktree_dirty'] else ''}",
        f"- cluster: {env.get('cluster', {})}",
        "- latency is measured from each request's intended send time (open loop); lateness from the due "
        "time the client asked for to the moment the job's code was called",
        f"- idle CPU % of the cluster before the first scenario (100 = one core): `{json.dumps(env.get('idle_cpu_percent', {}))}`",
        "",
        "| scenario | target | measured | |",
        "| --- | --- | --- | --- |",
    ]
    for name, target, judge in TARGETS:
        measured, ok = judge(results)
        lines.append(f"| {name} | {target} | {measured} | {_mark(ok)} |")
    if "ghz" in results:
        lines += ["", "## cross-check with ghz (scenarios 1 and 2)", "", *_ghz(results)]
    for key, result in results.items():
        if key == "ghz":
            continue
        if "error" in result:
            lines += ["", f"## {key}", "", f"failed: {result['error']}"]
        elif key == "scale":
            lines += ["", "## scale", "", *_scale(result)]
        else:
            lines += ["", f"## {key}", "", *_details(result)]
    return "\n".join(lines) + "\n"


def _ghz(results: dict[str, Result]) -> list[str]:
    g = results["ghz"]
    if "error" in g:
        return [f"not run: {g['error']}"]
    out = ["| run | tool | offered /s | achieved /s | p50 ms | p99 ms | p99.9 ms | errors | tool CPU % |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def row(name: str, tool: str, s: dict[str, Any], cpu: Any) -> str:
        lat = s.get("latency_ms", {})
        return (f"| {name} | {tool} | {_fmt(s.get('offered_rate', s.get('offered')))} | {_fmt(s.get('achieved_rate', s.get('achieved')))} | "
                f"{_fmt(lat.get('p50', s.get('p50_ms')))} | {_fmt(lat.get('p99', s.get('p99_ms')))} | "
                f"{_fmt(lat.get('p99.9', s.get('p99.9_ms')))} | {_fmt(s.get('errors'))} | {_fmt(cpu)} |")

    if "submit" in g and "load" in results.get("submit", {}):
        py = results["submit"]["load"]
        out.append(row("1. fixed rate", "python", py, py["generator_cpu_percent_total"]))
        gz = g["submit"]["result"]
        out.append(row("1. fixed rate", "ghz", gz, gz["ghz_cpu_percent"]))
    if "max-submit" in g and "steps" in results.get("max-submit", {}):
        for s in results["max-submit"]["steps"]:
            out.append(row(f"2. step {_fmt(s['offered'])}/s", "python", s, s["generator_cpu_percent"]))
        for s in g["max-submit"]["result"]["steps"]:
            out.append(row(f"2. step {_fmt(s['offered_rate'])}/s", "ghz", s, s["ghz_cpu_percent"]))
        out += ["", f"max sustained single submits: python {_fmt(_f(results.get('max-submit'), 'max_sustained_rate'))} /s, "
                    f"ghz {_fmt(g['figures'].get('max_sustained_rate'))} /s"]
    out += ["", "ghz measures latency from the actual send (`--async --rps`), the Python generator from the "
                "intended send time; both count every non-OK answer as an error."]
    return out


def _scale(result: Result) -> list[str]:
    out = [f"seeded: `{json.dumps(result.get('seed', {}))}`", "",
           f"RSS while seeding (MiB): `{json.dumps(result.get('rss_while_seeding_mib', {}))}`", "",
           "| scenario | figure | base | with jobs stored | change % | within 10 % |", "| --- | --- | --- | --- | --- | --- |"]
    for r in result.get("comparison", []):
        out.append(f"| {r['scenario']} | {r['figure']} | {_fmt(r['base'])} | {_fmt(r['scaled'])} | "
                   f"{_fmt(r['change_percent'])} | {'yes' if r['within_10_percent'] else 'no'} |")
    for key, scaled in (result.get("scaled") or {}).items():
        out += ["", f"### {key} with {result.get('params', {}).get('jobs', 0):,} jobs stored", "", *_details(scaled)]
    return out


def _details(result: Result) -> list[str]:
    out = [f"params: `{json.dumps(result.get('params', {}))}`", ""]
    if "steps" in result:
        out += ["| offered /s | achieved /s | p50 ms | p99 ms | p99.9 ms | errors | generator CPU % | sustained |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        out += [f"| {_fmt(s['offered'])} | {_fmt(s['achieved'])} | {_fmt(s['p50_ms'])} | {_fmt(s['p99_ms'])} | "
                f"{_fmt(s['p99.9_ms'])} | {_fmt(s['errors'])} | {_fmt(s['generator_cpu_percent'])} | "
                f"{'yes' if s['sustained'] else 'no'} |" for s in result["steps"]]
        out.append("")
    figures = {k: v for k, v in result.get("figures", {}).items() if not isinstance(v, dict)}
    out.append("figures: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in figures.items()))
    monitor = result.get("monitor") or {}
    if monitor:
        out += ["", f"CPU (100 % = one core) and memory during the scenario; machine busy "
                    f"{_fmt(monitor.get('machine', {}).get('busy_percent'))} % of {monitor.get('machine', {}).get('cores')} cores:",
                "", "| process | CPU mean % | CPU peak % | peak RSS MiB | VmHWM MiB |", "| --- | --- | --- | --- | --- |"]
        for name, p in monitor.get("processes", {}).items():
            out.append(f"| {name} | {_fmt(p['cpu_percent_mean'])} | {_fmt(p['cpu_percent_peak'])} | "
                       f"{_fmt(p['peak_rss_mib'])} | {_fmt(p.get('vm_hwm_mib'))} |")
        machine = monitor.get("machine", {})
        out.append(f"| harness + load generators | {_fmt(machine.get('harness_cpu_percent'))} | | | |")
        out.append(f"| everything else on the machine | {_fmt(machine.get('other_cpu_percent'))} | | | |")
        if machine.get("other_busy_processes"):
            out += ["", "busy processes outside the system under test: " + "; ".join(
                f"`{o['cmd'][:70]}` {o['cpu_percent_mean']} %" for o in machine["other_busy_processes"])]
    for proc, prof in (result.get("profile") or {}).items():
        if "self" in prof:
            out += ["", f"py-spy profile of {proc} ({prof['samples']} busy samples; `{Path(prof['file']).name}`), "
                        "top frames by own time:", ""]
            out += [f"- {share} % {frame}" for frame, share in prof["self"][:8]]
            if prof.get("hourglass"):
                out += ["", "Hourglass code the samples were under (inclusive):", ""]
                out += [f"- {share} % {frame}" for frame, share in prof["hourglass"][:10]]
    cost = result.get("cpu_ms_per_call")
    if cost and len(cost) > 1:
        unit = cost.get("unit", "call")
        parts = ", ".join(f"{k} {v:.2f}" for k, v in cost.items() if k not in ("unit", "total"))
        out += ["", f"CPU cost above idle per {unit}: **{cost.get('total', 0):.2f} ms** ({parts}); "
                    f"two idle cores would allow about {2000 / cost['total']:,.0f} per second" if cost.get("total") else ""]
    return out


# -- plots -----------------------------------------------------------------------------------


def plot_latency(result: Result, title: str, path: Path) -> None:
    """Latency per second of intended send time (p50, p99, max), and answers per second."""
    rows = result.get("timeline") or []
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(10, 4.5))
    t = [r["t"] for r in rows]
    for key, style in (("p50", "-"), ("p99", "-"), ("max", ":")):
        ax.plot(t, [r.get(key) for r in rows], style, label=key)
    ax.set_yscale("log")
    ax.set_xlabel("second of the run (intended send time)")
    ax.set_ylabel("latency, ms (log)")
    ax2 = ax.twinx()
    ax2.plot(t, [r.get("ok", r.get("fires", 0)) for r in rows], color="grey", alpha=0.4,
             label="fires/s" if "fires" in rows[0] else "answered OK/s")
    if any(r.get("errors") for r in rows):
        ax2.plot(t, [r.get("errors", 0) for r in rows], color="red", alpha=0.4, label="errors/s")
    if "offered" in rows[0]:
        ax2.step(t, [r["offered"] for r in rows], color="black", alpha=0.3, where="post", label="offered/s")
    ax2.set_ylabel("per second")
    ax.legend(loc="upper left")
    ax2.legend(loc="upper right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_lateness(result: Result, title: str, path: Path) -> None:
    hist = result.get("lateness_histogram") or {}
    edges, counts = hist.get("edges_ms") or [], hist.get("counts") or []
    if not counts:
        return
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.stairs(counts, edges, fill=True, alpha=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("lateness, ms (log): executor called − due")
    ax.set_ylabel("fires")
    lat = result.get("figures", {})
    for key, color in (("lateness_p50_ms", "green"), ("lateness_p99_ms", "orange"), ("lateness_p99.9_ms", "red")):
        if lat.get(key):
            ax.axvline(lat[key], color=color, linestyle="--", label=f"{key.split('_')[1]} {lat[key]:.1f} ms")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cpu(result: Result, title: str, path: Path) -> None:
    procs = (result.get("monitor") or {}).get("processes", {})
    if not procs:
        return
    fig, ax = plt.subplots(figsize=(10, 4))
    for name, p in procs.items():
        samples = p["samples"][1:]
        ax.plot([s[0] for s in samples], [s[1] for s in samples], label=name)
    ax.set_xlabel("seconds")
    ax.set_ylabel("CPU % (100 = one core)")
    ax.legend(fontsize="small", ncol=3)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out_dir: Path, stamp: str, env: dict[str, Any], results: dict[str, Result], quick: bool) -> list[Path]:
    """Writes <stamp>-<scenario>.json and PNGs for each result, and latest.md. Returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, result in results.items():
        path = out_dir / f"{stamp}-{key}.json"
        path.write_text(json.dumps({"scenario": key, "quick": quick, **env, **result}, indent=1, default=str))
        written.append(path)
        for suffix, plot in (("latency", plot_latency), ("lateness", plot_lateness), ("cpu", plot_cpu)):
            png = out_dir / f"{stamp}-{key}-{suffix}.png"
            what = "lateness by due second" if key.startswith("firing") and suffix == "latency" else suffix
            plot(result, f"{key}: {what} ({env['date']})", png)
            if png.exists():
                written.append(png)
    md = out_dir / "latest.md"
    md.write_text(markdown(env, results, quick))
    written.append(md)
    return written
