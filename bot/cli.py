"""Command line: `python -m bot run|process|chat|migrate|export-member`, each with --config PATH."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from bot.config import Config, ConfigError, load_config
from bot.logs import configure
from bot.services.crypto import VaultKeyError
from bot.storage.db import DatabaseUnavailable

DEFAULT_CONFIG = "config.yaml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot",
                                     description="Groundwork, the consent-first organizing bot")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("run", "serve webhooks and run the enabled transports"),
                            ("process", "process the inbox only: started by `run` when "
                                        "workers.processors is above 0"),
                            ("chat", "the interactive local test chat (stdin/stdout)"),
                            ("migrate", "apply database migrations"),
                            ("export-member", "write everything stored about a member as JSON")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", default=None,
                       help=f"config file (default: {DEFAULT_CONFIG} if present, "
                            "else built-in defaults)")
        if name == "export-member":
            p.add_argument("member", help="member id or @handle")
            p.add_argument("--output", "-o", default="-", help="file to write (default stdout)")
    return parser


def _config(path: str | None) -> Config:
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    return load_config(path)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _config(args.config)
        _logging(config, args.command)
        if args.command == "migrate":
            from bot.storage import db

            asyncio.run(db.migrate(config.database.url))
            print("migrations applied")
            return 0
        if args.command == "chat":
            from bot.chat import run_chat

            return asyncio.run(run_chat(config))
        if args.command == "run":
            return _serve(_run(config))
        if args.command == "process":
            return _serve(_process(config))
        if args.command == "export-member":
            return asyncio.run(_export(config, args.member, args.output))
    except (ConfigError, VaultKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C in the test chat (or a migration, an export): what was accepted is
        # stored, the rest waits for the next start. No traceback; 130 as shells expect.
        return 130
    return 1


def _serve(main: Coroutine[Any, Any, int]) -> int:
    """The long-running commands, on uvloop where it is installed (a dependency everywhere
    but Windows, where it does not build): the same asyncio API, with the sockets, the
    pipes and the timers in C. Measured on the bare aiohttp handler of `make bench`,
    7-10% more requests per CPU-second; the webhook server, the Graph API client and
    asyncpg all run on it."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _logging(config: Config, command: str) -> None:
    """Logs as the config says; the interactive commands show warnings and worse only, so
    INFO lines do not interleave with the conversation or the exported data."""
    t = config.transports
    configure(config.logging.level, config.logging.format, stream=sys.stderr,
              floor=logging.NOTSET if command in ("run", "process") else logging.WARNING,
              secrets_=(t.whatsapp.access_token, t.whatsapp.app_secret, t.whatsapp.verify_token,
                        t.telegram.token, t.telegram.webhook_secret))


async def _run(config: Config) -> int:
    from bot.app import App, StartFailed

    app = App(config)
    try:
        await app.start(background=True, serve_http=True)
    except StartFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger("groundwork").info("shutting down: finishing in-flight work")
    await app.stop()
    return 0


async def _process(config: Config) -> int:
    """A processing child of `run` (bot/processors.py): its stdin and stdout are pipes
    to `run`; it stops when `run` closes stdin (or dies), or on SIGTERM."""
    from bot.app import App
    from bot.processors import ParentLink

    app = App(config)
    await app.start_processing()
    link = ParentLink()
    if app.postgres:
        # Row locks: `run`'s inbox writes never wait for our transactions.
        app.processor.inbound_waiting = lambda: False
    else:
        # One writer at a time: `run`'s inbox writes go first (bot/processors.py).
        app.processor.inbound_waiting = link.writing
        app.processor.give_way = link.give_way
    app.processor.on_processed.append(link.report)
    app.processor.on_counted.append(link.count)
    await link.serve(app.processor.wake)
    await app.stop()
    return 0


async def _export(config: Config, who: str, output: str) -> int:
    from bot.app import App

    app = App(config, transports=[])
    await app.start(background=False)
    try:
        members = app.services.members
        member = (await members.by_handle(who) if not who.isdecimal()
                  else await members.get(int(who)))
        if member is None:
            print(f"error: no member {who}", file=sys.stderr)
            return 1
        data = await app.services.data_rights.export(member.id, reveal_addresses=True)
    finally:
        await app.stop()
    try:
        _write(json.dumps(data, indent=2, ensure_ascii=False), output)
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _write(text: str, output: str) -> None:
    if output == "-":
        print(text)
        return
    # The export holds the member's phone numbers in the clear: readable by its owner
    # only, like the key file, whether the file is new or was there before.
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as file:
        os.fchmod(fd, 0o600)
        file.write(text + "\n")
