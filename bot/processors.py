"""Processing in child processes: `bot run` with `workers.processors` above 0.

One Python process uses one core. With processors, `bot run` receives (webhooks,
polling), delivers and runs the jobs, and each child (`python -m bot process`)
claims inbox items and handles them, on another core. The database keeps them apart
as it keeps several workers apart (claims with leases); two pipes per child carry
the rest:

- `bot run` writes WRITING to the child's stdin before each inbox write and STORED
  after it. On STORED the child wakes to process; on SQLite, while a write is under
  way, a batch it is running commits early (processing.py's BATCH_SECONDS) and it waits
  briefly before its next transaction, so the inbox write is not held behind it.
- The child writes a line to its stdout per commit: what it handled, for the parent's
  /metrics, and a sign that replies wait in the outbox (the delivery worker wakes); and
  one per delivery-report counter it increments (RELAYED).

A child that dies is started again. A child whose parent dies sees its stdin close,
finishes its batch and stops. On shutdown the parent closes the stdins and waits for
the children to finish before its own last delivery rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence

log = logging.getLogger("groundwork.processors")

# Between a child's death and its restart, doubled while it keeps dying young (a
# database that is down): no tight crash loop, and back soon after a one-off crash.
RESTART_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
HEALTHY_SECONDS = 10.0  # a child that ran this long died of something passing
STOP_SECONDS = 60.0  # a child still busy after this long at shutdown is killed
WRITING = b"w"  # the inbox write is starting: processing gives way
STORED = b"d"  # it is done: new events wait in the inbox

Report = Callable[[int, int, list[float]], None]  # handled, failed, seconds per handled
Count = Callable[[str, tuple[str, ...]], None]  # a counter of ours and its label values
# The counters processing increments besides `processed` (delivery reports it handles);
# a child's increments of these are added to the parent's.
RELAYED = frozenset({"held", "failed"})


def processed_line(handled: int, failed: int, timings: Sequence[float]) -> bytes:
    """A child's report of one commit: `p handled failed seconds,seconds,...`."""
    seconds = ",".join(f"{t:.6f}" for t in timings)
    return f"p {handled} {failed} {seconds}\n".encode()


def counted_line(name: str, labels: Sequence[str]) -> bytes:
    """A child's increment of another counter: `c<TAB>name<TAB>label...` (labels may
    hold spaces, never tabs or newlines)."""
    clean = (str(v).replace("\t", " ").replace("\n", " ") for v in (name, *labels))
    return ("c\t" + "\t".join(clean) + "\n").encode()


def parse_processed(line: bytes) -> tuple[int, int, list[float]] | None:
    parts = line.decode("ascii", "replace").split()
    if not parts or parts[0] != "p":
        return None
    try:
        handled, failed = int(parts[1]), int(parts[2])
        timings = [float(t) for t in parts[3].split(",")] if len(parts) > 3 else []
    except (IndexError, ValueError):
        return None
    return handled, failed, timings


def parse_counted(line: bytes) -> tuple[str, tuple[str, ...]] | None:
    parts = line.decode("utf-8", "replace").rstrip("\n").split("\t")
    if len(parts) < 2 or parts[0] != "c" or parts[1] not in RELAYED:
        return None
    return parts[1], tuple(parts[2:])


