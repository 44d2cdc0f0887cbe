"""The WhatsApp transport against real local servers: its own webhook routes, and the
Graph API stand-in for everything it sends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.messages import (
    Attachment,
    Button,
    DeliveryState,
    DeliveryStatus,
    GroupChange,
    GroupUpdate,
    InboundEvent,
    InboundMessage,
    JoinRequest,
    MessageKind,
    OutboundMessage,
    PreferenceChange,
    SendErrorKind,
)
from bot.transports.base import Transport
from bot.transports.whatsapp import (
    GROUP_PARTICIPANT_CAP,
    WhatsAppGroupError,
    WhatsAppGroupPending,
    WhatsAppTransport,
    parse_webhook,
    split_text,
)
from tests.fakes.graph_api import (
    GraphApiStandIn,
    body_of,
    button_webhook,
    sign,
    status_webhook,
    text_webhook,
    user_preferences_webhook,
)
from tests.procs import free_port

FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp"
FIXTURE_NUMBER = "106540352242922"  # phone_number_id in the fixtures (Meta's sample)
NUMBER = "111"
TOKEN = "T"
SECRET = "app-secret"
VERIFY = "verify-me"
BSUID = "US.13491208655302741918"
WA_ID = "16505551234"


# -- helpers ---------------------------------------------------------------------


class RecordingSink:
    """Test double of the inbox: records what it accepted; can hold or fail the call."""

    def __init__(self, *, fail: bool = False, hold: asyncio.Event | None = None) -> None:
        self.batches: list[list[InboundEvent]] = []
        self.called = asyncio.Event()
        self._fail = fail
        self._hold = hold

    async def accept(self, events: Sequence[InboundEvent]) -> None:
        self.called.set()
        if self._hold is not None:
            await self._hold.wait()
        if self._fail:
            raise RuntimeError("inbox unavailable")
        self.batches.append(list(events))

    @property
    def events(self) -> list[InboundEvent]:
        return [event for batch in self.batches for event in batch]


def make_transport(number: str = NUMBER, **kwargs: Any) -> WhatsAppTransport:
    return WhatsAppTransport(number, TOKEN, SECRET, VERIFY, **kwargs)


@contextlib.asynccontextmanager
async def serving(transport: WhatsAppTransport, sink: RecordingSink
                  ) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The transport's webhook routes on a real server at 127.0.0.1."""
    await transport.start(sink)
    app = web.Application()
    app.add_routes(transport.routes())
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield client
    finally:
        await transport.stop()


