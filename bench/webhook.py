"""(a) Webhook acknowledgement, and the bot runs that (b) reads its processing figures from.

The bot is the real `python -m bot run` (one process, or with processing children),
WhatsApp enabled and pointed at the Graph stand-in (bench/graph.py) so replies have
somewhere to go. A separate load process (bench/load.py) posts signed webhooks over
loopback, 64 connections, in a few bursts flat out, then one phase paced at the
processing target. A third run for (a) stops its one processing child during each
burst (SIGSTOP) and continues it for the drain: the acknowledging process measured
alone, as on a machine where processing has cores of its own; on this 2-core machine
the load process takes part of one. Beside it, in the same run, on the same payloads:

- the ceiling: bench/bare_server.py, an aiohttp handler that only reads the body;
- the peer: pywa's webhook endpoint (bench/pywa_server.py) under uvicorn, in bench/.venv.

After the run the inbox is read directly (sqlite3 / asyncpg): every 200 must be
a row, and processed_at - received_at of each row gives the processing latency.

    python -m bench.webhook [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_VENV_PYTHON,
    SECRETS,
    WEBHOOK_PATH,
    GraphHelper,
    Row,
    as_datetime,
    bot_config,
    child_pids,
    cpu_seconds,
    free_port,
    median,
    na,
    percentile,
    pg_reset,
    pg_url,
    py,
    query,
    run_json,
    spawn,
    sqlite_url,
    stop,
    wait_http,
)

SENDERS = 2_000  # distinct members writing in; seeded as consented WhatsApp members
TARGET_RATE = {"sqlite": 2_000.0, "postgres": 3_000.0}  # (b)'s targets, offered in the paced phase


@dataclass(frozen=True)
class Plan:
    bursts: int  # flat-out bursts per server; the figure is their median
    requests: int  # per burst, at most
    seconds: float  # per burst, at most
    paced_seconds: float
    baseline_inserts: int
    stall_timeout: float  # give up draining the inbox after this long without progress
    drain_cap: float  # ... or after this long in all

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls(bursts=1, requests=2_000, seconds=3, paced_seconds=2,
                       baseline_inserts=1_000, stall_timeout=20, drain_cap=120)
        return cls(bursts=3, requests=10_000, seconds=8, paced_seconds=5,
                   baseline_inserts=10_000, stall_timeout=30, drain_cap=400)


def timed_load(pid: int, url: str, plan: Plan, log: Path, id_prefix: str) -> dict[str, Any]:
    """A flat-out burst, with the server's CPU seconds during it (see cpu_seconds)."""
    before = cpu_seconds(pid)
    result = load(url, plan, log, id_prefix=id_prefix)
    result["server_cpu_s"] = cpu_seconds(pid) - before
    return result


def per_cpu(runs: list[dict[str, Any]], key: str = "server_cpu_s") -> float:
    return median([r["ok"] / r[key] for r in runs if r.get(key)])


def load(url: str, plan: Plan, log: Path, *, id_prefix: str, rate: float | None = None,
         seconds: float | None = None) -> dict[str, Any]:
    count = int(rate * (seconds or 0)) + 1 if rate else plan.requests
    args = ["-m", "bench.load", "--url", url, "--requests", str(count),
            "--duration", str(seconds or plan.seconds), "--concurrency", "64",
            "--senders", str(SENDERS), "--id-prefix", id_prefix]
    if rate:  # load.py sends no more than the rate fills in the duration
        args += ["--rate", f"{rate:g}"]
    result: dict[str, Any] = run_json(py(*args), timeout=(seconds or plan.seconds) + 120, log=log)
    return result


# --- the two yardsticks -----------------------------------------------------------------------


_bare: dict[bool, list[dict[str, Any]]] = {}


def measured_bare(quick: bool) -> float | None:
    """The ceiling's median req/s if this run measured it already (no extra run for it)."""
    runs = _bare.get(quick)
    return median([r["rps"] for r in runs]) if runs else None


def bare(workdir: Path, plan: Plan, quick: bool) -> list[dict[str, Any]]:
    if quick not in _bare:
        _bare[quick] = _bare_bursts(workdir, plan)
    return _bare[quick]


