"""Telegram transport against a real local Bot API stand-in (no mocks of project code)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.messages import (
    Attachment,
    Button,
    InboundEvent,
    InboundMessage,
    JoinRequest,
    MessageKind,
    OutboundMessage,
    SendErrorKind,
)
from bot.transports.base import RoomModeration, Transport, TransportUnavailable
from bot.transports.telegram import (
    SECRET_HEADER,
    TelegramTransport,
    callback_data,
    split_text,
    utf16_len,
)
from bot.transports.telegram_parse import events_from_json
from tests.fakes.bot_api import (
    BOT_USERNAME,
    DEFAULT_GROUP_ID,
    DEFAULT_USER_ID,
    BotApiStandIn,
    callback_query,
    chat_join_request,
    command,
    group_text,
    private_text,
)

TOKEN = "123:ABC"
SECRET = "s3cret-token_ok"


# -- test doubles ------------------------------------------------------------------


class RecordingSink:
    """Accepts events like the real inbox would; can be told to fail first."""

    def __init__(self, fail_times: int = 0) -> None:
        self.batches: list[list[InboundEvent]] = []
        self.attempts = 0
        self.fail_times = fail_times
        self._changed = asyncio.Condition()

    @property
    def events(self) -> list[InboundEvent]:
        return [event for batch in self.batches for event in batch]

    async def accept(self, events: Sequence[InboundEvent]) -> None:
        self.attempts += 1
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("database is down")
        async with self._changed:
            self.batches.append(list(events))
            self._changed.notify_all()

    async def wait_for_events(self, n: int) -> list[InboundEvent]:
        async with asyncio.timeout(5), self._changed:
            await self._changed.wait_for(lambda: len(self.events) >= n)
        return self.events


class RecordingSleep:
    """Stands in for asyncio.sleep: records the back-off asked for, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)  # yield only, so the loop stays cooperative


class SteppedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- harness -------------------------------------------------------------------------


@pytest.fixture
async def tg() -> AsyncIterator[BotApiStandIn]:
    async with BotApiStandIn(token=TOKEN) as stand_in:
        yield stand_in


@asynccontextmanager
async def polling(
    tg: BotApiStandIn, sink: RecordingSink, sleep: RecordingSleep | None = None, **kw: Any
) -> AsyncIterator[TelegramTransport]:
    transport = TelegramTransport(
        TOKEN, api_base_url=tg.base_url, poll_timeout=5, sleep=sleep or RecordingSleep(), **kw
    )
    await transport.start(sink)
    try:
        yield transport
    finally:
        await transport.stop()


@asynccontextmanager
async def webhook(
    tg: BotApiStandIn, sink: RecordingSink, **kw: Any
) -> AsyncIterator[tuple[TestClient[Any, Any], TelegramTransport]]:
    transport = TelegramTransport(
        TOKEN, mode="webhook", webhook_secret=SECRET, api_base_url=tg.base_url, **kw
    )
    await transport.start(sink)
    app = web.Application()
    app.add_routes(transport.routes())
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, transport
    finally:
        await client.close()
        await transport.stop()


@pytest.fixture
async def sender(tg: BotApiStandIn) -> AsyncIterator[TelegramTransport]:
    """A started transport that receives nothing, so only sends reach the stand-in."""
    async with webhook(tg, RecordingSink()) as (_, transport):
        yield transport


def out(text: str, to: str = str(DEFAULT_USER_ID), **kw: Any) -> OutboundMessage:
    return OutboundMessage(outbox_id=7, transport="telegram", to=to, text=text, **kw)


def offsets(tg: BotApiStandIn) -> list[Any]:
    return [call.params.get("offset") for call in tg.calls_to("getUpdates")]


def convert(update: dict[str, Any], username: str | None = BOT_USERNAME) -> list[InboundEvent]:
    return events_from_json({"update_id": 1, **update}, username)


# -- shape ------------------------------------------------------------------------


def test_is_a_transport_with_room_moderation() -> None:
    transport = TelegramTransport(TOKEN)
    assert isinstance(transport, Transport)
    assert transport.name == "telegram"
    caps = transport.capabilities
    assert (caps.rooms, caps.buttons, caps.files, caps.approve_join) == (True, True, True, True)
    assert caps.max_text_length == 4096
    moderation: RoomModeration = transport  # type-checks as the optional protocol
    assert moderation is transport
    assert transport.routes() == []  # polling serves no routes


