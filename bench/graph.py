"""The Graph API stand-in as a helper process, with a small control API for the benches.

    python -m bench.graph --port-file PATH

Runs the tests' GraphApiStandIn (tests/fakes/graph_api.py) on its own core, so
that at 1,000 sends a second the stand-in does not steal time from the delivery
worker it is measuring. It adds, outside the Graph paths:

    GET  /__bench/stats           accepted sends, 130429s answered, first/last accept times
    POST /__bench/limit?rate=R    limit_rate(R) ("off": no limit) and reset the counters

Only accepted /messages calls are timed; the rate a bench reports is
(accepted - 1) / (last - first) as seen here, at the receiving end.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.graph_api import GraphApiStandIn

CONTROL = "/__bench/"


class BenchGraph(GraphApiStandIn):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reset()

    def reset(self) -> None:
        self.accepted = 0
        self.throttled = 0  # 130429 answers
        self.first: float | None = None
        self.last: float | None = None
        # The parent keeps every request and body for tests; a long bench needs neither.
        self.requests.clear()
        self.sent.clear()

    def _app(self) -> web.Application:
        app = super()._app()
        app.router.add_get(CONTROL + "stats", self._stats)
        app.router.add_post(CONTROL + "limit", self._limit)
        return app

    @web.middleware
    async def _record_and_gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(CONTROL):
            return await handler(request)  # control calls carry no Graph token
        return await super()._record_and_gate(request, handler)

    async def _record(self, request: web.Request) -> None:
        await super()._record(request)
        if len(self.requests) > 1000:  # memory stays flat however long the bench runs
            del self.requests[:-100]
            del self.sent[:-100]

    def _rate_limited(self, sender: str) -> bool:
        limited = super()._rate_limited(sender)
        if limited:
            self.throttled += 1
        return limited

    async def _messages(self, request: web.Request) -> web.Response:
        response = await super()._messages(request)
        if response.status == 200:
            now = time.monotonic()
            self.accepted += 1
            self.first = now if self.first is None else self.first
            self.last = now
        return response

    async def _stats(self, _: web.Request) -> web.Response:
        return web.json_response({"accepted": self.accepted, "throttled": self.throttled,
                                  "first": self.first, "last": self.last})

    async def _limit(self, request: web.Request) -> web.Response:
        rate = request.query.get("rate", "off")
        self.limit_rate(None if rate == "off" else float(rate))
        self.reset()
        return web.json_response({"rate": rate})


async def serve(port_file: Path) -> None:
    async with BenchGraph(token="bench-token", phone_number_id="111") as graph:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        # Written last and renamed into place: the parent reads a whole port or nothing.
        partial = port_file.with_suffix(".tmp")
        partial.write_text(str(graph.port))
        partial.rename(port_file)
        await stopped.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Graph API stand-in for the benches")
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port_file))


if __name__ == "__main__":
    main()
