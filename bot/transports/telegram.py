"""Telegram transport: Bot API client, long polling or webhook, and room moderation.

python-telegram-bot is used only as an HTTP client (`telegram.Bot`) and update
parser; the bot has its own router, so PTB's Application and handlers are not
used. Conversion of updates lives in `telegram_parse` and is pure.

Delivery guarantees: an update is acknowledged to Telegram (polling offset
advanced, webhook answered 2xx) only after `sink.accept` returned, so nothing
accepted is lost and nothing unaccepted is acknowledged. Redeliveries after a
crash are expected; the inbox deduplicates on message id.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import warnings
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from telegram import (
    Bot,
    ChatPermissions,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest

from bot.messages import (
    Attachment,
    Button,
    InboundEvent,
    InboundMessage,
    MessageKind,
    OutboundMessage,
    SendErrorKind,
    SendResult,
)
from bot.transports.base import Capabilities, InboundSink, TransportUnavailable
from bot.transports.telegram_parse import CALLBACK_ID_PREFIX, TRANSPORT, events_from_json

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ("message", "callback_query", "chat_join_request")
MAX_TEXT = 4096  # UTF-16 code units, as Telegram counts them
MAX_CAPTION = 1024
MAX_CALLBACK_DATA_BYTES = 64
# Telegram reads a restriction or ban ending sooner than 30 s (or later than
# 366 days) as "forever"; a short mute must never silently become permanent.
MIN_RESTRICTION = timedelta(seconds=35)

Sleep = Callable[[float], Awaitable[None]]


class TelegramTransport:
    """Transport and RoomModeration for Telegram."""

    name = TRANSPORT
    capabilities = Capabilities(
        rooms=True,
        buttons=True,
        files=True,
        delete_message=True,
        restrict_member=True,
        remove_member=True,
        approve_join=True,
        max_text_length=MAX_TEXT,
    )

    def __init__(
        self,
        token: str,
        mode: str = "polling",
        webhook_path: str = "/webhooks/telegram",
        webhook_secret: str | None = None,
        api_base_url: str = "https://api.telegram.org",
        bot_username: str | None = None,
        max_body_bytes: int = 256 * 1024,
        *,
        webhook_url: str | None = None,
        poll_timeout: int = 30,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        write_timeout: float = 10.0,
        media_write_timeout: float = 30.0,
        pool_timeout: float = 5.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        removal_ban_days: int = 7,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """`webhook_url`, when set in webhook mode, is registered with setWebhook on start.

        `removal_ban_days`: remove_member bans for this long (1..366); 0 bans for good.
        `sleep` is the back-off wait, replaceable so tests need not wait for real.
        """
        if mode not in ("polling", "webhook"):
            raise ValueError(f"telegram mode must be 'polling' or 'webhook', not {mode!r}")
        if mode == "webhook" and not webhook_secret:
            # Without a secret anyone who guesses the path could inject updates.
            raise ValueError("telegram webhook mode needs a webhook_secret")
        if not 0 <= removal_ban_days <= 366:
            raise ValueError("removal_ban_days must be between 0 and 366")
        self.mode = mode
        self.webhook_path = webhook_path
        self._secret = webhook_secret.encode() if webhook_secret else b""
        self._webhook_url = webhook_url
        self._username = bot_username.lstrip("@") if bot_username else None
        self._max_body = max_body_bytes
        self._poll_timeout = poll_timeout
        self._read_timeout = read_timeout
        self._backoff = (backoff_initial, backoff_max)
        self._removal_ban = timedelta(days=removal_ban_days) if removal_ban_days else None
        self._sleep = sleep
        timeouts = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "write_timeout": write_timeout,
            "pool_timeout": pool_timeout,
            "media_write_timeout": media_write_timeout,
        }
        # Long polling gets its own single connection so a slow send can never
        # starve it, and vice versa.
        self._updates_request = HTTPXRequest(connection_pool_size=1, **timeouts)
        base = api_base_url.rstrip("/")
        self._api_base = base
        self._bot = Bot(
            token,
            base_url=f"{base}/bot",
            base_file_url=f"{base}/file/bot",
            request=HTTPXRequest(connection_pool_size=64, **timeouts),
            get_updates_request=self._updates_request,
        )
        self._sink: InboundSink | None = None
        self._poller: asyncio.Task[None] | None = None
        self._offset: int | None = None
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def bot_username(self) -> str | None:
        return self._username

    # -- lifecycle ---------------------------------------------------------

    async def start(self, sink: InboundSink) -> None:
        """Initialize the client (getMe) and begin receiving.

        Raises TransportUnavailable if Telegram rejects the token or the webhook, or
        cannot be reached at all: a misconfigured transport should fail the boot
        loudly, not idle silently.
        """
        if self._sink is not None:
            raise RuntimeError("telegram transport already started")
        try:
            await self._bot.initialize()  # calls getMe
            self._username = self._username or self._bot.username
            if self.mode == "polling":
                # getUpdates answers 409 while a webhook is registered.
                await self._bot.delete_webhook(drop_pending_updates=False)
            elif self._webhook_url:
                await self._bot.set_webhook(
                    self._webhook_url,
                    secret_token=self._secret.decode(),
                    allowed_updates=list(ALLOWED_UPDATES),
                )
        except TelegramError as exc:
            await self._bot.shutdown()  # its HTTP clients
            raise TransportUnavailable(self._start_failure(exc)) from exc
        self._sink = sink
        if self.mode == "polling":
            self._poller = asyncio.create_task(self._poll_forever(sink), name="telegram-poll")

    def _start_failure(self, exc: TelegramError) -> str:
        # BadRequest and TimedOut are NetworkErrors to the library: refusals first.
        if isinstance(exc, InvalidToken):
            return "Telegram refused the bot token; check transports.telegram.token"
        if isinstance(exc, BadRequest):
            return f"Telegram refused the bot's settings: {exc.message}"
        if isinstance(exc, NetworkError):
            return f"cannot reach Telegram's Bot API at {self._api_base}: {exc.message}"
        return f"Telegram answered with an error: {exc.message}"

    async def stop(self) -> None:
        """Stop polling, confirm what was accepted, release the HTTP clients."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
            await self._confirm_offset()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._sink = None
        await self._bot.shutdown()

    def routes(self) -> list[web.RouteDef]:
        if self.mode != "webhook":
            return []
        return [web.post(self.webhook_path, self._handle_webhook)]

    # -- receiving: long polling ---------------------------------------------

    async def _poll_forever(self, sink: InboundSink) -> None:
        delay = self._backoff[0]
        while True:
            try:
                updates = await self._fetch_updates(self._offset, self._poll_timeout)
                await self._deliver(updates, sink)
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                wait = _retry_after_seconds(exc)
                log.warning("telegram: getUpdates rate limited, waiting %.0f s", wait)
                await self._sleep(wait)
                continue
            except Exception as exc:
                # InvalidToken/Conflict need an operator; network trouble passes.
                # Either way keep trying, gently, rather than crash the process.
                log.warning("telegram: polling failed (%r); retrying in %.1f s", exc, delay)
                await self._sleep(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            delay = self._backoff[0]

    async def _fetch_updates(self, offset: int | None, long_poll: int) -> list[Any]:
        """getUpdates, returning the raw update dicts.

        Bot.get_updates would parse the whole batch with PTB, and one update it
        cannot parse would then fail every retry: the offset could never move
        past it. Fetching raw JSON through PTB's request object (same error
        mapping, same timeouts) lets each update be parsed, or skipped, alone.
        PTB's docs reserve BaseRequest.post for Bot's own use; it is public API
        and is called here exactly as Bot calls it, with parameters in the query
        string (which the Bot API accepts like a form body).
        """
        params: dict[str, Any] = {
            "timeout": long_poll,
            "allowed_updates": json.dumps(ALLOWED_UPDATES),
        }
        if offset is not None:
            params["offset"] = offset
        result = await self._updates_request.post(
            f"{self._bot.base_url}/getUpdates?{urlencode(params)}",
            read_timeout=self._read_timeout + long_poll,
        )
        if not isinstance(result, list):
            raise NetworkError(f"getUpdates returned {type(result).__name__}, not a list")
        return result

    async def _deliver(self, updates: Sequence[Any], sink: InboundSink) -> None:
        """Hand a batch to the sink; advance the offset only once it is accepted."""
        ids: list[int] = []
        events: list[InboundEvent] = []
        for update in updates:
            update_id = update.get("update_id") if isinstance(update, dict) else None
            if not isinstance(update_id, int) or isinstance(update_id, bool):
                log.warning("telegram: update without a usable update_id skipped")
                continue
            ids.append(update_id)
            events.extend(events_from_json(update, self._username))
        if not ids:
            return
        if events:
            await sink.accept(events)  # raising here keeps the offset: redelivery
        self._offset = max(ids) + 1
        self._answer_callbacks(events)

    async def _confirm_offset(self) -> None:
        """Tell Telegram what we accepted, so a restart is not served it again."""
        if self._offset is None:
            return
        try:
            await self._fetch_updates(self._offset, 0)
        except Exception as exc:
            log.info("telegram: could not confirm offset on stop (%r); updates may repeat", exc)

    # -- receiving: webhook --------------------------------------------------

    async def _handle_webhook(self, request: web.Request) -> web.Response:
        # The secret is checked before anything else is read or parsed.
        if not self._secret_matches(request.headers.get(SECRET_HEADER)):
            return web.Response(status=403)
        sink = self._sink
        if sink is None:
            return web.Response(status=503)  # not started yet; Telegram will retry
        body = await self._read_capped(request)
        if body is None:
            return web.Response(status=413)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            # Telegram retries non-2xx answers; retrying garbage would not help.
            log.warning("telegram: webhook body is not JSON (%r); dropped", exc)
            return web.Response(status=200)
        events = events_from_json(data, self._username)
        if events:
            try:
                await sink.accept(events)
            except Exception:
                log.exception("telegram: sink refused a webhook update; Telegram will redeliver")
                return web.Response(status=500)
            self._answer_callbacks(events)
        return web.Response(status=200)

    def _secret_matches(self, given: str | None) -> bool:
        if given is None:
            return False
        try:
            given_bytes = given.encode()
        except UnicodeError:
            return False
        return hmac.compare_digest(given_bytes, self._secret)

    async def _read_capped(self, request: web.Request) -> bytes | None:
        """The body, or None once it exceeds the cap (also for chunked uploads)."""
        if request.content_length is not None and request.content_length > self._max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    # -- button taps -----------------------------------------------------------

    def _answer_callbacks(self, events: Iterable[InboundEvent]) -> None:
        """Stop the tap's spinner. Fire and forget: the tap is already accepted."""
        for event in events:
            if (
                isinstance(event, InboundMessage)
                and event.kind is MessageKind.BUTTON
                and event.message_id.startswith(CALLBACK_ID_PREFIX)
            ):
                query_id = event.message_id.removeprefix(CALLBACK_ID_PREFIX)
                self._spawn(self._answer_callback(query_id))

    async def _answer_callback(self, query_id: str) -> None:
        try:
            await self._bot.answer_callback_query(query_id)
        except TelegramError as exc:
            # Usually "query is too old" after a redelivery; harmless.
            log.debug("telegram: answerCallbackQuery failed: %r", exc)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)  # keep a reference so it is not collected mid-flight
        task.add_done_callback(self._background.discard)

    # -- sending -----------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> SendResult:
        """Deliver one message; every failure becomes a SendResult, never an exception."""
        try:
            sent = await self._send(message)
        except TelegramError as exc:
            return _result_for(exc)
        except Exception as exc:
            log.exception("telegram: unexpected error sending outbox %s", message.outbox_id)
            return SendResult.failed(SendErrorKind.TRANSIENT, title=repr(exc))
        if sent is None:
            return SendResult.failed(SendErrorKind.PERMANENT, title="nothing to send")
        return SendResult.sent(f"{sent.chat.id}:{sent.message_id}")

    async def _send(self, message: OutboundMessage) -> Message | None:
        chat_id = _chat_id(message.to)
        markup = _keyboard(message.buttons)
        if message.attachment is not None:
            return await self._send_document(chat_id, message.text, message.attachment, markup)
        return await self._send_text(chat_id, split_text(message.text), markup)

    async def _send_text(
        self, chat_id: int | str, parts: list[str], markup: InlineKeyboardMarkup | None
    ) -> Message | None:
        """Send the parts in order; buttons go on the last so they sit under the whole text.

        If a later part fails the caller retries the whole message, repeating
        the earlier parts: at-least-once, as the outbox promises.
        """
        sent: Message | None = None
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            # Plain text, no parse_mode: member-written text can never break markup.
            sent = await self._bot.send_message(
                chat_id, part, reply_markup=markup if last else None
            )
        return sent

    async def _send_document(
        self,
        chat_id: int | str,
        text: str,
        attachment: Attachment,
        markup: InlineKeyboardMarkup | None,
    ) -> Message:
        text = text.strip()
        caption: str | None = None
        if text and utf16_len(text) <= MAX_CAPTION:
            caption = text  # one message instead of two when the text fits
        elif text:
            await self._send_text(chat_id, split_text(text), None)
        document = InputFile(attachment.data, filename=attachment.filename)
        if attachment.mime_type:
            document.mimetype = attachment.mime_type  # ours beats a guess from the file name
        return await self._bot.send_document(
            chat_id, document, caption=caption, reply_markup=markup
        )

    # -- room moderation -----------------------------------------------------

    async def delete_message(self, room: str, message_id: str) -> bool:
        chat, _, local_id = message_id.rpartition(":")
        if chat and chat != room:
            log.warning("telegram: message %s is not in room %s; not deleted", message_id, room)
            return False
        return await self._moderate(
            "deleteMessage", lambda: self._bot.delete_message(_chat_id(room), int(local_id))
        )

    async def restrict_member(self, room: str, user: str, until: datetime) -> bool:
        until = max(_aware(until), datetime.now(UTC) + MIN_RESTRICTION)
        return await self._moderate(
            "restrictChatMember",
            lambda: self._bot.restrict_chat_member(
                _chat_id(room),
                int(user),
                ChatPermissions.no_permissions(),
                until_date=until,
                use_independent_chat_permissions=True,
            ),
        )

    async def unrestrict_member(self, room: str, user: str) -> bool:
        """End a mute early. Restricting "until now" would not do: Telegram reads an end
        under 30 seconds away as "forever". All permissions is its way to lift them."""
        return await self._moderate(
            "restrictChatMember",
            lambda: self._bot.restrict_chat_member(
                _chat_id(room),
                int(user),
                ChatPermissions.all_permissions(),
                use_independent_chat_permissions=True,
            ),
        )

    async def remove_member(self, room: str, user: str) -> bool:
        """Remove with a ban that ends after `removal_ban_days`.

        A ban, not ban-then-unban: a mere kick could be undone within seconds
        through the group's invite link, defeating the moderator. The ban
        expires so that removal is not exile; afterwards the person may ask to
        join again like anyone else. Their past messages stay (moderators
        delete specific ones separately).
        """
        until = datetime.now(UTC) + self._removal_ban if self._removal_ban else None
        return await self._moderate(
            "banChatMember",
            lambda: self._bot.ban_chat_member(
                _chat_id(room), int(user), until_date=until, revoke_messages=False
            ),
        )

    async def unban_member(self, room: str, user: str) -> bool:
        """Undo `remove_member` (a lifted ban, an overturned removal): they may come back
        through the invite link. only_if_banned, so it never kicks someone who is in."""
        return await self._moderate(
            "unbanChatMember",
            lambda: self._bot.unban_chat_member(_chat_id(room), int(user), only_if_banned=True),
        )

    async def approve_join(self, room: str, user: str, approve: bool) -> bool:
        if approve:
            return await self._moderate(
                "approveChatJoinRequest",
                lambda: self._bot.approve_chat_join_request(_chat_id(room), int(user)),
            )
        return await self._moderate(
            "declineChatJoinRequest",
            lambda: self._bot.decline_chat_join_request(_chat_id(room), int(user)),
        )

    async def _moderate(self, action: str, call: Callable[[], Awaitable[bool]]) -> bool:
        """Run one moderation call; False (and a log line) on any failure, e.g. not admin."""
        try:
            return bool(await call())
        except (TelegramError, ValueError) as exc:
            log.warning("telegram: %s failed: %r", action, exc)
            return False
        except Exception:
            log.exception("telegram: %s failed unexpectedly", action)
            return False


