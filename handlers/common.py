"""Small helpers shared by handlers: argument lookups and role checks with one-line
refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot.routing import Context

RANK = {"member": 0, "moderator": 1, "organizer": 2}
T = TypeVar("T")


async def numbered_arg(ctx: Context, text: str, usage: str, noun: str, listing: str,
                       get: Callable[[int], Awaitable[T | None]]) -> T | None:
    """The thing numbered by `text` ("12" or "#12"), fetched with `get`; otherwise a
    one-line answer saying what is wrong, ending with where to find the numbers."""
    text = text.strip().lstrip("#")
    if not text:
        ctx.reply(f"Which {noun}? Usage: {usage}")
        return None
    if not text.isdecimal() or len(text) > 9:  # ids fit 32 bits; int() caps digits
        ctx.reply(f"'{text}' isn't {_a(noun)} number. {listing}")
        return None
    found = await get(int(text))
    if found is None:
        ctx.reply(f"There's no {noun} {text}. {listing}")
    return found


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


async def group_arg(ctx: Context, code: str, usage: str) -> Any | None:
    """The group named by CODE, or a one-line answer saying what is wrong."""
    code = code.strip().lower()
    if not code:
        ctx.reply(f"Which group? Usage: {usage}")
        return None
    group = await ctx.services.groups.get(code)
    if group is None:
        ctx.reply(f"There's no group '{code}'. /groups lists them.")
    return group


async def require_role(ctx: Context, group: Any, role: str) -> bool:
    """True if the member holds `role` (or an admin acts); otherwise refuse in one line.

    Organizers may do what moderators do within their own group.
    """
    if ctx.is_admin:
        return True
    held = await ctx.services.groups.role(ctx.member.id, group.id)
    if held is not None and RANK.get(held, 0) >= RANK[role]:
        return True
    ctx.reply(f"Only {role}s of {group.code} can do that.")
    return False
