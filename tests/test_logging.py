"""Structured logs: JSON lines and text, a request id per webhook, per inbox item and per
outbox row, secrets masked, and no phone number, name or message text in any line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.access_log import request_ids
from bot.logs import (
    MASK,
    JsonFormatter,
    TextFormatter,
    bind_request_id,
    configure,
    current_request_id,
    new_request_id,
    ref,
    request_context,
    resolve_format,
    sane_request_id,
)
from tests.fakes.graph_api import GraphApiStandIn, body_of, sign, status_webhook, text_webhook
from tests.procs import (
    APP_SECRET,
    NUMBER,
    TOKEN,
    VERIFY,
    WEBHOOK,
    BotProcess,
    bot_environ,
    free_port,
    supervised,
    write_config,
)

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The process's logging set up as `run` does, into a buffer; undone afterwards."""
    buffer = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure("debug", "json", stream=buffer, secrets_=["s3cret-app-value"])
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def record(msg: str = "hello %s", args: tuple[Any, ...] = ("world",),
           exc_info: Any = None, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("groundwork.test", logging.WARNING, __file__, 1, msg, args,
                            exc_info)
    rec.__dict__.update(extra)
    return rec


# --- formatters ----------------------------------------------------------------------------


def test_json_line_has_utc_time_level_logger_message_and_extra_fields() -> None:
    line = JsonFormatter().format(record(member_id=7, ms=1.5, request_id="abc"))
    entry = json.loads(line)
    assert ISO_UTC.match(entry["ts"])
    assert entry["level"] == "WARNING" and entry["logger"] == "groundwork.test"
    assert entry["msg"] == "hello world"
    assert entry["request_id"] == "abc"
    assert entry["member_id"] == 7 and entry["ms"] == 1.5
    assert "exc" not in entry


def test_json_leaves_request_id_out_when_none_is_bound() -> None:
    assert "request_id" not in json.loads(JsonFormatter().format(record(request_id=None)))


def test_json_renders_an_exception_and_stays_one_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys

        rec = record("failed on\ntwo lines", (), exc_info=sys.exc_info())
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "failed on\ntwo lines"
    assert entry["exc"].startswith("Traceback (most recent call last):")
    assert entry["exc"].endswith("ValueError: bad\nthing")


def test_json_survives_extras_it_cannot_serialise_and_never_lets_them_replace_a_field() -> None:
    entry = json.loads(JsonFormatter().format(record(level="forged", when=Path("/x"))))
    assert entry["level"] == "WARNING"
    assert entry["when"] == "/x"


def test_text_line_is_readable_with_the_id_the_fields_and_the_traceback() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        import sys

        rec = record(exc_info=sys.exc_info(), request_id="inbox-4", status=200)
    first, *rest = TextFormatter().format(rec).splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z WARNING groundwork.test "
                    r"\[inbox-4\] hello world status=200$", first)
    assert rest[0].startswith("Traceback") and rest[-1].startswith("ZeroDivisionError")


def test_configured_secrets_and_telegram_shaped_tokens_are_masked() -> None:
    token = "123456789:AAH" + "x" * 32
    fmt = JsonFormatter(["s3cret-app-value", "1"])  # too short to mask: left alone
    entry = json.loads(fmt.format(record(
        "GET https://api.telegram.org/bot%s/getUpdates failed (%s), retry 1",
        (token, "key s3cret-app-value"), detail="s3cret-app-value")))
    assert entry["msg"] == (f"GET https://api.telegram.org/bot{MASK}/getUpdates failed "
                            f"(key {MASK}), retry 1")
    assert entry["detail"] == MASK
    assert token not in TextFormatter().format(record("%s", (token,)))


