"""Moderation in the chat: the post gate, the room hook, rules and moderator commands.

Every moderator command checks the member's role in the group it names (moderators,
organizers and the bot's admins may act there) and refuses in one line otherwise;
a refused command changes nothing.
"""

from __future__ import annotations

from typing import Any

from bot.policy.ladder import parse_duration
from bot.routing import Context, Router
from bot.services.moderation import Here, ModerationService, Result, when
from handlers.common import RANK, group_arg, require_role

router = Router()
SECTION = "Moderators"
ADMIN_RANK = 9
MAX_HANDLE = 40  # the longest handle storage holds


def service(ctx: Context) -> ModerationService:
    return ctx.services.extra["moderation"]  # type: ignore[no-any-return]


def answer(ctx: Context, result: Result) -> None:
    for out in result.out:
        ctx.send(out)
    ctx.reply(result.text)


# --- the gate and the room hook (installed by bot.features._moderation) -----------------------


async def privileged(ctx: Context, group: Any) -> bool:
    """Organizers (and admins) may name places, such as an event's venue."""
    return ctx.is_admin or await ctx.services.groups.role(ctx.member.id, group.id) == "organizer"


async def post_gate(ctx: Context, group: Any, text: str) -> bool | str:
    """Review a post before it is relayed. False: held, and the author was told why.
    Otherwise the post's reference ("#12") for the relay, which is truthy."""
    review = await service(ctx).review(ctx.member, group, text, ctx.now,
                                       privileged=await privileged(ctx, group))
    for out in review.out:
        ctx.send(out)
    if review.notice:
        ctx.reply(review.notice)
    if not review.passed:
        return False
    return review.post_ref or True


async def room_hook(ctx: Context) -> None:
    """A message said in a real room linked to a group: delete it if it breaks a rule."""
    group = ctx.room_group
    msg = ctx.msg
    if group is None or msg.room is None or not msg.text.strip():
        return
    here = Here(msg.transport, msg.room, msg.message_id, msg.sender)
    review = await service(ctx).review(ctx.member, group, msg.text, ctx.now,
                                       privileged=await privileged(ctx, group), here=here)
    for out in review.out:
        ctx.send(out)
    if review.notice:
        ctx.reply(review.notice)


# --- rules ------------------------------------------------------------------------------------


@router.command("rules", usage="/rules CODE", summary="a group's rules, in plain words",
                section="Groups")
async def rules(ctx: Context) -> None:
    group = await group_arg(ctx, ctx.args.split(" ")[0] if ctx.args else "", "/rules CODE")
    if group is None:
        return
    lines = service(ctx).describe(group)
    if not lines:
        ctx.reply(f"{group.name} has no rules the bot enforces.")
        return
    ctx.reply(f"The rules of {group.name}:\n" + "\n".join(f"• {line}" for line in lines)
              + f"\nWarnings count for {service(ctx).expiry.days} days. "
              "Every action can be appealed: /appeal ACTIONID WHY")


@router.command("setrule", usage="/setrule CODE KEY VALUE", summary="change one of the rules",
                audience="moderator", section=SECTION)
async def setrule(ctx: Context) -> None:
    parts = ctx.args.split(maxsplit=2)
    if len(parts) < 2:
        ctx.reply("Usage: /setrule CODE KEY VALUE, e.g. /setrule riverside flood.max_messages 3")
        return
    group = await group_arg(ctx, parts[0], "/setrule CODE KEY VALUE")
    if group is None or not await require_role(ctx, group, "moderator"):
        return
    value = parts[2] if len(parts) > 2 else ""
    try:
        result = await service(ctx).set_rule(group, ctx.member, parts[1], value, ctx.now)
    except ValueError as exc:
        ctx.reply(str(exc))
        return
    answer(ctx, result)


# --- targets ----------------------------------------------------------------------------------


async def rank_of(ctx: Context, member: Any, group: Any) -> int:
    """Admins outrank everyone; otherwise the role in this group (-1 if not in it)."""
    for transport, _, address in await ctx.services.members.addresses(member.id):
        if ctx.services.is_admin(transport, address):
            return ADMIN_RANK
    role = await ctx.services.groups.role(member.id, group.id)
    return -1 if role is None else RANK.get(role, 0)


async def by_handle(ctx: Context, handle: str) -> Any | None:
    """The member with this handle; None for anything no handle could be (too long)."""
    handle = handle.strip().lstrip("@").lower()
    if not handle or len(handle) > MAX_HANDLE:
        return None
    return await ctx.services.members.by_handle(handle)


async def target_in(ctx: Context, handle: str, group: Any) -> Any | None:
    """The member to act on, if the moderator may act on them in this group."""
    target = await by_handle(ctx, handle)
    if target is None:
        ctx.reply(f"There's no member @{handle.lstrip('@')}.")
        return None
    if target.id == ctx.member.id:
        ctx.reply("You can't moderate yourself.")
        return None
    theirs = await rank_of(ctx, target, group)
    if theirs < 0:
        ctx.reply(f"@{target.handle} isn't a member of {group.code}.")
        return None
    mine = ADMIN_RANK if ctx.is_admin else await rank_of(ctx, ctx.member, group)
    if theirs >= mine:
        ctx.reply(f"@{target.handle} has as much say in {group.code} as you: ask an admin.")
        return None
    return target


async def handle_group(ctx: Context, usage: str, min_parts: int) -> tuple[list[str], Any] | None:
    """Parse 'HANDLE CODE REST', check the role in that group; None after a refusal."""
    parts = ctx.args.split(maxsplit=2)
    if len(parts) < min_parts:
        ctx.reply(f"Usage: {usage}")
        return None
    group = await group_arg(ctx, parts[1], usage)
    if group is None or not await require_role(ctx, group, "moderator"):
        return None
    return parts, group


# --- moderator commands -------------------------------------------------------------------------


async def targeted(ctx: Context, usage: str, min_parts: int
                   ) -> tuple[list[str], Any, Any] | None:
    """HANDLE CODE [...]: the words, the group and the member a moderator may act on."""
    found = await handle_group(ctx, usage, min_parts)
    if found is None:
        return None
    parts, group = found
    target = await target_in(ctx, parts[0], group)
    return None if target is None else (parts, group, target)


@router.command("warn", usage="/warn HANDLE CODE REASON", summary="warn a member",
                audience="moderator", section=SECTION)
async def warn(ctx: Context) -> None:
    found = await targeted(ctx, "/warn HANDLE CODE REASON", 3)
    if found is not None:
        parts, group, target = found
        answer(ctx, await service(ctx).warn(ctx.member, target, group, parts[2], ctx.now))


@router.command("mute", usage="/mute HANDLE CODE DURATION",
                summary="hold a member's posts for a while (30m, 24h, 7d)",
                audience="moderator", section=SECTION)
async def mute(ctx: Context) -> None:
    found = await targeted(ctx, "/mute HANDLE CODE DURATION", 3)
    if found is None:
        return
    parts, group, target = found
    duration_text, _, reason = parts[2].partition(" ")
    try:
        duration = parse_duration(duration_text)
    except ValueError as exc:
        ctx.reply(str(exc))
        return
    answer(ctx, await service(ctx).mute(ctx.member, target, group, duration, ctx.now,
                                        reason.strip()))


@router.command("unmute", usage="/unmute HANDLE CODE", summary="end a mute",
                audience="moderator", section=SECTION)
async def unmute(ctx: Context) -> None:
    found = await targeted(ctx, "/unmute HANDLE CODE", 2)
    if found is not None:
        _, group, target = found
        answer(ctx, await service(ctx).unmute(ctx.member, target, group, ctx.now))


@router.command("remove", usage="/remove HANDLE CODE REASON",
                summary="remove a member from the group (they can't rejoin)",
                audience="moderator", section=SECTION)
async def remove(ctx: Context) -> None:
    found = await targeted(ctx, "/remove HANDLE CODE REASON", 3)
    if found is not None:
        parts, group, target = found
        answer(ctx, await service(ctx).remove(ctx.member, target, group, parts[2], ctx.now))


@router.command("ban", usage="/ban HANDLE REASON DURATION",
                summary="shut someone out of all your groups for a while",
                audience="moderator", section=SECTION)
async def ban(ctx: Context) -> None:
    parts = ctx.args.split()
    if len(parts) < 3:
        ctx.reply("Usage: /ban HANDLE REASON DURATION — a reason and how long are both "
                  "needed, e.g. /ban pat-fox-12 threats 30d")
        return
    try:
        duration = parse_duration(parts[-1])
    except ValueError as exc:
        ctx.reply(f"{exc} (the duration goes last: /ban HANDLE REASON DURATION)")
        return
    groups = await _ban_groups(ctx)
    if not groups:
        ctx.reply("Only moderators can do that.")
        return
    target = await by_handle(ctx, parts[0])
    if target is None or target.id == ctx.member.id:
        ctx.reply(f"There's no member @{parts[0].lstrip('@')} you can ban.")
        return
    for group in groups:
        mine = ADMIN_RANK if ctx.is_admin else await rank_of(ctx, ctx.member, group)
        if await rank_of(ctx, target, group) >= mine:
            ctx.reply(f"@{target.handle} has as much say in {group.code} as you: ask an admin.")
            return
    answer(ctx, await service(ctx).ban(ctx.member, target, groups, " ".join(parts[1:-1]),
                                       duration, ctx.now))


async def _ban_groups(ctx: Context) -> list[Any]:
    """The groups sharing the acting moderator's ban list: all for admins, else theirs."""
    s = ctx.services
    if ctx.is_admin:
        codes = [g.code for g in await s.groups.search("", limit=10_000)]
        return [g for g in [await s.groups.get(c) for c in codes] if g is not None]
    return [g for g, m in await s.groups.of_member(ctx.member.id)
            if RANK.get(m.role, 0) >= RANK["moderator"]]


@router.command("unban", usage="/unban HANDLE", summary="lift a ban",
                audience="moderator", section=SECTION)
async def unban(ctx: Context) -> None:
    handle = ctx.args.strip()
    if not handle:
        ctx.reply("Usage: /unban HANDLE")
        return
    groups = await _ban_groups(ctx)
    if not groups:
        ctx.reply("Only moderators can do that.")
        return
    target = await by_handle(ctx, handle)
    if target is None:
        ctx.reply(f"There's no member @{handle.lstrip('@')}.")
        return
    allowed = None if ctx.is_admin else {g.id for g in groups}
    answer(ctx, await service(ctx).unban(ctx.member, target, allowed, ctx.now))


@router.command("warnings", usage="/warnings [HANDLE]",
                summary="your active warnings (moderators: anyone's)", section="Groups")
async def warnings(ctx: Context) -> None:
    s = ctx.services
    handle = ctx.args.strip()
    if not handle:
        rows = await service(ctx).warnings(ctx.member.id, None, ctx.now)
        who = "You have"
    else:
        groups = await _ban_groups(ctx)
        if not groups:
            ctx.reply("Only moderators can see others' warnings. /warnings shows yours.")
            return
        target = await by_handle(ctx, handle)
        if target is None:
            ctx.reply(f"There's no member @{handle.lstrip('@')}.")
            return
        scope = None if ctx.is_admin else [g.id for g in groups]
        rows = await service(ctx).warnings(target.id, scope, ctx.now)
        who = f"@{target.handle} has"
    if not rows:
        ctx.reply(f"{who} no active warnings.")
        return
    tz = s.config.timezone
    lines = [f"{who} {len(rows)} active warning{'s' if len(rows) != 1 else ''}:"]
    lines += [f"• {code}: {'a moderator' if rule == 'moderator' else 'rule ' + rule}, "
              f"{when(given, tz)}, counts until {when(expires, tz)}"
              for code, rule, given, expires in rows]
    ctx.reply("\n".join(lines))


@router.command("modlog", usage="/modlog CODE", summary="the latest moderation actions",
                audience="moderator", section=SECTION)
async def modlog(ctx: Context) -> None:
    group = await group_arg(ctx, ctx.args.split(" ")[0] if ctx.args else "", "/modlog CODE")
    if group is None or not await require_role(ctx, group, "moderator"):
        return
    entries = await service(ctx).audit.latest(group.id)
    if not entries:
        ctx.reply(f"No moderation actions in {group.code} yet.")
        return
    lines = [f"Latest moderation in {group.code}:"]
    for e in entries:
        rule = f" · rule {e.rule_id}" if e.rule_id else ""
        reason = f" · {e.reason}" if e.reason else ""
        flags = (" (shadow: not done)" if e.shadow else "") + (" (overturned)" if e.undone
                                                              else "")
        actor = e.actor if e.actor.startswith("(") or e.actor == "the bot" else f"@{e.actor}"
        target = f" → @{e.target}" if e.target not in {"-", "(erased member)"} else (
            " → (erased member)" if e.target != "-" else "")
        lines.append(f"#{e.id} {when(e.at, group.timezone)} · {actor} · {e.action}{target}"
                     f"{rule}{reason}{flags}")
    ctx.reply("\n".join(lines))
