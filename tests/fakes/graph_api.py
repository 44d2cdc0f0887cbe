"""A local stand-in for the WhatsApp Cloud (Graph) API, and webhook payload builders.

`GraphApiStandIn` is a real aiohttp server on 127.0.0.1 speaking the shapes of
Meta's reference pages: `/messages`, `/media` and the Groups API. It records
every request, can be scripted to fail (`fail_next`), to stall (`stall_next`)
or to rate-limit a sender (`limit_rate`), and lets tests wait for traffic
without sleeping (`wait_for_requests`).

    async with GraphApiStandIn(token="T", phone_number_id="111") as graph:
        transport = WhatsAppTransport("111", "T", ..., api_base_url=graph.base_url)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

# Graph error codes -> (HTTP status, message, details) as Meta's error-code table gives them.
GRAPH_ERRORS: dict[int, tuple[int, str, str]] = {
    4: (400, "(#4) Application request limit reached", "Too many API calls from this app."),
    100: (400, "(#100) Invalid parameter", "A parameter is missing or invalid."),
    190: (401, "Error validating access token", "The access token is invalid or expired."),
    130429: (400, "(#130429) Rate limit hit",
             "Cloud API message throughput has been reached."),
    131000: (500, "(#131000) Something went wrong",
             "Message failed to send due to an unknown error."),
    131016: (503, "(#131016) Service unavailable", "A service is temporarily unavailable."),
    131026: (400, "(#131026) Message undeliverable", "Unable to deliver message."),
    131047: (400, "(#131047) Re-engagement message",
             "More than 24 hours have passed since the recipient last replied."),
    131050: (400, "(#131050) Unable to deliver the message",
             "This recipient has chosen to stop receiving marketing messages from your business."),
    131056: (400, "(#131056) (Business Account, Consumer Account) pair rate limit hit",
             "Too many messages sent from this phone number to the same phone number."),
    131203: (400, "(#131203) Unable to add participant to group",
             "Recipient has not accepted our new Terms of Service and Privacy Policy."),
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any  # decoded JSON body, or None
    form: dict[str, Any] | None = None  # multipart fields; files as {"filename", "size", ...}
    query: dict[str, str] = field(default_factory=dict)


_RECORDED = web.RequestKey("recorded", RecordedRequest)


@dataclass
class _ScriptedFailure:
    code: int
    http_status: int
    message: str
    retry_after: float | None
    path_suffix: str = ""  # only calls to a path ending so fail ("": any call)


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class Group:
    subject: str
    description: str
    join_approval_mode: str
    invite_link: str
    join_requests: set[str] = field(default_factory=set)
    participants: set[str] = field(default_factory=set)


class GraphApiStandIn:
    def __init__(self, token: str = "T", phone_number_id: str = "111",
                 version: str = "v23.0", *, group_create_returns_id: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.token = token
        self.phone_number_id = phone_number_id
        self.version = version
        # Meta documents no synchronous create-group body (the id comes in a webhook);
        # switch this off to get the request-id-only answer.
        self.group_create_returns_id = group_create_returns_id
        self.requests: list[RecordedRequest] = []
        self.sent: list[dict[str, Any]] = []  # /messages bodies that were accepted
        self.groups: dict[str, Group] = {}
        self.creations: dict[str, str] = {}  # request id -> group id, for the webhook
        self._clock = clock
        self._failures: deque[_ScriptedFailure] = deque()
        self._stalls = 0
        self._stall_release = asyncio.Event()
        self._rate: float | None = None
        self._buckets: dict[str, _Bucket] = {}
        self._ids: dict[str, itertools.count[int]] = {}
        self._changed: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> GraphApiStandIn:
        self._changed = asyncio.Condition()
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stall_release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.version}"

    # -- scripting ---------------------------------------------------------------

    def fail_next(self, code: int, times: int = 1, *, http_status: int | None = None,
                  message: str | None = None, retry_after: float | None = None,
                  path_suffix: str = "") -> None:
        """The next `times` authenticated calls (to paths ending in `path_suffix`, if
        given) answer with this Graph error."""
        default_status, default_message, _ = GRAPH_ERRORS.get(code, (400, f"(#{code}) Error", ""))
        failure = _ScriptedFailure(code, http_status or default_status,
                                   message or default_message, retry_after, path_suffix)
        self._failures.extend([failure] * times)

    def stall_next(self, times: int = 1) -> None:
        """The next `times` calls never answer (until the stand-in closes): for timeouts."""
        self._stalls += times

    def limit_rate(self, per_second: float | None) -> None:
        """Token bucket per business number: past `per_second`, answer 130429. None: off."""
        self._rate = per_second
        self._buckets.clear()

    def add_join_request(self, group_id: str, join_request_id: str) -> None:
        self.groups[group_id].join_requests.add(join_request_id)

    # The timeout argument is this helper's documented interface for tests.
    async def wait_for_requests(
        self, n: int, timeout: float = 5  # noqa: ASYNC109
    ) -> list[RecordedRequest]:
        """Wait until at least `n` requests have arrived; return them all."""
        assert self._changed is not None, "use the stand-in as an async context manager"
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.requests) >= n),
                                   timeout)
        return list(self.requests)

    async def wait_for(self, predicate: Callable[[], bool],
                       timeout: float = 5) -> None:  # noqa: ASYNC109
        """Wait until `predicate()` holds; checked after every request and every message
        accepted (a request is recorded before its handler adds it to `sent`)."""
        assert self._changed is not None, "use the stand-in as an async context manager"
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    def requests_to(self, suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(suffix)]

    # -- server ------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_gate])
        v = f"/{self.version}"
        app.router.add_post(v + "/{number}/messages", self._messages)
        app.router.add_post(v + "/{number}/media", self._media)
        app.router.add_post(v + "/{number}/groups", self._create_group)
        app.router.add_get(v + "/{group}/invite_link", self._get_invite_link)
        app.router.add_post(v + "/{group}/invite_link", self._reset_invite_link)
        app.router.add_post(v + "/{group}/join_requests", self._approve_join_requests)
        app.router.add_delete(v + "/{group}/join_requests", self._reject_join_requests)
        app.router.add_delete(v + "/{group}/participants", self._remove_participants)
        return app

    @web.middleware
    async def _record_and_gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        await self._record(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _graph_error(190, *GRAPH_ERRORS[190][:2])
        if self._stalls:
            self._stalls -= 1
            await self._stall_release.wait()
        failure = next((f for f in self._failures if request.path.endswith(f.path_suffix)),
                       None)
        if failure is not None:
            self._failures.remove(failure)
            return _graph_error(failure.code, failure.http_status, failure.message,
                                failure.retry_after)
        return await handler(request)

    async def _record(self, request: web.Request) -> None:
        body: Any = None
        form: dict[str, Any] | None = None
        if request.content_type == "multipart/form-data":
            form = await _read_form(request)
        else:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        recorded = RecordedRequest(request.method, request.path, dict(request.headers),
                                   body, form, dict(request.query))
        # Handlers read their own record from the request: with concurrent calls,
        # self.requests[-1] may already be someone else's.
        request[_RECORDED] = recorded
        self.requests.append(recorded)
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def _next_id(self, prefix: str) -> str:
        counter = self._ids.setdefault(prefix, itertools.count(1))
        return f"{prefix}{next(counter):06d}"

    def _rate_limited(self, sender: str) -> bool:
        if self._rate is None:
            return False
        now = self._clock()
        bucket = self._buckets.setdefault(sender, _Bucket(self._rate, now))
        bucket.tokens = min(self._rate, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return True
        bucket.tokens -= 1
        return False

    async def _messages(self, request: web.Request) -> web.Response:
        number = request.match_info["number"]
        if number != self.phone_number_id:
            return _graph_error(100, 400, "(#100) Invalid phone number id")
        body = request[_RECORDED].json
        problem = _message_problem(body)
        if problem:
            return _graph_error(100, 400, f"(#100) Invalid parameter: {problem}")
        if self._rate_limited(number):
            return _graph_error(130429, *GRAPH_ERRORS[130429][:2])
        self.sent.append(body)
        assert self._changed is not None
        async with self._changed:  # wait_for() predicates often look at what was sent
            self._changed.notify_all()
        target = body.get("to") or body.get("recipient")
        contact = {"input": target}
        if "to" in body and body.get("recipient_type") != "group":
            contact["wa_id"] = str(target).lstrip("+")
        elif "recipient" in body:
            contact["user_id"] = target
        return web.json_response({"messaging_product": "whatsapp", "contacts": [contact],
                                  "messages": [{"id": self._next_id("wamid.STANDIN")}]})

    async def _media(self, request: web.Request) -> web.Response:
        form = request[_RECORDED].form or {}
        if form.get("messaging_product") != "whatsapp" or not isinstance(form.get("file"), dict):
            return _graph_error(100, 400, "(#100) messaging_product and file are required")
        return web.json_response({"id": self._next_id("media-")})

    async def _create_group(self, request: web.Request) -> web.Response:
        body = request[_RECORDED].json or {}
        subject = body.get("subject")
        if not isinstance(subject, str) or not subject.strip():
            return _graph_error(100, 400, "(#100) subject is required")
        group_id = self._next_id("Y2FwaV9ncm91cD")
        self.groups[group_id] = Group(subject, body.get("description", ""),
                                      body.get("join_approval_mode", "auto_approve"),
                                      self._new_link())
        request_id = self._next_id("req-")
        self.creations[request_id] = group_id
        answer: dict[str, Any] = {"messaging_product": "whatsapp", "request_id": request_id}
        if self.group_create_returns_id:
            answer["id"] = group_id
        return web.json_response(answer)

    async def _get_invite_link(self, request: web.Request) -> web.Response:
        group = self.groups.get(request.match_info["group"])
        if group is None:
            return _graph_error(100, 400, "(#100) Unknown group")
        return web.json_response({"messaging_product": "whatsapp",
                                  "invite_link": group.invite_link})

    async def _reset_invite_link(self, request: web.Request) -> web.Response:
        group = self.groups.get(request.match_info["group"])
        if group is None:
            return _graph_error(100, 400, "(#100) Unknown group")
        group.invite_link = self._new_link()
        return web.json_response({"messaging_product": "whatsapp",
                                  "invite_link": group.invite_link})

    async def _approve_join_requests(self, request: web.Request) -> web.Response:
        return self._settle_join_requests(request, "approved_join_requests", admit=True)

    async def _reject_join_requests(self, request: web.Request) -> web.Response:
        return self._settle_join_requests(request, "rejected_join_requests", admit=False)

    def _settle_join_requests(self, request: web.Request, key: str, admit: bool) -> web.Response:
        group = self.groups.get(request.match_info["group"])
        ids = (request[_RECORDED].json or {}).get("join_requests")
        if group is None or not isinstance(ids, list):
            return _graph_error(100, 400, "(#100) Unknown group or join_requests missing")
        done, failed = [], []
        for join_request_id in ids:
            if join_request_id in group.join_requests:
                group.join_requests.discard(join_request_id)
                if admit:
                    group.participants.add(join_request_id)
                done.append(join_request_id)
            else:
                failed.append({"join_request_id": join_request_id, "errors": [
                    {"code": 131203, "message": GRAPH_ERRORS[131203][1],
                     "title": "Unable to add participant to group"}]})
        answer: dict[str, Any] = {"messaging_product": "whatsapp", key: done}
        if failed:
            answer["failed_join_requests"] = failed
        return web.json_response(answer)

    async def _remove_participants(self, request: web.Request) -> web.Response:
        group = self.groups.get(request.match_info["group"])
        participants = (request[_RECORDED].json or {}).get("participants")
        if group is None or not isinstance(participants, list) or not 1 <= len(participants) <= 8:
            return _graph_error(100, 400, "(#100) participants must hold 1 to 8 users")
        for p in participants:
            group.participants.discard(p.get("user") or p.get("user_id"))
        return web.json_response({"messaging_product": "whatsapp", "success": True})

    def _new_link(self) -> str:
        return f"https://chat.whatsapp.com/{self._next_id('LINK')}"


def _message_problem(body: Any) -> str:
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if "to" not in body and "recipient" not in body:
        return "to or recipient is required"
    kind = body.get("type")
    if not isinstance(kind, str) or not isinstance(body.get(kind), dict):
        return "type and its object are required"
    return ""


def _graph_error(code: int, http_status: int, message: str,
                 retry_after: float | None = None) -> web.Response:
    details = GRAPH_ERRORS.get(code, (0, "", message))[2] or message
    body = {"error": {"message": message, "type": "OAuthException", "code": code,
                      "error_data": {"messaging_product": "whatsapp", "details": details},
                      "fbtrace_id": "AStandInTrace"}}
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return web.json_response(body, status=http_status, headers=headers)


async def _read_form(request: web.Request) -> dict[str, Any]:
    form: dict[str, Any] = {}
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        data = await part.read()
        if part.filename is not None:
            form[part.name] = {"filename": part.filename, "size": len(data),
                               "content_type": part.headers.get("Content-Type", ""),
                               "data": bytes(data)}
        else:
            form[part.name] = data.decode()
    return form


# -- webhook builders ------------------------------------------------------------

_message_ids = itertools.count(1)


def sign(body: bytes, secret: str) -> str:
    """The X-Hub-Signature-256 header value Meta sends for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(value: dict[str, Any], field_name: str = "messages",
             phone_number_id: str = "111") -> dict[str, Any]:
    """Wrap one change value as Meta does: object / entry / changes."""
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881",
                          "phone_number_id": phone_number_id},
             **value}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398",
                       "changes": [{"value": value, "field": field_name}]}]}


