"""`python -m bench` (what `make bench` runs): every benchmark, one table, bench/RESULTS.md.

    python -m bench                  # the full run (about 10 minutes on 2 cores)
    python -m bench --quick          # a short smoke run of everything
    python -m bench --only pacing    # one bench (or several, comma-separated)

Each figure stands beside a baseline measured in the same run, and the ratio
between them, because on a shared 2-core machine absolute figures drift with
whatever else runs; the ratios drift much less. Heavy work runs in subprocesses
(the bot itself, the load generator, the Graph stand-in, each database step),
so this process mostly waits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.common import ROOT, Row, machine, median, na

BENCHES = ("moderation", "coldstart", "webhook", "processing", "fanout", "pacing")


def _moderation(_: Path, quick: bool, __: tuple[str, ...]) -> list[Row]:
    from bench.bench_moderation import TARGET_MSGS_PER_S, run

    r = run(5_000 if quick else 20_000)
    return [Row("e. moderation", "ModerationEngine.evaluate, all rules", r["msgs_per_s"],
                "msg/s", "trivial pass: lower + split + `in` set", r["baseline_msgs_per_s"],
                target=f"≥ {TARGET_MSGS_PER_S:,}/s", ok=r["msgs_per_s"] >= TARGET_MSGS_PER_S,
                note=(f"{int(r['blocklist_entries']):,} blocklist entries, "
                      f"{r['flagged_pct']:.1f}% flagged; best of 5 passes"))]


def _coldstart(workdir: Path, quick: bool, _: tuple[str, ...]) -> list[Row]:
    from bench.coldstart import rows

    return rows(workdir, quick)


def _webhook(workdir: Path, quick: bool, _: tuple[str, ...]) -> list[Row]:
    from bench.webhook import rows

    return rows(workdir, quick)


def _processing(workdir: Path, quick: bool, backends: tuple[str, ...]) -> list[Row]:
    from bench.processing import rows

    return rows(workdir, quick, backends)


def _fanout(workdir: Path, quick: bool, backends: tuple[str, ...]) -> list[Row]:
    from bench.fanout import rows

    return rows(workdir, quick, backends)


def _pacing(workdir: Path, quick: bool, backends: tuple[str, ...]) -> list[Row]:
    from bench.pacing import rows

    return rows(workdir, quick, backends)


RUNNERS: dict[str, Callable[[Path, bool, tuple[str, ...]], list[Row]]] = {
    "moderation": _moderation, "coldstart": _coldstart, "webhook": _webhook,
    "processing": _processing, "fanout": _fanout, "pacing": _pacing,
}
LETTER = {"webhook": "a", "processing": "b", "fanout": "c", "pacing": "d",
          "moderation": "e", "coldstart": "f"}


# --- the table ------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit in ("s",):
        text = f"{value:.3f}" if value < 10 else f"{value:.1f}"
    elif unit in ("ms",):
        text = f"{value:.1f}"
    elif unit in ("MB",):
        text = f"{value:.0f}"
    else:
        text = f"{value:,.0f}"
    return f"{text} {unit}".strip()


def table(rows: list[Row]) -> str:
    head = ["bench", "figure", "measured", "baseline (same run)", "baseline", "ratio",
            "target", "met", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else ""
        met = {True: "yes", False: "**NO**", None: ""}[r.ok]
        cells = [r.bench, r.figure, fmt(r.value, r.unit), r.baseline_name or "",
                 fmt(r.baseline, r.unit) if r.baseline is not None else "", ratio, r.target,
                 met, r.note]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


METHOD = """\
How it was measured (details in each bench module's docstring):

- a/b: the real `python -m bot run` (SQLite or PostgreSQL, WhatsApp enabled and pointed at the
  Graph API stand-in, replies paced at WhatsApp's default 80/s), once as one process and once
  with processing children (`workers.processors`: 1 on SQLite, 2 on PostgreSQL), and for (a)
  once more with one child that is stopped (SIGSTOP, at a moment it holds no lock) for each
  burst and continued after it: the acknowledging process alone, as where processing has cores
  of its own (this machine's two are shared with the load process). Loaded by a separate process
  (`bench/load.py`: keep-alive HTTP/1.1 on asyncio's protocol layer, 64 connections, signed
  webhooks, unique message ids, each run bounded in count and time). The load mixes HELP,
  /mygroups, /settings and /groups from 2,000 consented members. The ack figures are the median
  of flat-out bursts (each at most 10,000 requests and 8 s); the bot drains its inbox between
  bursts. Processing throughput is (rows - 1) / (last - first processed_at) of a burst's rows;
  latency is processed_at - received_at of each row in a phase offered at the target rate (5 s),
  and in one offered at half the burst throughput (no queue). Every 200 is checked against the
  inbox rows afterwards. The ceiling and the peer get the same load generator and payloads; pywa
  runs under uvicorn with uvloop and httptools (`uvicorn[standard]`, its usual deployment), the
  bot on the standard asyncio loop. The load generator shares the 2 cores with the server; it
  sends prepared bytes and reads only the status, so it costs about a fifth of what aiohttp's
  client did (the bare ceiling went from about 9,700 to 22,000-30,000 req/s with it).
- c: 100,000 members seeded with tests/seeding.py; 2% each stopped, left, paused, muted and
  marketing-stopped; the real `AnnouncementService.fan_out` and the plain copy each run in a
  fresh subprocess; peak RSS is that process's ru_maxrss.
- d: the real DeliveryWorker in an App; the stand-in (its own process) enforces the limit with a
  token bucket and answers 130429 past it; the rate is measured where the sends arrive.
- f: a restart on a migrated database; bytecode cached (as deployed) outside the work tree.
- Figures are medians where repeated; ratios are measured/baseline."""


def details(rows: list[Row]) -> str:
    """The repeats behind each median, so a reader can see the spread."""
    lines = []
    for r in rows:
        if len(r.samples) > 1 or len(r.baseline_samples) > 1:
            measured = ", ".join(fmt(v, r.unit) for v in r.samples)
            base = ", ".join(fmt(v, r.unit) for v in r.baseline_samples)
            lines.append(f"- {r.bench} — {r.figure}: {measured or '—'}"
                         + (f"; baseline: {base}" if base else ""))
    return "\n".join(lines) if lines else "- (single runs only)"


# The reference points, measured on "this kind of machine" (2 cores, one process,
# loopback, 64 connections): what this run's own baselines are set against below.
REFERENCE = (("bare aiohttp, read body only (ceiling)", "bare aiohttp", 32_000.0),
             ("pywa endpoint, verify+parse, uvicorn (peer)", "pywa's endpoint", 10_000.0),
             ("1 tortoise insert per msg, 64 concurrent@SQLite",
              "one insert per message into SQLite (WAL, synchronous=NORMAL)", 3_700.0),
             ("1 tortoise insert per msg, 64 concurrent@PostgreSQL",
              "one insert per message into PostgreSQL", 6_000.0))


def host_speed(rows: list[Row]) -> str:
    """This host beside the reference machine, by the baselines this run measured: the
    absolute targets were set on the reference, the ratios hold on any host."""
    found: dict[str, list[float]] = {}
    for r in rows:
        if r.baseline is None:
            continue
        keys = [r.baseline_name]
        if r.baseline_name.startswith("1 tortoise insert"):
            keys = [f"{r.baseline_name}@{'SQLite' if 'SQLite' in r.figure else 'PostgreSQL'}"]
        for key in keys:
            found.setdefault(key, []).append(r.baseline)
    parts = [f"{label} {median(found[key]):,.0f}/s against about {ref:,.0f} ("
             f"{median(found[key]) / ref:.2f}×)"
             for key, label, ref in REFERENCE if key in found]
    if not parts:
        return ""
    return ("- this host beside the issue's reference machine, by this run's baselines: "
            + "; ".join(parts) + "\n")


def write_results(path: Path, rows: list[Row], info: dict[str, str], command: str,
                  started: datetime, seconds: float, load_end: str) -> None:
    text = f"""# Benchmark results

Written by `{command}` (bench/__main__.py); rewrite it by running that again.

- date: {started.strftime("%Y-%m-%d %H:%M UTC")} (took {seconds / 60:.1f} min)
- machine: {info["nproc"]} cores, {info["cpu"]}, {info["platform"]}
- Python {info["python"]}
- load average at start / end: {info["loadavg"]} / {load_end} (other work shares this machine:
  absolute figures are noisy; compare each with its same-run baseline)
{host_speed(rows)}
{table(rows)}

Repeats behind the medians:

{details(rows)}

{METHOD}
"""
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--only", default="",
                        help=f"comma-separated benches from: {', '.join(BENCHES)} "
                             "(or letters a-f)")
    parser.add_argument("--backends", default="sqlite,postgres",
                        help="databases for processing (b), fan-out (c) and pacing (d); "
                             "PostgreSQL is the `bench` database at 127.0.0.1:5432, emptied "
                             "first (BENCH_PG_ADMIN_URL, BENCH_PG_DB override)")
    parser.add_argument("--output", type=Path, default=None,
                        help="results file (default: bench/RESULTS.md; quick runs write "
                             "none unless given)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also dump every row with its raw figures to this file")
    args = parser.parse_args(argv)

    by_letter = {v: k for k, v in LETTER.items()}
    wanted = [by_letter.get(w.strip(), w.strip()) for w in args.only.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in RUNNERS]
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)} (choose from {', '.join(BENCHES)})")
    selected = [b for b in BENCHES if not wanted or b in wanted]
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())

    info = machine()
    started = datetime.now(UTC)
    clock = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    print(f"bench: {', '.join(selected)}{' (quick)' if args.quick else ''}; "
          f"{info['nproc']} cores, load {info['loadavg']}; logs in {workdir}", file=sys.stderr)
    rows: list[Row] = []
    for name in selected:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            rows += RUNNERS[name](workdir, args.quick, backends)
        except Exception as exc:  # one broken bench must not hide the others' figures
            traceback.print_exc()
            rows.append(na(f"{LETTER[name]}. {name}", "(bench failed)",
                           f"{type(exc).__name__}: {exc}"))
    rows.sort(key=lambda r: r.bench)  # a-f, whatever order they ran in
    seconds = time.monotonic() - clock
    load_end = machine()["loadavg"]
    print(table(rows))
    output = args.output or (None if args.quick else ROOT / "bench" / "RESULTS.md")
    if output is not None:
        make = os.environ.get("MAKELEVEL") is not None and not argv and len(sys.argv) == 1
        command = "make bench" if make else "python -m bench " + " ".join(sys.argv[1:])
        write_results(output, rows, info, command.strip(), started, seconds, load_end)
        print(f"\nwritten to {output}", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps([r.to_json() for r in rows], indent=1, default=str))
    if args.keep:
        print(f"work directory kept: {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
