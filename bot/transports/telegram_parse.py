"""Pure conversion of Telegram updates into the bot's normalized inbound events.

Nothing here does I/O and nothing here raises: a malformed or unexpected update
becomes an empty list (and a log line), because one bad update must never stop
the updates behind it from being processed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from telegram import CallbackQuery, ChatJoinRequest, Message, Update, User
from telegram.constants import ChatType

from bot.messages import InboundEvent, InboundMessage, JoinRequest, MessageKind

TRANSPORT = "telegram"
CALLBACK_ID_PREFIX = "cb:"

log = logging.getLogger(__name__)

# "/cmd@SomeBot rest": Telegram appends the bot's username to commands picked
# from the menu in groups, so several bots in one group can tell theirs apart.
_ADDRESSED_COMMAND = re.compile(r"^(/[A-Za-z0-9_]+)@([A-Za-z0-9_]+)(.*)\Z", re.DOTALL)

_ROOM_TYPES = frozenset({ChatType.GROUP, ChatType.SUPERGROUP})
_CHAT_TYPES = _ROOM_TYPES | {ChatType.PRIVATE}

# Only these parts of an update are read. Parsing just them means garbage (or a
# field newer than our PTB understands) elsewhere in an update cannot make us
# drop the message inside it.
_MESSAGE_KEYS = ("message_id", "date", "chat", "from", "text", "caption", "sender_chat")
_CALLBACK_KEYS = ("id", "from", "data", "chat_instance", "message")
_CALLBACK_MESSAGE_KEYS = ("message_id", "date", "chat")
_JOIN_KEYS = ("chat", "from", "user_chat_id", "date")


def events_from_json(
    data: object, bot_username: str | None, *, received_at: datetime | None = None
) -> list[InboundEvent]:
    """Parse one raw update dict (as Telegram sent it) and convert it. Never raises."""
    if not isinstance(data, Mapping):
        return []
    try:
        update = Update.de_json(_trim_update(data), None)
    except Exception as exc:  # PTB raises whatever the garbage provokes: Key/Type/ValueError...
        log.warning("telegram: unparseable update %r skipped: %r", data.get("update_id"), exc)
        return []
    return update_to_events(update, bot_username, received_at=received_at, raw=data)


def update_to_events(
    update: Update,
    bot_username: str | None,
    *,
    received_at: datetime | None = None,
    raw: Mapping[str, Any] | None = None,
) -> list[InboundEvent]:
    """Convert one parsed Update. Pure apart from logging; never raises.

    `received_at` stamps events Telegram does not date (button taps); it defaults
    to now. `raw` is kept on the event for debugging; it defaults to the update.
    """
    try:
        raw_map = raw if raw is not None else _to_dict(update)
        event = _convert(update, _normalize_username(bot_username), received_at, raw_map)
    except Exception as exc:
        log.warning("telegram: update %r could not be converted: %r",
                    getattr(update, "update_id", None), exc)
        return []
    return [event] if event is not None else []


def _convert(
    update: Update,
    bot_username: str | None,
    received_at: datetime | None,
    raw: Mapping[str, Any],
) -> InboundEvent | None:
    # Edited messages, channel posts and everything else are deliberately not
    # looked at: an edit must not re-run a command or re-post to a room.
    if update.message is not None:
        return _from_message(update.message, bot_username, raw)
    if update.callback_query is not None:
        return _from_callback(update.callback_query, received_at, raw)
    if update.chat_join_request is not None:
        return _from_join_request(update.chat_join_request)
    return None


def _from_message(
    message: Message, bot_username: str | None, raw: Mapping[str, Any]
) -> InboundMessage | None:
    chat = message.chat
    user = message.from_user
    if chat.type not in _CHAT_TYPES or user is None or not _is_person(user, message):
        return None
    # Captions count as text: "photo + caption" is how people often post.
    text = message.text if message.text is not None else message.caption
    if not isinstance(text, str) or not text.strip():
        return None  # stickers, bare photos, service messages
    is_room = chat.type in _ROOM_TYPES
    text = _strip_bot_suffix(text, bot_username, is_room=is_room)
    if text is None:
        return None
    chat_id = str(chat.id)
    return InboundMessage(
        transport=TRANSPORT,
        chat=chat_id,
        sender=str(user.id),
        # Telegram message ids are only unique within one chat.
        message_id=f"{chat_id}:{message.message_id}",
        text=text,
        time=_utc(message.date),
        room=chat_id if is_room else None,
        sender_name=_full_name(user),
        raw=raw,
    )


def _from_callback(
    query: CallbackQuery, received_at: datetime | None, raw: Mapping[str, Any]
) -> InboundMessage | None:
    attached = query.message
    # Without the message it was attached to (inline mode) there is no chat to
    # answer in; without data (game buttons) there is nothing to route.
    if attached is None or not isinstance(query.data, str) or not query.data:
        return None
    chat = attached.chat
    if chat.type not in _CHAT_TYPES or query.from_user is None:
        return None
    chat_id = str(chat.id)
    return InboundMessage(
        transport=TRANSPORT,
        chat=chat_id,
        sender=str(query.from_user.id),
        message_id=f"{CALLBACK_ID_PREFIX}{query.id}",
        text=query.data,
        # Telegram does not date a tap; the attached message's date is when the
        # button was sent, not when it was pressed.
        time=_utc(received_at) if received_at is not None else datetime.now(UTC),
        kind=MessageKind.BUTTON,
        room=chat_id if chat.type in _ROOM_TYPES else None,
        sender_name=_full_name(query.from_user),
        raw=raw,
    )


def _from_join_request(request: ChatJoinRequest) -> JoinRequest | None:
    if request.chat.type not in _ROOM_TYPES:
        return None
    user = request.from_user
    time = _utc(request.date)
    return JoinRequest(
        transport=TRANSPORT,
        room=str(request.chat.id),
        sender=str(user.id),
        time=time,
        sender_name=_full_name(user),
        # A person may ask again after a decline; the date tells the requests apart.
        event_id=f"join:{request.chat.id}:{user.id}:{int(time.timestamp())}",
    )


def _is_person(user: User, message: Message) -> bool:
    """Only people have consent and membership; skip posts made as a chat or by bots."""
    if user.is_bot:
        return False  # also covers anonymous admins, who post via @GroupAnonymousBot
    # Posts "on behalf of" a channel or group have no person we could attribute them to.
    return message.sender_chat is None


def _strip_bot_suffix(text: str, bot_username: str | None, *, is_room: bool) -> str | None:
    """Turn "/help@OurBot args" into "/help args"; None when it is for another bot."""
    match = _ADDRESSED_COMMAND.match(text)
    if match is None:
        return text
    command, target, rest = match.groups()
    if bot_username is not None and target.lower() != bot_username and is_room:
        return None  # another bot's command in a shared group is not ours to answer
    # In a private chat only we can hear it, so the suffix is just noise.
    return command + rest


def _trim_update(data: Mapping[str, Any]) -> dict[str, Any]:
    trimmed: dict[str, Any] = {"update_id": data.get("update_id")}
    if "message" in data:
        trimmed["message"] = _pick(data["message"], _MESSAGE_KEYS)
    if "callback_query" in data:
        query = _pick(data["callback_query"], _CALLBACK_KEYS)
        if isinstance(query, dict) and "message" in query:
            query["message"] = _pick(query["message"], _CALLBACK_MESSAGE_KEYS)
        trimmed["callback_query"] = query
    if "chat_join_request" in data:
        trimmed["chat_join_request"] = _pick(data["chat_join_request"], _JOIN_KEYS)
    return trimmed


def _pick(value: object, keys: tuple[str, ...]) -> object:
    """The listed keys of a mapping; anything else is passed on for de_json to reject."""
    if not isinstance(value, Mapping):
        return value
    return {key: value[key] for key in keys if key in value}


def _normalize_username(username: str | None) -> str | None:
    if not username:
        return None
    return username.lstrip("@").lower() or None


def _full_name(user: User) -> str | None:
    parts = [part for part in (user.first_name, user.last_name) if isinstance(part, str) and part]
    return " ".join(parts) or None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _to_dict(update: Update) -> Mapping[str, Any]:
    try:
        return update.to_dict()
    except Exception:
        return {}
