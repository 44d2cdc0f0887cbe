"""One driver per transport, each talking to a real App the way its platform would.

The test chat is driven in memory. WhatsApp runs the real `WhatsAppTransport` against the
Graph API stand-in: a person's message is a signed webhook POSTed to the App's own aiohttp
routes, and what the bot says is read back from what the stand-in recorded. Telegram runs
the real `TelegramTransport` against the Bot API stand-in, by webhook (secret header) or by
long polling.

Every driver has the same interface, so one scenario runs on all of them:

    replies = await driver.say("ana", "hello")      # what the bot sent, to anyone, as a result
    replies = await driver.tap("ana", reply, "Maybe")  # press a button under an earlier reply
    driver.capabilities                              # what the transport declares it can do

People are named ("ana"); each driver maps a name to an address on its platform and back,
so replies read the same everywhere (`Reply.to` is the name, or "@room" for a room).
Nothing here sleeps: the App is settled after the platform's request was accepted, and the
one asynchronous path (polling) waits on a condition over what the stand-in recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app import App, Inbound
from bot.clock import FakeClock
from bot.config import Config, Pacing, TestChat, Transports
from bot.config import Telegram as TelegramConfig
from bot.config import WhatsApp as WhatsAppConfig
from bot.messages import InboundEvent, MessageKind
from bot.transports.base import Capabilities
from bot.transports.testchat import TestChatTransport
from tests.conftest import TEST_KEY, make_config
from tests.fakes.bot_api import (
    BOT_USERNAME,
    BotApiStandIn,
    callback_query,
    group_text,
    private_text,
)
from tests.fakes.graph_api import GraphApiStandIn, body_of, button_webhook, sign, text_webhook

TRANSPORTS = ("testchat", "whatsapp", "telegram")
ADMIN = "olga"  # the bot's admin in every scenario, configured per transport
WA_NUMBER = "111"
WA_TOKEN = "T"
WA_SECRET = "conformance-app-secret"
WA_VERIFY = "conformance-verify"
TG_TOKEN = "123:ABC"
TG_SECRET = "conformance-webhook-secret"
# Pacing out of the way: these tests are about what is said, not how fast.
FAST = Pacing(rate_per_second=100_000, per_recipient_seconds=0, per_room_per_minute=0)


@dataclass(frozen=True)
class Reply:
    """One message the bot sent, as a person sees it."""

    to: str  # a person's name, or "@room"
    text: str
    buttons: tuple[str, ...] = ()  # titles shown
    payloads: tuple[str, ...] = ()  # what tapping each button sends back
    file: str | None = None  # an attached file's name

    def payload_of(self, title: str) -> str:
        return self.payloads[self.buttons.index(title)]


def texts(replies: Sequence[Reply]) -> list[str]:
    return [r.text for r in replies]


class Roster:
    """Names to platform addresses and back, the same on every run."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self._names: dict[str, str] = {}

    def address(self, name: str) -> str:
        name = name.lower()
        digest = zlib.crc32(name.encode())
        if self.transport == "whatsapp":
            address = f"1555{digest % 10**7:07d}"  # a wa_id: digits, country code first
        elif self.transport == "telegram":
            address = str(100_000 + digest % 10**8)  # a user id, also their private chat id
        else:
            address = name
        self._names[address] = name
        return address

    def room(self, name: str) -> str:
        digest = zlib.crc32(f"room:{name}".encode())
        if self.transport == "telegram":
            address = f"-100{digest % 10**9:09d}"  # a supergroup id
        elif self.transport == "whatsapp":
            address = f"Y2FwaV9ncm91cD{digest % 10**6:06d}"
        else:
            address = name
        self._names[address] = f"@{name}"
        return address

    def name_of(self, address: str) -> str:
        return self._names.get(str(address), f"?{address}")


