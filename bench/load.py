"""Load generator: signed WhatsApp webhooks over loopback, as a separate process.

    python -m bench.load --url http://127.0.0.1:PORT/webhooks/whatsapp --requests 20000 \
        --duration 10 [--rate 2000] [--concurrency 64]

Every request carries one text message with a unique message id, from one of
`--senders` addresses, signed with the app secret like Meta's. Bodies and
signatures are built before the clock starts, so the client spends its time
sending. The run is bounded by BOTH a request count and a duration: whichever
comes first ends it. `--rate` spaces the request starts evenly (open loop up to
the connection limit) instead of sending as fast as answers come back; a
request's latency is timed from when it was actually sent, so once all 64
connections are busy the wait for a free one is not in it.

Prints one JSON object: requests attempted, 200s, other statuses, client errors,
elapsed seconds, 200s per second, and p50/p99/max latency of the 200s.
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

from bench.common import SECRETS, percentile
from tests.fakes.graph_api import body_of, sign, text_webhook

TEXTS = ("HELP", "/mygroups", "/settings", "/groups")


def build_requests(count: int, secret: str, id_prefix: str, senders: int,
                   sender_prefix: str, phone_number_id: str) -> list[tuple[bytes, str]]:
    """(body, signature) per request; the message id is unique across the whole bench run."""
    now = str(int(time.time()))
    built = []
    for i in range(count):
        who = f"{sender_prefix}{i % senders}"
        # Today's shape: the business-scoped user id and the phone number both present.
        payload = text_webhook(TEXTS[i % len(TEXTS)], wa_id=who, user_id=f"US.{who}",
                               name="Bench Member", message_id=f"wamid.{id_prefix}.{i:09d}",
                               timestamp=now, phone_number_id=phone_number_id)
        body = body_of(payload)
        built.append((body, sign(body, secret)))
    return built


class _Exchange(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a prepared request and reads the answer.

    Written on asyncio's protocol layer because the load must cost the machine as little as
    possible: the server under test shares these 2 cores with it, and aiohttp's client (about
    5× the CPU per request) capped every server measured here, the bare ceiling included.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.answer: asyncio.Future[int] | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionResetError("closed by the server")
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(self.lost)

    def exchange(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.buffer.clear()
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        status = _complete_status(self.buffer)
        if status is not None and self.answer is not None and not self.answer.done():
            self.answer.set_result(status)


def _complete_status(buffer: bytearray) -> int | None:
    """The status of a whole response in `buffer`, or None while it is still arriving."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).lower()
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17:line_end if line_end >= 0 else None])
        if len(buffer) < head_end + 4 + length:
            return None
    elif b"transfer-encoding: chunked" in head and not buffer.endswith(b"0\r\n\r\n"):
        return None
    return int(head[9:12])


def prepare(url: str, requests: list[tuple[bytes, str]]) -> list[bytes]:
    """Each request as the bytes on the wire, built before the clock starts."""
    parts = urlsplit(url)
    head = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\n")
    return [(head + f"X-Hub-Signature-256: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
             ).encode() + body for body, signature in requests]


async def drive(url: str, requests: list[tuple[bytes, str]], concurrency: int,
                duration: float, rate: float | None) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to send load to {parts.hostname}: loopback only")
    wire = prepare(url, requests)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    counter = itertools.count()

    async def connect() -> _Exchange:
        _, protocol = await loop.create_connection(_Exchange, parts.hostname, parts.port or 80)
        return protocol

    async def worker(conn: _Exchange) -> None:
        while True:
            i = next(counter)
            if i >= len(wire):
                break
            if rate:
                # Open loop: request i starts at its own time, however slow the answers.
                due = started + i / rate
                if due >= deadline:
                    break
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if time.perf_counter() >= deadline:
                break  # behind schedule or not: the duration bounds the run
            sent = time.perf_counter()
            try:
                if conn.lost is not None:
                    conn = await connect()
                status = await asyncio.wait_for(conn.exchange(wire[i]), 30)
            except (OSError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                if conn.transport is not None:
                    conn.transport.abort()  # a late answer must not be read as the next one
                continue
            statuses[status] += 1
            if status == 200:
                latencies.append(time.perf_counter() - sent)
        if conn.transport is not None:
            conn.transport.close()

    conns = await asyncio.gather(*(connect() for _ in range(concurrency)))
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    ok = statuses.get(200, 0)
    return {
        "url": url,
        "attempted": sum(statuses.values()) + sum(errors.values()),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": dict(errors),
        "elapsed_s": elapsed,
        "rps": ok / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * percentile(latencies, 50) if latencies else None,
        "p99_ms": 1000 * percentile(latencies, 99) if latencies else None,
        "max_ms": 1000 * max(latencies) if latencies else None,
        "concurrency": concurrency,
        "offered_rate": rate,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load",
                                     description="signed WhatsApp webhooks over loopback")
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=int, default=20_000, help="at most this many")
    parser.add_argument("--duration", type=float, default=10.0, help="at most this long (s)")
    parser.add_argument("--concurrency", type=int, default=64, help="connections")
    parser.add_argument("--rate", type=float, default=None, help="requests/s (default: flat out)")
    parser.add_argument("--senders", type=int, default=1000)
    parser.add_argument("--sender-prefix", default="1555")
    parser.add_argument("--id-prefix", default=f"load{os.getpid()}")
    parser.add_argument("--phone-number-id", default="111")
    parser.add_argument("--secret-env", default="BENCH_WA_APP_SECRET",
                        help="environment variable holding the app secret")
    args = parser.parse_args(argv)
    secret = os.environ.get(args.secret_env) or SECRETS["BENCH_WA_APP_SECRET"]
    count = args.requests
    if args.rate:  # no point building more than the duration can send
        count = min(count, int(args.rate * args.duration) + 1)
    requests = build_requests(count, secret, args.id_prefix, args.senders,
                              args.sender_prefix, args.phone_number_id)
    result = asyncio.run(drive(args.url, requests, args.concurrency, args.duration, args.rate))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
