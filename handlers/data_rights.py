"""Data rights in the chat: /mydata, /forgetme, /why."""

from __future__ import annotations

from typing import Any

from bot.routing import Context, Router
from bot.services.outbox import Outgoing

router = Router()

SECTION = "Your data"


def render_export(data: dict[str, Any]) -> str:
    """The export as short readable lines for a phone screen."""
    p = data["profile"]
    lines = ["Everything we hold about you:",
             f"Handle: @{p['handle']}" if p["handle"] else "Handle: (none yet)",
             f"Name: {p['display_name'] or '(none)'}",
             f"Status: {p['status']} (since {p['joined'][:10]})",
             f"Settings: quiet hours {p['quiet_hours'] or 'default'}, "
             f"digest {p['digest']}, daily cap {p['daily_cap'] or 'default'}, "
             f"time zone {p['timezone'] or 'your group’s'}"]
    for a in data["addresses"]:
        lines.append(f"Address: {a['transport']} {a['address']}")
    lines.append("Consent history:")
    for c in data["consent_history"] or [{"at": "-", "action": "none yet", "method": "",
                                          "channel": "", "notice_version": ""}]:
        lines.append(f"  {c['at'][:16]} {c['action']} via {c['channel']} "
                     f"{c['method']}".rstrip())
    groups = data["groups"]
    lines.append("Groups: " + (", ".join(f"{g['group']} ({g['role']}, {g['status']})"
                                         for g in groups) if groups else "none"))
    for title, rows in data.items():
        if title in {"profile", "addresses", "consent_history", "groups",
                     "messages_sent_to_you"}:
            continue
        lines.append(f"{title.replace('_', ' ').capitalize()}: "
                     + ("; ".join(_row(r) for r in rows) if rows else "none"))
    lines.append(f"Messages we sent you: {data['messages_sent_to_you']}")
    lines.append("/forgetme erases all of this.")
    return "\n".join(lines)


def _row(row: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in row.items())


@router.command("mydata", usage="/mydata", summary="see everything we hold about you",
                audience="anyone", section=SECTION)
async def mydata(ctx: Context) -> None:
    data = await ctx.services.data_rights.export(ctx.member.id)
    ctx.reply(render_export(data))


@router.command("forgetme", usage="/forgetme", summary="erase your data",
                audience="anyone", section=SECTION)
async def forgetme(ctx: Context) -> None:
    if ctx.args.strip().lower() != "confirm":
        ctx.reply("This erases your profile, chat ids, name, posts and RSVPs for good. "
                  "If you had said STOP, we keep only a coded fingerprint so you stay "
                  "stopped.\nTo go ahead, send: /forgetme confirm")
        return
    s = ctx.services
    msg = ctx.msg
    await s.data_rights.forget(ctx.member, ctx.now)
    # The member row is gone, so this last answer carries its own (encrypted) address.
    ctx.send(Outgoing(text="Done — your data is erased. Goodbye, and thank you.",
                      transport=msg.transport, kind="reply", command="forgetme",
                      meta={"to_enc": s.vault.encrypt(msg.chat if msg.room is None
                                                      else msg.sender),
                            "to_kind": msg.sender_kind}))


@router.command("why", usage="/why", summary="why you get messages from us",
                audience="anyone", section=SECTION)
async def why(ctx: Context) -> None:
    s = ctx.services
    member = ctx.member
    org = s.config.organization.name
    last = await s.consent.last(member.id)
    if member.status == "pending":
        ctx.reply(f"You haven't joined {org}, so we send you nothing but the welcome notice. "
                  "Reply YES to join.")
        return
    if member.status == "stopped":
        when = f" on {last.at:%Y-%m-%d}" if last else ""
        ctx.reply(f"You stopped{when}. We send you nothing except answers to commands you "
                  "send yourself. START to come back.")
        return
    since = f"on {last.at:%Y-%m-%d} via {last.channel} ({last.method})" if last else ""
    groups = await s.groups.of_member(member.id)
    names = ", ".join(f"{g.code} ({m.role}{', muted' if m.muted else ''})" for g, m in groups)
    ctx.reply(f"You get messages from {org} because you replied YES {since}.\n"
              f"Your groups: {names or 'none yet'}. Group messages come from their "
              "organizers, and relays from members.\n"
              "To hear less: /quiet, /digest daily, /pause 7d, /leave CODE. STOP ends all.")
