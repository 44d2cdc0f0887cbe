"""Reports and appeals in the chat.

Any member may report (`/report [#POST] TEXT`) and appeal an action taken against
them (`/appeal ACTIONID TEXT`); moderators of the group work the queues. Who
reported is never shown: not in alerts, not in the queue, not to the reported member.
"""

from __future__ import annotations

from typing import Any

from bot.policy.ladder import parse_duration
from bot.routing import Context, Router
from bot.services.moderation import when
from bot.services.reports import Refused, ReportService
from handlers.common import RANK, group_arg, require_role
from handlers.moderation import answer

router = Router()
SECTION = "Moderators"
RESOLUTIONS = ("dismiss", "warn", "mute", "remove")


def reports(ctx: Context) -> ReportService:
    return ctx.services.extra["reports"]  # type: ignore[no-any-return]


def number(text: str) -> int | None:
    """'#12' or '12' -> 12."""
    text = text.strip().lstrip("#")
    return int(text) if text.isdecimal() and len(text) < 10 else None


# --- members ------------------------------------------------------------------------------------


@router.command("report", usage="/report [#POSTID] TEXT",
                summary="tell a group's moderators about a problem", section="Groups")
async def report(ctx: Context) -> None:
    first, _, rest = ctx.args.partition(" ")
    if not ctx.args.strip():
        ctx.reply("Usage: /report #POSTID WHAT'S WRONG (the number is on the relayed post), "
                  "or /report CODE WHAT'S WRONG")
        return
    post, group, text = await _report_subject(ctx, first, rest)
    if group is None:
        return
    if not text.strip():
        ctx.reply("Please say what's wrong, e.g. /report #12 shares someone's address")
        return
    if post is not None and post.author_id == ctx.member.id:
        ctx.reply("That's your own post.")
        return
    answer(ctx, await reports(ctx).report(ctx.member, group, post, text.strip(), ctx.now))


async def _report_subject(ctx: Context, first: str, rest: str) -> tuple[Any, Any, str]:
    """(post, group, text) for a report; group None after a one-line refusal."""
    s = ctx.services
    post_id = number(first)
    if post_id is not None:
        post = await reports(ctx).post(post_id)
        if post is not None and await s.groups.role(ctx.member.id, post.group_id) is not None:
            return post, post.group, rest
        if first.startswith("#"):
            ctx.reply(f"There's no post #{post_id} in your groups.")
            return None, None, ""
    mine = {g.code: g for g, _ in await s.groups.of_member(ctx.member.id)}
    if first.lower() in mine:
        return None, mine[first.lower()], rest
    text = f"{first} {rest}".strip()
    if ctx.room_group is not None:
        return None, ctx.room_group, text
    current = [g for g in mine.values() if g.id == ctx.member.current_group_id]
    if current or len(mine) == 1:
        return None, (current or list(mine.values()))[0], text
    ctx.reply("Which group is it about? /report CODE WHAT'S WRONG, or /report #POSTID ...")
    return None, None, ""


@router.command("appeal", usage="/appeal ACTIONID TEXT",
                summary="ask for a moderation action against you to be reviewed",
                section="Groups")
async def appeal(ctx: Context) -> None:
    first, _, text = ctx.args.partition(" ")
    action_id = number(first)
    if action_id is None or not text.strip():
        ctx.reply("Usage: /appeal ACTIONID WHY — the action number is in the message that "
                  "told you about it.")
        return
    try:
        result = await reports(ctx).appeal(ctx.member, action_id, text.strip(), ctx.now)
    except Refused as exc:
        ctx.reply(str(exc))
        return
    answer(ctx, result)


# --- moderators ----------------------------------------------------------------------------------


@router.command("reports", usage="/reports CODE", summary="the open reports",
                audience="moderator", section=SECTION)
async def open_reports(ctx: Context) -> None:
    group = await group_arg(ctx, ctx.args.split(" ")[0] if ctx.args else "", "/reports CODE")
    if group is None or not await require_role(ctx, group, "moderator"):
        return
    rows = await reports(ctx).open_reports(group, ctx.member.id)
    if not rows:
        ctx.reply(f"No open reports in {group.code}.")
        return
    lines = [f"Open reports in {group.code} (/resolve ID dismiss|warn|mute 24h|remove NOTE):"]
    for r in rows:
        about = f"@{r.target} (post #{r.post_id})" if r.target else "no post named"
        lines.append(f"#{r.id} · {when(r.at, group.timezone)} · {about} · {r.text}")
    ctx.reply("\n".join(lines))