# -- helpers ---------------------------------------------------------------------


def _result_for(exc: TelegramError) -> SendResult:
    """Map PTB's exceptions onto what the delivery worker needs to decide."""
    title = str(exc)
    if isinstance(exc, RetryAfter):
        return SendResult.failed(SendErrorKind.RATE_LIMITED, 429, title, _retry_after_seconds(exc))
    if isinstance(exc, ChatMigrated):
        # The group became a supergroup with a new id; the old id never works again.
        return SendResult.failed(
            SendErrorKind.PERMANENT, 400, f"chat migrated to {exc.new_chat_id}"
        )
    if isinstance(exc, Forbidden):
        return SendResult.failed(SendErrorKind.USER_STOPPED, 403, title)  # blocked, or kicked
    if isinstance(exc, BadRequest):
        return SendResult.failed(SendErrorKind.PERMANENT, 400, title)
    if isinstance(exc, InvalidToken):
        # Our configuration is wrong, not the message: keep it for after the fix.
        log.error("telegram: the bot token was rejected")
        return SendResult.failed(SendErrorKind.TRANSIENT, 401, title)
    if "Too Many Requests" in title:
        # A 429 without retry_after reaches us as a NetworkError.
        return SendResult.failed(SendErrorKind.RATE_LIMITED, 429, title)
    return SendResult.failed(SendErrorKind.TRANSIENT, None, title)  # NetworkError, TimedOut