def _bare_bursts(workdir: Path, plan: Plan) -> list[dict[str, Any]]:
    port = free_port()
    proc = spawn(py(str(Path(__file__).with_name("bare_server.py")), "--port", str(port)),
                 log=workdir / "bare.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=30, proc=proc)
        url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        return [timed_load(proc.pid, url, plan, workdir / "load.log", f"bare{i}")
                for i in range(plan.bursts)]
    finally:
        stop(proc)


def pywa(workdir: Path, plan: Plan) -> list[dict[str, Any]] | str:
    """The peer's bursts, or why it could not run here."""
    if not BENCH_VENV_PYTHON.exists():
        return "bench/.venv missing (make bench creates it with pywa, fastapi, uvicorn)"
    check = spawn([str(BENCH_VENV_PYTHON), "-c", "import pywa_async, fastapi, uvicorn"])
    if check.wait(60) != 0:
        return "pywa, fastapi or uvicorn not importable in bench/.venv"
    port = free_port()
    proc = spawn([str(BENCH_VENV_PYTHON), str(Path(__file__).with_name("pywa_server.py")),
                  "--port", str(port)], log=workdir / "pywa.log")
    try:
        verify = (f"http://127.0.0.1:{port}{WEBHOOK_PATH}?hub.mode=subscribe&hub.challenge=1"
                  f"&hub.verify_token={SECRETS['BENCH_WA_VERIFY_TOKEN']}")
        try:
            wait_http(verify, timeout=60, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            return f"pywa server did not start: {exc}"
        url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        return [timed_load(proc.pid, url, plan, workdir / "load.log", f"pywa{i}")
                for i in range(plan.bursts)]
    finally:
        stop(proc)


# --- the bot ------------------------------------------------------------------------------------

_runs: dict[tuple[str, bool, int, bool, bool], dict[str, Any]] = {}


def bot_run(backend: str, workdir: Path, quick: bool, processors: int = 0,
            paused: bool = False, newcomers: bool = False) -> dict[str, Any]:
    """One `python -m bot run` on `backend` (with `processors` processing children),
    loaded; memoized so (a) and (b) share it. `paused`: the children are stopped
    (SIGSTOP) during each burst and continued for the drain after it, and there are no
    paced phases: the acknowledging process measured alone, as on a machine where
    processing has cores of its own. `newcomers`: no member is seeded, and one burst
    only, so that every sender's first message is a first contact."""
    key = (backend, quick, processors, paused, newcomers)
    if key not in _runs:
        plan = Plan.of(quick)
        if newcomers:
            plan = replace(plan, bursts=1)
        _runs[key] = _bot_run(backend, workdir, plan, processors, paused, newcomers)
    return _runs[key]


def _fresh_db(backend: str, workdir: Path, name: str) -> str:
    if backend == "sqlite":
        return sqlite_url(workdir, f"{name}.sqlite3")
    problem = pg_reset()
    if problem:
        raise RuntimeError(problem)
    return pg_url()


def _bot_run(backend: str, workdir: Path, plan: Plan, processors: int,
             paused: bool, newcomers: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend, "processors": processors, "paused": paused,
                           "newcomers": newcomers}
    tag = f"{backend}-{processors}" + ("-paused" if paused else "") + (
        "-newcomers" if newcomers else "")
    try:
        # The raw ORM write rate first, on an empty database of the same kind and settings.
        db = _fresh_db(backend, workdir, f"baseline-{tag}")
        out["insert_baseline"] = run_json(
            py("-m", "bench.processing", "insert-baseline", "--db", db,
               "--count", str(plan.baseline_inserts)),
            timeout=600, log=workdir / "baseline.log")
        db = _fresh_db(backend, workdir, f"bot-{tag}")
    except RuntimeError as exc:
        out["error"] = str(exc)
        return out
    out["db"] = db
    graph = GraphHelper(workdir)
    port = free_port()
    config = bot_config(workdir / f"bot-{tag}.yaml", db_url=db, port=port,
                        graph_base=graph.base_url, processors=processors)
    log = workdir / f"bot-{tag}.log"
    proc = None
    try:
        run_json(py("-m", "bench.processing", "seed", "--config", str(config),
                    "--members", str(0 if newcomers else SENDERS)), timeout=600, log=log)
        proc = spawn(py("-m", "bot", "run", "--config", str(config)), log=log)
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=120, proc=proc)
        url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        phases: list[dict[str, Any]] = []
        out["phases"] = phases
        for i in range(plan.bursts):
            phases.append(_phase(db, url, plan, workdir, f"{tag}-sat{i}", None, proc.pid,
                                 paused))
            if not phases[-1]["drained"]:
                break  # a backlog would spoil every later figure; what we have is reported
        else:
            if not paused and not newcomers:  # those measure a burst's figures only
                _latency_phases(db, url, plan, workdir, tag, backend, proc.pid, phases)
    except (RuntimeError, TimeoutError) as exc:
        out["error"] = f"{exc} (see {log})"
    finally:
        if proc is not None:
            out["exit_code"] = stop(proc, timeout=120)
        graph.close()
    if "error" not in out:
        _verify(out, db)
    return out


def _latency_phases(db: str, url: str, plan: Plan, workdir: Path, tag: str, backend: str,
                    pid: int, phases: list[dict[str, Any]]) -> None:
    # Latency without a queue: offered at half the throughput just measured...
    capacity = median([p["processed_per_s"] for p in phases if p["processed_per_s"]])
    if capacity == capacity and capacity >= 2:  # not NaN
        half = _phase(db, url, plan, workdir, f"{tag}-half", capacity / 2, pid)
        half["kind"] = "half"
        phases.append(half)
    # ... and at the target rate, whether or not the processor keeps up with it.
    if phases[-1]["drained"]:
        target = _phase(db, url, plan, workdir, f"{tag}-paced", TARGET_RATE[backend], pid)
        target["kind"] = "target"
        phases.append(target)


def _phase(db: str, url: str, plan: Plan, workdir: Path, name: str,
           rate: float | None, pid: int, paused: bool = False) -> dict[str, Any]:
    first_id = (query(db, "SELECT coalesce(max(id), 0) FROM inbox_item")[0][0] or 0) + 1
    seconds = plan.paced_seconds if rate else plan.seconds
    children = _pause_children(pid, db) if paused else []
    cpu_start = cpu_seconds(pid)
    try:
        result = load(url, plan, workdir / "load.log", id_prefix=name, rate=rate,
                      seconds=seconds)
    finally:
        for child in children:
            os.kill(child, signal.SIGCONT)
    cpu_acked = cpu_seconds(pid)
    result["server_cpu_s"] = cpu_acked - cpu_start
    drained, drain_s = _drain(db, plan)
    cpu_end = cpu_seconds(pid)
    last_id = query(db, "SELECT coalesce(max(id), 0) FROM inbox_item")[0][0] or 0
    rows = query(db, "SELECT received_at, processed_at, status FROM inbox_item "
                     "WHERE id >= $1 AND id <= $2", first_id, last_id)
    done = [(as_datetime(r), as_datetime(p)) for r, p, s in rows if s == "done" and p]
    waits = [(p - r).total_seconds() for r, p in done]
    span = ((max(p for _, p in done) - min(p for _, p in done)).total_seconds()
            if len(done) > 1 else 0.0)
    return {"name": name, "load": result, "rows": len(rows), "done": len(done),
            "failed": sum(1 for *_, s in rows if s == "failed"), "drained": drained,
            "drain_s": drain_s,
            "processed_per_s": (len(done) - 1) / span if span else None,
            # The bot's CPU time over the whole phase (acks + processing + delivery) and
            # over the burst alone: per-CPU-second figures a busy machine disturbs less.
            "cpu_s": cpu_end - cpu_start, "cpu_burst_s": cpu_acked - cpu_start,
            "p50_ms": 1000 * percentile(waits, 50) if waits else None,
            "p99_ms": 1000 * percentile(waits, 99) if waits else None,
            "offered_rate": rate, "kind": "burst" if rate is None else "paced"}


def _pause_children(pid: int, db: str) -> list[int]:
    """SIGSTOP `bot run`'s processing children, at a moment none holds the SQLite write
    lock (a child stopped holding it would stall every inbox write)."""
    for _ in range(100):
        children = child_pids(pid)
        for child in children:
            os.kill(child, signal.SIGSTOP)
        if not db.startswith("sqlite://") or _sqlite_unlocked(db):
            return children
        for child in children:
            os.kill(child, signal.SIGCONT)
        time.sleep(0.01)  # let it finish its transaction, then try again
    raise RuntimeError("the processing children never let go of the SQLite write lock")


def _sqlite_unlocked(db: str) -> bool:
    import sqlite3

    conn = sqlite3.connect(db[len("sqlite://"):].split("?", 1)[0], timeout=0.05,
                           isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def _drain(db: str, plan: Plan) -> tuple[bool, float]:
    """Wait until the bot has processed every inbox row (it runs on its own).

    Bounded: gives up after `stall_timeout` without progress or `drain_cap` in all.
    Returns (drained, seconds waited).
    """
    started = last_progress = time.monotonic()
    previous = None
    while True:
        pending = query(db, "SELECT count(*) FROM inbox_item WHERE status = 'pending'")[0][0]
        now = time.monotonic()
        if pending == 0:
            return True, now - started
        if pending != previous:
            previous, last_progress = pending, now
        if now - last_progress > plan.stall_timeout or now - started > plan.drain_cap:
            return False, now - started
        time.sleep(0.25)


def _verify(out: dict[str, Any], db: str) -> None:
    """Durability and completeness, read from the database after the bot has stopped."""
    acked = sum(p["load"]["ok"] for p in out["phases"])
    inbox = query(db, "SELECT count(*) FROM inbox_item")[0][0]
    replies = query(db, "SELECT count(*) FROM outbox_item WHERE kind IN ('reply', 'notice')")[0][0]
    done = query(db, "SELECT count(*) FROM inbox_item WHERE status = 'done'")[0][0]
    out["verify"] = {"acked": acked, "inbox_rows": inbox, "done": done, "replies": replies}


# --- rows -------------------------------------------------------------------------------------


# Processing children of `bot run` (workers.processors) in the second variant of (a)/(b),
# the best found on this kind of 2-core machine (where the load process needs part of a
# core): on SQLite one (a second only waits for the one writer lock), on PostgreSQL two
# (each spends much of its time waiting on database round trips).
PROCESSORS = {"sqlite": 1, "postgres": 2}


def variant(processors: int, paused: bool = False) -> str:
    """How a figure's `bot run` was set up, for its label."""
    if paused:
        return "acknowledging alone (its processing child paused during the burst)"
    if not processors:
        return "one process"
    return f"+ {processors} processing child{'ren' if processors > 1 else ''}"


def rows(workdir: Path, quick: bool) -> list[Row]:
    plan = Plan.of(quick)
    bare_runs = bare(workdir, plan, quick)
    peer = pywa(workdir, plan)
    out: list[Row] = []
    for processors, paused in ((0, False), (PROCESSORS["sqlite"], False), (1, True)):
        out += _ack_rows(bot_run("sqlite", workdir, quick, processors, paused), bare_runs,
                         peer)
    return out


def _ack_rows(run: dict[str, Any], bare_runs: list[dict[str, Any]],
              peer: list[dict[str, Any]] | str) -> list[Row]:
    bench = "a. webhook ack"
    how = variant(run["processors"], run["paused"])
    if "error" in run:
        return [na(bench, f"acknowledged req/s, bot on SQLite, {how}", run["error"])]
    bare_rps = median([r["rps"] for r in bare_runs])
    peer_rps = median([r["rps"] for r in peer]) if isinstance(peer, list) else None
    saturated = [p for p in run["phases"] if p["offered_rate"] is None]
    bot_rps = median([p["load"]["rps"] for p in saturated])
    bot_samples = [p["load"]["rps"] for p in saturated]
    where = ("processing in the same process waits out the burst, but for a small share, "
             "and catches up after it" if not run["processors"] else
             "the child processes everything once continued" if run["paused"] else
             "processing runs in the child meanwhile")
    out = [
        Row(bench, f"acknowledged req/s, bot on SQLite, {how}", bot_rps, "req/s",
            "bare aiohttp, read body only (ceiling)", bare_rps,
            note=(f"{where}; per server CPU-second (children included): "
                  f"bot {per_cpu([p['load'] for p in saturated]):,.0f}, "
                  f"bare {per_cpu(bare_runs):,.0f}"
                  + (f", pywa {per_cpu(peer):,.0f}" if isinstance(peer, list) else "")),
            samples=bot_samples, baseline_samples=[r["rps"] for r in bare_runs],
            extra={"bot": [p["load"] for p in saturated], "bare": bare_runs}),
    ]
    # The issue sets the target for `bot run` as one process; with a child on these 2
    # cores the child's CPU comes out of the acknowledging, so those are for reference.
    target = "" if run["processors"] else "≥ peer"
    if isinstance(peer, list):
        out.append(Row(bench, f"acknowledged req/s vs peer, {how}", bot_rps, "req/s",
                       "pywa endpoint, verify+parse, uvicorn (peer)", peer_rps,
                       target=target, ok=bot_rps >= (peer_rps or 0) if target else None,
                       samples=bot_samples, baseline_samples=[r["rps"] for r in peer],
                       extra={"pywa": peer},
                       note="" if target else "for reference: the target is for one process"))
    else:
        out.append(na(bench, f"acknowledged req/s vs peer (pywa), {how}", peer,
                      target=target))
    peer_p99 = median([r["p99_ms"] for r in peer]) if isinstance(peer, list) else None
    out += [
        Row(bench, f"p50 latency of the 200, {how}",
            median([p["load"]["p50_ms"] for p in saturated]),
            "ms", "bare aiohttp p50", median([r["p50_ms"] for r in bare_runs])),
        Row(bench, f"p99 latency of the 200, {how}",
            median([p["load"]["p99_ms"] for p in saturated]),
            "ms", "bare aiohttp p99", median([r["p99_ms"] for r in bare_runs]),
            note=f"pywa p99 {peer_p99:.1f} ms" if peer_p99 else ""),
    ]
    v = run["verify"]
    out.append(Row(bench, f"acknowledged messages durably in the inbox, {how}",
                   v["inbox_rows"], "rows", "200s answered", v["acked"], target="= 200s",
                   ok=v["inbox_rows"] == v["acked"],
                   note=f"{v['done']} processed, {v['replies']} replies queued"))
    return out


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m bench.webhook")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    for row in rows(workdir, args.quick):
        json.dump(row.to_json(), sys.stdout)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
