"""A local stand-in for the Telegram Bot API, for tests.

A real aiohttp server on 127.0.0.1 that answers `/bot<token>/<method>` the way
api.telegram.org does: query string, form, multipart or JSON parameters in;
`{"ok": true, "result": ...}` or `{"ok": false, "error_code": ..., ...}` out,
with the matching HTTP status (python-telegram-bot maps errors by status).

    async with BotApiStandIn(token="123:ABC") as tg:
        tg.push_update(private_text("hello"))
        ...
        calls = await tg.wait_for_calls("sendMessage", 1)

Long polling waits on an asyncio.Event, never on sleeps. Rate rules use an
injectable clock so a test can step time instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USERNAME = "GroundworkBot"
DEFAULT_USER_ID = 1001
DEFAULT_GROUP_ID = -1001234567890
MAX_TEXT = 4096

_SEND_METHODS = frozenset({"sendmessage", "senddocument"})
# Parameters that stay strings even when they look like JSON ("123", "true").
_TEXT_PARAMS = frozenset({
    "text", "caption", "callback_query_id", "secret_token", "url", "parse_mode",
    "description", "title", "ip_address", "chat_id", "document",
})
_message_ids = itertools.count(500)


@dataclass(frozen=True, slots=True)
class ApiCall:
    method: str  # as the client spelled it, e.g. "sendMessage"
    params: dict[str, Any]  # decoded: ints as ints, JSON fields parsed, files as dicts


@dataclass(slots=True)
class _Failure:
    error_code: int
    description: str
    retry_after: int | None
    migrate_to_chat_id: int | None
    times: int


@dataclass(slots=True)
class _RateRule:
    """Telegram's documented limits: 1/s per chat, 20/min per group, 30/s overall."""

    clock: Callable[[], float]
    last_by_chat: dict[int, float] = field(default_factory=dict)
    group_sends: dict[int, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    all_sends: deque[float] = field(default_factory=deque)

    def check(self, chat_id: int) -> int | None:
        """Seconds to wait if this send breaks a rule; else None (and count it)."""
        now = self.clock()
        _expire(self.all_sends, now - 1.0)
        waits: list[float] = []
        last = self.last_by_chat.get(chat_id)
        if last is not None and now - last < 1.0:
            waits.append(1.0 - (now - last))
        if chat_id < 0:
            sends = self.group_sends[chat_id]
            _expire(sends, now - 60.0)
            if len(sends) >= 20:
                waits.append(60.0 - (now - sends[0]))
        if len(self.all_sends) >= 30:
            waits.append(1.0 - (now - self.all_sends[0]))
        if waits:
            return max(1, math.ceil(max(waits)))
        self.last_by_chat[chat_id] = now
        self.all_sends.append(now)
        if chat_id < 0:
            self.group_sends[chat_id].append(now)
        return None


def _expire(times: deque[float], before: float) -> None:
    while times and times[0] <= before:
        times.popleft()


class _ApiError(Exception):
    def __init__(
        self,
        code: int,
        description: str,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id


class BotApiStandIn:
    """The Bot API on 127.0.0.1, scriptable and recording every call."""

    def __init__(
        self,
        token: str = "123:ABC",
        bot_username: str = BOT_USERNAME,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        self.bot_id = int(token.split(":", 1)[0])
        self.calls: list[ApiCall] = []
        self.webhook_url = ""
        self._clock = clock
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 800_000
        self._new_update = asyncio.Event()
        self._calls_changed = asyncio.Condition()
        self._failures: dict[str, deque[_Failure]] = defaultdict(deque)
        self._rate_rule: _RateRule | None = None
        self._message_counter: dict[int, itertools.count[int]] = {}
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> BotApiStandIn:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing = True
        self._new_update.set()  # release pending long polls at once
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- scripting -----------------------------------------------------------

    def push_update(self, update: Mapping[str, Any]) -> int:
        """Queue an update for getUpdates; returns its update_id."""
        queued = dict(update)
        if "update_id" not in queued:
            queued["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, int(queued["update_id"])) + 1
        self._updates.append(queued)
        self._new_update.set()
        self._new_update = asyncio.Event()
        return int(queued["update_id"])

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by an offset past them."""
        return list(self._updates)

    def fail_next(
        self,
        method: str,
        error_code: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
        *,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` with this error."""
        self._failures[method.lower()].append(
            _Failure(error_code, description, retry_after, migrate_to_chat_id, times)
        )

    def enforce_rate_limits(self, enabled: bool = True) -> None:
        self._rate_rule = _RateRule(self._clock) if enabled else None

    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method.lower() == method.lower()]

    # A timeout argument (not asyncio.timeout around the call) keeps test lines short.
    async def wait_for_calls(
        self, method: str, n: int, timeout: float = 5.0  # noqa: ASYNC109
    ) -> list[ApiCall]:
        """Wait until `method` was called at least n times; returns those calls."""
        await self.wait_until(lambda: len(self.calls_to(method)) >= n, timeout)
        return self.calls_to(method)

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 5.0  # noqa: ASYNC109
    ) -> None:
        """Wait until `predicate` holds, re-checking after every recorded call."""
        async with asyncio.timeout(timeout), self._calls_changed:
            await self._calls_changed.wait_for(predicate)

    # -- HTTP --------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(_ApiError(401, "Unauthorized"))
        params = await _read_params(request)
        await self._record(ApiCall(method, params))
        try:
            self._raise_scripted(method)
            result = await self._dispatch(method.lower(), params)
        except _ApiError as exc:
            return _error(exc)
        return web.json_response({"ok": True, "result": result})

    async def _record(self, call: ApiCall) -> None:
        async with self._calls_changed:
            self.calls.append(call)
            self._calls_changed.notify_all()

    def _raise_scripted(self, method: str) -> None:
        queue = self._failures.get(method.lower())
        if not queue:
            return
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.popleft()
        raise _ApiError(
            failure.error_code, failure.description, failure.retry_after,
            failure.migrate_to_chat_id,
        )

    async def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        if method in _SEND_METHODS:
            self._check_rate(params)
        handler = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "senddocument": self._send_document,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "restrictchatmember": self._group_only,
            "banchatmember": self._group_only,
            "unbanchatmember": self._group_only,
            "approvechatjoinrequest": self._group_only,
            "declinechatjoinrequest": self._group_only,
            "deletemessage": self._true,
            "answercallbackquery": self._true,
        }.get(method)
        if handler is None:
            raise _ApiError(404, "Not Found")
        return await handler(params)

    # -- methods -------------------------------------------------------------------

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._bot_user()

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is "
                                 "active; use deleteWebhook to delete the webhook first")
        offset = params.get("offset")
        limit = int(params.get("limit") or 100)
        long_poll = float(params.get("timeout") or 0)
        if isinstance(offset, int):
            # An offset confirms every update before it, for good.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and long_poll > 0 and not self._closing:
            try:
                await asyncio.wait_for(self._new_update.wait(), long_poll)
            except TimeoutError:
                pass
        return [u for u in self._updates if not isinstance(offset, int)
                or u["update_id"] >= offset][:limit]

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > MAX_TEXT:
            raise _ApiError(400, "Bad Request: message is too long")
        message = self._new_message(params)
        message["text"] = text
        return message

    async def _send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        document = params.get("document")
        if not isinstance(document, dict):
            raise _ApiError(400, "Bad Request: there is no document in the request")
        message = self._new_message(params)
        message["document"] = {
            "file_id": f"BQAC{message['message_id']}",
            "file_unique_id": f"AgAD{message['message_id']}",
            "file_name": document["filename"],
            "mime_type": document["content_type"],
            "file_size": len(document["data"]),
        }
        if params.get("caption"):
            message["caption"] = params["caption"]
        return message

    async def _set_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = str(params.get("url") or "")
        return True

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = ""
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.webhook_url, "has_custom_certificate": False,
                "pending_update_count": len(self._updates)}

    async def _group_only(self, params: dict[str, Any]) -> bool:
        chat_id = _int_chat(params)
        if chat_id > 0:
            raise _ApiError(400, "Bad Request: method is available for supergroup and "
                                 "channel chats only")
        if not isinstance(params.get("user_id"), int):
            raise _ApiError(400, "Bad Request: invalid user_id specified")
        return True

    async def _true(self, params: dict[str, Any]) -> bool:
        return True

    # -- shapes ------------------------------------------------------------------

    def _check_rate(self, params: dict[str, Any]) -> None:
        if self._rate_rule is None:
            return
        wait = self._rate_rule.check(_int_chat(params))
        if wait is not None:
            raise _ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)

    def _new_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = _int_chat(params)
        counter = self._message_counter.setdefault(chat_id, itertools.count(1))
        message: dict[str, Any] = {
            "message_id": next(counter),
            "from": self._bot_user(),
            "chat": _chat(chat_id),
            "date": int(time.time()),
        }
        if isinstance(params.get("reply_markup"), dict):
            _check_markup(params["reply_markup"])
            message["reply_markup"] = params["reply_markup"]
        return message

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Groundwork",
            "username": self.bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }


def _error(exc: _ApiError) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
    parameters = {"retry_after": exc.retry_after, "migrate_to_chat_id": exc.migrate_to_chat_id}
    parameters = {key: value for key, value in parameters.items() if value is not None}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=exc.code)


def _int_chat(params: Mapping[str, Any]) -> int:
    chat_id = params.get("chat_id")
    try:
        return int(chat_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _ApiError(400, "Bad Request: chat not found") from None


def _chat(chat_id: int) -> dict[str, Any]:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "Ada"}
    kind = "supergroup" if str(chat_id).startswith("-100") else "group"
    return {"id": chat_id, "type": kind, "title": "Riverside Tenants"}


def _check_markup(markup: Mapping[str, Any]) -> None:
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string and body merged, decoded the way the Bot API reads them."""
    raw: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            return raw | body  # JSON bodies are typed already
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                raw[key] = {
                    "filename": value.filename,
                    "content_type": value.content_type,
                    "data": value.file.read(),
                }
            else:
                raw[key] = value
    return {key: _decode(key, value) for key, value in raw.items()}


def _decode(key: str, value: Any) -> Any:
    """PTB JSON-encodes non-string parameters in forms: "123", "true", '{"inline_keyboard":...}'."""
    if not isinstance(value, str):
        return value
    if key == "chat_id":
        try:
            return int(value)
        except ValueError:
            return value  # "@channelname"
    if key in _TEXT_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


# -- update builders ---------------------------------------------------------------


def _user(user_id: int, first_name: str, last_name: str | None = None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if last_name:
        user["last_name"] = last_name
    return user


def _message(
    text: str, chat: dict[str, Any], user: dict[str, Any], date: int | None,
    message_id: int | None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": message_id if message_id is not None else next(_message_ids),
        "from": user,
        "chat": chat,
        "date": date if date is not None else int(time.time()),
        "text": text,
    }
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return message


def private_text(
    text: str,
    *,
    user_id: int = DEFAULT_USER_ID,
    first_name: str = "Ada",
    last_name: str | None = "Lovelace",
    message_id: int | None = None,
    date: int | None = None,
) -> dict[str, Any]:
    """A `message` update in the user's private chat with the bot."""
    chat = {"id": user_id, "type": "private", "first_name": first_name}
    user = _user(user_id, first_name, last_name)
    return {"message": _message(text, chat, user, date, message_id)}