class ProcessorPool:
    """Starts, signals, watches and stops the processing children."""

    def __init__(self, count: int, config_path: str | None, on_report: Report,
                 on_count: Count) -> None:
        self.count = count
        self.args = [sys.executable, "-m", "bot", "process"]
        if config_path:
            self.args += ["--config", config_path]
        self.on_report = on_report
        self.on_count = on_count
        self._children: list[asyncio.subprocess.Process | None] = [None] * count
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        for index in range(self.count):
            await self._spawn(index)
            self._watchers.append(asyncio.create_task(self._watch(index),
                                                      name=f"processor-{index}"))

    async def _spawn(self, index: int) -> None:
        # stderr is inherited: the children's log lines join ours.
        child = await asyncio.create_subprocess_exec(
            *self.args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self._children[index] = child
        log.info("processing child %d started (pid %d)", index, child.pid)

    def signal(self, what: bytes) -> None:
        """WRITING before an inbox write, STORED after it."""
        for child in self._children:
            if child is None or child.stdin is None or child.stdin.is_closing():
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                child.stdin.write(what)

    async def _watch(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        delay = RESTART_SECONDS / 2  # doubled at the first death: one second
        while True:
            child = self._children[index]
            assert child is not None and child.stdout is not None
            started = loop.time()
            while line := await child.stdout.readline():
                self._heard(line)
            code = await child.wait()
            if self._stopping:
                return
            delay = (RESTART_SECONDS if loop.time() - started > HEALTHY_SECONDS
                     else min(delay * 2, RESTART_MAX_SECONDS))
            log.error("processing child %d exited with %s; starting it again in %.0f s",
                      index, code, delay)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            await self._spawn(index)

    def _heard(self, line: bytes) -> None:
        if (report := parse_processed(line)) is not None:
            self.on_report(*report)
        elif (count := parse_counted(line)) is not None:
            self.on_count(*count)
        else:
            log.warning("a processing child said something unexpected: %r", line[:80])

    async def stop(self) -> None:
        """Close the children's stdins (they finish their batch and exit), then wait."""
        self._stopping = True
        for child in self._children:
            if child is not None and child.stdin is not None:
                child.stdin.close()
        for index, child in enumerate(self._children):
            if child is None:
                continue
            try:
                await asyncio.wait_for(child.wait(), STOP_SECONDS)
            except TimeoutError:
                log.error("processing child %d did not stop in %.0f s; killed",
                          index, STOP_SECONDS)
                child.kill()
                await child.wait()
        # The watchers read what the children said last, then return.
        await asyncio.gather(*self._watchers, return_exceptions=True)


# A child waits at most this long for the inbox write to finish before it begins a
# transaction: a lost signal, or a parent writing without pause, cannot stop processing.
# An inbox write takes a few milliseconds; each wait here adds to the time from receipt
# to reply (at 100 ms, p99 receipt-to-outbox at half load was 114 ms in the bench).
GIVE_WAY_SECONDS = 0.02


class ParentLink:
    """A child's side of the pipes, until the parent closes stdin or SIGTERM arrives."""

    def __init__(self) -> None:
        self._idle = asyncio.Event()  # the parent is not writing to the inbox
        self._idle.set()
        self._stopping = asyncio.Event()

    def writing(self) -> bool:
        return not self._idle.is_set()

    async def give_way(self) -> None:
        if not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), GIVE_WAY_SECONDS)

    @staticmethod
    def report(handled: int, failed: int, timings: list[float]) -> None:
        sys.stdout.buffer.write(processed_line(handled, failed, timings))
        sys.stdout.buffer.flush()

    @staticmethod
    def count(name: str, labels: tuple[str, ...]) -> None:
        sys.stdout.buffer.write(counted_line(name, labels))
        sys.stdout.buffer.flush()

    async def serve(self, wake: Callable[[], None]) -> None:
        """Follow the parent's signals (`wake` on STORED) until told to stop."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        loop.add_signal_handler(signal.SIGTERM, self._stopping.set)
        # Ctrl-C in a terminal reaches the whole process group: the parent stops us, in order.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        listener = asyncio.create_task(self._listen(reader, wake))
        await self._stopping.wait()
        listener.cancel()
        self._idle.set()

    async def _listen(self, reader: asyncio.StreamReader, wake: Callable[[], None]) -> None:
        while data := await reader.read(4096):
            # Signals come in order: the last one says whether a write is under way.
            if data.rfind(WRITING) > data.rfind(STORED):
                self._idle.clear()
            else:
                self._idle.set()
            if STORED in data:
                wake()
        self._stopping.set()  # the parent closed our stdin, or died