class Driver:
    """What every transport driver offers; subclasses speak the platform."""

    name: str

    def __init__(self, app: App, clock: FakeClock) -> None:
        self.app = app
        self.clock = clock
        self.roster = Roster(self.name)
        self.log: list[Reply] = []

    @property
    def capabilities(self) -> Capabilities:
        return self.app.transports[self.name].capabilities

    def address(self, name: str) -> str:
        return self.roster.address(name)

    def to(self, name: str) -> list[Reply]:
        """Everything the bot sent to one person (or "@room") so far."""
        return [r for r in self.log if r.to == name.lower() or r.to == name]

    async def say(self, user: str, text: str, room: str | None = None) -> list[Reply]:
        """USER writes TEXT (in ROOM if given); returns what the bot sent as a result."""
        mark = self._mark()
        await self._inbound_text(user, text, room)
        return await self._settled(mark)

    async def tap(self, user: str, reply: Reply, title: str) -> list[Reply]:
        """USER presses the button titled TITLE under REPLY."""
        mark = self._mark()
        await self._inbound_tap(user, reply.payload_of(title))
        return await self._settled(mark)

    async def accept(self, events: Sequence[InboundEvent]) -> list[Reply]:
        """Events a transport parsed but no stand-in can produce yet, handed to the App
        through the same sink the transport uses; returns what the bot sent as a result."""
        mark = self._mark()
        await Inbound(self.app).accept(events)
        return await self._settled(mark)

    async def _settled(self, mark: int) -> list[Reply]:
        await self.app.settle()
        new = self._sent_since(mark)
        self.log.extend(new)
        return new

    # Each transport: hand one inbound thing to the App the platform's way, and read back
    # what was sent after a mark.
    async def _inbound_text(self, user: str, text: str, room: str | None) -> None:
        raise NotImplementedError

    async def _inbound_tap(self, user: str, payload: str) -> None:
        raise NotImplementedError

    def _mark(self) -> int:
        raise NotImplementedError

    def _sent_since(self, mark: int) -> list[Reply]:
        raise NotImplementedError


class TestChatDriver(Driver):
    __test__ = False
    name = "testchat"

    def __init__(self, app: App, clock: FakeClock) -> None:
        super().__init__(app, clock)
        chat = app.transports[self.name]
        assert isinstance(chat, TestChatTransport)
        self.chat = chat

    async def _inbound_text(self, user: str, text: str, room: str | None) -> None:
        await self.chat.deliver([self.chat.message(user, text, room)])

    async def _inbound_tap(self, user: str, payload: str) -> None:
        await self.chat.deliver([self.chat.message(user, payload, kind=MessageKind.BUTTON)])

    def _mark(self) -> int:
        return len(self.chat.sent)

    def _sent_since(self, mark: int) -> list[Reply]:
        return [Reply(to=s.to, text=s.text, buttons=tuple(b.title for b in s.buttons),
                      payloads=tuple(b.id for b in s.buttons),
                      file=s.attachment.filename if s.attachment else None)
                for s in self.chat.sent[mark:]]


class WhatsAppDriver(Driver):
    name = "whatsapp"

    def __init__(self, app: App, clock: FakeClock, graph: GraphApiStandIn,
                 client: TestClient[Any, Any]) -> None:
        super().__init__(app, clock)
        self.graph = graph
        self.client = client
        self.path = app.config.transports.whatsapp.webhook_path

    async def post(self, payload: dict[str, Any], *, signature: str | None = "") -> int:
        """POST a webhook body to the App as Meta would; returns the HTTP status.

        `signature` "" signs with the app secret; None leaves the header out.
        """
        body = body_of(payload)
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature or sign(body, WA_SECRET)
        async with self.client.post(self.path, data=body, headers=headers) as resp:
            return resp.status

    async def webhook(self, payload: dict[str, Any]) -> list[Reply]:
        """Deliver any signed webhook (statuses, preferences) and settle."""
        mark = self._mark()
        assert await self.post(payload) == 200
        return await self._settled(mark)

    def _mark(self) -> int:
        return len(self.graph.sent)

    async def _inbound_text(self, user: str, text: str, room: str | None) -> None:
        payload = text_webhook(text, wa_id=self.address(user), name=user.capitalize(),
                               message_id=f"wamid.IN{uuid.uuid4().hex}",
                               timestamp=self._timestamp(),
                               group_id=self.roster.room(room) if room else None,
                               phone_number_id=WA_NUMBER)
        assert await self.post(payload) == 200

    async def _inbound_tap(self, user: str, payload: str) -> None:
        webhook = button_webhook(payload, wa_id=self.address(user), name=user.capitalize(),
                                 message_id=f"wamid.IN{uuid.uuid4().hex}",
                                 timestamp=self._timestamp(), phone_number_id=WA_NUMBER)
        assert await self.post(webhook) == 200

    def _timestamp(self) -> str:
        return str(int(self.clock.now().timestamp()))

    def _sent_since(self, mark: int) -> list[Reply]:
        replies: list[Reply] = []
        for body in self.graph.sent[mark:]:
            reply = self._reply(body)
            previous = replies[-1] if replies else None
            if reply.file and not reply.text and previous and previous.to == reply.to:
                # A document follows the text it belongs to as its own Graph message.
                replies[-1] = dataclasses.replace(previous, file=reply.file)
            else:
                replies.append(reply)
        return replies

    def _reply(self, body: dict[str, Any]) -> Reply:
        to = self.roster.name_of(body.get("to") or body.get("recipient") or "")
        kind = body["type"]
        if kind == "text":
            return Reply(to=to, text=body["text"]["body"])
        if kind == "interactive":
            interactive = body["interactive"]
            action = interactive["action"]
            choices = ([b["reply"] for b in action["buttons"]] if "buttons" in action
                       else [row for s in action["sections"] for row in s["rows"]])
            return Reply(to=to, text=interactive["body"]["text"],
                         buttons=tuple(c["title"] for c in choices),
                         payloads=tuple(c["id"] for c in choices))
        if kind == "document":
            return Reply(to=to, text="", file=body["document"]["filename"])
        return Reply(to=to, text=f"[{kind}] {json.dumps(body.get(kind))}")


