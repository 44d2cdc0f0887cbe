"""The seam every transport implements, and what it may declare it can do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from aiohttp import web

from bot.messages import InboundEvent, OutboundMessage, SendResult


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a platform lets the bot do; moderation and replies degrade by these flags."""

    rooms: bool = False  # real group rooms the bot sits in
    buttons: bool = False  # reply/inline buttons
    files: bool = False  # documents such as .ics files
    delete_message: bool = False
    restrict_member: bool = False  # mute for a while
    remove_member: bool = False
    approve_join: bool = False
    max_text_length: int = 4096


class TransportUnavailable(Exception):
    """A transport could not start: its platform cannot be reached, or refuses our
    credentials or settings. The message is one line for the operator."""


class InboundSink(Protocol):
    """Where a transport hands what it received. Returns once it is durably accepted."""

    async def accept(self, events: Sequence[InboundEvent]) -> None: ...

    async def settle(self) -> None:
        """Process and deliver everything that is due now (used by the test chat)."""


@runtime_checkable
class Transport(Protocol):
    name: str
    capabilities: Capabilities

    async def start(self, sink: InboundSink) -> None:
        """Begin receiving (polling task, or nothing for webhook transports)."""

    async def stop(self) -> None:
        """Stop receiving and release clients."""

    async def send(self, message: OutboundMessage) -> SendResult:
        """Deliver one message. Only the delivery worker calls this."""

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes this transport serves (webhooks); empty if none."""


class RoomModeration(Protocol):
    """Optional actions in real rooms; call only those the capabilities declare."""

    async def delete_message(self, room: str, message_id: str) -> bool: ...

    async def restrict_member(self, room: str, user: str, until: datetime) -> bool: ...

    async def unrestrict_member(self, room: str, user: str) -> bool: ...

    async def remove_member(self, room: str, user: str) -> bool: ...

    async def unban_member(self, room: str, user: str) -> bool: ...

    async def approve_join(self, room: str, user: str, approve: bool) -> bool: ...