async def post_signed(client: TestClient[web.Request, web.Application], payload: Any, *,
                      secret: str = SECRET) -> aiohttp.ClientResponse:
    body = payload if isinstance(payload, bytes) else body_of(payload)
    return await client.post("/webhooks/whatsapp", data=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)})


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def message(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {"outbox_id": 1, "transport": "whatsapp", "to": WA_ID,
                              "text": "Meeting at 7", "to_kind": "wa_id"}
    fields.update(overrides)
    return OutboundMessage(**fields)


@pytest.fixture
async def graph() -> AsyncIterator[GraphApiStandIn]:
    async with GraphApiStandIn(token=TOKEN, phone_number_id=NUMBER) as stand_in:
        yield stand_in


@pytest.fixture
async def transport(graph: GraphApiStandIn) -> AsyncIterator[WhatsAppTransport]:
    wa = make_transport(api_base_url=graph.base_url, template=None, timeout_seconds=5)
    await wa.start(RecordingSink())
    yield wa
    await wa.stop()


# -- the seam ----------------------------------------------------------------------


def test_transport_satisfies_the_transport_protocol() -> None:
    wa = make_transport()
    assert isinstance(wa, Transport)
    assert wa.name == "whatsapp"
    assert (wa.capabilities.rooms, wa.capabilities.buttons, wa.capabilities.files) == (
        False, True, True)
    assert wa.capabilities.max_text_length == 4096
    assert GROUP_PARTICIPANT_CAP == 8


# -- webhook handshake -----------------------------------------------------------------


async def test_handshake_with_our_verify_token_echoes_the_challenge() -> None:
    async with serving(make_transport(), RecordingSink()) as client:
        resp = await client.get("/webhooks/whatsapp", params={
            "hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"})
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert await resp.text() == "1158201444"


@pytest.mark.parametrize("params", [
    {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "x"},
    {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "x"},
    {"hub.challenge": "x"},
    {"hub.mode": "subscribe", "hub.verify_token": "vérify", "hub.challenge": "x"},
])
async def test_handshake_with_wrong_mode_or_token_is_forbidden(params: dict[str, str]) -> None:
    async with serving(make_transport(), RecordingSink()) as client:
        resp = await client.get("/webhooks/whatsapp", params=params)
        assert resp.status == 403


# -- webhook events --------------------------------------------------------------------


async def test_signed_event_reaches_the_sink_before_the_200() -> None:
    hold = asyncio.Event()
    sink = RecordingSink(hold=hold)
    async with serving(make_transport(), sink) as client:
        reply = asyncio.create_task(post_signed(client, text_webhook("hello")))
        await sink.called.wait()
        assert not reply.done(), "answered before the sink had stored the events"
        hold.set()
        resp = await reply
        assert resp.status == 200
    [event] = sink.events
    assert isinstance(event, InboundMessage)
    assert (event.text, event.sender, event.sender_kind) == ("hello", WA_ID, "wa_id")


async def test_sink_failure_answers_500_so_meta_redelivers() -> None:
    sink = RecordingSink(fail=True)
    async with serving(make_transport(), sink) as client:
        resp = await post_signed(client, text_webhook("hello"))
        assert resp.status == 500
    assert sink.called.is_set()


@pytest.mark.parametrize("headers", [
    {},
    {"X-Hub-Signature-256": "sha256=" + "0" * 64},
    {"X-Hub-Signature-256": "md5=abc"},
    {"X-Hub-Signature-256": "sha256=ünïcode"},
])
async def test_missing_or_wrong_signature_is_rejected_and_nothing_handed_on(
        headers: dict[str, str]) -> None:
    sink = RecordingSink()
    async with serving(make_transport(), sink) as client:
        resp = await client.post("/webhooks/whatsapp", data=body_of(text_webhook("hi")),
                                 headers={"Content-Type": "application/json", **headers})
        assert resp.status == 401
    assert not sink.called.is_set()


async def test_body_signed_with_another_secret_is_rejected() -> None:
    sink = RecordingSink()
    async with serving(make_transport(), sink) as client:
        resp = await post_signed(client, text_webhook("hi"), secret="not-ours")
        assert resp.status == 401
    assert not sink.called.is_set()


async def test_oversize_body_with_content_length_is_413() -> None:
    sink = RecordingSink()
    async with serving(make_transport(max_body_bytes=1024), sink) as client:
        resp = await post_signed(client, text_webhook("x" * 2000))
        assert resp.status == 413
    assert not sink.called.is_set()


async def test_oversize_chunked_body_is_cut_off_at_the_cap() -> None:
    sink = RecordingSink()
    body = body_of(text_webhook("x" * 5000))

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 500):
            yield body[i:i + 500]

    async with serving(make_transport(max_body_bytes=1024), sink) as client:
        resp = await client.post("/webhooks/whatsapp", data=chunks(), headers={
            "X-Hub-Signature-256": sign(body, SECRET)})
        assert resp.status == 413
    assert not sink.called.is_set()