class TelegramDriver(Driver):
    """Telegram by webhook: updates POSTed to the App with the secret header."""

    name = "telegram"
    _ids = itertools.count(1)

    def __init__(self, app: App, clock: FakeClock, tg: BotApiStandIn,
                 client: TestClient[Any, Any] | None) -> None:
        super().__init__(app, clock)
        self.tg = tg
        self.client = client
        self.path = app.config.transports.telegram.webhook_path

    async def _inbound_text(self, user: str, text: str, room: str | None) -> None:
        date = int(self.clock.now().timestamp())
        uid = int(self.address(user))
        message_id = next(self._ids)
        if room is None:
            update = private_text(text, user_id=uid, first_name=user.capitalize(),
                                  last_name=None, message_id=message_id, date=date)
        else:
            update = group_text(text, chat_id=int(self.roster.room(room)), user_id=uid,
                                first_name=user.capitalize(), last_name=None,
                                message_id=message_id, date=date)
        await self._hand_over(update)

    async def _inbound_tap(self, user: str, payload: str) -> None:
        await self._hand_over(callback_query(payload, user_id=int(self.address(user)),
                                             query_id=f"q{next(self._ids)}"))

    async def _hand_over(self, update: dict[str, Any]) -> None:
        update = {"update_id": 700_000 + next(self._ids), **update}
        assert self.client is not None
        headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
        async with self.client.post(self.path, json=update, headers=headers) as resp:
            assert resp.status == 200

    def _mark(self) -> int:
        return len(self.tg.calls)

    def _sent_since(self, mark: int) -> list[Reply]:
        replies: list[Reply] = []
        for call in self.tg.calls[mark:]:
            method = call.method.lower()
            if method not in ("sendmessage", "senddocument"):
                continue  # answerCallbackQuery, getMe...: not something a person reads
            reply = self._reply(method, call.params)
            previous = replies[-1] if replies else None
            if reply.file and not reply.text and previous and previous.to == reply.to:
                replies[-1] = dataclasses.replace(previous, file=reply.file,
                                                  buttons=reply.buttons or previous.buttons,
                                                  payloads=reply.payloads or previous.payloads)
            else:
                replies.append(reply)
        return replies

    def _reply(self, method: str, params: dict[str, Any]) -> Reply:
        to = self.roster.name_of(str(params["chat_id"]))
        rows = (params.get("reply_markup") or {}).get("inline_keyboard", [])
        buttons = [b for row in rows for b in row]
        titles = tuple(b["text"] for b in buttons)
        payloads = tuple(b["callback_data"] for b in buttons)
        if method == "sendmessage":
            return Reply(to=to, text=params["text"], buttons=titles, payloads=payloads)
        return Reply(to=to, text=params.get("caption") or "", buttons=titles,
                     payloads=payloads, file=params["document"]["filename"])


