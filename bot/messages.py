"""Normalized inbound and outbound message types shared by every transport.

Transports translate their native updates into these frozen values and back;
nothing else in the bot ever sees a WhatsApp payload or a Telegram Update.
This module imports nothing of ours.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class MessageKind(enum.StrEnum):
    TEXT = "text"
    BUTTON = "button"  # a tap on a reply/inline button; text carries the button payload


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One thing a person said to the bot, in a direct chat or in a room."""

    transport: str
    chat: str  # where it was said: the sender's own address for a direct chat, else the room id
    sender: str  # the sender's primary address on this transport
    message_id: str  # the transport's id: (transport, message_id) is unique
    text: str
    time: datetime  # aware, UTC
    kind: MessageKind = MessageKind.TEXT
    room: str | None = None  # set when said in a group room
    sender_name: str | None = None  # profile name, only stored once the member consents
    sender_alt: str | None = None  # a second address for the same person (WhatsApp wa_id)
    sender_kind: str = "user"  # how `sender` addresses them, e.g. "bsuid" or "wa_id"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def is_room(self) -> bool:
        return self.room is not None


class DeliveryState(enum.StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """A provider's report on a message we sent (WhatsApp statuses webhook)."""

    transport: str
    provider_message_id: str
    state: DeliveryState
    time: datetime
    recipient: str = ""
    error_code: int | None = None
    error_title: str = ""


@dataclass(frozen=True, slots=True)
class PreferenceChange:
    """The platform tells us a user stopped or resumed marketing messages."""

    transport: str
    sender: str
    marketing_opt_in: bool
    time: datetime
    sender_kind: str = "user"
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """Someone asked to join a room the bot administers."""

    transport: str
    room: str
    sender: str
    time: datetime
    sender_name: str | None = None
    event_id: str = ""  # the platform's join request id where it has one (WhatsApp)
    sender_alt: str | None = None  # a second address for the same person (WhatsApp wa_id)


class GroupChange(enum.StrEnum):
    CREATED = "created"  # a group the bot asked for exists now
    CREATE_FAILED = "create_failed"  # the platform refused to create it
    DELETED = "deleted"
    LEFT = "left"  # participants left or were removed
    JOIN_REVOKED = "join_revoked"  # the person withdrew their join request


@dataclass(frozen=True, slots=True)
class GroupUpdate:
    """The platform reports on a group the bot administers (WhatsApp Groups API webhooks)."""

    transport: str
    room: str  # the platform's group id ("" when a failed creation has none)
    change: GroupChange
    time: datetime
    request_id: str = ""  # ties a creation result to the call that asked for it
    subject: str = ""
    detail: str = ""  # the invite link when created, the platform's reason when failed
    users: tuple[str, ...] = ()  # who left (LEFT)
    event_id: str = ""


InboundEvent = InboundMessage | DeliveryStatus | PreferenceChange | JoinRequest | GroupUpdate


@dataclass(frozen=True, slots=True)
class Button:
    id: str  # payload sent back when tapped, e.g. "/rsvp 12 yes"
    title: str  # what the person sees, short


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    mime_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message the delivery worker hands to a transport."""

    outbox_id: int  # our idempotency key
    transport: str
    to: str  # the recipient's address (a person or a room)
    text: str
    to_kind: str = "user"  # "user", "room", or a transport-specific id kind ("bsuid", "wa_id")
    buttons: tuple[Button, ...] = ()
    attachment: Attachment | None = None


class SendErrorKind(enum.StrEnum):
    RATE_LIMITED = "rate_limited"  # slow down and retry
    OUTSIDE_WINDOW = "outside_window"  # WhatsApp 24-hour window closed: templates only
    USER_STOPPED = "user_stopped"  # the user blocked or stopped this kind of message
    PERMANENT = "permanent"  # will never succeed as is
    TRANSIENT = "transient"  # network trouble, 5xx: retry later


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    provider_message_id: str = ""
    error_kind: SendErrorKind | None = None
    error_code: int | None = None
    error_title: str = ""
    retry_after: float | None = None  # seconds, when the platform says

    @classmethod
    def sent(cls, provider_message_id: str) -> SendResult:
        return cls(ok=True, provider_message_id=provider_message_id)

    @classmethod
    def failed(
        cls,
        kind: SendErrorKind,
        code: int | None = None,
        title: str = "",
        retry_after: float | None = None,
    ) -> SendResult:
        return cls(ok=False, error_kind=kind, error_code=code, error_title=title,
                   retry_after=retry_after)


_EVENT_TYPES: dict[str, type] = {
    "message": InboundMessage,
    "status": DeliveryStatus,
    "preference": PreferenceChange,
    "join": JoinRequest,
    "group": GroupUpdate,
}
_TYPE_NAMES = {cls: name for name, cls in _EVENT_TYPES.items()}


def event_kind(event: InboundEvent) -> str:
    return _TYPE_NAMES[type(event)]


def event_to_dict(event: InboundEvent) -> dict[str, Any]:
    """A JSON-ready dict of any inbound event (for the inbox)."""
    out: dict[str, Any] = {"type": event_kind(event)}
    for name in event.__slots__:  # type: ignore[union-attr]
        value = getattr(event, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, enum.Enum):
            value = value.value
        elif name == "raw":
            continue  # the raw payload is not kept: it may hold personal data we don't need
        out[name] = value
    return out


def event_from_dict(data: Mapping[str, Any]) -> InboundEvent:
    cls = _EVENT_TYPES[data["type"]]
    values = {k: v for k, v in data.items() if k != "type"}
    values["time"] = datetime.fromisoformat(values["time"])
    if cls is InboundMessage:
        values["kind"] = MessageKind(values.get("kind", "text"))
    if cls is DeliveryStatus:
        values["state"] = DeliveryState(values["state"])
    if cls is GroupUpdate:
        values["change"] = GroupChange(values["change"])
        values["users"] = tuple(values.get("users", ()))  # a JSON list
    return cls(**values)
