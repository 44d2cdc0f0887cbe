"""WhatsApp groups for a local group's core team: /teamgroup and /teamlink (organizers).

WhatsApp's business groups hold at most 8 people and are joined by invite link only,
so they suit a core team, not a whole local group (those are relayed rooms).
"""

from __future__ import annotations

from typing import Any

from bot.routing import Context, Router
from bot.services.team_groups import TeamGroupError, TeamGroupService, rules_text
from handlers.common import group_arg, require_role

router = Router()
SECTION = "Organizers"
NEEDS_WHATSAPP = "Team groups are WhatsApp groups, and WhatsApp is not enabled for this bot."
TEAMGROUP_USAGE = "/teamgroup CODE NAME"
TEAMLINK_USAGE = "/teamlink CODE [reset]"


def _teams(ctx: Context) -> TeamGroupService | None:
    teams = ctx.services.extra.get("team_groups")
    if teams is None:
        ctx.reply(NEEDS_WHATSAPP)
    return teams


async def _organized_group(ctx: Context, code: str, usage: str) -> Any | None:
    group = await group_arg(ctx, code, usage)
    if group is None or not await require_role(ctx, group, "organizer"):
        return None
    return group


@router.command("teamgroup", usage=TEAMGROUP_USAGE,
                summary="create a WhatsApp group for a group's core team (up to 8)",
                audience="organizer", section=SECTION)
async def teamgroup(ctx: Context) -> None:
    teams = _teams(ctx)
    if teams is None:
        return
    code, _, subject = ctx.args.partition(" ")
    group = await _organized_group(ctx, code, TEAMGROUP_USAGE)
    if group is None:
        return
    if not subject.strip():
        ctx.reply(f"What should the WhatsApp group be called? {TEAMGROUP_USAGE}")
        return
    try:
        view, create = await teams.request(group, subject, ctx.member, ctx.now)
    except TeamGroupError as exc:
        ctx.reply(str(exc))
        return
    # WhatsApp is asked after this message is processed and committed, once (see
    # bot/services/team_groups.py); the invite link follows in a second message.
    ctx.send(create)
    ctx.reply(f"Asking WhatsApp to create the team group '{view.subject}' for {group.code}. "
              f"I'll send you the invite link when it's ready. {rules_text(view)}")


@router.command("teamlink", usage=TEAMLINK_USAGE,
                summary="the team group's invite link; reset makes a new one",
                audience="organizer", section=SECTION)
async def teamlink(ctx: Context) -> None:
    teams = _teams(ctx)
    if teams is None:
        return
    parts = ctx.args.split()
    reset = len(parts) == 2 and parts[1].lower() == "reset"
    if len(parts) > 2 or (len(parts) == 2 and not reset):
        ctx.reply(f"Usage: {TEAMLINK_USAGE}")
        return
    group = await _organized_group(ctx, parts[0] if parts else "", TEAMLINK_USAGE)
    if group is None:
        return
    try:
        ask = await teams.link_request(group, ctx.member, reset=reset)
    except TeamGroupError as exc:
        ctx.reply(str(exc))
        return
    # WhatsApp is asked once this message is processed and committed (see
    # bot/services/team_groups.py): the answer with the link follows from there.
    ctx.send(ask)
