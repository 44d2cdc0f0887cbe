"""(d) Pacing: the real DeliveryWorker against a Graph stand-in that enforces the limit.

For each limit (80 and 1,000 msg/s), a fresh App (in a subprocess: tortoise's
state is global) with WhatsApp pointed at the stand-in in its own process
(bench/graph.py) with `limit_rate(limit)`, pacing set to the same limit and
`per_recipient_seconds: 0`. One announcement is fanned out to limit × seconds
members, and the worker delivers it. Measured at the stand-in: the achieved
rate ((accepted - 1) / (last - first accept)), and how many 130429 (throughput
exceeded) answers the worker provoked. Baseline: the configured limit.

    python -m bench.pacing run [--quick] [--backend sqlite|postgres] [--limit 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    GraphHelper,
    Row,
    bot_config,
    free_port,
    get_json,
    na,
    pg_reset,
    pg_url,
    py,
    run_json,
    sqlite_url,
)

LIMITS = (80.0, 1000.0)
TOLERANCE = 0.03


async def deliver(config_path: str, graph_port: int, members: int,
                  give_up_after: float) -> dict[str, Any]:
    """Fan out to `members`, run the worker until the stand-in has them all (or timeout)."""
    from bot.app import App
    from bot.config import load_config
    from bot.storage.models import Group
    from tests.seeding import seed_members

    app = App(load_config(config_path))
    await app.start(background=False)  # migrations, groups, transports; no worker yet
    stats_url = f"http://127.0.0.1:{graph_port}/__bench/stats"
    try:
        now = datetime.now(UTC)
        for start in range(0, members, 10_000):
            await seed_members(app.vault, "riverside", min(10_000, members - start), now,
                               prefix=f"p{start // 10_000}-", transport="whatsapp")
        group = await Group.get(code="riverside")
        queued = await app.services.announcements.fan_out(
            group, "Reminder: canvassing Saturday 10am, meet at the library.", "announcement",
            now)
        stopping = asyncio.Event()
        cpu = time.process_time()  # this process, every thread: the worker's CPU cost
        started = time.perf_counter()
        worker = asyncio.create_task(app.delivery.run(stopping))
        stats: dict[str, Any] = {}
        while time.perf_counter() - started < give_up_after:
            await asyncio.sleep(0.2)
            stats = await asyncio.to_thread(get_json, stats_url)
            if stats["accepted"] >= queued or worker.done():
                break
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        stopping.set()
        app.delivery.wake()
        await worker
        counts = await app.services.outbox.counts()
    finally:
        await app.stop()
    return {"queued": queued, "elapsed_s": elapsed, "cpu_s": cpu, "stats": stats,
            "outbox": counts}


def rows(workdir: Path, quick: bool, backends: tuple[str, ...] = ("sqlite",),
         limits: tuple[float, ...] = LIMITS) -> list[Row]:
    seconds = 3.0 if quick else 12.0
    out: list[Row] = []
    for backend in backends:
        name = "SQLite" if backend == "sqlite" else "PostgreSQL"
        for limit in limits:
            bench = "d. pacing"
            figure = f"delivered msg/s at limit {limit:,.0f}, {name}"
            target = f"within {TOLERANCE:.0%} of {limit:,.0f}"
            if backend == "sqlite":
                db = sqlite_url(workdir, f"pacing-{limit:.0f}.sqlite3")
            else:
                problem = pg_reset()
                if problem:
                    out.append(na(bench, figure, problem, target=target))
                    continue
                db = pg_url()
            graph = GraphHelper(workdir)
            try:
                graph.limit(limit)
                config = bot_config(workdir / f"pacing-{backend}-{limit:.0f}.yaml", db_url=db,
                                    port=free_port(), graph_base=graph.base_url,
                                    rate_per_second=limit, per_recipient_seconds=0)
                members = int(limit * seconds)
                result = run_json(
                    py("-m", "bench.pacing", "deliver", "--config", str(config),
                       "--graph-port", str(graph.port), "--members", str(members),
                       "--timeout", str(seconds * 4 + 30)),
                    timeout=seconds * 4 + 600, log=workdir / f"pacing-{backend}.log")
            except RuntimeError as exc:
                out.append(na(bench, figure, str(exc), target=target))
                continue
            finally:
                graph.close()
            stats = result["stats"]
            span = (stats["last"] - stats["first"]) if stats.get("first") is not None else 0
            rate = (stats["accepted"] - 1) / span if span else None
            complete = stats["accepted"] >= result["queued"]
            out.append(Row(
                bench, figure, rate, "msg/s", "configured limit", limit, target=target,
                ok=rate is not None and abs(rate / limit - 1) <= TOLERANCE and complete,
                note=(f"{stats['accepted']:,} of {result['queued']:,} delivered"
                      + ("" if complete else f" before the {seconds * 4 + 30:.0f} s timeout")
                      + f"; {stats['accepted'] / result['cpu_s']:,.0f} sends per worker "
                        "CPU-second"),
                extra=result))
            out.append(Row(
                bench, f"throughput errors (code 130429) provoked at {limit:,.0f}, {name}",
                stats["throttled"], "errors", "", None, target="0",
                ok=stats["throttled"] == 0))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pacing")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("deliver")
    one.add_argument("--config", required=True)
    one.add_argument("--graph-port", type=int, required=True)
    one.add_argument("--members", type=int, required=True)
    one.add_argument("--timeout", type=float, required=True)
    runner = sub.add_parser("run")
    runner.add_argument("--quick", action="store_true")
    runner.add_argument("--backend", action="append", choices=["sqlite", "postgres"])
    runner.add_argument("--limit", action="append", type=float,
                        help="only this limit (msg/s); repeatable; default: 80 and 1,000")
    args = parser.parse_args(argv)
    result: object
    if args.command == "deliver":
        result = asyncio.run(deliver(args.config, args.graph_port, args.members, args.timeout))
    else:
        import tempfile

        workdir = Path(tempfile.mkdtemp(prefix="gw-bench-"))
        backends = tuple(args.backend or ["sqlite"])
        limits = tuple(args.limit or LIMITS)
        result = [r.to_json() for r in rows(workdir, args.quick, backends, limits)]
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