@router.command("resolve", usage="/resolve REPORTID ACTION NOTE",
                summary="close a report: dismiss, warn, mute DURATION or remove",
                audience="moderator", section=SECTION)
async def resolve(ctx: Context) -> None:
    usage = "Usage: /resolve REPORTID dismiss|warn|mute DURATION|remove NOTE"
    parts = ctx.args.split(maxsplit=2)
    report_id = number(parts[0]) if parts else None
    action = parts[1].lower() if len(parts) > 1 else ""
    if report_id is None or action not in RESOLUTIONS:
        ctx.reply(usage)
        return
    note = parts[2] if len(parts) > 2 else ""
    duration = None
    if action == "mute":
        spec, _, note = note.partition(" ")
        try:
            duration = parse_duration(spec)
        except ValueError as exc:
            ctx.reply(f"{exc}. {usage}")
            return
    if not await _staff(ctx):
        return
    found = await reports(ctx).get_report(report_id)
    if found is None:
        ctx.reply(f"There's no report #{report_id}.")
        return
    item, group = found
    if not await require_role(ctx, group, "moderator"):
        return
    try:
        result = await reports(ctx).resolve(item, group, ctx.member, action, duration,
                                            note.strip(), ctx.now)
    except Refused as exc:
        ctx.reply(str(exc))
        return
    answer(ctx, result)


@router.command("appeals", usage="/appeals CODE", summary="the open appeals",
                audience="moderator", section=SECTION)
async def appeals(ctx: Context) -> None:
    group = await group_arg(ctx, ctx.args.split(" ")[0] if ctx.args else "", "/appeals CODE")
    if group is None or not await require_role(ctx, group, "moderator"):
        return
    rows = await reports(ctx).open_appeals(group)
    if not rows:
        ctx.reply(f"No open appeals in {group.code}.")
        return
    lines = [f"Open appeals in {group.code} (/decide ID uphold|overturn NOTE):"]
    for a in rows:
        by = "the bot" if a.action.actor == "the bot" else f"@{a.action.actor}"
        lines.append(f"#{a.id} · @{a.appellant} against action #{a.action.id} "
                     f"({a.action.action} by {by}) · {a.text}")
    ctx.reply("\n".join(lines))


@router.command("decide", usage="/decide APPEALID uphold|overturn NOTE",
                summary="decide an appeal (not on your own action)",
                audience="moderator", section=SECTION)
async def decide(ctx: Context) -> None:
    parts = ctx.args.split(maxsplit=2)
    appeal_id = number(parts[0]) if parts else None
    verdict = parts[1].lower() if len(parts) > 1 else ""
    if appeal_id is None or verdict not in {"uphold", "overturn"}:
        ctx.reply("Usage: /decide APPEALID uphold|overturn NOTE")
        return
    if not await _staff(ctx):
        return
    found = await reports(ctx).get_appeal(appeal_id)
    if found is None:
        ctx.reply(f"There's no appeal #{appeal_id}.")
        return
    item, entry = found
    if not await _moderates_any(ctx, list(entry.group_ids)):
        ctx.reply("Only moderators of the group the action was taken in can decide it.")
        return
    try:
        result = await reports(ctx).decide(item, entry, ctx.member, verdict == "overturn",
                                           parts[2].strip() if len(parts) > 2 else "", ctx.now)
    except Refused as exc:
        ctx.reply(str(exc))
        return
    answer(ctx, result)


async def _moderates_any(ctx: Context, group_ids: list[int]) -> bool:
    if ctx.is_admin:
        return True
    for group_id in group_ids:
        role = await ctx.services.groups.role(ctx.member.id, group_id)
        if role is not None and RANK.get(role, 0) >= RANK["moderator"]:
            return True
    return False


async def _staff(ctx: Context) -> bool:
    """Moderates at least one group (or is an admin); otherwise refuse in one line."""
    groups = [g.id for g, _ in await ctx.services.groups.of_member(ctx.member.id)]
    if await _moderates_any(ctx, groups):
        return True
    ctx.reply("Only moderators can do that.")
    return False
