"""The router: picks one handler for each message.

`/command args` (case-insensitive, an `@botname` suffix ignored), bare keywords
such as STOP, YES, HELP (the whole message), a guided flow in progress, or the
fallback. Each route says who may use it, which the help text also uses.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.messages import Attachment, Button, InboundMessage

if TYPE_CHECKING:
    from bot.services.outbox import Outgoing
    from bot.services.registry import Services

# Who may use a route. "anyone" includes people who have not consented (or stopped).
AUDIENCES = ("anyone", "member", "moderator", "organizer", "admin")

_COMMAND = re.compile(r"^/([A-Za-z][A-Za-z0-9_]*)(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)
_TRAILING = re.compile(r"[\s.!?,;:…'\"]+$")


def parse_command(text: str) -> tuple[str, str] | None:
    """'/RSVP@bot 12 yes' -> ('rsvp', '12 yes'); None if not a slash command."""
    match = _COMMAND.match(text.strip())
    if not match:
        return None
    return match.group(1).lower(), (match.group(2) or "").strip()


def bare_keyword(text: str) -> str:
    return _TRAILING.sub("", text.strip()).upper()


@dataclass
class Context:
    msg: InboundMessage
    member: Any  # bot.storage.models.Member, passed through from services
    services: Services
    now: datetime
    command: str = ""
    args: str = ""
    is_admin: bool = False
    first_contact: bool = False
    room_group: Any = None  # the group linked to the room this was said in
    router: Router | None = None  # the whole router, for help texts
    outgoing: list[Outgoing] = field(default_factory=list)

    def reply(self, text: str, *, buttons: tuple[Button, ...] = (),
              attachment: Attachment | None = None, kind: str = "reply") -> None:
        """Answer the person privately, in their own direct chat."""
        from bot.services.outbox import Outgoing

        self.outgoing.append(Outgoing(text=text, transport=self.msg.transport,
                                      member_id=self.member.id, kind=kind,
                                      command=self.command or None, buttons=buttons,
                                      attachment=attachment))

    def send(self, out: Outgoing) -> None:
        """Queue any other message (to a room, to other members) in this transaction."""
        self.outgoing.append(out)


Handler = Callable[[Context], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    name: str
    usage: str = ""
    summary: str = ""
    audience: str = "member"
    section: str = "General"


class Router:
    def __init__(self) -> None:
        self.commands: dict[str, Route] = {}
        self.keywords: dict[str, Route] = {}
        self.flows: dict[str, Handler] = {}
        self.fallback_handler: Handler | None = None
        self.order: list[Route] = []

    def command(self, *names: str, usage: str = "", summary: str = "",
                audience: str = "member", section: str = "General",
                keywords: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
        if audience not in AUDIENCES:
            raise ValueError(f"unknown audience {audience}")

        def register(handler: Handler) -> Handler:
            route = Route(handler, names[0], usage or f"/{names[0]}", summary, audience, section)
            for name in names:
                self.commands[name.lower()] = route
            for word in keywords:
                self.keywords[word.upper()] = route
            self.order.append(route)
            return handler

        return register

    def flow(self, name: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.flows[name] = handler
            return handler

        return register

    def fallback(self, handler: Handler) -> Handler:
        self.fallback_handler = handler
        return handler

    def include(self, other: Router) -> None:
        for key, route in other.commands.items():
            if key in self.commands and self.commands[key] is not route:
                raise ValueError(f"/{key} is registered twice")
            self.commands[key] = route
        self.keywords.update(other.keywords)
        self.flows.update(other.flows)
        self.order.extend(other.order)
        if other.fallback_handler is not None:
            self.fallback_handler = other.fallback_handler

    def match(self, text: str) -> tuple[Route | None, str, str]:
        """(route, command, args). An unknown slash command gives (None, name, args)."""
        parsed = parse_command(text)
        if parsed is not None:
            name, args = parsed
            return self.commands.get(name), name, args
        word = bare_keyword(text)
        route = self.keywords.get(word)
        if route is not None:
            return route, route.name, ""
        return None, "", text.strip()

    def visible_to(self, audiences: set[str]) -> list[Route]:
        seen: set[str] = set()
        out = []
        for route in self.order:
            if route.audience in audiences and route.name not in seen and route.summary:
                seen.add(route.name)
                out.append(route)
        return out