async def test_events_for_another_phone_number_are_ignored() -> None:
    sink = RecordingSink()
    async with serving(make_transport(), sink) as client:
        resp = await post_signed(client, text_webhook("hi", phone_number_id="999"))
        assert resp.status == 200
    assert not sink.called.is_set()


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe\x00", b"[" * 50_000])
async def test_signed_but_unparseable_body_is_acknowledged_and_dropped(body: bytes) -> None:
    sink = RecordingSink()
    async with serving(make_transport(), sink) as client:
        resp = await post_signed(client, body)
        assert resp.status == 200
    assert not sink.called.is_set()


async def test_new_identity_shapes_arrive_with_bsuid_first() -> None:
    sink = RecordingSink()
    async with serving(make_transport(), sink) as client:
        for payload in (text_webhook("a", user_id=BSUID, wa_id=None),
                        text_webhook("b", user_id=BSUID),
                        button_webhook("/rsvp 1 yes", user_id=BSUID, wa_id=None),
                        status_webhook("wamid.X", "read", recipient_id=None,
                                       recipient_user_id=BSUID),
                        user_preferences_webhook("stop", user_id=BSUID, wa_id=None)):
            assert (await post_signed(client, payload)).status == 200
    a, b, button, status, preference = sink.events
    assert isinstance(a, InboundMessage) and isinstance(b, InboundMessage)
    assert (a.sender, a.sender_kind, a.sender_alt) == (BSUID, "bsuid", None)
    assert (b.sender, b.sender_kind, b.sender_alt) == (BSUID, "bsuid", WA_ID)
    assert isinstance(button, InboundMessage) and button.kind is MessageKind.BUTTON
    assert isinstance(status, DeliveryStatus) and status.recipient == BSUID
    assert isinstance(preference, PreferenceChange)
    assert (preference.sender, preference.marketing_opt_in) == (BSUID, False)


# -- parser on fixtures ----------------------------------------------------------------


def _msg(message_id: str, text: str, ts: int, *, sender: str = WA_ID, kind: str = "wa_id",
         alt: str | None = None, name: str | None = "Sheena Nelson",
         button: bool = False, room: str | None = None) -> InboundMessage:
    return InboundMessage(
        transport="whatsapp", chat=room or sender, sender=sender, message_id=message_id,
        text=text, time=at(ts), kind=MessageKind.BUTTON if button else MessageKind.TEXT,
        room=room, sender_name=name, sender_alt=alt, sender_kind=kind)


GROUP_ID = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"
EXPECTED: dict[str, list[InboundEvent]] = {
    "text_wa_id_only.json": [_msg(
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
        "Does it come in another color?", 1749416383)],
    "text_bsuid_and_wa_id.json": [_msg(
        "wamid.BSUIDANDPHONE0001", "When is the meeting?", 1749416390, sender=BSUID,
        kind="bsuid", alt=WA_ID, name="Pablo M.")],
    "text_bsuid_only.json": [_msg(
        "wamid.BSUIDONLY0001", "STOP", 1749416400, sender=BSUID, kind="bsuid")],
    "interactive_button_reply.json": [_msg(
        "wamid.BUTTONREPLY0001", "/rsvp 12 yes", 1749416500, sender=BSUID, kind="bsuid",
        alt=WA_ID, name="Pablo M.", button=True)],
    "interactive_list_reply.json": [_msg(
        "wamid.LISTREPLY0001", "/join 7", 1749416600, button=True)],
    "template_quick_reply_button.json": [_msg(
        "wamid.QUICKREPLY0001", "/resume", 1749416700, button=True)],
    "group_text.json": [_msg(
        "wamid.GROUP0001", "Agenda for Thursday?", 1749417000, sender=BSUID, kind="bsuid",
        alt=WA_ID, name="Pablo M.", room=GROUP_ID)],
    "status_delivered.json": [DeliveryStatus(
        "whatsapp", "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
        DeliveryState.DELIVERED, at(1750030073), recipient=WA_ID)],
    "status_read_bsuid_only.json": [DeliveryStatus(
        "whatsapp", "wamid.READ0001", DeliveryState.READ, at(1750030100), recipient=BSUID)],
    "status_failed.json": [DeliveryStatus(
        "whatsapp", "wamid.FAILED0001", DeliveryState.FAILED, at(1750030073), recipient=WA_ID,
        error_code=131049,
        error_title="This message was not delivered to maintain healthy ecosystem engagement.")],
    "user_preferences_stop.json": [PreferenceChange(
        "whatsapp", BSUID, False, at(1731705721), sender_kind="bsuid",
        event_id=f"pref:{BSUID}:stop:1731705721")],
    "user_preferences_resume_wa_id_only.json": [PreferenceChange(
        "whatsapp", WA_ID, True, at(1731705800), sender_kind="wa_id",
        event_id=f"pref:{WA_ID}:resume:1731705800")],
    "unknown_types.json": [],
    "other_phone_number.json": [],
    # Groups API webhooks: join requests for the join hook, the rest as GroupUpdate.
    "group_join_request_created.json": [JoinRequest(
        "whatsapp", GROUP_ID, BSUID, at(1750030300), sender_name="Pablo M.",
        event_id="MTIzNDU2Nzg5MDEyMzQ1Ng", sender_alt=WA_ID)],
    "group_join_request_bsuid_only.json": [JoinRequest(
        "whatsapp", GROUP_ID, BSUID, at(1750030310), event_id="OTg3NjU0MzIxMDk4NzY1NA")],
    "group_join_request_revoked.json": [GroupUpdate(
        "whatsapp", GROUP_ID, GroupChange.JOIN_REVOKED, at(1750030320),
        detail="MTIzNDU2Nzg5MDEyMzQ1Ng",
        event_id="join_revoked:MTIzNDU2Nzg5MDEyMzQ1Ng:1750030320")],
    "group_create_succeeded.json": [GroupUpdate(
        "whatsapp", GROUP_ID, GroupChange.CREATED, at(1750030200), request_id="REQ.9f3c2a77",
        subject="Riverside core team", detail="https://chat.whatsapp.com/G7xKq2PzLm4Rt9",
        event_id="group_create:REQ.9f3c2a77:1750030200")],
    "group_create_failed.json": [GroupUpdate(
        "whatsapp", "", GroupChange.CREATE_FAILED, at(1750030210), request_id="REQ.1b2d4e88",
        subject="Riverside core team",
        detail="This business phone number is not eligible for the Groups API.",
        event_id="group_create:REQ.1b2d4e88:1750030210")],
    "group_participant_left.json": [GroupUpdate(
        "whatsapp", GROUP_ID, GroupChange.LEFT, at(1750030400), users=(WA_ID,),
        detail="participant", event_id=f"left:{GROUP_ID}::1750030400")],
    "group_participants_removed.json": [GroupUpdate(
        "whatsapp", GROUP_ID, GroupChange.LEFT, at(1750030410), users=(BSUID,),
        detail="business", event_id=f"left:{GROUP_ID}:REQ.5e6f7a99:1750030410")],
    # participants added and settings changes are logged and left alone
    "group_delete_and_unknown_group_events.json": [GroupUpdate(
        "whatsapp", GROUP_ID, GroupChange.DELETED, at(1750030500), request_id="REQ.0a0b0c0d",
        event_id=f"group_delete:{GROUP_ID}:1750030500")],
}


def test_every_fixture_has_an_expectation() -> None:
    on_disk = {path.name for path in FIXTURES.glob("*.json")}
    assert on_disk == set(EXPECTED) | {"mixed_batch_with_garbage.json"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parser_turns_each_fixture_into_the_expected_events(name: str) -> None:
    assert parse_webhook(load(name), FIXTURE_NUMBER) == EXPECTED[name]


def test_parser_keeps_the_raw_message_dict() -> None:
    payload = load("text_bsuid_only.json")
    [event] = parse_webhook(payload, FIXTURE_NUMBER)
    assert isinstance(event, InboundMessage)
    assert event.raw == payload["entry"][0]["changes"][0]["value"]["messages"][0]


def test_parser_skips_garbage_items_and_keeps_the_good_ones() -> None:
    events = parse_webhook(load("mixed_batch_with_garbage.json"), FIXTURE_NUMBER)
    first, sent = events
    assert isinstance(first, InboundMessage) and first.text == "first"
    # "not-a-time" falls back to now, still aware UTC
    assert first.time.tzinfo is not None
    assert abs(datetime.now(UTC) - first.time) < timedelta(minutes=1)
    assert isinstance(sent, DeliveryStatus) and sent.state is DeliveryState.SENT


# -- parser never raises -------------------------------------------------------------

_leaves = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(["111", "text", "interactive", "button", "button_reply",
                              "list_reply", "failed", "read", "stop", "resume",
                              "marketing_messages", "1749416383", "9" * 5000]))
_KEYS = ["object", "entry", "changes", "value", "field", "metadata", "phone_number_id",
         "messages", "statuses", "contacts", "user_preferences", "errors", "from",
         "from_user_id", "user_id", "wa_id", "id", "type", "text", "body", "interactive",
         "button_reply", "list_reply", "button", "payload", "profile", "name", "group_id",
         "timestamp", "status", "recipient_id", "recipient_user_id", "code", "title",
         "category", "groups", "group_id", "join_request_id", "request_id", "invite_link",
         "removed_participants", "input", "initiated_by", "group_create", "group_delete",
         "group_join_request_created", "group_join_request_revoked",
         "group_participants_remove"]
json_values = st.recursive(
    _leaves,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=5), children, max_size=6),
    max_leaves=40,
)


