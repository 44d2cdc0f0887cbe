"""Structured logs: one JSON object per line for a log shipper, or text for a terminal,
and a request id carried in a context variable so one message can be followed.

The request id is bound per HTTP request (the webhook middleware), per inbox item while
it is processed (`inbox-42`) and per outbox row being sent (`outbox-7`); every record
logged inside carries it, without anyone passing it along.

Privacy: log member ids, outbox and inbox ids, and `ref()` of platform ids, never an
address, a name or a message text. As a last line of defence the configured secrets are
masked in every line written, and anything shaped like a Telegram bot token in messages
and tracebacks (where a library's error may quote a URL).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import IO, Any

REQUEST_ID_HEADER = "X-Request-Id"

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# Short and inert: safe to echo in a header and to print, whoever sent it.
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# A bot token in a URL (api.telegram.org/bot<token>/...) inside some library's error.
_TELEGRAM_TOKEN = re.compile(r"(?<![0-9])\d{5,}:[A-Za-z0-9_-]{30,}")  # also in "bot<token>"
MASK = "[redacted]"
# Loggers that print SQL parameters or request URLs: encrypted addresses, member names in
# replies, the bot token. Never below INFO/WARNING, whatever level the operator asks for.
_CHATTY = {"tortoise": logging.INFO, "tortoise.db_client": logging.INFO,
           "aiosqlite": logging.INFO, "asyncpg": logging.INFO,
           "httpx": logging.WARNING, "httpcore": logging.WARNING}
# ASCII-only: a service's stderr may not be UTF-8, and a line that cannot be written is a
# line lost. default=str: an odd extra must not cost the record. Made once: json.dumps with
# options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=True, default=str)
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "request_id", "taskName"}


# --- the request id ------------------------------------------------------------------------


def current_request_id() -> str | None:
    return _request_id.get()


# A request id only has to tell one request's lines from another's: this process's random
# prefix and a count, 16 hex digits as before, without asking the kernel for random bytes
# on every webhook. Each process (a processing child, another worker) draws its own prefix.
_ID_PREFIX = secrets.token_hex(4)
_id_count = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_count) & 0xFFFFFFFF:08x}"


def sane_request_id(value: str | None) -> str | None:
    """An incoming id if it is safe to reuse (short, [A-Za-z0-9._-]), else None."""
    if value and _SANE_ID.match(value):
        return value
    return None


@contextlib.contextmanager
def request_context(request_id: str) -> Iterator[str]:
    """Bind `request_id` for everything logged inside the block (and tasks it starts)."""
    token = _request_id.set(request_id)
    try:
        yield request_id
    finally:
        _request_id.reset(token)


def bind_request_id(request_id: str) -> None:
    """Bind `request_id` for the rest of the current task.

    For a coroutine that runs as a task of its own (each send of a delivery round runs in
    one, through asyncio.gather): the binding ends with the task. Anywhere else use
    `request_context`, or the id outlives the work it names."""
    _request_id.set(request_id)


def ref(value: str) -> str:
    """A short stable stand-in for a platform id that must not be logged as it is.

    WhatsApp message ids (`wamid.`) are base64 of a record that holds the phone number;
    the hash still lets a reader match the lines about one message."""
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:12]


class RequestIdFilter(logging.Filter):
    """Stamps the bound request id on each record (unless `extra=` gave one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get()
        return True


# --- formatters ----------------------------------------------------------------------------


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items()
            if k not in _STANDARD and not k.startswith("_")}


class _Masking(logging.Formatter):
    """Shared by both formatters: the time stamp, secrets masked, the traceback."""

    clock = "%Y-%m-%dT%H:%M:%S"

    def __init__(self, secrets_: Iterable[str] = (), *, json_escaped: bool = False) -> None:
        super().__init__()
        # Very short values are left alone: masking "1" would garble every number. In a
        # JSON line a secret appears escaped, so that form is looked for too.
        found = {s for s in secrets_ if len(s) >= 6}
        if json_escaped:
            found |= {json.dumps(s)[1:-1] for s in found}
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(found, key=len, reverse=True)
        self._second = (-1, "")  # strftime once a second, not once a line

    def mask(self, line: str) -> str:
        """The configured secrets, anywhere in the finished line (a substring test per
        secret: a regex over every line would cost more than the rest of the format)."""
        for secret in self._secrets:
            if secret in line:
                line = line.replace(secret, MASK)
        return line

    @staticmethod
    def scrub(text: str) -> str:
        """Token-shaped text, in the parts another library writes (message, traceback)."""
        return _TELEGRAM_TOKEN.sub(MASK, text) if ":" in text else text

    def stamp(self, record: logging.LogRecord) -> str:
        """UTC, to the millisecond, with a Z."""
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime(self.clock, time.gmtime(second)))
        return f"{cached[1]}.{int(record.msecs):03d}Z"

    def _exception(self, record: logging.LogRecord) -> str | None:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return record.exc_text or None


class JsonFormatter(_Masking):
    """One JSON object per line: ts (ISO-8601 UTC), level, logger, msg, request_id when
    bound, the `extra=` fields, and exc / stack when present."""

    def __init__(self, secrets_: Iterable[str] = ()) -> None:
        super().__init__(secrets_, json_escaped=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.stamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": self.scrub(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in _extras(record).items():
            entry.setdefault(key, value)  # the fields above win over a clashing extra
        exc = self._exception(record)
        if exc:
            entry["exc"] = self.scrub(exc)
        if record.stack_info:
            entry["stack"] = self.scrub(self.formatStack(record.stack_info))
        return self.mask(_ENCODER.encode(entry))


class TextFormatter(_Masking):
    """For a person at a terminal: `2026-06-01 09:30:00.123Z INFO logger [id] msg k=v`."""

    clock = "%Y-%m-%d %H:%M:%S"

    def format(self, record: logging.LogRecord) -> str:
        parts = [self.stamp(record), record.levelname, record.name]
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            parts.append(f"[{request_id}]")
        parts.append(self.scrub(record.getMessage()))
        parts += [f"{k}={v}" for k, v in _extras(record).items()]
        line = " ".join(parts)
        exc = self._exception(record)
        if exc:
            line += "\n" + self.scrub(exc)
        if record.stack_info:
            line += "\n" + self.scrub(self.formatStack(record.stack_info))
        return self.mask(line)


# --- setup ---------------------------------------------------------------------------------


def resolve_format(fmt: str, stream: IO[str]) -> str:
    """`auto`: text for a person at a terminal, json for anything else (a service manager,
    a container, a file a shipper tails)."""
    fmt = fmt.lower()
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure(level: str = "info", fmt: str = "auto", *, stream: IO[str] | None = None,
              secrets_: Iterable[str] = (), floor: int = logging.NOTSET) -> logging.Handler:
    """Send the process's logs to `stream` (stderr) in the chosen format.

    Replaces the handler a previous call installed and nothing else, so handlers a host
    (pytest, an embedding program) put on the root logger stay. `floor` raises the level
    for the interactive commands, where INFO lines would interleave with the chat."""
    out = stream if stream is not None else sys.stderr
    formatter: logging.Formatter = (JsonFormatter(secrets_)
                                    if resolve_format(fmt, out) == "json"
                                    else TextFormatter(secrets_))
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    handler._groundwork = True  # type: ignore[attr-defined]  # ours, to replace next time
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_groundwork", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(getattr(logging, level.upper()), floor))
    for name, minimum in _CHATTY.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(minimum, root.level))
    logging.captureWarnings(True)  # Python warnings as log lines too, not stray stderr text
    return handler
