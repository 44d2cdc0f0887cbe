"""The ceiling: a bare aiohttp server whose handler only reads the body and answers 200.

    python bench/bare_server.py --port 8099

No signature check, no JSON, no storage: what one aiohttp process on this machine
can answer at all, to put the bot's webhook figure in proportion. Also the
cold-start baseline (`import aiohttp` + a server that answers). Imports nothing
but aiohttp, so it is run as a script, not through the `bench` package.
"""

from __future__ import annotations

import argparse

from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=200)


async def ready(_: web.Request) -> web.Response:
    return web.Response(text="ready")


def main() -> None:
    parser = argparse.ArgumentParser(description="bare aiohttp: read the body, answer 200")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    app.router.add_get("/readyz", ready)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