class _ErrorLog(logging.Handler):
    """Collects error records: the parser's last-resort guard logs one when an item
    parser crashed, which would otherwise hide a bug from the property tests."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def no_parser_crashes() -> Iterator[None]:
    handler = _ErrorLog()
    parser_log = logging.getLogger("bot.transports.whatsapp_parse")
    parser_log.addHandler(handler)
    try:
        yield
    finally:
        parser_log.removeHandler(handler)
    assert not handler.records, handler.records[0].getMessage()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(payload=json_values)
def test_parser_never_raises_on_any_json_value(payload: Any) -> None:
    with no_parser_crashes():
        events = parse_webhook(payload, "111")
    assert isinstance(events, list)


def _maybe(*keys_and_values: tuple[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Objects with any subset of these keys, each value well-typed or garbage."""
    optional = {key: value | json_values for key, value in keys_and_values}
    return st.fixed_dictionaries({}, optional=optional)


_ids = st.sampled_from(["wamid.1", BSUID, WA_ID, ""])
_reply = _maybe(("id", _ids), ("title", st.text(max_size=5)))
_message_like = _maybe(
    ("id", _ids), ("from", _ids), ("from_user_id", _ids), ("group_id", _ids),
    ("timestamp", st.sampled_from(["1749416383", 1749416383, "-1", 10**30])),
    ("type", st.sampled_from(["text", "interactive", "button", "image"])),
    ("text", _maybe(("body", st.text(max_size=5)))),
    ("interactive", _maybe(("type", st.sampled_from(["button_reply", "list_reply", "nfm"])),
                           ("button_reply", _reply), ("list_reply", _reply))),
    ("button", _maybe(("payload", st.text(max_size=5)), ("text", st.text(max_size=5)))),
)
_status_like = _maybe(
    ("id", _ids), ("status", st.sampled_from(["sent", "delivered", "read", "failed", "x"])),
    ("recipient_id", _ids), ("recipient_user_id", _ids), ("timestamp", _ids),
    ("errors", st.lists(_maybe(("code", st.sampled_from([131049, "131026", "x"])),
                               ("title", st.text(max_size=5))), max_size=2)),
)
_preference_like = _maybe(
    ("wa_id", _ids), ("user_id", _ids), ("category", st.just("marketing_messages")),
    ("value", st.sampled_from(["stop", "resume", "maybe"])), ("timestamp", _ids),
)
_contact_like = _maybe(("wa_id", _ids), ("user_id", _ids),
                       ("profile", _maybe(("name", st.text(max_size=5)))))


