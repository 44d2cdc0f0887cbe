"""WhatsApp Cloud API transport: signed webhooks in, Graph API messages out.

Inbound: Meta POSTs webhooks signed with `X-Hub-Signature-256`. We check the
signature over the raw bytes before looking at them, parse (whatsapp_parse),
hand the events to the sink, and only answer 200 once the sink has stored them:
a non-2xx makes Meta redeliver, which is what we want when our storage failed.

Outbound: `send` turns one OutboundMessage into one or more Graph API calls
(long text split, buttons as interactive messages, files uploaded first) and
maps Graph errors onto SendErrorKind. It never raises.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web

from bot.messages import Attachment, Button, OutboundMessage, SendErrorKind, SendResult
from bot.transports.base import Capabilities, InboundSink
from bot.transports.whatsapp_groups import (
    GROUP_PARTICIPANT_CAP,
    WhatsAppGroupError,
    WhatsAppGroupPending,
    WhatsAppGroupsMixin,
)
from bot.transports.whatsapp_parse import graph_error, parse_webhook

__all__ = [
    "GROUP_PARTICIPANT_CAP",
    "WhatsAppGroupError",
    "WhatsAppGroupPending",
    "WhatsAppTransport",
    "map_graph_response",
    "parse_webhook",
    "split_text",
]

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_BUTTON_BODY = 1024  # interactive body text limit
MAX_BUTTON_TITLE = 20
MAX_REPLY_BUTTONS = 3
MAX_LIST_ROWS = 10
MAX_ROW_TITLE = 24
LIST_BUTTON_LABEL = "Choose"
SIGNATURE_HEADER = "X-Hub-Signature-256"

# 130429 throughput, 131056 pair rate (one user), 4 / 80007 app and WABA call limits.
RATE_LIMIT_CODES = frozenset({130429, 131056, 4, 80007})
OUTSIDE_WINDOW = 131047  # 24-hour customer service window closed: templates only
USER_STOPPED = 131050  # user stopped marketing messages from us


class WhatsAppTransport(WhatsAppGroupsMixin):
    name = "whatsapp"
    capabilities = Capabilities(rooms=False, buttons=True, files=True, max_text_length=MAX_TEXT)

    def __init__(
        self,
        phone_number_id: str,
        access_token: str,
        app_secret: str,
        verify_token: str,
        api_base_url: str = "https://graph.facebook.com/v23.0",
        webhook_path: str = "/webhooks/whatsapp",
        max_body_bytes: int = 256 * 1024,
        template: tuple[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout_seconds: float = 15.0,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.webhook_path = webhook_path
        self._token = access_token
        self._app_secret = app_secret.encode()
        self._verify_token = verify_token
        self._base = api_base_url.rstrip("/")
        self._max_body = max_body_bytes
        self._template = template  # (name, language code) sent when 131047 closes the window
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._sink: InboundSink | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self, sink: InboundSink) -> None:
        self._sink = sink
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True

    async def stop(self) -> None:
        self._sink = None
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(self.webhook_path, self._verify, allow_head=False),
            web.post(self.webhook_path, self._receive),
        ]

    # -- webhooks --------------------------------------------------------------

    async def _verify(self, request: web.Request) -> web.Response:
        """Meta's subscription handshake: echo hub.challenge if the token is ours."""
        query = request.query
        token = query.get("hub.verify_token", "")
        if query.get("hub.mode") == "subscribe" and self._verify_token and _same(
            token, self._verify_token
        ):
            return web.Response(text=query.get("hub.challenge", ""), content_type="text/plain")
        return web.Response(status=403)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await self._read_capped(request)
        if body is None:
            return web.Response(status=413)
        if not self._signed(body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("whatsapp webhook: missing or wrong signature, rejected")
            return web.Response(status=401)
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            # Signed with our app secret, yet not JSON. It will not parse on redelivery
            # either, and Meta retries every non-2xx for days, so acknowledge and log.
            log.error("whatsapp webhook: signed body of %d bytes is not JSON, dropped", len(body))
            return web.Response(status=200)
        events = parse_webhook(payload, self.phone_number_id)
        if not events:
            return web.Response(status=200)
        if self._sink is None:
            return web.Response(status=503)  # not started: Meta will redeliver
        try:
            await self._sink.accept(events)
        except Exception:
            log.exception("whatsapp webhook: sink refused %d event(s); Meta will redeliver",
                          len(events))
            return web.Response(status=500)
        return web.Response(status=200)

    async def _read_capped(self, request: web.Request) -> bytes | None:
        """The raw body, or None once it exceeds the limit (checked before and while reading)."""
        if request.content_length is not None and request.content_length > self._max_body:
            return None
        body = bytearray()
        async for chunk in request.content.iter_chunked(64 * 1024):
            body.extend(chunk)
            if len(body) > self._max_body:
                return None
        return bytes(body)

    def _signed(self, body: bytes, header: str | None) -> bool:
        if not self._app_secret or not header or not header.startswith("sha256="):
            return False
        expected = hmac.new(self._app_secret, body, hashlib.sha256).hexdigest()
        return _same(header[len("sha256="):].strip().lower(), expected)

    # -- sending ---------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            return await self._send(message)
        except Exception:
            # The delivery worker relies on send() never raising; an unknown failure
            # is retried like a network fault (the outbox bounds the attempts).
            log.exception("whatsapp send: outbox %s failed unexpectedly", message.outbox_id)
            return SendResult.failed(SendErrorKind.TRANSIENT, title="unexpected transport error")

    async def _send(self, message: OutboundMessage) -> SendResult:
        envelope = _envelope(message)
        if envelope is None:
            return SendResult.failed(SendErrorKind.PERMANENT,
                                     title=f"cannot address to_kind {message.to_kind!r}")
        if self._session is None:
            return SendResult.failed(SendErrorKind.TRANSIENT, title="transport not started")
        is_group = envelope["recipient_type"] == "group"
        contents = message_contents(message.text, message.buttons, interactive=not is_group)
        result = SendResult.failed(SendErrorKind.PERMANENT, title="nothing to send")
        for content in contents:
            result = await self._deliver(envelope, content)
            if not result.ok:
                return result
        if message.attachment is not None:
            result = await self._send_document(envelope, message.attachment)
        return result

    async def _send_document(self, envelope: dict[str, Any], attachment: Attachment) -> SendResult:
        uploaded = await self._upload(attachment)
        if isinstance(uploaded, SendResult):
            return uploaded
        document = {"id": uploaded, "filename": attachment.filename}
        return await self._deliver(envelope, {"type": "document", "document": document})

    async def _deliver(self, envelope: dict[str, Any], content: dict[str, Any]) -> SendResult:
        result = await self._post_message({**envelope, **content})
        if result.error_code == OUTSIDE_WINDOW and self._template is not None:
            name, language = self._template
            template = {"name": name, "language": {"code": language}}
            return await self._post_message({**envelope, "type": "template", "template": template})
        return result

    async def _post_message(self, payload: dict[str, Any]) -> SendResult:
        try:
            status, retry_after, data = await self._http(
                "POST", f"{_seg(self.phone_number_id)}/messages", body=payload)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult.failed(SendErrorKind.TRANSIENT, title=f"network: {exc!r}")
        return map_graph_response(status, data, retry_after)

    async def _upload(self, attachment: Attachment) -> str | SendResult:
        """Media id of the uploaded file, or the failure to report."""
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", attachment.mime_type)
        form.add_field("file", attachment.data, filename=attachment.filename,
                       content_type=attachment.mime_type)
        try:
            status, retry_after, data = await self._http(
                "POST", f"{_seg(self.phone_number_id)}/media", data=form)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return SendResult.failed(SendErrorKind.TRANSIENT, title=f"network: {exc!r}")
        media_id = data.get("id") if isinstance(data, dict) else None
        if 200 <= status < 300 and isinstance(media_id, str) and media_id:
            return media_id
        if 200 <= status < 300:
            return SendResult.failed(SendErrorKind.PERMANENT, title="media upload without an id")
        return map_graph_response(status, data, retry_after)

    # -- Graph plumbing ----------------------------------------------------------

    async def _graph_call(self, method: str, path: str,
                          body: dict[str, Any] | None) -> tuple[int, Any]:
        status, _, data = await self._http(method, path, body=body)
        return status, data

    async def _http(self, method: str, path: str, *, body: Any = None,
                    data: Any = None) -> tuple[int, float | None, Any]:
        """(status, Retry-After seconds, decoded JSON or None). Network errors propagate."""
        if self._session is None:
            raise aiohttp.ClientConnectionError("whatsapp transport not started")
        headers = {"Authorization": f"Bearer {self._token}"}
        async with self._session.request(method, f"{self._base}/{path}", json=body, data=data,
                                         headers=headers, timeout=self._timeout) as resp:
            raw = await resp.read()
            return resp.status, _retry_after(resp.headers.get("Retry-After")), _json_or_none(raw)


def map_graph_response(status: int, data: Any, retry_after: float | None = None) -> SendResult:
    """A Graph /messages response as a SendResult, by Graph error code first, HTTP status next."""
    if 200 <= status < 300:
        messages = data.get("messages") if isinstance(data, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        message_id = first.get("id") if isinstance(first, dict) else None
        if isinstance(message_id, str) and message_id:
            return SendResult.sent(message_id)
        # Accepted but unidentifiable: retrying could message the person twice.
        return SendResult.failed(SendErrorKind.PERMANENT, title="success without a message id")
    code, title = graph_error(data)
    title = title or f"HTTP {status}"
    if code in RATE_LIMIT_CODES or status == 429:
        return SendResult.failed(SendErrorKind.RATE_LIMITED, code, title, retry_after)
    if code == OUTSIDE_WINDOW:
        return SendResult.failed(SendErrorKind.OUTSIDE_WINDOW, code, title)
    if code == USER_STOPPED:
        return SendResult.failed(SendErrorKind.USER_STOPPED, code, title)
    if 400 <= status < 500:
        return SendResult.failed(SendErrorKind.PERMANENT, code, title)
    return SendResult.failed(SendErrorKind.TRANSIENT, code, title, retry_after)


def message_contents(text: str, buttons: tuple[Button, ...], *,
                     interactive: bool = True) -> list[dict[str, Any]]:
    """The message objects (without addressing) that carry text and buttons."""
    chunks = split_text(text, MAX_TEXT)
    if not buttons or not interactive or not chunks:
        if buttons:
            log.info("whatsapp send: %d button(s) dropped (no body text or group chat)",
                     len(buttons))
        return [_text(chunk) for chunk in chunks]
    head, body = split_tail(chunks[-1], MAX_BUTTON_BODY)
    texts = [*chunks[:-1], head] if head else chunks[:-1]
    return [*(_text(chunk) for chunk in texts), _choices(body, buttons)]


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, line or word if possible."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = _cut_point(rest, limit)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def split_tail(text: str, limit: int) -> tuple[str, str]:
    """(head, tail) with the tail at most `limit` characters, cut at a boundary if possible."""
    if len(text) <= limit:
        return "", text
    start = len(text) - limit
    for separator in ("\n\n", "\n", " "):
        at = text.find(separator, start)
        if at != -1 and text[at:].strip():
            return text[:at].rstrip(), text[at:].strip()
    return text[:start], text[start:]


def _cut_point(text: str, limit: int) -> int:
    # Prefer the latest boundary in the back half of the window; hard cut otherwise.
    for separator in ("\n\n", "\n", " "):
        at = text.rfind(separator, limit // 2, limit)
        if at != -1:
            return at + len(separator)
    return limit


def _text(body: str) -> dict[str, Any]:
    # No link previews: the preview fetch would tell the linked site who is organizing.
    return {"type": "text", "text": {"body": body, "preview_url": False}}


def _choices(body: str, buttons: tuple[Button, ...]) -> dict[str, Any]:
    """Reply buttons for up to 3 choices, a list message (up to 10 rows) beyond that."""
    if len(buttons) <= MAX_REPLY_BUTTONS:
        replies = [{"type": "reply", "reply": {"id": b.id, "title": b.title[:MAX_BUTTON_TITLE]}}
                   for b in buttons]
        action: dict[str, Any] = {"buttons": replies}
        kind = "button"
    else:
        if len(buttons) > MAX_LIST_ROWS:
            log.warning("whatsapp send: %d choices, only the first %d fit a list",
                        len(buttons), MAX_LIST_ROWS)
        rows = [{"id": b.id, "title": b.title[:MAX_ROW_TITLE]} for b in buttons[:MAX_LIST_ROWS]]
        action = {"button": LIST_BUTTON_LABEL, "sections": [{"rows": rows}]}
        kind = "list"
    interactive = {"type": kind, "body": {"text": body}, "action": action}
    return {"type": "interactive", "interactive": interactive}


def _envelope(message: OutboundMessage) -> dict[str, Any] | None:
    """Addressing fields: `recipient` for a BSUID, `to` for a phone number or group id."""
    if not message.to:
        return None
    base = {"messaging_product": "whatsapp"}
    if message.to_kind == "bsuid":
        return {**base, "recipient_type": "individual", "recipient": message.to}
    if message.to_kind in ("wa_id", "user"):
        return {**base, "recipient_type": "individual", "to": message.to}
    if message.to_kind == "room":
        return {**base, "recipient_type": "group", "to": message.to}
    return None


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also copes with non-ASCII input."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _seg(value: str) -> str:
    return quote(value, safe="")


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date; the worker's own backoff will do
    return seconds if seconds is not None and 0 <= seconds < 86400 else None


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