def group_text(
    text: str,
    *,
    chat_id: int = DEFAULT_GROUP_ID,
    user_id: int = DEFAULT_USER_ID,
    first_name: str = "Ada",
    last_name: str | None = "Lovelace",
    chat_type: str = "supergroup",
    title: str = "Riverside Tenants",
    message_id: int | None = None,
    date: int | None = None,
) -> dict[str, Any]:
    """A `message` update posted in a group the bot sits in."""
    chat = {"id": chat_id, "type": chat_type, "title": title}
    user = _user(user_id, first_name, last_name)
    return {"message": _message(text, chat, user, date, message_id)}


def command(
    name: str,
    args: str = "",
    *,
    bot_username: str = BOT_USERNAME,
    chat_id: int | None = None,
    user_id: int = DEFAULT_USER_ID,
) -> dict[str, Any]:
    """"/name@bot_username args", in a group when chat_id is given, else privately."""
    text = f"/{name}@{bot_username}" + (f" {args}" if args else "")
    if chat_id is None:
        return private_text(text, user_id=user_id)
    return group_text(text, chat_id=chat_id, user_id=user_id)


def callback_query(
    data: str,
    *,
    user_id: int = DEFAULT_USER_ID,
    chat_id: int | None = None,
    message_id: int = 42,
    query_id: str | None = None,
) -> dict[str, Any]:
    """A tap on an inline button under one of the bot's messages."""
    chat_id = user_id if chat_id is None else chat_id
    bot_message = {
        "message_id": message_id,
        "from": {"id": 123, "is_bot": True, "first_name": "Groundwork",
                 "username": BOT_USERNAME},
        "chat": _chat(chat_id),
        "date": int(time.time()) - 60,
        "text": "Will you come?",
    }
    return {
        "callback_query": {
            "id": query_id if query_id is not None else f"{next(_message_ids)}777",
            "from": _user(user_id, "Ada", "Lovelace"),
            "message": bot_message,
            "chat_instance": "-4242",
            "data": data,
        }
    }


def chat_join_request(
    *,
    chat_id: int = DEFAULT_GROUP_ID,
    user_id: int = DEFAULT_USER_ID,
    first_name: str = "Ada",
    last_name: str | None = "Lovelace",
    date: int | None = None,
) -> dict[str, Any]:
    """Someone asked to join a group whose invite link requires approval."""
    return {
        "chat_join_request": {
            "chat": _chat(chat_id),
            "from": _user(user_id, first_name, last_name),
            "user_chat_id": user_id,
            "date": date if date is not None else int(time.time()),
        }
    }