class TelegramPollingDriver(TelegramDriver):
    """Telegram by long polling: updates queued at the stand-in, fetched by the transport."""

    async def _hand_over(self, update: dict[str, Any]) -> None:
        update_id = self.tg.push_update(update)

        def confirmed() -> bool:
            # The transport asks for the next offset only after the App stored the update.
            return any(c.method == "getUpdates" and isinstance(c.params.get("offset"), int)
                       and c.params["offset"] > update_id for c in self.tg.calls)

        await self.tg.wait_until(confirmed)


async def member(d: Driver, name: str, *codes: str) -> None:
    """Someone writes, opts in with YES, and joins the groups."""
    await d.say(name, "hi")
    await d.say(name, "YES")
    for code in codes:
        await d.say(name, f"/join {code}")


async def organizer(d: Driver, name: str, code: str) -> None:
    """A member of CODE made its organizer by the admin, as in real life: by handle."""
    await member(d, name, code)
    await d.say(name, f"/name {name}-org")
    await member(d, ADMIN)
    promoted = await d.say(ADMIN, f"/promote {name}-org organizer {code}")
    assert texts(promoted) == [f"@{name}-org is now organizer of {code}."]


def admins(roster_of: dict[str, Roster]) -> tuple[str, ...]:
    return tuple(f"{t}:{r.address(ADMIN)}" for t, r in roster_of.items())


def config_for(kind: str, db_url: str, tmp_path: Path, *, graph_url: str = "",
               tg_url: str = "", **overrides: object) -> Config:
    """The conformance config: one transport enabled, the admin configured on it."""
    transport = "telegram" if kind.startswith("telegram") else kind
    testchat = TestChat(enabled=transport == "testchat", pacing=FAST)
    whatsapp = WhatsAppConfig(enabled=transport == "whatsapp", phone_number_id=WA_NUMBER,
                              access_token=WA_TOKEN, app_secret=WA_SECRET,
                              verify_token=WA_VERIFY, api_base_url=graph_url or "http://x",
                              pacing=FAST)
    polling = kind == "telegram-polling"
    telegram = TelegramConfig(enabled=transport == "telegram", token=TG_TOKEN,
                              mode="polling" if polling else "webhook",
                              webhook_secret=TG_SECRET, api_base_url=tg_url or "http://x",
                              bot_username=BOT_USERNAME, pacing=FAST)
    return make_config(db_url, tmp_path,
                       transports=Transports(testchat=testchat, whatsapp=whatsapp,
                                             telegram=telegram),
                       admins=admins({transport: Roster(transport)}), **overrides)


@contextlib.asynccontextmanager
async def open_driver(kind: str, db_url: str, tmp_path: Path,
                      clock: FakeClock | None = None,
                      monotonic: Callable[[], float] = time.monotonic, **overrides: object
                      ) -> AsyncIterator[Driver]:
    """A started App on one transport ("testchat", "whatsapp", "telegram",
    "telegram-polling"), with its stand-in and HTTP server; all closed afterwards.

    `monotonic` is the stand-ins' clock for their rate limits.
    """
    clock = clock or FakeClock()
    async with contextlib.AsyncExitStack() as stack:
        graph = await stack.enter_async_context(
            GraphApiStandIn(WA_TOKEN, WA_NUMBER, clock=monotonic))
        tg = await stack.enter_async_context(BotApiStandIn(TG_TOKEN, clock=monotonic))
        config = config_for(kind, db_url, tmp_path, graph_url=graph.base_url,
                            tg_url=tg.base_url, **overrides)
        app = App(config, clock=clock, environ={"GROUNDWORK_SECRET_KEY": TEST_KEY})
        await app.start(background=False)
        stack.push_async_callback(app.stop)
        client: TestClient[Any, Any] = TestClient(TestServer(app.web_app(), host="127.0.0.1"))
        await client.start_server()
        stack.push_async_callback(client.close)
        driver: Driver
        if kind == "testchat":
            driver = TestChatDriver(app, clock)
        elif kind == "whatsapp":
            driver = WhatsAppDriver(app, clock, graph, client)
        elif kind == "telegram-polling":
            driver = TelegramPollingDriver(app, clock, tg, None)
        else:
            driver = TelegramDriver(app, clock, tg, client)
        yield driver
