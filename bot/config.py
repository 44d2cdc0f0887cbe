"""Load and validate `config.yaml`.

The file is described by the frozen dataclasses below; one generic walker checks
every key against them, so an unknown key, a wrong type or a bad value stops the
bot with a message naming the file and the key. `${NAME}` values come from the
environment, which is where secrets live.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Organization:
    name: str = "Groundwork"
    contact: str = "organizers@example.org"
    privacy_url: str = "https://example.org/privacy"


@dataclass(frozen=True)
class Database:
    url: str = "sqlite://data/groundwork.sqlite3"


@dataclass(frozen=True)
class Server:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 256 * 1024


@dataclass(frozen=True)
class Pacing:
    """How fast a transport may send: overall, per person, and per group room."""

    rate_per_second: float = 30.0
    per_recipient_seconds: float = 1.0
    per_room_per_minute: int = 20


@dataclass(frozen=True)
class TestChat:
    __test__ = False  # not a pytest test class despite the name
    enabled: bool = True
    pacing: Pacing = Pacing(rate_per_second=1000.0, per_recipient_seconds=0.0,
                            per_room_per_minute=0)


@dataclass(frozen=True)
class WhatsAppTemplate:
    name: str = ""
    language: str = "en"


@dataclass(frozen=True)
class WhatsApp:
    enabled: bool = False
    phone_number_id: str = ""
    access_token: str = ""
    app_secret: str = ""
    verify_token: str = ""
    api_base_url: str = "https://graph.facebook.com/v23.0"
    webhook_path: str = "/webhooks/whatsapp"
    default_region: str = "US"
    template: WhatsAppTemplate | None = None
    pacing: Pacing = Pacing(rate_per_second=80.0, per_recipient_seconds=3.0,
                            per_room_per_minute=0)


@dataclass(frozen=True)
class Telegram:
    enabled: bool = False
    token: str = ""
    mode: str = "polling"
    webhook_path: str = "/webhooks/telegram"
    webhook_secret: str = ""
    webhook_url: str = ""  # public HTTPS URL registered with setWebhook in webhook mode
    api_base_url: str = "https://api.telegram.org"
    bot_username: str = ""
    pacing: Pacing = Pacing(rate_per_second=30.0, per_recipient_seconds=1.0,
                            per_room_per_minute=20)


@dataclass(frozen=True)
class Transports:
    testchat: TestChat = TestChat()
    whatsapp: WhatsApp = WhatsApp()
    telegram: Telegram = Telegram()


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class Messaging:
    quiet_hours: str = "21:00-08:00"
    max_group_messages_per_day: int = 6
    digest_time: str = "18:00"
    reminder_hours_before: tuple[int, ...] = (24, 2)
    notice_resend_hours: int = 24

    @property
    def default_quiet(self) -> QuietHours | None:
        return parse_quiet_hours(self.quiet_hours)

    @property
    def digest_at(self) -> time:
        return parse_clock(self.digest_time)


@dataclass(frozen=True)
class GroupSeed:
    code: str
    name: str
    area: str = ""
    description: str = ""
    timezone: str = ""


@dataclass(frozen=True)
class Security:
    key_env: str = "GROUNDWORK_SECRET_KEY"
    key_file: str = "data/secret.key"


@dataclass(frozen=True)
class Moderation:
    warning_expiry_days: int = 30
    audit_retention_days: int = 365
    rules: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Workers:
    """Leases on claimed work. A worker holds the inbox and outbox rows it claimed for
    this long; if it dies (a crash, kill -9), they wait out the lease before any worker,
    or its own restart, takes them back. A lease must outlast one batch (50 inbound
    events; a delivery round, up to ~30 s when the platform stalls), or a second
    worker may take rows still being handled and handle them again."""

    inbox_lease_seconds: float = 60.0
    outbox_lease_seconds: float = 120.0
    # Child processes of `bot run` that process the inbox, so that handling messages
    # uses other cores than receiving them; 0 handles them in the `bot run` process.
    processors: int = 0


@dataclass(frozen=True)
class Logging:
    """Logs go to stderr. `format`: json (one object per line, for a log shipper), text
    (for a person), or auto: text when stderr is a terminal, json otherwise."""

    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True)
class Config:
    organization: Organization = Organization()
    database: Database = Database()
    server: Server = Server()
    transports: Transports = Transports()
    admins: tuple[str, ...] = ()
    timezone: str = "UTC"
    messaging: Messaging = Messaging()
    groups: tuple[GroupSeed, ...] = ()
    security: Security = Security()
    moderation: Moderation = Moderation()
    workers: Workers = Workers()
    logging: Logging = Logging()
    path: str = field(default="<defaults>", compare=False)


_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
GROUP_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{1,31}$")
_ADMIN = re.compile(r"^(testchat|whatsapp|telegram):\S+$")
_TRANSPORT_PREFIXES = ("testchat", "whatsapp", "telegram")
MAX_PROCESSORS = 16
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("auto", "json", "text")


def parse_clock(text: str) -> time:
    match = _CLOCK.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not a time like 21:30")
    return time(int(match.group(1)), int(match.group(2)))


def parse_quiet_hours(text: str) -> QuietHours | None:
    """'21:00-08:00' -> QuietHours; 'off' -> None."""
    if text.strip().lower() in {"off", "none", ""}:
        return None
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"'{text}' is not a range like 21:00-08:00")
    quiet = QuietHours(parse_clock(start), parse_clock(end))
    if quiet.start == quiet.end:
        raise ValueError(f"'{text}' starts and ends at the same time")
    return quiet


def valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
        return False
    return True


def load_config(path: str | os.PathLike[str] | None,
                environ: typing.Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a config file; None gives the embedded defaults."""
    env = os.environ if environ is None else environ
    if path is None:
        return _checked(Config(), "<defaults>")
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number; [[[[... nested
        raise ConfigError(f"{file}: not a usable YAML file: {str(exc)[:100]}") from None
    if data is None:
        data = {}
    if _has_aliases(data):
        raise ConfigError(f"{file}: YAML anchors and aliases (& and *) are not supported: "
                          "write each value out")
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of keys")
    reader = _Reader(str(file), env)
    try:
        config = reader.build(Config, data, "")
    except RecursionError:  # a YAML alias inside itself (`&a {x: *a}`) nests forever
        raise ConfigError(f"{file}: nested too deeply (does an alias refer to itself?)"
                          ) from None
    return _checked(dataclasses.replace(config, path=str(file)), str(file))


def _has_aliases(data: Any) -> bool:
    """True if a mapping or list appears twice: a YAML alias. Refused, because a few
    nested aliases expand to billions of values (the "billion laughs")."""
    seen: set[int] = set()
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            if id(node) in seen:
                return True
            seen.add(id(node))
            stack.extend(node.values() if isinstance(node, dict) else node)
    return False


class _Reader:
    """Walks the dataclasses above, converting YAML values and naming bad keys."""

    def __init__(self, file: str, env: typing.Mapping[str, str]) -> None:
        self.file = file
        self.env = env

    def fail(self, key: str, problem: str) -> typing.NoReturn:
        raise ConfigError(f"{self.file}: {key or 'top level'}: {problem}")

    def build(self, cls: type, data: Any, key: str) -> Any:
        if not isinstance(data, dict):
            self.fail(key, f"must be a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls) if f.name != "path"}
        for name in data:
            if name not in known:
                allowed = ", ".join(sorted(known))
                self.fail(_join(key, str(name)), f"unknown key (allowed here: {allowed})")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = self.convert(hints[f.name], data[f.name], _join(key, f.name))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.fail(_join(key, f.name), "is required")
        return cls(**values)

    def convert(self, hint: Any, value: Any, key: str) -> Any:
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            if value is None:
                return None
            return self.convert(options[0], value, key)
        if origin is tuple:
            if not isinstance(value, list):
                self.fail(key, f"must be a list, got {type(value).__name__}")
            item = typing.get_args(hint)[0]
            return tuple(self.convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
        if origin is dict:
            if not isinstance(value, dict):
                self.fail(key, f"must be a mapping, got {type(value).__name__}")
            return self.expand_tree(value, key)
        if dataclasses.is_dataclass(hint):
            return self.build(hint, value, key)
        return self.scalar(hint, value, key)

    def scalar(self, hint: type, value: Any, key: str) -> Any:
        if isinstance(value, str):
            value = self.expand(value, key)
        if hint is bool:
            if isinstance(value, bool):
                return value
            self.fail(key, f"must be true or false, got {value!r}")
        if hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if (isinstance(value, str) and value.strip().lstrip("-").isdecimal()
                    and len(value) < 20):  # int() refuses thousands of digits
                return int(value)
            self.fail(key, f"must be a whole number, got {value!r}")
        if hint is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            self.fail(key, f"must be a number, got {value!r}")
        if hint is str:
            if isinstance(value, str):
                return value
            if isinstance(value, int | float) and not isinstance(value, bool):
                return str(value)  # phone ids and ports are often written bare
            self.fail(key, f"must be text, got {type(value).__name__}")
        self.fail(key, f"has an unsupported type {hint}")

    def expand(self, value: str, key: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.env:
                self.fail(key, f"environment variable {name} is not set")
            return self.env[name]

        return _ENV.sub(substitute, value)

    def expand_tree(self, value: Any, key: str) -> Any:
        if isinstance(value, str):
            return self.expand(value, key)
        if isinstance(value, list):
            return [self.expand_tree(v, key) for v in value]
        if isinstance(value, dict):
            return {k: self.expand_tree(v, _join(key, str(k))) for k, v in value.items()}
        return value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _checked(config: Config, file: str) -> Config:
    """Value checks that a type alone cannot express."""
    problems = list(_problems(config))
    if problems:
        key, problem = problems[0]
        raise ConfigError(f"{file}: {key}: {problem}")
    return config


def _problems(c: Config) -> typing.Iterator[tuple[str, str]]:
    if not c.organization.name.strip():
        yield "organization.name", "must not be empty"
    if not c.database.url.startswith(("sqlite://", "postgres://", "postgresql://", "asyncpg://")):
        yield "database.url", "must start with sqlite:// or postgres://"
    if not 0 < c.server.port < 65536:
        yield "server.port", f"must be between 1 and 65535, got {c.server.port}"
    if c.server.max_body_bytes < 1024:
        yield "server.max_body_bytes", "must be at least 1024"
    if not valid_timezone(c.timezone):
        yield "timezone", f"'{c.timezone}' is not a known time zone (e.g. Europe/Berlin)"
    for i, admin in enumerate(c.admins):
        if not _ADMIN.match(admin):
            yield f"admins[{i}]", f"'{admin}' must look like TRANSPORT:ID, e.g. testchat:olga"
    yield from _messaging_problems(c.messaging)
    yield from _transport_problems(c.transports)
    codes: set[str] = set()
    for i, group in enumerate(c.groups):
        if not GROUP_CODE.match(group.code):
            yield f"groups[{i}].code", (f"'{group.code}' must be 2-32 lowercase letters, "
                                        "digits or dashes")
        if group.code in codes:
            yield f"groups[{i}].code", f"'{group.code}' is listed twice"
        codes.add(group.code)
        if not group.name.strip():
            yield f"groups[{i}].name", "must not be empty"
        if group.timezone and not valid_timezone(group.timezone):
            yield f"groups[{i}].timezone", f"'{group.timezone}' is not a known time zone"
    if c.moderation.warning_expiry_days < 1:
        yield "moderation.warning_expiry_days", "must be at least 1"
    if c.moderation.audit_retention_days < 1:
        yield "moderation.audit_retention_days", "must be at least 1"
    for key in ("inbox_lease_seconds", "outbox_lease_seconds"):
        if not getattr(c.workers, key) >= 1:
            yield f"workers.{key}", "must be at least 1 (second)"
    if not 0 <= c.workers.processors <= MAX_PROCESSORS:
        yield "workers.processors", f"must be from 0 to {MAX_PROCESSORS}"
    if c.logging.level.lower() not in LOG_LEVELS:
        yield "logging.level", f"must be one of {', '.join(LOG_LEVELS)}, got '{c.logging.level}'"
    if c.logging.format.lower() not in LOG_FORMATS:
        yield "logging.format", (f"must be one of {', '.join(LOG_FORMATS)}, "
                                 f"got '{c.logging.format}'")


def _messaging_problems(m: Messaging) -> typing.Iterator[tuple[str, str]]:
    try:
        parse_quiet_hours(m.quiet_hours)
    except ValueError as exc:
        yield "messaging.quiet_hours", str(exc)
    try:
        parse_clock(m.digest_time)
    except ValueError as exc:
        yield "messaging.digest_time", str(exc)
    if m.max_group_messages_per_day < 1:
        yield "messaging.max_group_messages_per_day", "must be at least 1"
    for hours in m.reminder_hours_before:
        if not 0 < hours <= 24 * 14:
            yield "messaging.reminder_hours_before", f"{hours} must be between 1 and 336"


def _transport_problems(t: Transports) -> typing.Iterator[tuple[str, str]]:
    for name in ("testchat", "whatsapp", "telegram"):
        pacing: Pacing = getattr(t, name).pacing
        if not pacing.rate_per_second > 0:  # "not" so that .nan is refused too
            yield f"transports.{name}.pacing.rate_per_second", "must be above 0"
        if not pacing.per_recipient_seconds >= 0:
            yield f"transports.{name}.pacing.per_recipient_seconds", "must not be negative"
    wa = t.whatsapp
    if wa.enabled:
        for key in ("phone_number_id", "access_token", "app_secret", "verify_token"):
            if not getattr(wa, key):
                yield f"transports.whatsapp.{key}", "is required when WhatsApp is enabled"
    tg = t.telegram
    if tg.mode not in ("polling", "webhook"):
        yield "transports.telegram.mode", f"must be polling or webhook, got '{tg.mode}'"
    if tg.enabled and not tg.token:
        yield "transports.telegram.token", "is required when Telegram is enabled"
    if tg.enabled and tg.mode == "webhook" and not tg.webhook_secret:
        yield "transports.telegram.webhook_secret", "is required in webhook mode"
