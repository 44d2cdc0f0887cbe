"""A member's public handle: /name."""

from __future__ import annotations

import re

from bot.routing import Context, Router

router = Router()

_HANDLE = re.compile(r"^[a-z0-9][a-z0-9_-]{2,23}$")


@router.command("name", usage="/name NEWNAME", summary="choose the handle others see",
                section="Your membership")
async def name(ctx: Context) -> None:
    wanted = ctx.args.strip().lstrip("@").lower()
    if not wanted:
        ctx.reply(f"Your handle is @{ctx.member.handle}. To change it: /name NEWNAME")
        return
    if not _HANDLE.match(wanted):
        ctx.reply("A handle is 3-24 letters, digits, - or _, starting with a letter or digit.")
        return
    if wanted.isdigit() or sum(ch.isdigit() for ch in wanted) >= 7:
        ctx.reply("Please pick a handle that isn't a number — it could reveal a phone number.")
        return
    if not await ctx.services.members.set_handle(ctx.member, wanted):
        ctx.reply(f"@{wanted} is taken. Try another.")
        return
    ctx.reply(f"Done — others now see you as @{wanted}.")
