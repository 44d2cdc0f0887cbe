"""How and when a member hears from us: quiet hours, pause, digest, cap, time zone."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.config import parse_quiet_hours, valid_timezone
from bot.routing import Context, Router
from handlers.common import group_arg

router = Router()
SECTION = "How you hear from us"
_PAUSE = re.compile(r"^(\d{1,3})\s*([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


@router.command("quiet", usage="/quiet 22:00-07:00 | off", summary="your quiet hours",
                section=SECTION)
async def quiet(ctx: Context) -> None:
    value = ctx.args.strip().lower()
    default = ctx.services.config.messaging.quiet_hours
    if not value:
        ctx.reply(f"Your quiet hours: {ctx.member.quiet_hours or default + ' (default)'}. "
                  "Change: /quiet 22:00-07:00, /quiet off, /quiet default")
        return
    if value == "default":
        await ctx.services.prefs.set(ctx.member, quiet_hours=None)
        ctx.reply(f"Back to the default quiet hours, {default}.")
        return
    try:
        parsed = parse_quiet_hours(value)
    except ValueError:
        ctx.reply("Please write it like /quiet 22:00-07:00 (24-hour clock), or /quiet off.")
        return
    await ctx.services.prefs.set(ctx.member, quiet_hours=str(parsed) if parsed else "off")
    if parsed is None:
        ctx.reply("Quiet hours off: group messages can reach you at any time.")
    else:
        ctx.reply(f"Got it: no group messages between {parsed.start:%H:%M} and "
                  f"{parsed.end:%H:%M} your time. They'll wait until morning.")


@router.command("pause", usage="/pause 7d", summary="no group messages for a while",
                section=SECTION)
async def pause(ctx: Context) -> None:
    match = _PAUSE.match(ctx.args.strip().lower())
    if not match or int(match.group(1)) == 0:
        ctx.reply("How long? e.g. /pause 12h, /pause 7d or /pause 2w")
        return
    delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if delta > timedelta(days=365):
        ctx.reply("The longest pause is a year. To stop everything, send STOP.")
        return
    until = ctx.now + delta
    await ctx.services.prefs.set(ctx.member, paused_until=until)
    ctx.reply(f"Paused until {until:%Y-%m-%d %H:%M} UTC. Group messages wait until then; "
              "/resume to get them now.")


@router.command("resume", usage="/resume", summary="end a pause", section=SECTION)
async def resume(ctx: Context) -> None:
    if ctx.member.paused_until is None or ctx.member.paused_until <= ctx.now:
        ctx.reply("You're not paused.")
        return
    await ctx.services.prefs.set(ctx.member, paused_until=None)
    ctx.reply("Welcome back — group messages will reach you again.")


@router.command("digest", usage="/digest daily|off", summary="one daily summary instead",
                section=SECTION)
async def digest(ctx: Context) -> None:
    value = ctx.args.strip().lower()
    if value not in {"daily", "off"}:
        ctx.reply("Choose /digest daily (one summary a day) or /digest off.")
        return
    await ctx.services.prefs.set(ctx.member, digest=value)
    at = ctx.services.config.messaging.digest_time
    ctx.reply(f"Daily digest on: group messages come together once a day, around {at}."
              if value == "daily" else "Digest off: group messages come as they are sent.")


@router.command("cap", usage="/cap N", summary="most group messages a day", section=SECTION)
async def cap(ctx: Context) -> None:
    default = ctx.services.config.messaging.max_group_messages_per_day
    value = ctx.args.strip().lower()
    if value == "default":
        await ctx.services.prefs.set(ctx.member, daily_cap=None)
        ctx.reply(f"Back to the default: at most {default} group messages a day.")
        return
    if not value.isdecimal() or len(value) > 2 or not 1 <= int(value) <= 50:
        ctx.reply(f"Give a number from 1 to 50, e.g. /cap 3 (default {default}).")
        return
    await ctx.services.prefs.set(ctx.member, daily_cap=int(value))
    ctx.reply(f"At most {value} group messages a day; the rest go into your digest.")


@router.command("tz", usage="/tz Europe/Berlin", summary="your time zone", section=SECTION)
async def tz(ctx: Context) -> None:
    name = ctx.args.strip()
    if not name:
        ctx.reply(f"Your time zone: {ctx.member.timezone or 'your group’s'}. "
                  "Change it like /tz Europe/Berlin")
        return
    if not valid_timezone(name):
        ctx.reply(f"I don't know the time zone '{name}'. Try e.g. America/New_York.")
        return
    await ctx.services.prefs.set(ctx.member, timezone=name)
    ctx.reply(f"Time zone set to {name}.")


@router.command("mutegroup", usage="/mutegroup CODE", summary="stop one group's messages",
                section=SECTION)
async def mutegroup(ctx: Context) -> None:
    await _mute(ctx, True)


@router.command("unmutegroup", usage="/unmutegroup CODE", summary="hear from it again",
                section=SECTION)
async def unmutegroup(ctx: Context) -> None:
    await _mute(ctx, False)


async def _mute(ctx: Context, muted: bool) -> None:
    usage = "/mutegroup CODE" if muted else "/unmutegroup CODE"
    group = await group_arg(ctx, ctx.args, usage)
    if group is None:
        return
    if not await ctx.services.groups.set_muted(ctx.member, group, muted):
        ctx.reply(f"You're not in {group.code}.")
        return
    ctx.reply(f"{group.name} muted: you stay a member but get none of its messages."
              if muted else f"{group.name} unmuted.")


@router.command("settings", usage="/settings", summary="all your choices", section=SECTION)
async def settings(ctx: Context) -> None:
    m = ctx.member
    cfg = ctx.services.config.messaging
    paused = (f"until {m.paused_until:%Y-%m-%d %H:%M} UTC"
              if m.paused_until and m.paused_until > ctx.now else "no")
    groups = await ctx.services.groups.of_member(m.id)
    muted = [g.code for g, ms in groups if ms.muted]
    ctx.reply("\n".join([
        "Your settings:",
        f"Quiet hours: {m.quiet_hours or cfg.quiet_hours + ' (default)'}  — /quiet",
        f"Time zone: {m.timezone or 'your group’s'}  — /tz",
        f"Daily cap: {m.daily_cap or cfg.max_group_messages_per_day} group messages  — /cap",
        f"Digest: {m.digest}  — /digest",
        f"Paused: {paused}  — /pause, /resume",
        f"Groups: {', '.join(g.code for g, _ in groups) or 'none'}"
        + (f" (muted: {', '.join(muted)})" if muted else ""),
        f"Handle: @{m.handle}  — /name",
        "STOP ends everything.",
    ]))