def test_webhook_mode_requires_a_secret() -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        TelegramTransport(TOKEN, mode="webhook")


# -- polling --------------------------------------------------------------------------


async def test_a_refused_token_stops_the_start_with_a_plain_reason(tg: BotApiStandIn) -> None:
    transport = TelegramTransport("999:WRONG", api_base_url=tg.base_url)
    with pytest.raises(TransportUnavailable,
                       match=re.escape("refused the bot token; check transports.telegram.token")):
        await transport.start(RecordingSink())
    assert tg.calls_to("getUpdates") == []


async def test_a_refused_webhook_stops_the_start_with_telegrams_reason(
        tg: BotApiStandIn) -> None:
    tg.fail_next("setWebhook", 400, "Bad Request: bad webhook: HTTPS url must be provided")
    transport = TelegramTransport(TOKEN, mode="webhook", webhook_secret=SECRET,
                                  webhook_url="http://example.org/tg", api_base_url=tg.base_url)
    with pytest.raises(TransportUnavailable, match=r"refused the bot's settings: [Bb]ad webhook"):
        await transport.start(RecordingSink())


async def test_an_unreachable_bot_api_stops_the_start_naming_it() -> None:
    async with BotApiStandIn(token=TOKEN) as gone:
        base = gone.base_url  # closed on leaving: nothing listens there now
    transport = TelegramTransport(TOKEN, api_base_url=base, connect_timeout=2)
    with pytest.raises(TransportUnavailable,
                       match=re.escape(f"cannot reach Telegram's Bot API at {base}")):
        await transport.start(RecordingSink())


async def test_polling_delivers_private_and_group_messages(tg: BotApiStandIn) -> None:
    sink = RecordingSink()
    async with polling(tg, sink):
        tg.push_update(private_text("hello", message_id=10, date=1_700_000_000))
        last = tg.push_update(group_text("hi all", message_id=11, user_id=2002,
                                         first_name="Grace", last_name=None))
        private, group = await sink.wait_for_events(2)
        await tg.wait_until(lambda: last + 1 in offsets(tg))

    assert private == InboundMessage(
        transport="telegram", chat="1001", sender="1001", message_id="1001:10", text="hello",
        time=datetime.fromtimestamp(1_700_000_000, UTC), room=None, sender_name="Ada Lovelace",
    )
    assert isinstance(group, InboundMessage)
    assert (group.chat, group.room, group.sender) == (str(DEFAULT_GROUP_ID),) * 2 + ("2002",)
    assert group.message_id == f"{DEFAULT_GROUP_ID}:11"
    assert group.sender_name == "Grace"
    assert tg.pending_updates == []  # confirmed by the offset
    assert tg.calls_to("deleteWebhook"), "polling must clear a webhook first (409 otherwise)"
    first_poll = tg.calls_to("getUpdates")[0].params
    assert first_poll["allowed_updates"] == ["message", "callback_query", "chat_join_request"]
    assert first_poll["timeout"] == 5


async def test_offset_advances_only_after_the_sink_accepted(tg: BotApiStandIn) -> None:
    sink = RecordingSink(fail_times=1)
    sleep = RecordingSleep()
    update_id = tg.push_update(private_text("count me"))
    async with polling(tg, sink, sleep):
        (event,) = await sink.wait_for_events(1)
        await tg.wait_until(lambda: update_id + 1 in offsets(tg))

    assert isinstance(event, InboundMessage) and event.text == "count me"
    assert sink.attempts == 2
    # The retry asked again from the old position: the refused update was served again.
    polls = offsets(tg)
    assert polls[:2] == [None, None]
    assert sleep.delays[0] == 1.0  # backed off before retrying


async def test_polling_backs_off_exponentially_and_honours_retry_after(
    tg: BotApiStandIn,
) -> None:
    tg.fail_next("getUpdates", 502, "Bad Gateway", times=3)
    tg.fail_next("getUpdates", 429, "Too Many Requests: retry after 7", retry_after=7)
    sleep = RecordingSleep()
    sink = RecordingSink()
    async with polling(tg, sink, sleep, backoff_initial=0.5, backoff_max=1.5):
        tg.push_update(private_text("still here"))
        await sink.wait_for_events(1)
    assert sleep.delays == [0.5, 1.0, 1.5, 7.0]


