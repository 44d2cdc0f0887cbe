"""Opt-in and opt-out: the notice, YES, STOP and START."""

from __future__ import annotations

from datetime import timedelta

from bot.routing import Context, Router

router = Router()


def _org(ctx: Context) -> str:
    return ctx.services.config.organization.name


async def send_notice(ctx: Context) -> None:
    ctx.reply(ctx.services.notice_text, kind="notice")
    ctx.member.notice_sent_at = ctx.now
    await ctx.services.members.save(ctx.member, "notice_sent_at")


@router.flow("notice")
async def notice(ctx: Context) -> None:
    """A pending member said something: the notice, at most once per resend interval."""
    sent = ctx.member.notice_sent_at
    hours = ctx.services.config.messaging.notice_resend_hours
    if sent is None or ctx.now - sent >= timedelta(hours=hours):
        await send_notice(ctx)


@router.command("yes", keywords=("YES", "Y", "JOIN", "SI", "SÍ", "OUI", "JA"), audience="anyone",
                section="Your membership")
async def yes(ctx: Context) -> None:
    member = ctx.member
    if member.status == "active":
        ctx.reply("You're already in. Send /groups to find a local group, HELP for commands.")
        return
    if member.status == "pending" and member.notice_sent_at is None:
        # Consent must be informed: they have not seen the notice yet.
        await send_notice(ctx)
        return
    await _grant(ctx, "YES" if member.status == "pending" else "YES (rejoin)")


@router.command("start", "unstop", keywords=("START", "UNSTOP"), audience="anyone", usage="START",
                summary="come back after STOP", section="Your membership")
async def start(ctx: Context) -> None:
    member = ctx.member
    if member.status == "active":
        ctx.reply("You're already subscribed. HELP lists what you can do.")
    elif member.status == "pending" and member.notice_sent_at is None:
        await send_notice(ctx)
    else:
        await _grant(ctx, ctx.command.upper())


async def _grant(ctx: Context, method: str) -> None:
    s = ctx.services
    member = ctx.member
    rejoin = member.status == "stopped"
    await s.consent.grant(member, ctx.msg.transport, method, s.notice_version, ctx.now)
    handle = await s.members.assign_handle(member)
    if ctx.msg.sender_name and not member.display_name_enc:
        await s.members.set_display_name(member, ctx.msg.sender_name)
    if rejoin:
        ctx.reply(f"Welcome back to {_org(ctx)}! You left your groups when you stopped; "
                  "send /groups to join again. STOP at any time to stop.")
    else:
        ctx.reply(f"Welcome to {_org(ctx)}! You're in.\n"
                  f"Others see you as @{handle} (change it with /name NEWNAME); "
                  "they never see your number.\n"
                  "Next: /groups to find a local group. HELP for commands, STOP to stop.")


@router.command("stop", "stopall", "unsubscribe", "optout", audience="anyone", usage="STOP",
                summary="stop all messages", section="Your membership")
async def stop(ctx: Context) -> None:
    member = ctx.member
    if member.status == "stopped":
        return  # exactly one confirmation: they have had it already
    left = await ctx.services.consent.withdraw(member, ctx.msg.transport,
                                               ctx.msg.text.strip()[:64] or "STOP", ctx.now)
    groups = f" You left {left} group{'s' if left != 1 else ''}." if left else ""
    ctx.reply(f"You're unsubscribed from {_org(ctx)} and won't get any more messages.{groups}\n"
              "Reply START to come back. /forgetme erases your data.")