def _retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB 22 warns that the int form is deprecated; both forms are handled.
        warnings.simplefilter("ignore")
        value = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def _chat_id(address: str) -> int | str:
    """Numeric ids go as ints; "@channelname" style addresses pass through."""
    try:
        return int(address)
    except ValueError:
        return address


def _keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    # One button per row: titles stay readable on narrow phones.
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(button.title or button.id,
                                  callback_data=callback_data(button.id or button.title))]
            for button in buttons
        ]
    )


def callback_data(payload: str) -> str:
    """Telegram allows 1-64 bytes of callback data; cut on a UTF-8 character boundary."""
    data = payload.encode()[:MAX_CALLBACK_DATA_BYTES].decode("utf-8", errors="ignore")
    return data or "-"


def utf16_len(text: str) -> int:
    """Telegram measures text limits in UTF-16 code units (an emoji can count 2)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split into parts of at most `limit` UTF-16 units, at a line break or space if possible.

    Whitespace-only parts are dropped (Telegram rejects empty messages), so an
    empty text yields no parts.
    """
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        fit = max(_fitting_prefix_length(rest, limit), 1)  # always make progress
        cut, skip = _cut_point(rest, fit)
        parts.append(rest[:cut])
        rest = rest[cut + skip:]
    parts.append(rest)
    return [part for part in parts if part.strip()]


def _fitting_prefix_length(text: str, limit: int) -> int:
    """How many code points of `text` fit in `limit` UTF-16 units."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return index
    return len(text)


def _cut_point(text: str, fit: int) -> tuple[int, int]:
    """Where to cut within text[:fit], and how many separator characters to drop there.

    Prefer the last line break, then the last space, but only in the second
    half: cutting a 4,000-character text after 10 characters helps nobody.
    """
    floor = fit // 2
    for separator in ("\n", " "):
        index = text.rfind(separator, floor, fit + 1)
        if index > 0:
            return index, 1
    return fit, 0  # one very long word: hard cut


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