async def test_stop_confirms_the_offset(tg: BotApiStandIn) -> None:
    sink = RecordingSink()
    async with polling(tg, sink):
        update_id = tg.push_update(private_text("one"))
        await sink.wait_for_events(1)
    last_poll = tg.calls_to("getUpdates")[-1].params
    assert (last_poll["offset"], last_poll["timeout"]) == (update_id + 1, 0)


async def test_an_unparseable_update_does_not_block_the_ones_after_it(
    tg: BotApiStandIn,
) -> None:
    sink = RecordingSink()
    tg.push_update({"message": {"chat": "not a chat", "date": "yesterday"}})
    good = tg.push_update(private_text("after the garbage"))
    async with polling(tg, sink):
        events = await sink.wait_for_events(1)
        await tg.wait_until(lambda: good + 1 in offsets(tg))
    assert [e.text for e in events if isinstance(e, InboundMessage)] == ["after the garbage"]


async def test_commands_addressed_to_us_are_normalized_others_ignored(
    tg: BotApiStandIn,
) -> None:
    sink = RecordingSink()
    # No bot_username given: it must come from getMe.
    async with polling(tg, sink) as transport:
        tg.push_update(command("help", "events", chat_id=DEFAULT_GROUP_ID))
        tg.push_update(command("help", chat_id=DEFAULT_GROUP_ID, bot_username="OtherBot"))
        tg.push_update(group_text("/rsvp@groundworkbot 12 yes"))  # any case
        tg.push_update(group_text("done"))
        events = await sink.wait_for_events(3)
        assert transport.bot_username == BOT_USERNAME
    assert [e.text for e in events if isinstance(e, InboundMessage)] == [
        "/help events", "/rsvp 12 yes", "done",
    ]


async def test_button_tap_becomes_a_button_message_and_is_answered(tg: BotApiStandIn) -> None:
    sink = RecordingSink()
    async with polling(tg, sink):
        tg.push_update(callback_query("/rsvp 12 yes", chat_id=DEFAULT_GROUP_ID, query_id="9876"))
        (event,) = await sink.wait_for_events(1)
        (answer,) = await tg.wait_for_calls("answerCallbackQuery", 1)
    assert isinstance(event, InboundMessage)
    assert event.kind is MessageKind.BUTTON
    assert (event.text, event.message_id) == ("/rsvp 12 yes", "cb:9876")
    assert (event.chat, event.room, event.sender) == (
        str(DEFAULT_GROUP_ID), str(DEFAULT_GROUP_ID), str(DEFAULT_USER_ID))
    assert answer.params["callback_query_id"] == "9876"


async def test_join_request_becomes_a_join_request(tg: BotApiStandIn) -> None:
    sink = RecordingSink()
    async with polling(tg, sink):
        tg.push_update(chat_join_request(user_id=3003, first_name="Rosa", last_name="Parks",
                                         date=1_700_000_000))
        (event,) = await sink.wait_for_events(1)
    assert event == JoinRequest(
        transport="telegram", room=str(DEFAULT_GROUP_ID), sender="3003",
        time=datetime.fromtimestamp(1_700_000_000, UTC), sender_name="Rosa Parks",
        event_id=f"join:{DEFAULT_GROUP_ID}:3003:1700000000",
    )


# -- pure conversion ------------------------------------------------------------------


def test_captions_count_as_text() -> None:
    update = private_text("x")
    message = update["message"]
    del message["text"]
    message["photo"] = [{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}]
    message["caption"] = "our flyer"
    (event,) = convert(update)
    assert isinstance(event, InboundMessage) and event.text == "our flyer"


