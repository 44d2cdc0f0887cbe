"""The peer: pywa's own webhook endpoint (FastAPI under uvicorn) on the same payloads.

    bench/.venv/bin/python bench/pywa_server.py --port 8098

Runs in the bench virtualenv (bench/.venv, made by `make bench`), never in the
project's: pywa is a yardstick, not a dependency. pywa checks the
X-Hub-Signature-256 over the raw body with the app secret, answers 200, and
parses the update into a Message for the registered handler in a background
task. The handler does nothing: verify and parse, no storage. The secrets come
from the same environment variables the bot reads.
"""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn
from fastapi import FastAPI
from pywa_async import WhatsApp, types


def build(path: str) -> FastAPI:
    app = FastAPI()
    wa = WhatsApp(
        phone_id=os.environ.get("BENCH_PHONE_NUMBER_ID", "111"),
        token=None,  # receive only: no Graph API calls
        server=app,
        webhook_endpoint=path,
        verify_token=os.environ["BENCH_WA_VERIFY_TOKEN"],
        app_secret=os.environ["BENCH_WA_APP_SECRET"],
        validate_updates=True,
    )

    @wa.on_message()
    async def on_message(_: WhatsApp, msg: types.Message) -> None:
        # Touch what the bot would use, so the parse is not skipped lazily.
        _ = (msg.id, msg.from_user, msg.text)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="pywa's webhook endpoint, for comparison")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/webhooks/whatsapp")
    args = parser.parse_args()
    logging.getLogger("pywa").setLevel(logging.WARNING)
    uvicorn.run(build(args.path), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
