"""(f) Cold start: `python -m bot run` from exec until /readyz answers 200.

The database is migrated once beforehand, so each start is a restart as in
service (a first start also applies the migrations; that is reported apart).
Median of several starts. Baseline, in between, the same way: a fresh Python
that imports aiohttp and serves a bare app (bench/bare_server.py) until it answers.

    python -m bench.coldstart [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.common import (
    GraphHelper,
    Row,
    bot_config,
    free_port,
    median,
    py,
    spawn,
    sqlite_url,
    stop,
    wait_http,
)


def _start(args: list[str], port: int, log: Path) -> float:
    """Seconds from exec to the first 200 on /readyz; the server is stopped after."""
    started = time.perf_counter()
    proc = spawn(args, log=log)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=120, interval=0.005, proc=proc)
        return time.perf_counter() - started
    finally:
        stop(proc)


def rows(workdir: Path, quick: bool) -> list[Row]:
    runs = 3 if quick else 7
    graph = GraphHelper(workdir)  # nothing is sent; the transport needs a base URL all the same
    try:
        port = free_port()
        config = bot_config(workdir / "coldstart.yaml", db_url=sqlite_url(workdir, "cold.sqlite3"),
                            port=port, graph_base=graph.base_url)
        bot = py("-m", "bot", "run", "--config", str(config))
        log = workdir / "coldstart.log"
        first = _start(bot, port, log)  # applies every migration to an empty database
        bare_port = free_port()
        bare = py(str(Path(__file__).with_name("bare_server.py")), "--port", str(bare_port))
        bot_times, bare_times = [], []
        for _ in range(runs):  # interleaved, so a busy moment hits both alike
            bot_times.append(_start(bot, port, log))
            bare_times.append(_start(bare, bare_port, log))
    finally:
        graph.close()
    value = median(bot_times)
    return [Row("f. cold start", "python -m bot run until /readyz 200", value, "s",
                "import aiohttp + bare server answering", median(bare_times),
                note=f"median of {runs}; first start on an empty database (migrations) "
                     f"{first:.2f} s",
                samples=bot_times, baseline_samples=bare_times,
                extra={"bot": bot_times, "bare": bare_times, "first": first})]


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m bench.coldstart")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    json.dump([r.to_json() for r in rows(workdir, args.quick)], sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