@settings(max_examples=400, deadline=None)
@given(messages=st.lists(_message_like | json_values, max_size=3),
       statuses=st.lists(_status_like | json_values, max_size=3),
       preferences=st.lists(_preference_like | json_values, max_size=2),
       contacts=st.lists(_contact_like | json_values, max_size=2))
def test_parser_never_raises_on_webhook_shaped_garbage(
        messages: list[Any], statuses: list[Any], preferences: list[Any],
        contacts: list[Any]) -> None:
    wrapped = {"entry": [{"changes": [{"value": {
        "metadata": {"phone_number_id": "111"}, "messages": messages, "statuses": statuses,
        "contacts": contacts, "user_preferences": preferences}}]}]}
    with no_parser_crashes():
        events = parse_webhook(wrapped, "111")
    assert isinstance(events, list)


_group_like = _maybe(
    ("type", st.sampled_from(["group_create", "group_delete", "group_join_request_created",
                              "group_join_request_revoked", "group_participants_remove",
                              "group_participants_add", "x"])),
    ("group_id", _ids), ("request_id", _ids), ("join_request_id", _ids),
    ("user_id", _ids), ("wa_id", _ids), ("timestamp", _ids), ("invite_link", _ids),
    ("initiated_by", st.sampled_from(["business", "participant"])),
    ("removed_participants", st.lists(_contact_like | _maybe(("input", _ids)), max_size=2)),
    ("errors", st.lists(_maybe(("code", st.sampled_from([131215, "x"])),
                               ("message", st.text(max_size=5)),
                               ("error_data", _maybe(("details", st.text(max_size=5))))),
                        max_size=2)),
)


@settings(max_examples=300, deadline=None)
@given(groups=st.lists(_group_like | json_values, max_size=3),
       contacts=st.lists(_contact_like | json_values, max_size=2))
def test_parser_never_raises_on_group_webhook_shaped_garbage(
        groups: list[Any], contacts: list[Any]) -> None:
    wrapped = {"entry": [{"changes": [{"field": "group_participants_update", "value": {
        "metadata": {"phone_number_id": "111"}, "groups": groups, "contacts": contacts}}]}]}
    with no_parser_crashes():
        events = parse_webhook(wrapped, "111")
    assert all(isinstance(e, JoinRequest | GroupUpdate) for e in events)


def test_signed_garbage_bodies_never_get_a_500() -> None:
    """Hypothesis drives one real server; each example is a signed POST."""
    loop = asyncio.new_event_loop()
    sink = RecordingSink()
    transport = make_transport()
    app = web.Application()
    app.add_routes(transport.routes())
    client = TestClient(TestServer(app, host="127.0.0.1"), loop=loop)

    async def post(body: bytes) -> int:
        resp = await client.post("/webhooks/whatsapp", data=body,
                                 headers={"X-Hub-Signature-256": sign(body, SECRET)})
        return resp.status

    @settings(max_examples=150, deadline=None)
    @given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
           | json_values.map(lambda v: body_of({"entry": [{"changes": [{"value": {
               "metadata": {"phone_number_id": NUMBER}, "messages": [v]}}]}]})))
    def check(body: bytes) -> None:
        assert loop.run_until_complete(post(body)) in (200, 413)

    try:
        loop.run_until_complete(transport.start(sink))
        loop.run_until_complete(client.start_server())
        check()
    finally:
        loop.run_until_complete(client.close())
        loop.run_until_complete(transport.stop())
        loop.close()


# -- sending -----------------------------------------------------------------------


async def test_text_to_a_phone_number_posts_to_messages_with_bearer_and_to(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    result = await transport.send(message())
    assert result.ok and result.provider_message_id.startswith("wamid.")
    [request] = graph.requests
    assert (request.method, request.path) == ("POST", f"/v23.0/{NUMBER}/messages")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.json == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": WA_ID,
        "type": "text", "text": {"body": "Meeting at 7", "preview_url": False}}


