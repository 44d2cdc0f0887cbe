"""(b) Full processing: messages handled, state written and the reply in the outbox, per second.

Read from the same `python -m bot run` runs as (a) (see bench/webhook.py), on
SQLite and on PostgreSQL (a dedicated `bench` database, emptied first):

- throughput: inbox rows processed per second while a flat-out burst is
  absorbed (first to last processed_at of the burst's rows, median of bursts);
- latency: processed_at - received_at of every row, p99, in a phase where the
  load process offers the target rate (2,000/s SQLite, 3,000/s PostgreSQL).
  processed_at is stamped when the row's batch writes its replies to the outbox
  (just before the batch commits), so the whole wait from receipt to the outbox
  is in it: the queue, the batch's other messages, the handler.

With processing children, the same burst is also sent to a fresh database from people
the bot has never seen (a call to action's surge): a figure for reference, no target.

Baseline, same database kind and settings, same run: one tortoise-orm insert
(its own transaction) per message, 64 at a time, into an empty database.

Helpers the bench runs as subprocesses (each owns tortoise's global state):

    python -m bench.processing insert-baseline --db URL --count N
    python -m bench.processing seed --config PATH --members N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Row, median, na
from bench.webhook import PROCESSORS, SENDERS, TARGET_RATE, bot_run, measured_bare, variant


async def insert_baseline(db_url: str, count: int, concurrency: int = 64) -> dict[str, float]:
    from bot.storage import db
    from bot.storage.models import InboxItem

    await db.migrate(db_url)
    await db.open_db(db_url)
    try:
        now = datetime.now(UTC)
        payload = {"enc": "x" * 600}  # about the size of an encrypted text message event
        queue = iter(range(count))

        async def writer() -> None:
            for i in queue:
                await InboxItem.create(transport="whatsapp", event_key=f"baseline-{i}",
                                       kind="message", payload=payload, status="pending",
                                       received_at=now)

        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        written = await InboxItem.all().count()
    finally:
        await db.close_db()
    return {"count": float(written), "seconds": elapsed, "rate": written / elapsed}


async def seed(config_path: str, members: int) -> dict[str, float]:
    """Consented WhatsApp members of `riverside`, addressed as the load process writes."""
    from tortoise import Tortoise

    from bot.app import App
    from bot.config import load_config
    from bot.storage.db import is_postgres
    from tests.seeding import seed_members

    app = App(load_config(config_path), transports=[])
    await app.start(background=False)  # migrations, the config's groups
    try:
        started = time.perf_counter()
        await seed_members(app.vault, "riverside", members, datetime.now(UTC), prefix="1555",
                           transport="whatsapp")
        elapsed = time.perf_counter() - started
        if is_postgres(app.config.database.url):
            # Statistics, as a database that has held these members for a minute has them
            # (autovacuum analyzes a table once a tenth of it changed). Fresh from seeding,
            # the planner knew nothing and looked the senders up by transport alone: 6 ms
            # a batch for what takes 0.5 ms, until autovacuum's next round.
            await Tortoise.get_connection("postgres").execute_script("ANALYZE")
    finally:
        await app.stop()
    return {"members": float(members), "seconds": elapsed}


def rows(workdir: Path, quick: bool, backends: tuple[str, ...] = ("sqlite", "postgres"),
         ) -> list[Row]:
    out: list[Row] = []
    for backend, processors in [(b, n) for b in backends for n in (0, PROCESSORS[b])]:
        name = ("SQLite" if backend == "sqlite" else "PostgreSQL") + f", {variant(processors)}"
        bench = "b. full processing"
        target = TARGET_RATE[backend]
        run = bot_run(backend, workdir, quick, processors)
        if "error" in run:
            out.append(na(bench, f"processed msgs/s, {name}", run["error"],
                          target=f"≥ {target:,.0f}/s"))
            continue
        saturated = [p for p in run["phases"] if p["offered_rate"] is None]
        paced = next((p for p in run["phases"] if p["kind"] == "target"), None)
        half = next((p for p in run["phases"] if p["kind"] == "half"), None)
        samples = [p["processed_per_s"] for p in saturated if p["processed_per_s"]]
        rate = median(samples)
        baseline = run["insert_baseline"]["rate"]
        v = run["verify"]
        stuck = [p["name"] for p in run["phases"] if not p["drained"]]
        complete = not stuck and v["done"] == v["inbox_rows"]
        per_cpu = median([p["done"] / p["cpu_s"] for p in saturated if p["cpu_s"]])
        note = (f"{per_cpu:,.0f} msgs per bot CPU-second (acks, processing and replies, "
                "children included); "
                f"{v['replies']:,} replies queued for {v['done']:,} msgs")
        if stuck:
            note += (f"; inbox not drained after {stuck[0]} "
                     f"({v['done']:,} of {v['inbox_rows']:,} processed), later phases skipped")
        out.append(Row(
            bench, f"processed msgs/s, {name}", rate, "msg/s",
            "1 tortoise insert per msg, 64 concurrent", baseline,
            target=f"≥ {target:,.0f}/s", ok=rate >= target and complete, note=note,
            samples=samples, extra={"phases": saturated, "verify": v}))
        figure = f"p99 receipt→outbox at {target:,.0f}/s offered, {name}"
        if paced is None:
            out.append(na(bench, figure, "not measured: the inbox did not drain before it",
                          target="< 100 ms"))
        else:
            achieved = paced["load"]["rps"]
            backlog = achieved > 1.05 * (rate or 0)
            out.append(Row(
                bench, figure, paced["p99_ms"], "ms", "p50 of the same rows", paced["p50_ms"],
                target="< 100 ms",
                ok=paced["p99_ms"] is not None and paced["p99_ms"] < 100 and paced["drained"],
                note=(f"load achieved {achieved:,.0f} acks/s; {paced['done']:,} msgs"
                      + ("; offered more than the processor sustains, so this is queueing"
                         if backlog else "")),
                extra={"phase": paced}))
        if half is not None:
            out.append(Row(
                bench, f"p99 receipt→outbox at {half['offered_rate']:,.0f}/s offered "
                       f"(half the rate above), {name}", half["p99_ms"], "ms",
                "p50 of the same rows", half["p50_ms"],
                note=f"no queue: the latency of one message's processing; {half['done']:,} msgs",
                extra={"phase": half}))
        if processors:
            out.append(_newcomers_row(backend, workdir, quick, processors, name, baseline))
        if backend == "postgres":
            acks = median([p["load"]["rps"] for p in saturated])
            bare = measured_bare(quick)
            out.append(Row("a. webhook ack", f"acknowledged req/s, bot on {name}", acks,
                           "req/s", "bare aiohttp, read body only (ceiling)" if bare else "",
                           bare, note="for reference: the target is on SQLite",
                           samples=[p["load"]["rps"] for p in saturated]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.processing")
    sub = parser.add_subparsers(dest="command", required=True)
    base = sub.add_parser("insert-baseline")
    base.add_argument("--db", required=True)
    base.add_argument("--count", type=int, default=10_000)
    seeder = sub.add_parser("seed")
    seeder.add_argument("--config", required=True)
    seeder.add_argument("--members", type=int, required=True)
    sub.add_parser("run").add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "insert-baseline":
        result: object = asyncio.run(insert_baseline(args.db, args.count))
    elif args.command == "seed":
        result = asyncio.run(seed(args.config, args.members))
    else:
        import tempfile

        workdir = Path(tempfile.mkdtemp(prefix="gw-bench-"))
        result = [r.to_json() for r in rows(workdir, args.quick)]
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _newcomers_row(backend: str, workdir: Path, quick: bool, processors: int, name: str,
                   baseline: float) -> Row:
    """The same burst from people the bot has never seen: the call to action's case."""
    bench, figure = "b. full processing", f"processed msgs/s, {name}, senders all new"
    run = bot_run(backend, workdir, quick, processors, newcomers=True)
    if "error" in run:
        return na(bench, figure, run["error"])
    burst = run["phases"][0]
    firsts = min(burst["done"], SENDERS)
    return Row(bench, figure, burst["processed_per_s"], "msg/s",
               "1 tortoise insert per msg, 64 concurrent", baseline,
               note=(f"for reference: one burst of {burst['done']:,} msgs from people never "
                     f"seen before; {firsts:,} first contacts (a member made, the notice "
                     f"sent), {burst['done'] - firsts:,} from people yet to say YES"),
               extra={"phase": burst, "verify": run.get("verify")})
