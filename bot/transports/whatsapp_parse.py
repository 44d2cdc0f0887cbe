"""WhatsApp Cloud API webhook JSON -> normalized inbound events.

Pure functions, no I/O. `parse_webhook` accepts any JSON value and never raises:
anything of the wrong type or shape is skipped with a log line, because one
malformed item must not cost us the rest of a batched delivery.

Identity (Meta's "Business-scoped user IDs" page, 2026): every messages webhook
carries the user's business-scoped id (`contacts[].user_id`,
`messages[].from_user_id`, `statuses[].recipient_user_id`,
`user_preferences[].user_id`); the phone number (`wa_id`, `from`,
`recipient_id`) is left out for users with a username whom we have not talked
to lately. So the BSUID is the primary address whenever present.

Groups API webhooks (fields `group_lifecycle_update` and `group_participants_update`,
Meta's "Webhooks for Groups API" page) carry a `groups` array whose items say what
happened in `type`: `group_create` (with the group id and invite link, or `errors`),
`group_delete`, `group_join_request_created` / `_revoked` (with `join_request_id` and the
person's `user_id` / `wa_id`), `group_participants_remove` (`removed_participants`, also
sent when someone leaves). Join requests become JoinRequest events (the join request id in
`event_id`); the rest become GroupUpdate events. Participants added are not reported
further: with join approval on, the bot already knows whom it approved.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.logs import ref  # wamids are base64 of a record holding the phone number
from bot.messages import (
    DeliveryState,
    DeliveryStatus,
    GroupChange,
    GroupUpdate,
    InboundEvent,
    InboundMessage,
    JoinRequest,
    MessageKind,
    PreferenceChange,
)

log = logging.getLogger(__name__)

TRANSPORT = "whatsapp"
KIND_BSUID = "bsuid"
KIND_WA_ID = "wa_id"

_STATES = {state.value: state for state in DeliveryState}
_PREFERENCES = {"stop": False, "resume": True}


def parse_webhook(payload: Any, phone_number_id: str) -> list[InboundEvent]:
    """Every event in one webhook body addressed to our business number."""
    events: list[InboundEvent] = []
    if not isinstance(payload, dict):
        log.warning("whatsapp webhook: body is %s, not an object", type(payload).__name__)
        return events
    for entry in _dicts(payload.get("entry"), "entry"):
        for change in _dicts(entry.get("changes"), "changes"):
            value = change.get("value")
            if not isinstance(value, dict):
                log.warning("whatsapp webhook: change without a value object, skipped")
                continue
            events.extend(_parse_value(value, phone_number_id))
    return events


def _parse_value(value: dict[str, Any], phone_number_id: str) -> list[InboundEvent]:
    metadata = value.get("metadata")
    ours = isinstance(metadata, dict) and metadata.get("phone_number_id") == phone_number_id
    if not ours:
        # One app can be subscribed for several numbers; the others are not ours to act on.
        log.info("whatsapp webhook: change for another phone_number_id ignored")
        return []
    contacts = list(_dicts(value.get("contacts"), "contacts"))
    events: list[InboundEvent] = []
    for item in _dicts(value.get("messages"), "messages"):
        events.extend(_guarded(_parse_message, item, contacts))
    for item in _dicts(value.get("statuses"), "statuses"):
        events.extend(_guarded(_parse_status, item))
    for item in _dicts(value.get("user_preferences"), "user_preferences"):
        events.extend(_guarded(_parse_preference, item))
    for item in _dicts(value.get("groups"), "groups"):
        events.extend(_guarded(_parse_group, item, contacts))
    for error in _dicts(value.get("errors"), "errors"):
        log.warning("whatsapp webhook: platform error %r: %r",
                    error.get("code"), error.get("title"))
    return events


def _guarded(parse: Any, *args: Any) -> list[InboundEvent]:
    """Run one item parser; a bug in it costs that item, never the whole delivery."""
    try:
        event = parse(*args)
    except Exception:
        log.exception("whatsapp webhook: item parser failed, item skipped")
        return []
    return [] if event is None else [event]


def _parse_message(msg: dict[str, Any], contacts: list[dict[str, Any]]) -> InboundMessage | None:
    message_id = _str(msg.get("id"))
    if not message_id:
        log.warning("whatsapp webhook: message without an id skipped")
        return None
    contact = _find_contact(contacts, _str(msg.get("from_user_id")), _str(msg.get("from")))
    bsuid = _str(msg.get("from_user_id")) or _str(contact.get("user_id"))
    wa_id = _str(msg.get("from")) or _str(contact.get("wa_id"))
    sender, sender_kind, sender_alt = _identity(bsuid, wa_id)
    if not sender:
        log.warning("whatsapp webhook: message %s has no sender id, skipped", ref(message_id))
        return None
    content = _message_content(msg)
    if content is None:
        log.info("whatsapp webhook: message %s of type %r not handled, skipped",
                 ref(message_id), msg.get("type"))
        return None
    kind, text = content
    group_id = _str(msg.get("group_id"))
    return InboundMessage(
        transport=TRANSPORT,
        chat=group_id or sender,
        sender=sender,
        message_id=message_id,
        text=text,
        time=parse_time(msg.get("timestamp")),
        kind=kind,
        room=group_id or None,
        sender_name=_profile_name(contact),
        sender_alt=sender_alt,
        sender_kind=sender_kind,
        raw=msg,
    )


def _message_content(msg: dict[str, Any]) -> tuple[MessageKind, str] | None:
    kind = msg.get("type")
    if kind == "text":
        body = _str(_get(msg, "text", "body"))
        return (MessageKind.TEXT, body) if body else None
    if kind == "interactive":
        interactive = msg.get("interactive")
        reply_type = _get(msg, "interactive", "type")
        if reply_type in ("button_reply", "list_reply") and isinstance(interactive, dict):
            reply_id = _str(_get(interactive, reply_type, "id"))
            return (MessageKind.BUTTON, reply_id) if reply_id else None
        return None
    if kind == "button":
        # Quick-reply button of a template: `payload` is what we set, `text` what they saw.
        payload = _str(_get(msg, "button", "payload")) or _str(_get(msg, "button", "text"))
        return (MessageKind.BUTTON, payload) if payload else None
    return None


def _parse_status(item: dict[str, Any]) -> DeliveryStatus | None:
    message_id = _str(item.get("id"))
    state = _STATES.get(item.get("status")) if isinstance(item.get("status"), str) else None
    if not message_id or state is None:
        log.info("whatsapp webhook: status %r for %s not handled, skipped",
                 item.get("status"), ref(message_id) if message_id else None)
        return None
    # recipient_id is left out when we sent to a BSUID and the phone number is withheld.
    recipient = _str(item.get("recipient_id")) or _str(item.get("recipient_user_id"))
    code, title = _first_error(item) if state is DeliveryState.FAILED else (None, "")
    return DeliveryStatus(
        transport=TRANSPORT,
        provider_message_id=message_id,
        state=state,
        time=parse_time(item.get("timestamp")),
        recipient=recipient,
        error_code=code,
        error_title=title,
    )


def _first_error(item: dict[str, Any]) -> tuple[int | None, str]:
    errors = item.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, ""
    error = errors[0]
    title = _str(error.get("title")) or _str(error.get("message"))
    return _int(error.get("code")), title


def _parse_preference(item: dict[str, Any]) -> PreferenceChange | None:
    category, value = item.get("category"), item.get("value")
    if category != "marketing_messages" or not isinstance(value, str) or value not in _PREFERENCES:
        log.info("whatsapp webhook: user preference %r=%r not handled", category, value)
        return None
    sender, sender_kind, _ = _identity(_str(item.get("user_id")), _str(item.get("wa_id")))
    if not sender:
        log.warning("whatsapp webhook: user preference without a user id skipped")
        return None
    timestamp = item.get("timestamp")
    return PreferenceChange(
        transport=TRANSPORT,
        sender=sender,
        marketing_opt_in=_PREFERENCES[value],
        time=parse_time(timestamp),
        sender_kind=sender_kind,
        # Meta gives these no id of their own and redelivers on any non-2xx,
        # so build a stable one for the inbox to deduplicate on.
        event_id=f"pref:{sender}:{value}:{_str(timestamp) or _int(timestamp) or ''}",
    )


def _parse_group(item: dict[str, Any],
                 contacts: list[dict[str, Any]]) -> JoinRequest | GroupUpdate | None:
    kind = item.get("type")
    group_id = _str(item.get("group_id"))
    time = parse_time(item.get("timestamp"))
    stamp = _str(item.get("timestamp")) or str(_int(item.get("timestamp")) or "")
    if kind == "group_join_request_created":
        return _join_request(item, group_id, time, contacts)
    if kind == "group_create":
        request_id = _str(item.get("request_id"))
        errors = _dicts(item.get("errors"), "group errors")
        if errors:
            change, detail = GroupChange.CREATE_FAILED, _error_text(errors[0])
        elif group_id:
            change, detail = GroupChange.CREATED, _str(item.get("invite_link"))
        else:
            log.warning("whatsapp webhook: group_create without a group id or errors, skipped")
            return None
        return GroupUpdate(transport=TRANSPORT, room=group_id, change=change, time=time,
                           request_id=request_id, subject=_str(item.get("subject")),
                           detail=detail, event_id=f"group_create:{request_id}:{stamp}")
    if not group_id:
        log.info("whatsapp webhook: group event %r without a group id, skipped", kind)
        return None
    if kind == "group_delete" and not item.get("errors"):
        return GroupUpdate(transport=TRANSPORT, room=group_id, change=GroupChange.DELETED,
                           time=time, request_id=_str(item.get("request_id")),
                           event_id=f"group_delete:{group_id}:{stamp}")
    if kind == "group_join_request_revoked":
        join_request_id = _str(item.get("join_request_id"))
        return GroupUpdate(transport=TRANSPORT, room=group_id, change=GroupChange.JOIN_REVOKED,
                           time=time, detail=join_request_id,
                           event_id=f"join_revoked:{join_request_id}:{stamp}")
    if kind == "group_participants_remove":
        users = tuple(user for p in _dicts(item.get("removed_participants"), "removed")
                      if (user := _str(p.get("user_id")) or _str(p.get("wa_id"))
                          or _str(p.get("input"))))
        if not users:
            return None
        return GroupUpdate(transport=TRANSPORT, room=group_id, change=GroupChange.LEFT,
                           time=time, users=users,
                           detail=_str(item.get("initiated_by")),
                           event_id=f"left:{group_id}:{_str(item.get('request_id'))}:{stamp}")
    log.info("whatsapp webhook: group event %r not handled, skipped", kind)
    return None


def _join_request(item: dict[str, Any], group_id: str, time: datetime,
                  contacts: list[dict[str, Any]]) -> JoinRequest | None:
    join_request_id = _str(item.get("join_request_id"))
    bsuid, wa_id = _str(item.get("user_id")), _str(item.get("wa_id"))
    sender, _, sender_alt = _identity(bsuid, wa_id)
    if not (group_id and join_request_id and sender):
        log.warning("whatsapp webhook: join request without a group, request or user id")
        return None
    contact = _find_contact(contacts, bsuid, wa_id)
    return JoinRequest(transport=TRANSPORT, room=group_id, sender=sender, time=time,
                       sender_name=_profile_name(contact), event_id=join_request_id,
                       sender_alt=sender_alt)


def _error_text(error: dict[str, Any]) -> str:
    return (_str(_get(error, "error_data", "details")) or _str(error.get("message"))
            or _str(error.get("title")) or "no reason given")


def _identity(bsuid: str, wa_id: str) -> tuple[str, str, str | None]:
    """(sender, sender_kind, sender_alt): the BSUID first, the phone number as the spare."""
    if bsuid:
        return bsuid, KIND_BSUID, wa_id or None
    if wa_id:
        return wa_id, KIND_WA_ID, None
    return "", KIND_WA_ID, None


def _find_contact(contacts: list[dict[str, Any]], bsuid: str, wa_id: str) -> dict[str, Any]:
    for contact in contacts:
        if (bsuid and contact.get("user_id") == bsuid) or (wa_id and contact.get("wa_id") == wa_id):
            return contact
    # Older payloads for one sender carry one contact and no ids to match on.
    return contacts[0] if len(contacts) == 1 and not (bsuid or wa_id) else {}


def _profile_name(contact: Mapping[str, Any]) -> str | None:
    return _str(_get(contact, "profile", "name")) or None


def parse_time(value: Any) -> datetime:
    """Meta's unix-seconds timestamp (string or number) as aware UTC; now if unusable."""
    seconds = _int(value)
    if seconds is not None:
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return datetime.now(UTC)


def _dicts(value: Any, what: str) -> list[dict[str, Any]]:
    """The objects in a JSON array; anything else in it is logged and dropped."""
    if value is None:
        return []
    if not isinstance(value, list):
        log.warning("whatsapp webhook: %s is %s, not an array", what, type(value).__name__)
        return []
    items = [item for item in value if isinstance(item, dict)]
    if len(items) != len(value):
        log.warning("whatsapp webhook: %d non-object item(s) in %s skipped",
                    len(value) - len(items), what)
    return items


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    # Length cap: int() refuses digit strings past ~4300 characters, and no timestamp
    # or error code is longer than this anyway.
    text = value.strip() if isinstance(value, str) else ""
    if text.isascii() and text.isdigit() and len(text) <= 20:
        return int(text)
    return None


def graph_error(body: Any) -> tuple[int | None, str]:
    """(code, human text) from a Graph API error body `{"error": {...}}`."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, ""
    details = _str(_get(error, "error_data", "details"))
    return _int(error.get("code")), details or _str(error.get("message"))
