"""`python -m bot chat`: the local test chat on stdin/stdout."""

from __future__ import annotations

import asyncio
import sys

from bot.app import App
from bot.config import Config
from bot.transports.testchat import TestChatTransport

PROMPT_HINT = ("Groundwork test chat. Type `NAME> message` (e.g. `ana> hello`), or "
               "`NAME@ROOM> message` in a group room. Ctrl-D to quit.")


async def run_chat(config: Config, stdin: asyncio.StreamReader | None = None) -> int:
    def output(text: str) -> None:
        print(text, flush=True)

    app = App(config, transports=[])
    chat = TestChatTransport(app.clock.now, output=output)
    app.add_transport(chat)
    # No background loops: each line is processed and delivered before the next is read,
    # so a piped script gives the same output every time.
    await app.start(background=False)
    if sys.stdin.isatty():
        print(PROMPT_HINT, flush=True)
    try:
        reader = stdin or await _stdin_reader()
        while True:
            raw = await reader.readline()
            if not raw:
                break
            message = chat.parse_line(raw.decode("utf-8", errors="replace"))
            if message is not None:
                await chat.deliver([message])
        await app.settle()  # stdin closed: flush what is due before leaving
    finally:
        await app.stop()
    return 0


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader
