"""Finding, joining and leaving local groups; roles; linking rooms; the current group."""

from __future__ import annotations

from bot.config import GROUP_CODE, valid_timezone
from bot.routing import Context, Router
from handlers.common import group_arg, require_role

router = Router()
SECTION = "Groups"


@router.command("groups", usage="/groups [words]", summary="find local groups by area or name",
                section=SECTION)
async def groups(ctx: Context) -> None:
    found = await ctx.services.groups.search(ctx.args)
    if not found:
        hint = f" matching '{ctx.args}'" if ctx.args else ""
        ctx.reply(f"No groups{hint}. Try /groups with an area or a name.")
        return
    lines = ["Local groups (join with /join CODE):"]
    lines += [f"{g.code} — {g.name}, {g.area or 'no area'} "
              f"({g.members} member{'' if g.members == 1 else 's'})" for g in found]
    ctx.reply("\n".join(lines))


@router.command("join", usage="/join CODE", summary="join a group", section=SECTION)
async def join(ctx: Context) -> None:
    group = await group_arg(ctx, ctx.args.split(" ")[0] if ctx.args else "", "/join CODE")
    if group is None:
        return
    try:
        joined = await ctx.services.groups.join(ctx.member, group, ctx.now)
    except PermissionError:
        ctx.reply(f"You were removed from {group.code} by its moderators; /appeal to ask "
                  "them to reconsider.")
        return
    if not joined:
        ctx.reply(f"You're already in {group.name}.")
        return
    ctx.reply(f"You joined {group.name}! {group.description}".strip() +
              f"\nSee its events with /events {group.code}. Leave any time: /leave {group.code}")


@router.command("leave", usage="/leave CODE", summary="leave a group", section=SECTION)
async def leave(ctx: Context) -> None:
    group = await group_arg(ctx, ctx.args, "/leave CODE")
    if group is None:
        return
    undone = await ctx.services.groups.leave(ctx.member, group, ctx.now)
    if undone is None:
        ctx.reply(f"You're not in {group.code}.")
        return
    ctx.reply("\n".join([f"You left {group.name}. You'll get nothing more from it.", *undone]))


@router.command("mygroups", usage="/mygroups", summary="the groups you are in", section=SECTION)
async def mygroups(ctx: Context) -> None:
    rows = await ctx.services.groups.of_member(ctx.member.id)
    if not rows:
        ctx.reply("You're not in any group yet. /groups to find one.")
        return
    lines = ["Your groups:"]
    for g, m in rows:
        extra = ", muted" if m.muted else ""
        current = " ← current" if ctx.member.current_group_id == g.id else ""
        lines.append(f"{g.code} — {g.name} ({m.role}{extra}){current}")
    ctx.reply("\n".join(lines))


@router.command("newgroup", usage="/newgroup CODE | NAME | AREA | DESCRIPTION",
                summary="create a local group", audience="admin", section="Admin")
async def newgroup(ctx: Context) -> None:
    parts = [p.strip() for p in ctx.args.split("|")]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        ctx.reply("Usage: /newgroup CODE | NAME | AREA | DESCRIPTION (timezone optional, "
                  "5th)")
        return
    code = parts[0].lower()
    if not GROUP_CODE.match(code):  # the same rule as in config.yaml
        ctx.reply("A group code is 2-32 lowercase letters, digits or dashes, e.g. riverside.")
        return
    tz = parts[4] if len(parts) > 4 and parts[4] else None
    if tz and not valid_timezone(tz):
        ctx.reply(f"'{tz}' is not a time zone I know (e.g. Europe/Berlin).")
        return
    area = parts[2] if len(parts) > 2 else ""
    description = parts[3] if len(parts) > 3 else ""
    group = await ctx.services.groups.create(code, parts[1], area, description, tz, ctx.now)
    if group is None:
        ctx.reply(f"A group '{code}' exists already.")
        return
    ctx.reply(f"Created {group.name} ({code}). Make someone its organizer with "
              f"/promote HANDLE organizer {code}")


@router.command("promote", usage="/promote HANDLE organizer|moderator CODE",
                summary="give someone a role in a group", audience="admin", section="Admin")
async def promote(ctx: Context) -> None:
    parts = ctx.args.split()
    if len(parts) != 3 or parts[1].lower() not in {"organizer", "moderator"}:
        ctx.reply("Usage: /promote HANDLE organizer|moderator CODE")
        return
    target = await ctx.services.members.by_handle(parts[0])
    if target is None or target.status != "active":
        ctx.reply(f"No active member @{parts[0].lstrip('@')}.")
        return
    group = await group_arg(ctx, parts[2], "/promote HANDLE organizer|moderator CODE")
    if group is None:
        return
    role = parts[1].lower()
    await ctx.services.groups.set_role(target, group, role, ctx.now)
    ctx.reply(f"@{target.handle} is now {role} of {group.code}.")


@router.command("demote", usage="/demote HANDLE CODE", summary="take a role away",
                audience="admin", section="Admin")
async def demote(ctx: Context) -> None:
    parts = ctx.args.split()
    if len(parts) != 2:
        ctx.reply("Usage: /demote HANDLE CODE")
        return
    target = await ctx.services.members.by_handle(parts[0])
    group = await group_arg(ctx, parts[1], "/demote HANDLE CODE")
    if group is None:
        return
    if target is None or await ctx.services.groups.role(target.id, group.id) in (None, "member"):
        ctx.reply(f"@{parts[0].lstrip('@')} has no role in {group.code}.")
        return
    await ctx.services.groups.set_role(target, group, "member", ctx.now)
    ctx.reply(f"@{target.handle} is a plain member of {group.code} again.")


@router.command("linkroom", usage="/linkroom CODE", summary="link this room to a group",
                audience="organizer", section="Organizers")
async def linkroom(ctx: Context) -> None:
    if ctx.msg.room is None:
        ctx.reply("Send /linkroom CODE inside the group room you want to link.")
        return
    group = await group_arg(ctx, ctx.args, "/linkroom CODE")
    if group is None or not await require_role(ctx, group, "organizer"):
        return
    await ctx.services.groups.link_room(group, ctx.msg.transport, ctx.msg.room, ctx.now)
    ctx.reply(f"This room is now linked to {group.name}.")


@router.command("use", usage="/use CODE", summary="talk to a group: plain text goes there",
                section=SECTION)
async def use(ctx: Context) -> None:
    s = ctx.services
    if ctx.args.strip().lower() in {"off", "none"}:
        await s.prefs.set(ctx.member, current_group_id=None)
        ctx.reply("OK — plain messages no longer go to a group.")
        return
    group = await group_arg(ctx, ctx.args, "/use CODE")
    if group is None:
        return
    if await s.groups.role(ctx.member.id, group.id) is None:
        ctx.reply(f"Join {group.code} first: /join {group.code}")
        return
    await s.prefs.set(ctx.member, current_group_id=group.id)
    ctx.reply(f"Plain messages you send now go to {group.name} (after moderation). "
              "/use off to stop.")


@router.fallback
async def plain_text(ctx: Context) -> None:
    from handlers.announce import relay_current

    if not await relay_current(ctx):
        ctx.reply("I didn't catch that. Send HELP to see what I can do, or /use CODE to "
                  "talk to one of your groups.")
