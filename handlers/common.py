"""Small helpers shared by handlers: group lookup and role checks with one-line refusals."""

from __future__ import annotations

from typing import Any

from bot.routing import Context

RANK = {"member": 0, "moderator": 1, "organizer": 2}


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
