"""`python -m bot chat`: the local test chat on stdin/stdout."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from typing import BinaryIO, Protocol

from bot.app import App
from bot.config import Config
from bot.transports.testchat import TestChatTransport

PROMPT_HINT = ("Groundwork test chat. Type `NAME> message` (e.g. `ana> hello`), or "
               "`NAME@ROOM> message` in a group room. Ctrl-D or Ctrl-C to quit.")


class Lines(Protocol):
    async def readline(self) -> bytes: ...


async def run_chat(config: Config, stdin: Lines | None = None) -> int:
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


async def _stdin_reader() -> Lines:
    """stdin as lines. A terminal, a pipe or a socket is watched by the event loop; a
    file (`make run < script.txt`) or /dev/null (a service manager's stdin) cannot be:
    epoll refuses them, and the chat used to hang there. Those are read in a thread."""
    if not _pollable(sys.stdin.fileno()):
        return _ThreadedLines(sys.stdin.buffer)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _pollable(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


class _ThreadedLines:
    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    async def readline(self) -> bytes:
        return await asyncio.to_thread(self.stream.readline)
