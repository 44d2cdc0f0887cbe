"""HELP: the commands this member may use in their role, the contact, how to stop."""

from __future__ import annotations

from bot.routing import Context, Router

router = Router()


async def roles_of(ctx: Context) -> set[str]:
    roles = {"anyone", "member"}
    for _, membership in await ctx.services.groups.of_member(ctx.member.id):
        roles.add(membership.role)
    if ctx.is_admin:
        roles.update({"admin", "organizer", "moderator"})
    return roles


@router.command("help", "commands", keywords=("HELP", "INFO", "?"),
                audience="anyone", usage="HELP", summary="this list", section="Your membership")
async def help_(ctx: Context) -> None:
    from handlers.consent import send_notice

    s = ctx.services
    org = s.config.organization
    if ctx.member.status == "pending":
        await send_notice(ctx)
        return
    if ctx.member.status == "stopped":
        ctx.reply(f"You've stopped all messages from {org.name}.\n"
                  "START — join again\n/mydata — see what we hold about you\n"
                  f"/forgetme — erase it\nContact: {org.contact}")
        return
    sections: dict[str, list[str]] = {}
    assert ctx.router is not None
    for route in ctx.router.visible_to(await roles_of(ctx)):
        sections.setdefault(route.section, []).append(f"{route.usage} — {route.summary}")
    lines = [f"{org.name} — what you can do:"]
    for title, entries in sections.items():
        lines.append(f"\n{title}:")
        lines.extend(entries)
    lines.append(f"\nQuestions: {org.contact}. STOP at any time stops every message.")
    ctx.reply("\n".join(lines))