@pytest.mark.parametrize(
    "update",
    [
        pytest.param({"edited_message": private_text("edited")["message"]}, id="edit"),
        pytest.param(
            {"message": {**private_text("x")["message"], "text": None,
                         "sticker": {"file_id": "s", "file_unique_id": "u", "width": 1,
                                     "height": 1, "is_animated": False, "is_video": False,
                                     "type": "regular"}}},
            id="sticker",
        ),
        pytest.param(
            {"message": {**private_text("x")["message"], "text": None,
                         "photo": [{"file_id": "p", "file_unique_id": "u", "width": 1,
                                    "height": 1}]}},
            id="photo-without-caption",
        ),
        pytest.param(
            {"message": {**group_text("x")["message"], "text": None,
                         "new_chat_members": [{"id": 5, "is_bot": False, "first_name": "N"}]}},
            id="service-message",
        ),
        pytest.param(
            {"message": {**group_text("hi")["message"],
                         "sender_chat": {"id": -100999, "type": "channel", "title": "C"}}},
            id="posted-as-a-channel",
        ),
        pytest.param(
            {"channel_post": {**group_text("x")["message"],
                              "chat": {"id": -100999, "type": "channel", "title": "C"}}},
            id="channel-post",
        ),
        pytest.param(
            {"message": {**group_text("hi")["message"],
                         "from": {"id": 9, "is_bot": True, "first_name": "B"}}},
            id="from-a-bot",
        ),
        pytest.param({"message": {**private_text("   ")["message"]}}, id="blank-text"),
    ],
)
def test_non_text_and_non_person_updates_are_skipped(update: dict[str, Any]) -> None:
    assert convert(update) == []


def test_another_bots_suffix_in_a_private_chat_is_just_noise() -> None:
    (event,) = convert(command("help", "me", bot_username="OtherBot"))
    assert isinstance(event, InboundMessage) and event.text == "/help me"


def test_unknown_own_username_accepts_any_suffix() -> None:
    (event,) = convert(command("help", chat_id=DEFAULT_GROUP_ID, bot_username="X_bot"), None)
    assert isinstance(event, InboundMessage) and event.text == "/help"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8,
)


