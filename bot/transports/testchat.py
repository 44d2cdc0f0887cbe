"""The local test chat: a transport for trying the bot in a terminal and for tests.

Input lines: `NAME> TEXT` is NAME writing to the bot directly, `NAME@ROOM> TEXT`
is NAME speaking in group room ROOM, and a line without a prefix speaks as the
previous speaker. Every message the bot sends is printed as `[to NAME] first
line` (or `[to @ROOM] ...`), further lines indented by two spaces.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from bot.messages import (
    Attachment,
    Button,
    InboundEvent,
    InboundMessage,
    MessageKind,
    OutboundMessage,
    SendResult,
)
from bot.transports.base import Capabilities, InboundSink

_LINE = re.compile(r"^\s*([A-Za-z0-9_.-]{1,32})(?:@([A-Za-z0-9_.-]{1,64}))?>\s?(.*)$")


@dataclass(frozen=True)
class Sent:
    """One message the bot sent through the test chat."""

    to: str  # a person's name, or "@room"
    text: str
    buttons: tuple[Button, ...] = ()
    attachment: Attachment | None = None
    outbox_id: int = 0

    @property
    def is_room(self) -> bool:
        return self.to.startswith("@")

    def render(self) -> str:
        lines = self.text.split("\n") or [""]
        if self.buttons:
            lines.append("[buttons] " + " | ".join(b.title for b in self.buttons))
        if self.attachment:
            a = self.attachment
            lines.append(f"[file] {a.filename} ({a.mime_type}, {len(a.data)} bytes)")
        head, *rest = lines
        return "\n".join([f"[to {self.to}] {head}", *(f"  {line}" for line in rest)])


class TestChatTransport:
    __test__ = False  # not a pytest class

    name = "testchat"
    capabilities = Capabilities(rooms=True, buttons=True, files=True, delete_message=True,
                                restrict_member=True, remove_member=True, approve_join=False,
                                max_text_length=4096)

    def __init__(self, now: Callable[[], datetime],
                 output: Callable[[str], None] | None = None) -> None:
        self._now = now
        self._output = output
        self._sink: InboundSink | None = None
        self._ids = itertools.count(1)
        self.sent: list[Sent] = []
        self.actions: list[tuple[str, str, str]] = []  # moderation actions taken in rooms
        self._speaker: str | None = None
        self._sent_changed = asyncio.Condition()

    async def start(self, sink: InboundSink) -> None:
        self._sink = sink

    async def stop(self) -> None:
        self._sink = None

    def routes(self) -> list[web.RouteDef]:
        return []

    async def send(self, message: OutboundMessage) -> SendResult:
        to = f"@{message.to}" if message.to_kind == "room" else message.to
        sent = Sent(to=to, text=message.text, buttons=message.buttons,
                    attachment=message.attachment, outbox_id=message.outbox_id)
        self.sent.append(sent)
        if self._output:
            self._output(sent.render())
        async with self._sent_changed:
            self._sent_changed.notify_all()
        return SendResult.sent(f"tc-{next(self._ids)}")

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait, without polling, until something sent makes `predicate` true.
        Callers bound the wait with `asyncio.timeout`."""
        async with self._sent_changed:
            await self._sent_changed.wait_for(predicate)

    # Room moderation, as the test chat can do everything a real room allows.
    async def delete_message(self, room: str, message_id: str) -> bool:
        return self._act("delete", room, message_id)

    async def restrict_member(self, room: str, user: str, until: datetime) -> bool:
        return self._act("restrict", room, f"{user} until {until:%Y-%m-%d %H:%M}")

    async def unrestrict_member(self, room: str, user: str) -> bool:
        return self._act("unrestrict", room, user)

    async def remove_member(self, room: str, user: str) -> bool:
        return self._act("remove", room, user)

    async def unban_member(self, room: str, user: str) -> bool:
        return self._act("unban", room, user)

    async def approve_join(self, room: str, user: str, approve: bool) -> bool:
        return self._act("approve" if approve else "decline", room, user)

    def _act(self, action: str, room: str, detail: str) -> bool:
        self.actions.append((action, room, detail))
        if self._output:
            self._output(f"[{action} in @{room}] {detail}")
        return True

    def message(self, name: str, text: str, room: str | None = None,
                message_id: str | None = None, kind: MessageKind = MessageKind.TEXT
                ) -> InboundMessage:
        name = name.lower()
        return InboundMessage(
            transport=self.name, chat=room or name, sender=name,
            message_id=message_id or uuid.uuid4().hex, text=text, time=self._now(),
            kind=kind, room=room, sender_name=name.capitalize())

    async def say(self, name: str, text: str, room: str | None = None,
                  message_id: str | None = None) -> list[Sent]:
        """Send as NAME and return every message the bot sent as a result (no sleeps)."""
        return await self.deliver([self.message(name, text, room, message_id)])

    async def deliver(self, events: Sequence[InboundEvent]) -> list[Sent]:
        before = len(self.sent)
        await self.arrive(events)
        await self._started().settle()
        return self.sent[before:]

    async def arrive(self, events: Sequence[InboundEvent]) -> None:
        """Hand events to the bot as a webhook does: returns once they are stored, before
        they are processed."""
        await self._started().accept(events)

    def _started(self) -> InboundSink:
        if self._sink is None:
            raise RuntimeError("the test chat is not started")
        return self._sink

    def parse_line(self, line: str) -> InboundMessage | None:
        """A console line as a message; None for blank lines or before anyone spoke."""
        line = line.rstrip("\n")
        if not line.strip():
            return None
        match = _LINE.match(line)
        if match:
            self._speaker = f"{match.group(1)}@{match.group(2)}" if match.group(2) \
                else match.group(1)
            text = match.group(3)
        elif self._speaker is None:
            return None
        else:
            text = line
        name, _, room = self._speaker.partition("@")
        return self.message(name, text, room or None)

    def to(self, name: str) -> list[Sent]:
        """Everything sent to one person (or '@room')."""
        return [s for s in self.sent if s.to == name.lower() or s.to == name]