async def test_bsuid_is_addressed_with_recipient_not_to(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    assert (await transport.send(message(to=BSUID, to_kind="bsuid"))).ok
    body = graph.requests[0].json
    assert body["recipient"] == BSUID and "to" not in body
    assert body["recipient_type"] == "individual"


async def test_plain_user_kind_is_addressed_with_to(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    assert (await transport.send(message(to_kind="user"))).ok
    assert graph.requests[0].json["to"] == WA_ID


async def test_room_is_addressed_as_a_group_without_buttons(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    result = await transport.send(message(to=GROUP_ID, to_kind="room",
                                          buttons=(Button("/a", "A"),)))
    assert result.ok
    body = graph.requests[0].json
    assert (body["recipient_type"], body["to"], body["type"]) == ("group", GROUP_ID, "text")


async def test_unknown_address_kind_is_permanent_and_calls_nothing(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    result = await transport.send(message(to_kind="email"))
    assert result.error_kind is SendErrorKind.PERMANENT
    assert graph.requests == []


async def test_long_text_is_split_and_every_part_sent(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    paragraph = " ".join(["word"] * 300)  # 1499 characters
    text = "\n\n".join([paragraph] * 7)
    result = await transport.send(message(text=text))
    assert result.ok
    bodies = [r.json["text"]["body"] for r in graph.requests]
    assert len(bodies) == 4  # two paragraphs fit in 4096 characters, three do not
    assert all(len(b) <= 4096 for b in bodies)
    assert "\n\n".join(bodies) == text  # cut only at paragraph breaks
    assert result.provider_message_id == "wamid.STANDIN000004"  # the last part's id


def test_split_text_prefers_paragraphs_then_lines_then_words_then_hard_cuts() -> None:
    assert split_text("aaaa\n\nbbbb", 7) == ["aaaa", "bbbb"]
    assert split_text("aaaaaa\nbb cc dd", 12) == ["aaaaaa", "bb cc dd"]
    # a boundary in the front half would leave a tiny piece; take a later one instead
    assert split_text("a\nbbbbbb cc", 10) == ["a\nbbbbbb", "cc"]
    assert split_text("aaa bbb ccc", 8) == ["aaa bbb", "ccc"]
    assert split_text("x" * 10, 4) == ["xxxx", "xxxx", "xx"]
    assert split_text("short", 4096) == ["short"]
    assert split_text("   ", 4096) == []


async def test_up_to_three_buttons_become_reply_buttons_with_titles_cut(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    buttons = (Button("/rsvp 12 yes", "Yes, count me in for sure"), Button("/rsvp 12 no", "No"))
    assert (await transport.send(message(text="Coming Thursday?", buttons=buttons))).ok
    [request] = graph.requests
    interactive = request.json["interactive"]
    assert request.json["type"] == "interactive" and interactive["type"] == "button"
    assert interactive["body"] == {"text": "Coming Thursday?"}
    assert interactive["action"]["buttons"] == [
        {"type": "reply", "reply": {"id": "/rsvp 12 yes", "title": "Yes, count me in for"}},
        {"type": "reply", "reply": {"id": "/rsvp 12 no", "title": "No"}}]


async def test_buttons_with_a_long_body_send_the_text_first_then_the_buttons(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    text = "Background. " * 150 + "\n\nCan you come?"
    result = await transport.send(message(text=text, buttons=(Button("/y", "Yes"),)))
    assert result.ok
    first, second = graph.requests
    assert first.json["type"] == "text"
    assert second.json["type"] == "interactive"
    assert len(second.json["interactive"]["body"]["text"]) <= 1024
    assert second.json["interactive"]["body"]["text"].endswith("Can you come?")
    assert result.provider_message_id == "wamid.STANDIN000002"


async def test_more_than_three_choices_become_a_list(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    buttons = tuple(Button(f"/join {i}", f"Neighbourhood group {i}") for i in range(5))
    assert (await transport.send(message(text="Which group?", buttons=buttons))).ok
    interactive = graph.requests[0].json["interactive"]
    assert interactive["type"] == "list"
    rows = interactive["action"]["sections"][0]["rows"]
    assert [row["id"] for row in rows] == [f"/join {i}" for i in range(5)]
    assert all(len(row["title"]) <= 24 for row in rows)


async def test_attachment_is_uploaded_then_sent_as_a_document(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    ics = Attachment("meeting.ics", "text/calendar", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    result = await transport.send(message(text="Add it to your calendar", attachment=ics))
    assert result.ok
    text, upload, document = graph.requests
    assert text.json["type"] == "text"
    assert upload.path == f"/v23.0/{NUMBER}/media"
    assert upload.headers["Authorization"] == f"Bearer {TOKEN}"
    assert upload.form is not None
    assert (upload.form["messaging_product"], upload.form["type"]) == ("whatsapp",
                                                                      "text/calendar")
    assert upload.form["file"]["filename"] == "meeting.ics"
    assert upload.form["file"]["data"] == ics.data
    assert document.json["type"] == "document"
    assert document.json["document"] == {"id": "media-000001", "filename": "meeting.ics"}


async def test_failed_media_upload_is_reported_and_no_document_sent(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    graph.fail_next(131000)
    ics = Attachment("meeting.ics", "text/calendar", b"x")
    result = await transport.send(message(text="", attachment=ics))
    assert (result.error_kind, result.error_code) == (SendErrorKind.TRANSIENT, 131000)
    assert [r.path for r in graph.requests] == [f"/v23.0/{NUMBER}/media"]


@pytest.mark.parametrize(("code", "kind"), [
    (130429, SendErrorKind.RATE_LIMITED),
    (131056, SendErrorKind.RATE_LIMITED),
    (4, SendErrorKind.RATE_LIMITED),
    (131047, SendErrorKind.OUTSIDE_WINDOW),
    (131050, SendErrorKind.USER_STOPPED),
    (131026, SendErrorKind.PERMANENT),
    (100, SendErrorKind.PERMANENT),
    (131000, SendErrorKind.TRANSIENT),
    (131016, SendErrorKind.TRANSIENT),
])
async def test_graph_error_codes_map_to_send_error_kinds(
        graph: GraphApiStandIn, transport: WhatsAppTransport, code: int,
        kind: SendErrorKind) -> None:
    graph.fail_next(code)
    result = await transport.send(message())
    assert not result.ok
    assert (result.error_kind, result.error_code) == (kind, code)
    assert result.error_title


async def test_http_429_is_rate_limited_with_the_retry_after_delay(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    graph.fail_next(80007, http_status=429, retry_after=7)
    result = await transport.send(message())
    assert (result.error_kind, result.retry_after) == (SendErrorKind.RATE_LIMITED, 7.0)


async def test_scripted_failures_repeat_then_sending_recovers(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    graph.fail_next(code=130429, times=3)
    kinds = [(await transport.send(message())).error_kind for _ in range(4)]
    assert kinds == [SendErrorKind.RATE_LIMITED] * 3 + [None]


async def test_outside_window_with_a_template_sends_the_template_instead(
        graph: GraphApiStandIn) -> None:
    wa = make_transport(api_base_url=graph.base_url, template=("reconnect", "en_US"))
    await wa.start(RecordingSink())
    try:
        graph.fail_next(131047)
        result = await wa.send(message(to=BSUID, to_kind="bsuid"))
    finally:
        await wa.stop()
    assert result.ok
    failed, template = graph.requests
    assert failed.json["type"] == "text"
    assert template.json == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "recipient": BSUID,
        "type": "template", "template": {"name": "reconnect", "language": {"code": "en_US"}}}
    assert result.provider_message_id == "wamid.STANDIN000001"  # the template's id


async def test_wrong_access_token_is_permanent(graph: GraphApiStandIn) -> None:
    wa = WhatsAppTransport(NUMBER, "stolen", SECRET, VERIFY, api_base_url=graph.base_url)
    await wa.start(RecordingSink())
    try:
        result = await wa.send(message())
    finally:
        await wa.stop()
    assert (result.error_kind, result.error_code) == (SendErrorKind.PERMANENT, 190)


async def test_connection_refused_is_transient() -> None:
    wa = make_transport(api_base_url=f"http://127.0.0.1:{free_port()}/v23.0")
    await wa.start(RecordingSink())
    try:
        result = await wa.send(message())
    finally:
        await wa.stop()
    assert result.error_kind is SendErrorKind.TRANSIENT


async def test_a_stalled_graph_call_times_out_as_transient(graph: GraphApiStandIn) -> None:
    wa = make_transport(api_base_url=graph.base_url, timeout_seconds=0.2)
    await wa.start(RecordingSink())
    try:
        graph.stall_next()
        result = await wa.send(message())
    finally:
        await wa.stop()
    assert result.error_kind is SendErrorKind.TRANSIENT


async def test_send_before_start_reports_transient_instead_of_raising() -> None:
    result = await make_transport().send(message())
    assert result.error_kind is SendErrorKind.TRANSIENT


async def test_an_injected_session_is_used_and_left_open(graph: GraphApiStandIn) -> None:
    async with aiohttp.ClientSession() as session:
        wa = make_transport(api_base_url=graph.base_url, session=session)
        await wa.start(RecordingSink())
        assert (await wa.send(message())).ok
        await wa.stop()
        assert not session.closed


async def test_stand_in_rate_limit_answers_130429_past_the_bucket() -> None:
    now = [0.0]
    async with GraphApiStandIn(token=TOKEN, phone_number_id=NUMBER,
                               clock=lambda: now[0]) as graph:
        graph.limit_rate(2)
        wa = make_transport(api_base_url=graph.base_url)
        await wa.start(RecordingSink())
        try:
            burst = [(await wa.send(message())).error_kind for _ in range(3)]
            now[0] += 0.5  # one token back
            after = (await wa.send(message())).error_kind
        finally:
            await wa.stop()
    assert burst == [None, None, SendErrorKind.RATE_LIMITED]
    assert after is None


async def test_wait_for_requests_returns_once_enough_have_arrived(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    sends = asyncio.gather(*(transport.send(message(outbox_id=i)) for i in range(3)))
    seen = await graph.wait_for_requests(3, timeout=5)
    assert len(seen) == 3
    assert all(r.ok for r in await sends)


# -- groups ------------------------------------------------------------------------


async def test_create_group_asks_for_join_approval_and_returns_the_id(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    group_id = await transport.create_group("Core team", "Organizers only")
    assert group_id in graph.groups
    [request] = graph.requests
    assert (request.method, request.path) == ("POST", f"/v23.0/{NUMBER}/groups")
    assert request.json == {"messaging_product": "whatsapp", "subject": "Core team",
                            "description": "Organizers only",
                            "join_approval_mode": "approval_required"}


async def test_create_group_without_an_id_in_the_answer_is_pending_with_request_id() -> None:
    async with GraphApiStandIn(token=TOKEN, phone_number_id=NUMBER,
                               group_create_returns_id=False) as graph:
        wa = make_transport(api_base_url=graph.base_url)
        await wa.start(RecordingSink())
        try:
            with pytest.raises(WhatsAppGroupPending) as caught:
                await wa.create_group("Core team")
        finally:
            await wa.stop()
    assert caught.value.request_id.startswith("req-")


async def test_invite_link_can_be_read_and_reset(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    group_id = await transport.create_group("Core team")
    first = await transport.get_invite_link(group_id)
    second = await transport.reset_invite_link(group_id)
    assert first.startswith("https://chat.whatsapp.com/") and second != first
    assert await transport.get_invite_link(group_id) == second
    reset = graph.requests[-2]
    assert (reset.method, reset.json) == ("POST", {"messaging_product": "whatsapp"})


async def test_join_requests_are_approved_and_rejected_by_request_id(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    group_id = await transport.create_group("Core team")
    for request_id in ("jr-1", "jr-2"):
        graph.add_join_request(group_id, request_id)
    assert await transport.approve_join_requests(group_id, ["jr-1"]) == ["jr-1"]
    assert await transport.reject_join_requests(group_id, ["jr-2"]) == ["jr-2"]
    approve, reject = graph.requests[-2:]
    assert (approve.method, reject.method) == ("POST", "DELETE")
    assert approve.json == {"messaging_product": "whatsapp", "join_requests": ["jr-1"]}
    assert graph.groups[group_id].participants == {"jr-1"}


async def test_partly_failed_approval_raises_with_what_succeeded(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    group_id = await transport.create_group("Core team")
    graph.add_join_request(group_id, "jr-1")
    with pytest.raises(WhatsAppGroupError) as caught:
        await transport.approve_join_requests(group_id, ["jr-1", "jr-unknown"])
    assert caught.value.succeeded == ("jr-1",)


async def test_participants_are_removed_by_phone_number_or_bsuid(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    group_id = await transport.create_group("Core team")
    await transport.remove_participants(group_id, [WA_ID, BSUID])
    request = graph.requests[-1]
    assert (request.method, request.path) == ("DELETE", f"/v23.0/{group_id}/participants")
    assert request.json == {"messaging_product": "whatsapp",
                            "participants": [{"user": WA_ID}, {"user_id": BSUID}]}


async def test_removing_more_than_the_cap_at_once_is_refused_locally(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    with pytest.raises(ValueError):
        await transport.remove_participants("g", [str(i) for i in range(9)])
    assert graph.requests == []


async def test_group_call_failure_raises_with_graphs_message(
        graph: GraphApiStandIn, transport: WhatsAppTransport) -> None:
    graph.fail_next(131203)
    with pytest.raises(WhatsAppGroupError, match="Terms of Service") as caught:
        await transport.create_group("Core team")
    assert caught.value.code == 131203


async def test_group_call_with_graph_unreachable_raises_a_group_error() -> None:
    wa = make_transport(api_base_url=f"http://127.0.0.1:{free_port()}/v23.0")
    await wa.start(RecordingSink())
    try:
        with pytest.raises(WhatsAppGroupError, match="unreachable"):
            await wa.get_invite_link("g")
    finally:
        await wa.stop()