def test_auto_format_is_text_on_a_terminal_and_json_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert resolve_format("auto", Terminal()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("TEXT", io.StringIO()) == "text"


# --- the request id ------------------------------------------------------------------------


def test_an_incoming_request_id_is_kept_only_when_short_and_plain() -> None:
    assert sane_request_id("req-1.A_b") == "req-1.A_b"
    assert sane_request_id("a" * 64) == "a" * 64
    for bad in (None, "", "a" * 65, "two words", "x\ny", "<script>", "ü", "a;b"):
        assert sane_request_id(bad) is None


def test_request_context_nests_and_restores(captured: io.StringIO) -> None:
    log = logging.getLogger("groundwork.test")
    with request_context("outer"):
        with request_context("inbox-42"):
            log.info("inner")
        log.info("outer again")
    log.info("unbound")
    ids = [(e["msg"], e.get("request_id")) for e in lines(captured)]
    assert ids == [("inner", "inbox-42"), ("outer again", "outer"), ("unbound", None)]


async def test_an_id_bound_in_a_gathered_task_ends_with_the_task(captured: io.StringIO) -> None:
    log = logging.getLogger("groundwork.test")

    async def send(outbox_id: int) -> None:
        bind_request_id(f"outbox-{outbox_id}")
        await asyncio.sleep(0)  # the sends interleave; each keeps its own id
        log.info("sent %d", outbox_id)

    with request_context("round"):
        await asyncio.gather(send(1), send(2))
        assert current_request_id() == "round"
    sent = {e["msg"]: e["request_id"] for e in lines(captured) if e["msg"].startswith("sent")}
    assert sent == {"sent 1": "outbox-1", "sent 2": "outbox-2"}


def test_a_reference_is_stable_short_and_hides_the_value() -> None:
    wamid = "wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzQTg="
    assert ref(wamid) == ref(wamid) and len(ref(wamid)) == 12
    assert ref(wamid) != ref(wamid + "x") and "MTU1" not in ref(wamid)


def test_configure_replaces_its_own_handler_only_and_keeps_sql_logs_off() -> None:
    root = logging.getLogger()
    level = root.level
    host = logging.NullHandler()  # e.g. pytest's own
    root.addHandler(host)
    first = configure("info", "json", stream=io.StringIO())
    try:
        second = configure("debug", "text", stream=io.StringIO())
        assert first not in root.handlers and second in root.handlers and host in root.handlers
        assert root.level == logging.DEBUG
        # SQL parameters carry encrypted addresses and reply texts: never logged.
        assert not logging.getLogger("tortoise.db_client").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        configure("info", "text", stream=io.StringIO(), floor=logging.WARNING)
        assert root.level == logging.WARNING  # chat, migrate, export-member
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_groundwork", False)]:
            root.removeHandler(handler)
        root.removeHandler(host)
        root.setLevel(level)
        logging.captureWarnings(False)


# --- the middleware, in a real aiohttp server --------------------------------------------


async def test_middleware_echoes_ids_logs_access_lines_and_hides_tracebacks(
        captured: io.StringIO) -> None:
    async def ok(_: web.Request) -> web.Response:
        logging.getLogger("groundwork.test").info("handling")
        return web.Response(text="ok")

    async def refuse(_: web.Request) -> web.Response:
        raise web.HTTPUnauthorized()

    async def crash(_: web.Request) -> web.Response:
        raise RuntimeError("boom")

    app = web.Application(middlewares=[request_ids])
    app.router.add_post("/webhooks/x", ok)
    app.router.add_post("/webhooks/locked", refuse)
    app.router.add_post("/webhooks/crash", crash)
    app.router.add_get("/healthz", ok)
    server = TestServer(app, host="127.0.0.1")
    # access_log=None as in App._serve: aiohttp's own access line prints the query string.
    await server.start_server(access_log=None)
    async with server, aiohttp.ClientSession() as http:
        async with http.post(server.make_url("/webhooks/x?hub.verify_token=t0ps3cret"),
                             headers={"X-Request-Id": "edge-7"}) as resp:
            assert resp.status == 200 and resp.headers["X-Request-Id"] == "edge-7"
        async with http.post(server.make_url("/webhooks/locked"),
                             headers={"X-Request-Id": "bad id"}) as resp:
            assert resp.status == 401
            generated = resp.headers["X-Request-Id"]
            assert re.match(r"^[0-9a-f]{16}$", generated)
        async with http.post(server.make_url("/webhooks/crash")) as resp:
            assert resp.status == 500
            assert await resp.text() == "internal error\n"  # no traceback to the caller
            crashed = resp.headers["X-Request-Id"]
        async with http.get(server.make_url("/healthz")) as resp:
            assert resp.status == 200
    entries = lines(captured)
    assert "t0ps3cret" not in captured.getvalue()  # the query string is never logged
    handling = next(e for e in entries if e["msg"] == "handling")
    assert handling["request_id"] == "edge-7"
    access = {e["request_id"]: e for e in entries if e["logger"] == "groundwork.http"
              and "status" in e}
    assert access["edge-7"]["path"] == "/webhooks/x"
    # Accepted webhooks are the bulk of the traffic: at debug, the refused ones at info.
    assert access["edge-7"]["method"] == "POST" and access["edge-7"]["level"] == "DEBUG"
    assert access["edge-7"]["status"] == 200 and access["edge-7"]["ms"] >= 0
    assert access[generated]["status"] == 401 and access[generated]["level"] == "INFO"
    assert access[crashed]["status"] == 500 and access[crashed]["level"] == "WARNING"
    error = next(e for e in entries if e["msg"].startswith("unhandled error"))
    assert error["request_id"] == crashed and "RuntimeError: boom" in error["exc"]
    probe = [e for e in entries if e.get("path") == "/healthz"]
    assert len(probe) == 1 and probe[0]["level"] == "DEBUG"


# --- the real process ------------------------------------------------------------------------

SENDER = "15550009876"
NAME = "Marisol Quintero"
TEXT = "meet behind the lantern depot at nine"


async def post(http: aiohttp.ClientSession, base: str, payload: Any,
               request_id: str | None = None) -> aiohttp.ClientResponse:
    body = body_of(payload)
    headers = {"Content-Type": "application/json",
               "X-Hub-Signature-256": sign(body, APP_SECRET)}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    async with http.post(base + WEBHOOK, data=body, headers=headers) as resp:
        await resp.read()
        return resp


async def test_run_writes_json_lines_that_follow_a_message_and_reveal_nobody(
        tmp_path: Path, db_url: str) -> None:
    async with GraphApiStandIn(token=TOKEN, phone_number_id=NUMBER) as graph:
        port = free_port()
        config = write_config(tmp_path / "config.yaml", graph_url=graph.base_url, port=port,
                              rate_per_second=100,
                              extra="logging:\n  level: debug\n  format: json\n")
        bot = BotProcess(config, port, bot_environ(db_url), tmp_path / "bot.log")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, \
                supervised(bot):
            await bot.start(http)
            # The reply (the notice) is refused as outside the 24-hour window: the delivery
            # worker logs a warning while bound to that outbox row.
            graph.fail_next(131047)
            resp = await post(http, bot.base, text_webhook(TEXT, wa_id=SENDER, name=NAME,
                                                           message_id="wamid.LOG1"),
                              request_id="meta-retry.7_A")
            assert resp.status == 200 and resp.headers["X-Request-Id"] == "meta-retry.7_A"
            resp = await post(http, bot.base, text_webhook(TEXT, wa_id=SENDER, name=NAME,
                                                           message_id="wamid.LOG1"),
                              request_id="not sane!")
            assert resp.status == 200
            generated = resp.headers["X-Request-Id"]
            assert generated != "not sane!" and sane_request_id(generated) == generated
            # A delivery report of a failure: the processor logs it while bound to the item.
            undeliverable = status_webhook("wamid.OUTX", "failed", recipient_id=SENDER,
                                           error_code=131026, error_title="Undeliverable")
            assert (await post(http, bot.base, undeliverable)).status == 200
            query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "9"}
            async with http.get(bot.base + WEBHOOK, params=query) as handshake:
                assert handshake.status == 200
            await graph.wait_for_requests(1, timeout=20)
            assert await bot.terminate() == 0, bot.tail()
        text = bot.log.read_text()

    entries = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    assert entries and all(ISO_UTC.match(e["ts"]) and e["level"] and e["logger"]
                           for e in entries)
    access = [e for e in entries if e["logger"] == "groundwork.http" and "status" in e]
    first = next(e for e in access if e.get("request_id") == "meta-retry.7_A")
    assert (first["method"], first["path"], first["status"], first["level"]) == (
        "POST", WEBHOOK, 200, "DEBUG")  # an accepted webhook: at debug (access_log._level)
    assert any(e.get("request_id") == generated for e in access)
    handshake_line = next(e for e in access if e["method"] == "GET" and e["path"] == WEBHOOK)
    assert handshake_line["status"] == 200 and handshake_line["level"] == "INFO"
    assert all(e["level"] == "DEBUG" for e in access if e["path"] == "/readyz")
    held = [e for e in entries if "held" in e["msg"]]
    assert held and all(e.get("request_id", "").startswith("outbox-") for e in held)
    report = [e for e in entries if "undeliverable" in e["msg"]]
    assert report and all(e.get("request_id", "").startswith("inbox-") for e in report)
    for private in (SENDER, NAME, TEXT, "lantern", APP_SECRET, TOKEN, VERIFY):
        assert private not in text, f"{private!r} is in the log"


def test_new_request_ids_are_distinct_and_sixteen_hex_digits() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in ids)