def _identity(wa_id: str | None, user_id: str | None, name: str | None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(contact, message sender fields). Old shape: wa_id only; new: user_id, maybe wa_id."""
    contact: dict[str, Any] = {"profile": {"name": name}} if name else {}
    sender: dict[str, Any] = {}
    if wa_id is not None:
        contact["wa_id"] = wa_id
        sender["from"] = wa_id
    if user_id is not None:
        contact["user_id"] = user_id
        sender["from_user_id"] = user_id
    return contact, sender


def _inbound(body: dict[str, Any], *, wa_id: str | None, user_id: str | None,
             name: str | None, message_id: str | None, timestamp: str,
             group_id: str | None, phone_number_id: str) -> dict[str, Any]:
    contact, sender = _identity(wa_id, user_id, name)
    message = {**sender, "id": message_id or f"wamid.IN{next(_message_ids):06d}",
               "timestamp": timestamp, **body}
    if group_id is not None:
        message["group_id"] = group_id
    return envelope({"contacts": [contact], "messages": [message]},
                    phone_number_id=phone_number_id)


def text_webhook(text: str, *, wa_id: str | None = "16505551234", user_id: str | None = None,
                 name: str | None = "Sheena Nelson", message_id: str | None = None,
                 timestamp: str = "1749416383", group_id: str | None = None,
                 phone_number_id: str = "111") -> dict[str, Any]:
    return _inbound({"type": "text", "text": {"body": text}}, wa_id=wa_id, user_id=user_id,
                    name=name, message_id=message_id, timestamp=timestamp, group_id=group_id,
                    phone_number_id=phone_number_id)


def button_webhook(reply_id: str, title: str = "Yes", *, kind: str = "button_reply",
                   wa_id: str | None = "16505551234", user_id: str | None = None,
                   name: str | None = "Sheena Nelson", message_id: str | None = None,
                   timestamp: str = "1749416383", phone_number_id: str = "111"
                   ) -> dict[str, Any]:
    """kind: "button_reply" or "list_reply" (interactive), or "button" (template quick reply)."""
    if kind == "button":
        body: dict[str, Any] = {"type": "button", "button": {"payload": reply_id, "text": title}}
    else:
        body = {"type": "interactive",
                "interactive": {"type": kind, kind: {"id": reply_id, "title": title}}}
    body["context"] = {"from": "15550783881", "id": "wamid.OUT000001"}
    return _inbound(body, wa_id=wa_id, user_id=user_id, name=name, message_id=message_id,
                    timestamp=timestamp, group_id=None, phone_number_id=phone_number_id)


def status_webhook(message_id: str, status: str = "delivered", *,
                   recipient_id: str | None = "16505551234",
                   recipient_user_id: str | None = None, error_code: int | None = None,
                   error_title: str = "", timestamp: str = "1750030073",
                   phone_number_id: str = "111") -> dict[str, Any]:
    item: dict[str, Any] = {"id": message_id, "status": status, "timestamp": timestamp}
    if recipient_id is not None:
        item["recipient_id"] = recipient_id
    if recipient_user_id is not None:
        item["recipient_user_id"] = recipient_user_id
    if error_code is not None:
        item["errors"] = [{"code": error_code, "title": error_title, "message": error_title,
                           "error_data": {"details": error_title}}]
    value: dict[str, Any] = {"statuses": [item]}
    if status != "failed":  # Meta leaves contacts out of failed statuses
        contact, _ = _identity(recipient_id, recipient_user_id, "Pablo M.")
        value["contacts"] = [contact]
    return envelope(value, phone_number_id=phone_number_id)


def user_preferences_webhook(value: str = "stop", *, wa_id: str | None = "16505551234",
                             user_id: str | None = None, timestamp: int = 1750030073,
                             phone_number_id: str = "111") -> dict[str, Any]:
    """value: "stop" or "resume" of marketing messages."""
    contact, _ = _identity(wa_id, user_id, "Sheena Nelson")
    item: dict[str, Any] = {"detail": f"User requested to {value} marketing messages",
                            "category": "marketing_messages", "value": value,
                            "timestamp": timestamp}
    if wa_id is not None:
        item["wa_id"] = wa_id
    if user_id is not None:
        item["user_id"] = user_id
    return envelope({"contacts": [contact], "user_preferences": [item]},
                    field_name="user_preferences", phone_number_id=phone_number_id)


def group_created_webhook(graph: GraphApiStandIn, request_id: str, *,
                          timestamp: str = "1750030200",
                          phone_number_id: str = "111") -> dict[str, Any]:
    """The group_lifecycle_update Meta sends once a group asked for is created."""
    group_id = graph.creations[request_id]
    group = graph.groups[group_id]
    item = {"timestamp": timestamp, "group_id": group_id, "type": "group_create",
            "request_id": request_id, "subject": group.subject,
            "invite_link": group.invite_link, "join_approval_mode": group.join_approval_mode}
    return envelope({"groups": [item]}, field_name="group_lifecycle_update",
                    phone_number_id=phone_number_id)


def group_create_failed_webhook(request_id: str, subject: str, *, code: int = 131215,
                                details: str = "The business is not eligible for groups.",
                                timestamp: str = "1750030200",
                                phone_number_id: str = "111") -> dict[str, Any]:
    item = {"timestamp": timestamp, "type": "group_create", "subject": subject,
            "request_id": request_id,
            "errors": [{"code": code, "message": f"(#{code}) Group creation failed",
                        "title": "Group creation failed", "error_data": {"details": details}}]}
    return envelope({"groups": [item]}, field_name="group_lifecycle_update",
                    phone_number_id=phone_number_id)


def join_request_webhook(group_id: str, join_request_id: str, *,
                         wa_id: str | None = "16505551234", user_id: str | None = None,
                         timestamp: str = "1750030300",
                         phone_number_id: str = "111") -> dict[str, Any]:
    """group_participants_update: someone asked to join through the invite link."""
    item: dict[str, Any] = {"timestamp": timestamp, "group_id": group_id,
                            "type": "group_join_request_created",
                            "join_request_id": join_request_id}
    if wa_id is not None:
        item["wa_id"] = wa_id
    if user_id is not None:
        item["user_id"] = user_id
    return envelope({"groups": [item]}, field_name="group_participants_update",
                    phone_number_id=phone_number_id)


def participants_removed_webhook(group_id: str, users: list[str], *,
                                 initiated_by: str = "participant",
                                 timestamp: str = "1750030400",
                                 phone_number_id: str = "111") -> dict[str, Any]:
    """group_participants_update: participants left (or the business removed them)."""
    removed = [{"user_id": u} if u.startswith("US.") else {"wa_id": u} for u in users]
    item = {"timestamp": timestamp, "group_id": group_id, "type": "group_participants_remove",
            "initiated_by": initiated_by, "removed_participants": removed}
    return envelope({"groups": [item]}, field_name="group_participants_update",
                    phone_number_id=phone_number_id)


def body_of(payload: Any) -> bytes:
    return json.dumps(payload).encode()

