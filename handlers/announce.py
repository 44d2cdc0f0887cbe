"""Announcements by organizers, and relays of members' posts to their group."""

from __future__ import annotations

from typing import Any

from bot.footer import footer
from bot.routing import Context, Router
from handlers.common import group_arg, require_role

router = Router()
MAX_POST = 2000


@router.command("announce", usage="/announce CODE TEXT", summary="message every member",
                audience="organizer", section="Organizers")
async def announce(ctx: Context) -> None:
    code, _, text = ctx.args.partition(" ")
    group = await group_arg(ctx, code, "/announce CODE TEXT")
    if group is None or not await require_role(ctx, group, "organizer"):
        return
    text = text.strip()
    if not text:
        ctx.reply("What should the announcement say? /announce CODE TEXT")
        return
    if len(text) > MAX_POST:
        ctx.reply(f"That's {len(text)} characters; please keep it under {MAX_POST}.")
        return
    body = (f"📣 {group.name}\n{text}\n"
            + footer(group.name, group.code, f"the organizers of {group.name}",
                     f"you joined {group.name}"))
    count = await ctx.services.announcements.fan_out(group, body, "announcement", ctx.now,
                                                     exclude_member_id=None)
    ctx.reply(f"Announcement queued for {count} member{'s' if count != 1 else ''} of "
              f"{group.code}. Members in quiet hours, paused or on a digest get it later.")


@router.command("post", usage="/post CODE TEXT", summary="post to a group you're in",
                section="Groups")
async def post(ctx: Context) -> None:
    code, _, text = ctx.args.partition(" ")
    group = await group_arg(ctx, code, "/post CODE TEXT")
    if group is not None:
        await relay(ctx, group, text.strip())


async def relay(ctx: Context, group: Any, text: str) -> None:
    """Pass a member's post to the group under their handle, after moderation."""
    s = ctx.services
    if await s.groups.role(ctx.member.id, group.id) is None:
        ctx.reply(f"Join {group.code} first: /join {group.code}")
        return
    if not text:
        ctx.reply("Your post is empty.")
        return
    if len(text) > MAX_POST:
        ctx.reply(f"That's {len(text)} characters; please keep posts under {MAX_POST}.")
        return
    verdict = await s.post_gate(ctx, group, text) if s.post_gate is not None else True
    if not verdict:
        return  # moderation held it and told the author why
    ref = f"{verdict} " if isinstance(verdict, str) else ""  # "#12 ": members /report by it
    handle = ctx.member.handle
    body = (f"💬 {ref}@{handle} in {group.name}:\n{text}\n"
            + footer(group.name, group.code, f"a member (@{handle}), relayed by the bot",
                     f"you're a member of {group.name}"))
    count = await s.announcements.fan_out(group, body, "relay", ctx.now,
                                          exclude_member_id=ctx.member.id)
    ctx.reply(f"Posted to {group.name} ({count} member{'s' if count != 1 else ''}).")


async def relay_current(ctx: Context) -> bool:
    """Plain text after /use CODE goes to that group. Returns False if none is set."""
    if ctx.member.current_group_id is None:
        return False
    group = await ctx.services.groups.by_id(ctx.member.current_group_id)
    if group is None:
        return False
    await relay(ctx, group, ctx.msg.text.strip())
    return True