def _shaped(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Dicts with some of the expected keys, each holding a plausible value or garbage."""
    return st.fixed_dictionaries({}, optional={k: v | _json for k, v in fields.items()}) | _json


_user = _shaped(id=st.integers(), is_bot=st.booleans(), first_name=st.text(max_size=5),
                last_name=st.text(max_size=5))
_chat = _shaped(id=st.integers(), title=st.text(max_size=5),
                type=st.sampled_from(["private", "group", "supergroup", "channel", "x"]))
_message = _shaped(message_id=st.integers(), date=st.integers(), chat=_chat, text=st.text(),
                   caption=st.text(max_size=5), sender_chat=_chat,
                   **{"from": _user})
garbage_updates = st.fixed_dictionaries(
    {},
    optional={
        "update_id": st.integers() | _json,
        "message": _message,
        "edited_message": _message,
        "callback_query": _shaped(id=st.text(max_size=5), data=st.text(max_size=5),
                                  chat_instance=st.text(max_size=3), message=_message,
                                  **{"from": _user}),
        "chat_join_request": _shaped(chat=_chat, date=st.integers(), user_chat_id=st.integers(),
                                     **{"from": _user}),
        "poll": _json,
    },
)


_well_formed = st.one_of(
    st.text().map(private_text),
    st.text().map(group_text),
    st.text(max_size=10).map(lambda args: command("help", args, chat_id=DEFAULT_GROUP_ID)),
    st.text(max_size=70).map(callback_query),
    st.integers(1, 10**12).map(lambda user: chat_join_request(user_id=user)),
)


@st.composite
def damaged_updates(draw: st.DrawFn) -> dict[str, Any]:
    """A real-looking update with a few keys deleted or replaced by garbage, at any depth."""
    update: dict[str, Any] = draw(_well_formed)
    for _ in range(draw(st.integers(0, 3))):
        node = update
        while node:
            key = draw(st.sampled_from(sorted(node)))
            if isinstance(node[key], dict) and node[key] and draw(st.booleans()):
                node = node[key]
                continue
            if draw(st.booleans()):
                del node[key]
            else:
                node[key] = draw(_json)
            break
    return update


updates = damaged_updates() | garbage_updates | _json


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(update=updates)
def test_conversion_never_raises(update: Any) -> None:
    events = events_from_json(update, BOT_USERNAME)
    for event in events:
        assert isinstance(event, InboundMessage | JoinRequest)
        assert event.time.tzinfo is not None


# -- webhook -------------------------------------------------------------------------


async def test_webhook_with_the_right_secret_hands_events_on(tg: BotApiStandIn) -> None:
    sink = RecordingSink()
    async with webhook(tg, sink) as (client, _):
        response = await client.post(
            "/webhooks/telegram", json={"update_id": 5, **private_text("via webhook")},
            headers={SECRET_HEADER: SECRET},
        )
        assert response.status == 200
    (event,) = sink.events
    assert isinstance(event, InboundMessage) and event.text == "via webhook"


@pytest.mark.parametrize("headers", [{SECRET_HEADER: "wrong"}, {}, {SECRET_HEADER: "s3cret"}])
async def test_webhook_rejects_a_wrong_or_missing_secret(
    tg: BotApiStandIn, headers: dict[str, str]
) -> None:
    sink = RecordingSink()
    async with webhook(tg, sink) as (client, _):
        good = await client.post("/webhooks/telegram", json={"update_id": 5, **private_text("x")},
                                 headers=headers)
        garbage = await client.post("/webhooks/telegram", data=b"{not json", headers=headers)
        assert (good.status, garbage.status) == (403, 403)  # nothing parsed before the check
    assert sink.attempts == 0


async def test_webhook_caps_the_body(tg: BotApiStandIn) -> None:
    sink = RecordingSink()
    async with webhook(tg, sink, max_body_bytes=1000) as (client, _):
        padded = {"update_id": 5, **private_text("x" * 2000)}
        declared = await client.post("/webhooks/telegram", json=padded,
                                     headers={SECRET_HEADER: SECRET})

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked upload
            for _ in range(5):
                yield b" " * 400

        streamed = await client.post("/webhooks/telegram", data=chunks(),
                                     headers={SECRET_HEADER: SECRET})
        assert (declared.status, streamed.status) == (413, 413)
    assert sink.attempts == 0


async def test_webhook_answers_500_only_when_the_sink_failed(tg: BotApiStandIn) -> None:
    sink = RecordingSink(fail_times=1)
    body = {"update_id": 5, **callback_query("/rsvp 1 yes", query_id="55")}
    async with webhook(tg, sink) as (client, _):
        first = await client.post("/webhooks/telegram", json=body, headers={SECRET_HEADER: SECRET})
        assert first.status == 500  # Telegram redelivers
        assert tg.calls_to("answerCallbackQuery") == []  # not acknowledged before accepted
        again = await client.post("/webhooks/telegram", json=body, headers={SECRET_HEADER: SECRET})
        assert again.status == 200
        (answer,) = await tg.wait_for_calls("answerCallbackQuery", 1)
    assert answer.params["callback_query_id"] == "55"
    assert len(sink.events) == 1


@pytest.mark.parametrize("body", [b"", b"{not json", b"[1, 2]", b'"x"', b'{"update_id": "x"}',
                                  b'{"message": {"chat": 5}}', b"\xff\xfe"])
async def test_webhook_drops_signed_garbage_with_200(tg: BotApiStandIn, body: bytes) -> None:
    sink = RecordingSink()
    async with webhook(tg, sink) as (client, _):
        response = await client.post("/webhooks/telegram", data=body,
                                     headers={SECRET_HEADER: SECRET})
        assert response.status == 200
    assert sink.events == []


async def test_webhook_registers_itself_when_given_a_url(tg: BotApiStandIn) -> None:
    async with webhook(tg, RecordingSink(), webhook_url="https://bot.example.org/wh"):
        (call,) = tg.calls_to("setWebhook")
    assert call.params["url"] == "https://bot.example.org/wh"
    assert call.params["secret_token"] == SECRET
    assert call.params["allowed_updates"] == ["message", "callback_query", "chat_join_request"]


class _WebhookHarness:
    """Stand-in, transport and server on one private loop, for a hypothesis test."""

    async def open(self) -> None:
        self.tg = BotApiStandIn(token=TOKEN)
        await self.tg.__aenter__()
        self.sink = RecordingSink()
        self._webhook = webhook(self.tg, self.sink)
        self.client, _ = await self._webhook.__aenter__()

    async def post(self, body: bytes) -> int:
        response = await self.client.post("/webhooks/telegram", data=body,
                                          headers={SECRET_HEADER: SECRET})
        return response.status

    async def close(self) -> None:
        await self._webhook.__aexit__(None, None, None)
        await self.tg.__aexit__(None, None, None)


def test_webhook_never_answers_500_for_signed_garbage() -> None:
    # One loop and one server for all examples: hypothesis cannot drive an async test per
    # example through function-scoped fixtures.
    loop = asyncio.new_event_loop()
    harness = _WebhookHarness()
    loop.run_until_complete(harness.open())
    try:

        @settings(max_examples=150, deadline=None)
        @given(body=st.binary(max_size=64) | updates.map(lambda v: json.dumps(v).encode()))
        def check(body: bytes) -> None:
            assert loop.run_until_complete(harness.post(body)) == 200

        check()
    finally:
        loop.run_until_complete(harness.close())
        loop.close()


# -- sending -------------------------------------------------------------------------


async def test_send_text(tg: BotApiStandIn, sender: TelegramTransport) -> None:
    result = await sender.send(out("Meeting moved to 7pm"))
    assert result.ok and result.provider_message_id == "1001:1"
    (call,) = tg.calls_to("sendMessage")
    assert call.params == {"chat_id": DEFAULT_USER_ID, "text": "Meeting moved to 7pm"}


async def test_send_splits_long_text_at_line_breaks(
    tg: BotApiStandIn, sender: TelegramTransport
) -> None:
    paragraphs = [f"{n} " + "word " * 700 for n in range(3)]  # ~3,500 chars each
    result = await sender.send(out("\n".join(paragraphs), buttons=(Button("/ok", "OK"),)))
    calls = tg.calls_to("sendMessage")
    assert result.ok and result.provider_message_id == f"1001:{len(calls)}"
    assert [c.params["text"] for c in calls] == paragraphs
    assert [("reply_markup" in c.params) for c in calls] == [False, False, True]


async def test_send_counts_length_as_telegram_does(
    tg: BotApiStandIn, sender: TelegramTransport
) -> None:
    result = await sender.send(out("✊🏽" * 1500))  # 4,500 code points, 7,500 UTF-16 units
    assert result.ok  # the stand-in rejects > 4096 UTF-16 units, as Telegram does
    texts = [c.params["text"] for c in tg.calls_to("sendMessage")]
    assert len(texts) == 2 and "".join(texts) == "✊🏽" * 1500


async def test_send_buttons(tg: BotApiStandIn, sender: TelegramTransport) -> None:
    long_id = "/rsvp " + "é" * 100  # 206 bytes: must be cut to 64 without breaking a char
    result = await sender.send(out("Coming?", buttons=(Button("/rsvp 12 yes", "Yes"),
                                                       Button(long_id, "Maybe"))))
    assert result.ok
    (call,) = tg.calls_to("sendMessage")
    rows = call.params["reply_markup"]["inline_keyboard"]
    assert rows[0] == [{"text": "Yes", "callback_data": "/rsvp 12 yes"}]
    cut = rows[1][0]["callback_data"]
    assert long_id.startswith(cut) and len(cut.encode()) <= 64


async def test_send_document(tg: BotApiStandIn, sender: TelegramTransport) -> None:
    ics = Attachment("picnic.ics", "text/calendar", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    result = await sender.send(out("Add it to your calendar", attachment=ics))
    assert result.ok
    (call,) = tg.calls_to("sendDocument")
    assert call.params["chat_id"] == DEFAULT_USER_ID
    assert call.params["caption"] == "Add it to your calendar"
    assert call.params["document"] == {"filename": "picnic.ics", "content_type": "text/calendar",
                                       "data": ics.data}
    assert tg.calls_to("sendMessage") == []


async def test_send_document_with_text_too_long_for_a_caption(
    tg: BotApiStandIn, sender: TelegramTransport
) -> None:
    ics = Attachment("a.ics", "text/calendar", b"BEGIN:VCALENDAR")
    result = await sender.send(out("details " * 200, attachment=ics))
    assert result.ok
    assert [c.method for c in tg.calls if c.method.startswith("send")] == [
        "sendMessage", "sendDocument"]
    assert "caption" not in tg.calls_to("sendDocument")[0].params


async def test_send_nothing_is_permanent(tg: BotApiStandIn, sender: TelegramTransport) -> None:
    result = await sender.send(out("  \n "))
    assert result.error_kind is SendErrorKind.PERMANENT
    assert tg.calls_to("sendMessage") == []


@pytest.mark.parametrize(
    ("code", "description", "retry_after", "kind"),
    [
        (429, "Too Many Requests: retry after 3", 3, SendErrorKind.RATE_LIMITED),
        (429, "Too Many Requests", None, SendErrorKind.RATE_LIMITED),
        (403, "Forbidden: bot was blocked by the user", None, SendErrorKind.USER_STOPPED),
        (403, "Forbidden: bot was kicked from the supergroup chat", None,
         SendErrorKind.USER_STOPPED),
        (400, "Bad Request: chat not found", None, SendErrorKind.PERMANENT),
        (500, "Internal Server Error", None, SendErrorKind.TRANSIENT),
        (502, "Bad Gateway", None, SendErrorKind.TRANSIENT),
    ],
)
async def test_send_errors_are_mapped(
    tg: BotApiStandIn,
    sender: TelegramTransport,
    code: int,
    description: str,
    retry_after: int | None,
    kind: SendErrorKind,
) -> None:
    tg.fail_next("sendMessage", code, description, retry_after=retry_after)
    result = await sender.send(out("hello"))
    assert not result.ok and result.error_kind is kind
    if retry_after is not None:
        assert (result.error_code, result.retry_after) == (429, 3.0)


async def test_send_to_a_migrated_group_is_permanent_and_says_where(
    tg: BotApiStandIn, sender: TelegramTransport
) -> None:
    tg.fail_next("sendMessage", 400, "Bad Request: group chat was upgraded to a supergroup chat",
                 migrate_to_chat_id=-100777)
    result = await sender.send(out("hello", to="-777"))
    assert result.error_kind is SendErrorKind.PERMANENT
    assert "-100777" in result.error_title


async def test_send_to_an_unknown_chat_name_is_permanent(
    tg: BotApiStandIn, sender: TelegramTransport
) -> None:
    result = await sender.send(out("hello", to="@nosuchchannel"))
    assert result.error_kind is SendErrorKind.PERMANENT and result.error_code == 400
    assert tg.calls_to("sendMessage")[0].params["chat_id"] == "@nosuchchannel"


async def test_send_when_telegram_is_unreachable_is_transient() -> None:
    async with BotApiStandIn(token=TOKEN) as tg:
        transport = TelegramTransport(TOKEN, mode="webhook", webhook_secret=SECRET,
                                      api_base_url=tg.base_url)
        await transport.start(RecordingSink())
    try:
        result = await transport.send(out("hello"))  # the stand-in's port is closed now
    finally:
        await transport.stop()
    assert result.error_kind is SendErrorKind.TRANSIENT


async def test_stand_in_rate_rules_answer_429() -> None:
    clock = SteppedClock()
    async with BotApiStandIn(token=TOKEN, clock=clock) as tg:
        tg.enforce_rate_limits()
        async with webhook(tg, RecordingSink()) as (_, transport):
            assert (await transport.send(out("one"))).ok
            second = await transport.send(out("two"))
            assert second.error_kind is SendErrorKind.RATE_LIMITED
            assert second.retry_after == 1.0
            clock.now += 1.0
            assert (await transport.send(out("two again"))).ok

            group = str(DEFAULT_GROUP_ID)
            for _ in range(20):
                clock.now += 1.0
                assert (await transport.send(out("news", to=group))).ok
            clock.now += 1.0
            per_group = await transport.send(out("news", to=group))
            assert per_group.error_kind is SendErrorKind.RATE_LIMITED
            assert per_group.retry_after is not None and per_group.retry_after > 30

            clock.now += 100.0
            results = [await transport.send(out("hi", to=str(5000 + n))) for n in range(31)]
            assert [r.ok for r in results] == [True] * 30 + [False]


# -- moderation ------------------------------------------------------------------------


async def test_delete_message(tg: BotApiStandIn, sender: TelegramTransport) -> None:
    room = str(DEFAULT_GROUP_ID)
    assert await sender.delete_message(room, f"{room}:55") is True
    (call,) = tg.calls_to("deleteMessage")
    assert call.params == {"chat_id": DEFAULT_GROUP_ID, "message_id": 55}
    assert await sender.delete_message(room, "-100999:55") is False  # not in this room
    assert len(tg.calls_to("deleteMessage")) == 1


async def test_restrict_member_mutes_until(tg: BotApiStandIn, sender: TelegramTransport) -> None:
    until = datetime.now(UTC) + timedelta(hours=1)
    assert await sender.restrict_member(str(DEFAULT_GROUP_ID), "3003", until) is True
    (call,) = tg.calls_to("restrictChatMember")
    assert (call.params["chat_id"], call.params["user_id"]) == (DEFAULT_GROUP_ID, 3003)
    assert call.params["until_date"] == int(until.timestamp())
    assert call.params["permissions"] and not any(call.params["permissions"].values())


async def test_a_short_mute_never_becomes_permanent(
    tg: BotApiStandIn, sender: TelegramTransport
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=5)  # Telegram reads < 30 s as "forever"
    assert await sender.restrict_member(str(DEFAULT_GROUP_ID), "3003", soon)
    until_date = tg.calls_to("restrictChatMember")[0].params["until_date"]
    assert until_date >= datetime.now(UTC).timestamp() + 30


async def test_remove_member_bans_for_a_while(
    tg: BotApiStandIn, sender: TelegramTransport
) -> None:
    assert await sender.remove_member(str(DEFAULT_GROUP_ID), "3003") is True
    (call,) = tg.calls_to("banChatMember")
    week = datetime.now(UTC) + timedelta(days=7)
    assert abs(call.params["until_date"] - week.timestamp()) < 60
    assert call.params["revoke_messages"] is False
    assert tg.calls_to("unbanChatMember") == []


async def test_lifting_a_mute_grants_permissions_and_lifting_a_ban_unbans(
    tg: BotApiStandIn, sender: TelegramTransport
) -> None:
    room = str(DEFAULT_GROUP_ID)
    assert await sender.unrestrict_member(room, "3003")
    (call,) = tg.calls_to("restrictChatMember")
    assert call.params["user_id"] == 3003 and all(call.params["permissions"].values())
    assert "until_date" not in call.params  # no end: the restriction is simply gone
    assert await sender.unban_member(room, "3003")
    (unban,) = tg.calls_to("unbanChatMember")
    assert (unban.params["user_id"], unban.params["only_if_banned"]) == (3003, True)


async def test_approve_and_decline_join(tg: BotApiStandIn, sender: TelegramTransport) -> None:
    room = str(DEFAULT_GROUP_ID)
    assert await sender.approve_join(room, "3003", approve=True)
    assert await sender.approve_join(room, "3004", approve=False)
    assert tg.calls_to("approveChatJoinRequest")[0].params["user_id"] == 3003
    assert tg.calls_to("declineChatJoinRequest")[0].params["user_id"] == 3004


async def test_moderation_failures_return_false(
    tg: BotApiStandIn, sender: TelegramTransport
) -> None:
    tg.fail_next("banChatMember", 400, "Bad Request: not enough rights to restrict/unrestrict "
                                       "chat member")
    assert await sender.remove_member(str(DEFAULT_GROUP_ID), "3003") is False
    assert await sender.approve_join(str(DEFAULT_GROUP_ID), "not-a-user", True) is False
    assert await sender.delete_message("1001", "1001:abc") is False


# -- text helpers ------------------------------------------------------------------------


def test_callback_data_is_cut_on_a_character_boundary() -> None:
    assert callback_data("/rsvp 1 yes") == "/rsvp 1 yes"
    cut = callback_data("€" * 30)  # 3 bytes each: 21 fit
    assert cut == "€" * 21


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("ab ✊🏽\n"), max_size=400),
       limit=st.integers(min_value=2, max_value=40))
def test_split_text_respects_the_limit_and_keeps_the_words(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert all(utf16_len(part) <= limit and part.strip() for part in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())
