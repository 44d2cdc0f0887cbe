"""Moderation: each group's rules, their enforcement on posts, and the sanctions.

Posts are judged by the pure rule engine (`bot.policy.rules`) and `bot.policy.gatekeeper`;
this service holds what those need from storage (warnings, mutes, bans, memberships,
the flood rule's post times) and carries out what they decide: it writes the audit
row, the warning, the mute or the removal, and returns the messages it causes as
`Outgoing` values so that they are written in the caller's transaction. In a real
room it queues room actions (delete, restrict, remove) where the transport can do
them, and asks the group's moderators to do them by hand where it cannot.
"""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import ConfigError, Moderation
from bot.policy import doxxing
from bot.policy.gatekeeper import MANUAL_RULE, Plan, exempt, judge
from bot.policy.ladder import describe_action, next_action, step_actions
from bot.policy.ruleconfig import (
    MAX_FLOOD_WINDOW,
    apply_override,
    build_rules,
    describe_rules,
    validate_config,
)
from bot.policy.rules import ModerationEngine
from bot.services.audit import AuditService
from bot.services.members import MemberService
from bot.services.outbox import OutboxService, Outgoing
from bot.storage.models import Group, Member, Membership, RoomLink
from bot.storage.models_moderation import (
    FloodMark,
    ModBan,
    ModMute,
    ModReport,
    ModWarning,
    RelayedPost,
)

log = logging.getLogger("groundwork.moderation")

ALERT = "mod_alert"  # to moderators, and to members about actions against them
STAFF = ("moderator", "organizer")
# (transport, capability name) -> can that transport do it? Given by the composition root,
# which knows the transports: this service does not.
CapabilityCheck = Callable[[str, str], bool]
_CAPABILITY = {"delete": "delete_message", "restrict": "restrict_member",
               "unrestrict": "restrict_member", "remove": "remove_member",
               "unban": "remove_member"}
# What moderators are asked to do by hand where a platform can't.
_BY_HAND = {"restrict": "mute", "unrestrict": "unmute", "remove": "remove",
            "unban": "let back in"}
_MISSING = object()
# Told when a member is removed from a group (also by a ban): rooms the bot administers
# that are not linked rooms, such as WhatsApp team groups, return their own actions.
RemovalHook = Callable[[Member, Group], Awaitable[list[Outgoing]]]
PURGE_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class Here:
    """Where a room message was said: the room, its message id and the sender's address."""

    transport: str
    room: str
    message_id: str
    sender: str


@dataclass
class Review:
    """The gate's answer for one post."""

    passed: bool
    post_ref: str | None = None  # "#12": the number a relayed post is reported by
    notice: str | None = None  # what the author is told, privately
    out: list[Outgoing] = field(default_factory=list)  # room actions, alerts


@dataclass
class Result:
    """What a moderator command did: the answer to the moderator and the other messages."""

    text: str
    out: list[Outgoing] = field(default_factory=list)
    action_id: int | None = None


def check_settings(settings: Moderation, default_region: str, file: str) -> None:
    """Stop at start on a bad `moderation.rules`, naming the key (like every config error)."""
    error = validate_config({"rules": settings.rules})
    if error:
        raise ConfigError(f"{file}: moderation.{error}")
    if not doxxing.region_supported(default_region):
        raise ConfigError(f"{file}: transports.whatsapp.default_region: '{default_region}' "
                          "must be a two-letter country code like US or NL")


def when(moment: datetime, tz_name: str) -> str:
    local = moment.astimezone(ZoneInfo(tz_name))
    return f"{local:%a} {local.day} {local:%b}, {local:%H:%M} {local:%Z}"


class ModerationService:
    def __init__(self, *, outbox: OutboxService, members: MemberService, audit: AuditService,
                 settings: Moderation, default_region: str, timezone: str,
                 admins: tuple[str, ...], can: CapabilityCheck) -> None:
        self.outbox = outbox
        self.members = members
        self.audit = audit
        self.settings = settings
        self.expiry = timedelta(days=settings.warning_expiry_days)
        self.timezone = timezone
        self.admins = admins
        self.can = can
        self.removal_hooks: list[RemovalHook] = []
        self._base = _with_region(settings.rules, default_region)
        self._engines: dict[int, tuple[str, ModerationEngine]] = {}
        self._purged_at: datetime | None = None

    # --- rules ---------------------------------------------------------------------------

    def config_of(self, group: Group) -> dict[str, Any]:
        """The group's rules config: the config file's, with the group's overrides on top."""
        overrides = (group.settings or {}).get("rules") or {}
        rules = copy.deepcopy(self._base)
        for name, values in overrides.items():
            rules[name] = {**(rules.get(name) or {}), **(values or {})}
        return {"rules": rules}

    def engine_for(self, group: Group) -> ModerationEngine:
        """One engine per group, rebuilt when its overrides change (flood counts survive)."""
        key = json.dumps((group.settings or {}).get("rules") or {}, sort_keys=True)
        cached = self._engines.get(group.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            rules = build_rules(self.config_of(group))
        except ValueError as exc:  # overrides edited by hand: fall back to the file's rules
            log.error("group %s has unusable rule overrides (%s); using the defaults",
                      group.code, exc)
            rules = build_rules({"rules": self._base})
        if cached is None:
            engine = ModerationEngine(rules)
        else:
            engine = cached[1]
            engine.replace_rules(rules)
        self._engines[group.id] = (key, engine)
        return engine

    def describe(self, group: Group) -> list[str]:
        return describe_rules(self.engine_for(group).rules)

    async def set_rule(self, group: Group, actor: Member, key: str, value: str,
                       now: datetime) -> Result:
        """/setrule: ValueError (one line, for the moderator) if the change is not valid."""
        before = self.config_of(group)
        after = apply_override(before, key, value)
        overrides = copy.deepcopy((group.settings or {}).get("rules") or {})
        for name, values in after["rules"].items():
            old = before["rules"].get(name) or {}
            for setting, new in (values or {}).items():
                if old.get(setting, _MISSING) != new:
                    overrides.setdefault(name, {})[setting] = new
        group.settings = {**(group.settings or {}), "rules": overrides}
        await group.save(update_fields=["settings"])
        action_id = await self.audit.log(now, "setrule", group=group, actor=actor,
                                         rule_id=key.split(".")[0].lower(),
                                         reason=_setting_note(key, value))
        lines = "\n".join(f"• {line}" for line in self.describe(group)) or "• (no rules)"
        return Result(f"Done: {key.strip().lower()} changed for {group.code}. "
                      f"Its rules now:\n{lines}", action_id=action_id)

    # --- the gate ------------------------------------------------------------------------

    async def review(self, member: Member, group: Group, text: str, now: datetime, *,
                     privileged: bool = False, here: Here | None = None) -> Review:
        """Judge one post (relayed, or said in a room when `here` is given)."""
        barred = await self._barred(member, group, now, here)
        if barred is not None:
            return barred
        engine = self.engine_for(group)
        recent = await self._posts_in_flood_window(member, group, engine, now)
        violations = exempt(engine.evaluate(text, str(member.id), now.timestamp(), recent),
                            privileged)
        if not violations:
            return await self._pass(member, group, now, here)
        counts = await self._counts(member.id, group.id, now)
        verdict = judge(violations, counts)
        source = "room" if here else "auto"
        for plan in verdict.shadow:  # on trial: noted, nothing done, nobody told
            await self.audit.log(now, plan.label, group=group, target=member,
                                 rule_id=plan.violation.rule_id, detail=plan.violation.detail,
                                 reason=plan.violation.description, shadow=True, source=source)
        if verdict.act_on is None:
            return await self._pass(member, group, now, here)
        return await self._enforce(member, group, verdict.act_on, counts, now, here)

    async def _pass(self, member: Member, group: Group, now: datetime,
                    here: Here | None) -> Review:
        if here is not None:
            return Review(True)
        post = await RelayedPost.create(group=group, author=member, created_at=now)
        return Review(True, post_ref=f"#{post.id}")

    async def _barred(self, member: Member, group: Group, now: datetime,
                      here: Here | None) -> Review | None:
        """A banned, removed or muted member's post is held whatever it says."""
        ban = await self.active_ban(member.id, group.id, now)
        if ban is not None:
            why = (f"You're banned from {group.code} until {when(ban.until, self.timezone)} "
                   f"({ban.reason}), so your post was not shared.")
            return await self._held(group, member, why, ban.action_id, here)
        status = await Membership.filter(member_id=member.id, group_id=group.id).values_list(
            "status", flat=True)
        if "removed" in status:
            why = f"You were removed from {group.code}, so your post was not shared."
            return await self._held(group, member, why, None, here)
        mute = await self.active_mute(member.id, group.id, now)
        if mute is not None:
            why = (f"You're muted in {group.code} until {when(mute.until, group.timezone)}, "
                   "so your post was not shared.")
            return await self._held(group, member, why, mute.action_id, here)
        return None

    async def _held(self, group: Group, member: Member, why: str, action_id: int | None,
                    here: Here | None) -> Review:
        out = await self._delete(group, member, here, None) if here else []
        if action_id is not None:
            why += f"\nAction #{action_id}. If you think it's wrong: /appeal {action_id} WHY"
        return Review(False, notice=why, out=out)

    async def _enforce(self, member: Member, group: Group, plan: Plan, counts: Counter[str],
                       now: datetime, here: Here | None) -> Review:
        v = plan.violation
        mute_for, ban_for = plan.duration("mute"), plan.duration("ban")
        until = now + (ban_for or mute_for) if (ban_for or mute_for) else None
        action_id = await self.audit.log(
            now, plan.label, group=group, target=member, rule_id=v.rule_id, detail=v.detail,
            reason=v.description, until=until, source="room" if here else "auto")
        # Every enforced violation is a strike under its rule: that is what the ladder counts.
        await self._strike(member, group, v.rule_id, action_id, now)
        out = await self._delete(group, member, here, action_id) if here else []
        if mute_for:
            out += await self._mute(member, group, now + mute_for, action_id, here)
        if plan.has("remove"):
            out += await self._remove(member, group, now, here)
        if ban_for:
            out += await self._ban(member, [group], now + ban_for, v.description, action_id,
                                   now, here)
        if plan.severity >= 2:  # mutes, removals, bans: the moderators should know
            out += await self.alert([group.id], f"{group.code}: the bot {_did(plan)} "
                                    f"@{member.handle} under the rule \"{v.description}\". "
                                    f"Action #{action_id} (/modlog {group.code}).",
                                    exclude={member.id})
        counts[v.rule_id] += 1
        notice = self._notice(member, group, plan, counts, until, action_id, here)
        return Review(False, notice=notice, out=out)

    def _notice(self, member: Member, group: Group, plan: Plan, counts: Counter[str],
                until: datetime | None, action_id: int, here: Here | None) -> str:
        v = plan.violation
        where = (f"Your message in the {group.name} room was deleted" if here
                 else f"Your post to {group.name} was not shared")
        happened = []
        if plan.has("warn"):
            happened.append(f"a warning (it counts for {self.expiry.days} days)")
        if plan.has("mute") and until:
            happened.append(f"you're muted in {group.code} until {when(until, group.timezone)}")
        if plan.has("ban") and until:
            happened.append(f"you're banned from {group.code} until "
                            f"{when(until, group.timezone)}")
        if plan.has("remove"):
            happened.append(f"you were removed from {group.code}")
        lines = [f"{where}: it breaks the rule \"{v.description}\"."]
        if happened:
            lines.append("What happened: " + "; ".join(happened) + ".")
        following = _next_words(v.ladder, counts.get(v.rule_id, 0) + counts.get(MANUAL_RULE, 0))
        if following and plan.severity < 3:
            lines.append(f"Next time within {self.expiry.days} days: {following}.")
        lines.append(f"Action #{action_id}. If you think it's wrong: /appeal {action_id} WHY")
        return "\n".join(lines)

    async def _posts_in_flood_window(self, member: Member, group: Group,
                                     engine: ModerationEngine, now: datetime) -> int | None:
        """Count this post and return the member's posts in the group's flood window.

        In the database, not in this process's memory: with several workers (or processing
        children) a member's posts are handled by whichever claims them, and each counting
        its own share would let N posts through per worker."""
        flood = engine.flood
        if flood is None:
            return None
        await FloodMark.create(group_id=group.id, member_id=member.id, at=now)
        since = now - timedelta(seconds=flood.per_seconds)
        return await FloodMark.filter(group_id=group.id, member_id=member.id,
                                      at__gt=since).count()

    async def export_flood_marks(self, member_id: int) -> list[dict[str, str]]:
        """Data rights: the times of the member's recent posts the flood rule counts."""
        rows = await FloodMark.filter(member_id=member_id).order_by("at").values_list(
            "group__code", "at")
        return [{"group": code, "at": at.isoformat()} for code, at in rows]

    async def _counts(self, member_id: int, group_id: int, now: datetime) -> Counter[str]:
        rules = await ModWarning.filter(member_id=member_id, group_id=group_id, revoked=False,
                                        expires_at__gt=now).values_list("rule_id", flat=True)
        return Counter(rules)

    async def _strike(self, member: Member, group: Group, rule_id: str, action_id: int,
                      now: datetime) -> None:
        await ModWarning.create(member=member, group=group, rule_id=rule_id,
                                action_id=action_id, created_at=now,
                                expires_at=now + self.expiry)

    # --- sanctions ---------------------------------------------------------------------------

    async def active_mute(self, member_id: int, group_id: int, now: datetime) -> ModMute | None:
        return await (ModMute.filter(member_id=member_id, group_id=group_id, lifted_at=None,
                                     until__gt=now).order_by("-until").first())

    async def active_ban(self, member_id: int, group_id: int | None,
                         now: datetime) -> ModBan | None:
        """The member's ban covering the group (any group when None)."""
        bans = await ModBan.filter(member_id=member_id, lifted_at=None, until__gt=now)
        for ban in bans:
            if group_id is None or group_id in ban.group_ids:
                return ban
        return None

    async def is_banned(self, member_id: int, now: datetime | None = None) -> bool:
        """For WhatsApp team groups' join requests: is this member on a ban list now?"""
        return await self.active_ban(member_id, None, now or datetime.now(UTC)) is not None

    async def _mute(self, member: Member, group: Group, until: datetime, action_id: int,
                    here: Here | None) -> list[Outgoing]:
        await ModMute.create(member=member, group=group, until=until, action_id=action_id)
        return await self._in_rooms(group, member, "restrict", until, here)

    async def _remove(self, member: Member, group: Group, now: datetime,
                      here: Here | None) -> list[Outgoing]:
        """Membership "removed": the member cannot rejoin (GroupService.join refuses)."""
        await _set_status(member, group.id, "removed", now)
        return await self._in_rooms(group, member, "remove", None, here)

    async def _ban(self, member: Member, groups: list[Group], until: datetime, reason: str,
                   action_id: int, now: datetime, here: Here | None = None) -> list[Outgoing]:
        ids = [g.id for g in groups]
        previous = dict(await Membership.filter(member_id=member.id, group_id__in=ids)
                        .values_list("group_id", "status"))
        await ModBan.create(member=member, group_ids=ids,
                            previous={str(g): previous.get(g) for g in ids}, reason=reason[:300],
                            until=until, action_id=action_id, created_at=now)
        out: list[Outgoing] = []
        for group in groups:
            await _set_status(member, group.id, "removed", now)
            out += await self._in_rooms(group, member, "remove", None, here)
        return out

    async def impose_ban(self, member: Member, groups: list[Group], until: datetime,
                         reason: str, now: datetime) -> None:
        """A ban the system itself puts back (see ban_carryover), audited as such."""
        action_id = await self.audit.log(now, "ban", groups=groups, target=member,
                                         reason=reason, until=until, source="auto")
        await self.outbox.enqueue(
            await self._ban(member, groups, until, reason, action_id, now), now)

    async def _lift_ban(self, ban: ModBan, now: datetime, member: Member | None
                        ) -> tuple[list[str], list[Outgoing]]:
        """Put every membership back as it was, and let the member back into the groups'
        rooms; returns the codes of the groups and the room actions."""
        ban.lifted_at = now
        await ban.save(update_fields=["lifted_at"])
        for group_id, status in (ban.previous or {}).items():
            query = Membership.filter(member_id=ban.member_id, group_id=int(group_id),
                                      status="removed")
            if status is None:
                await query.delete()  # the ban made this row only to refuse /join
            else:
                await query.update(status=status, left_at=None if status == "active" else now)
        groups = await Group.filter(id__in=ban.group_ids).order_by("code")
        out: list[Outgoing] = []
        if member is not None:
            for group in groups:
                out += await self._in_rooms(group, member, "unban", None, None)
        return [g.code for g in groups], out

    # --- room actions and alerts -------------------------------------------------------------

    async def _delete(self, group: Group, member: Member, here: Here,
                      action_id: int | None) -> list[Outgoing]:
        if self.can(here.transport, _CAPABILITY["delete"]):
            return [self.outbox.room_action(here.transport, here.room, "delete",
                                            message_id=here.message_id)]
        ref = f" (action #{action_id})" if action_id else ""
        return await self.alert([group.id], f"{group.code}: please delete @{member.handle}'s "
                                f"latest message in room {here.room}{ref}: this platform "
                                "doesn't let the bot delete messages.", exclude={member.id})

    async def _in_rooms(self, group: Group, member: Member, action: str,
                        until: datetime | None, here: Here | None) -> list[Outgoing]:
        """Restrict, remove or undo either for the member in every room linked to the
        group."""
        rooms = await RoomLink.filter(group_id=group.id).values_list("transport", "room")
        out: list[Outgoing] = []
        if action == "remove":
            for hook in self.removal_hooks:
                out += await hook(member, group)
        for transport, room in rooms:
            user = (here.sender if here and (here.transport, here.room) == (transport, room)
                    else await self._address(member.id, transport))
            if user is None:
                continue  # never seen on that platform: not in that room
            if self.can(transport, _CAPABILITY[action]):
                out.append(self.outbox.room_action(transport, room, action, user=user,
                                                   until=until))
            else:
                verb = _BY_HAND[action]
                out += await self.alert([group.id], f"{group.code}: please {verb} "
                                        f"@{member.handle} in room {room} by hand: this "
                                        f"platform doesn't let the bot {verb} members.",
                                        exclude={member.id})
        return out

    async def _address(self, member_id: int, transport: str) -> str | None:
        found = await self.members.addresses(member_id, transport)
        return found[0][2] if found else None

    async def alert(self, group_ids: list[int], text: str,
                    exclude: set[int] | None = None) -> list[Outgoing]:
        """A private message to each moderator and organizer of the groups (the bot's admins
        if a group has none). Kind mod_alert: the policy gate passes it at any hour."""
        rows = await (Membership.filter(group_id__in=group_ids, status="active",
                                        role__in=STAFF, member__status="active")
                      .values_list("member_id", "member__transport"))
        staff = dict(rows) or await self._admins()
        return [Outgoing(text=text, transport=transport, member_id=member_id, kind=ALERT)
                for member_id, transport in sorted(staff.items())
                if member_id not in (exclude or set())]

    async def _admins(self) -> dict[int, str]:
        found: dict[int, str] = {}
        for entry in self.admins:
            transport, _, address = entry.partition(":")
            member = await self.members.find(transport, address)
            if member is not None and member.status == "active":
                found[member.id] = member.transport
        return found

    def tell(self, member: Member, text: str) -> Outgoing:
        """A private message to a member about an action taken against them."""
        return Outgoing(text=text, transport=member.transport, member_id=member.id, kind=ALERT)

    # --- moderator commands ----------------------------------------------------------------

    async def warn(self, actor: Member, target: Member, group: Group, reason: str,
                   now: datetime, source: str = "command") -> Result:
        action_id = await self.audit.log(now, "warn", group=group, actor=actor, target=target,
                                         rule_id=MANUAL_RULE, reason=reason, source=source)
        await self._strike(target, group, MANUAL_RULE, action_id, now)
        notice = (f"A moderator of {group.name} warned you: {reason}\nIt counts for "
                  f"{self.expiry.days} days. Action #{action_id}. If you think it's wrong: "
                  f"/appeal {action_id} WHY")
        return Result(f"Warned @{target.handle} in {group.code} (action #{action_id}).",
                      [self.tell(target, notice)], action_id)

    async def mute(self, actor: Member, target: Member, group: Group, duration: timedelta,
                   now: datetime, reason: str = "", source: str = "command") -> Result:
        until = now + duration
        action_id = await self.audit.log(now, "mute", group=group, actor=actor, target=target,
                                         reason=reason or None, until=until, source=source)
        out = await self._mute(target, group, until, action_id, None)
        shown = when(until, group.timezone)
        notice = (f"A moderator of {group.name} muted you until {shown}: your posts to "
                  f"{group.code} are held until then. Action #{action_id}. If you think "
                  f"it's wrong: /appeal {action_id} WHY")
        return Result(f"Muted @{target.handle} in {group.code} until {shown} "
                      f"(action #{action_id}).", [*out, self.tell(target, notice)], action_id)

    async def unmute(self, actor: Member, target: Member, group: Group,
                     now: datetime) -> Result:
        lifted = await ModMute.filter(member_id=target.id, group_id=group.id, lifted_at=None,
                                      until__gt=now).update(lifted_at=now)
        if not lifted:
            return Result(f"@{target.handle} isn't muted in {group.code}.")
        action_id = await self.audit.log(now, "unmute", group=group, actor=actor,
                                         target=target)
        out = await self._in_rooms(group, target, "unrestrict", None, None)  # there too
        return Result(f"Unmuted @{target.handle} in {group.code} (action #{action_id}).",
                      [*out, self.tell(target, f"You can post to {group.name} again.")],
                      action_id)

    async def remove(self, actor: Member, target: Member, group: Group, reason: str,
                     now: datetime, source: str = "command") -> Result:
        action_id = await self.audit.log(now, "remove", group=group, actor=actor,
                                         target=target, reason=reason, source=source)
        out = await self._remove(target, group, now, None)
        notice = (f"A moderator removed you from {group.name}: {reason}\nAction "
                  f"#{action_id}. If you think it's wrong: /appeal {action_id} WHY")
        return Result(f"Removed @{target.handle} from {group.code} (action #{action_id}).",
                      [*out, self.tell(target, notice)], action_id)

    async def ban(self, actor: Member, target: Member, groups: list[Group], reason: str,
                  duration: timedelta, now: datetime) -> Result:
        until = now + duration
        action_id = await self.audit.log(now, "ban", groups=groups, actor=actor,
                                         target=target, reason=reason, until=until)
        out = await self._ban(target, groups, until, reason, action_id, now)
        codes = ", ".join(g.code for g in groups)
        shown = when(until, self.timezone)
        notice = (f"You're banned from {codes} until {shown}: {reason}\nAction "
                  f"#{action_id}. If you think it's wrong: /appeal {action_id} WHY")
        return Result(f"Banned @{target.handle} from {codes} until {shown} "
                      f"(action #{action_id}).", [*out, self.tell(target, notice)], action_id)

    async def unban(self, actor: Member, target: Member, allowed: set[int] | None,
                    now: datetime) -> Result:
        """Lift the member's bans that touch a group the actor moderates (all for admins)."""
        bans = [b for b in await ModBan.filter(member_id=target.id, lifted_at=None,
                                               until__gt=now)
                if allowed is None or allowed & set(b.group_ids)]
        if not bans:
            return Result(f"@{target.handle} has no ban you can lift.")
        codes: list[str] = []
        out: list[Outgoing] = []
        for ban in bans:
            lifted, actions = await self._lift_ban(ban, now, target)
            codes += lifted
            out += actions
        action_id = await self.audit.log(now, "unban", actor=actor, target=target,
                                         groups=list(await Group.filter(code__in=codes)))
        shown = ", ".join(sorted(set(codes)))
        return Result(f"Lifted the ban on @{target.handle} ({shown}, action #{action_id}).",
                      [*out, self.tell(target, f"Your ban from {shown} was lifted.")],
                      action_id)

    async def warnings(self, target_id: int, group_ids: list[int] | None,
                       now: datetime) -> list[tuple[str, str, datetime, datetime]]:
        """Active warnings: (group code, rule, given, expires)."""
        query = ModWarning.filter(member_id=target_id, revoked=False, expires_at__gt=now)
        if group_ids is not None:
            query = query.filter(group_id__in=group_ids)
        return list(await query.order_by("created_at").values_list(
            "group__code", "rule_id", "created_at", "expires_at"))

    # --- undoing (appeals) -------------------------------------------------------------------

    async def undo(self, action_id: int, target: Member | None, now: datetime
                   ) -> list[Outgoing]:
        """Overturn an action: its warning, mute, removal or ban no longer stands."""
        await ModWarning.filter(action_id=action_id).update(revoked=True)
        out: list[Outgoing] = []
        for mute in await ModMute.filter(action_id=action_id, lifted_at=None):
            mute.lifted_at = now
            await mute.save(update_fields=["lifted_at"])
            group = await Group.get(id=mute.group_id)
            if target is not None:
                out += await self._in_rooms(group, target, "unrestrict", None, None)
        for ban in await ModBan.filter(action_id=action_id, lifted_at=None):
            out += (await self._lift_ban(ban, now, target))[1]
        entry = await self.audit.get(action_id)
        if entry is not None and target is not None and "remove" in step_actions(entry.action):
            for group_id in entry.group_ids:
                await Membership.filter(member_id=target.id, group_id=group_id,
                                        status="removed").update(status="active",
                                                                 left_at=None)
                out += await self._in_rooms(await Group.get(id=group_id), target, "unban",
                                            None, None)
        await self.audit.mark_undone(action_id, now)
        return out

    # --- jobs --------------------------------------------------------------------------------

    async def lift_expired_bans(self, now: datetime) -> int:
        """Bans end by themselves: memberships are put back and the member is told."""
        out: list[Outgoing] = []
        for ban in await ModBan.filter(lifted_at=None, until__lte=now).select_related("member"):
            codes, actions = await self._lift_ban(ban, now, ban.member)
            out += actions
            out.append(self.tell(ban.member, f"Your ban from {', '.join(codes)} has ended."))
        return await self.outbox.enqueue(out, now)

    async def housekeeping(self, now: datetime) -> int:
        """The scheduled job: end due bans at once, purge old records hourly."""
        queued = await self.lift_expired_bans(now)
        if self._purged_at is None or now - self._purged_at >= PURGE_EVERY:
            await self.purge(now)
            self._purged_at = now
        return queued

    async def purge(self, now: datetime) -> None:
        """The audit log keeps `audit_retention_days`; sanctions, strikes, posts and closed
        reports older than that go with it."""
        cutoff = now - timedelta(days=self.settings.audit_retention_days)
        await self.audit.purge(now)
        await ModWarning.filter(expires_at__lt=cutoff).delete()
        await ModMute.filter(until__lt=cutoff).delete()
        await ModBan.filter(until__lt=cutoff).exclude(lifted_at=None).delete()
        await RelayedPost.filter(created_at__lt=cutoff).delete()
        # No flood window is longer than MAX_FLOOD_WINDOW: older marks count for nothing.
        await FloodMark.filter(at__lt=now - timedelta(seconds=MAX_FLOOD_WINDOW)).delete()
        await ModReport.filter(status="resolved", resolved_at__lt=cutoff).delete()


def _with_region(rules: Mapping[str, Any], region: str) -> dict[str, Any]:
    """The config's rules, with the transport's region for phone numbers unless one is set."""
    base = copy.deepcopy(dict(rules))
    doxx = dict(base.get("doxxing") or {})
    doxx.setdefault("region", region)
    base["doxxing"] = doxx
    return base


async def _set_status(member: Member, group_id: int, status: str, now: datetime) -> None:
    updated = await Membership.filter(member_id=member.id, group_id=group_id).update(
        status=status, left_at=now)
    if not updated:  # not a member: a row that says so, so /join is refused
        await Membership.create(member=member, group_id=group_id, status=status,
                                joined_at=now, left_at=now)
    if member.current_group_id == group_id:
        member.current_group_id = None
        await member.save(update_fields=["current_group_id"])


def _did(plan: Plan) -> str:
    if plan.has("ban"):
        return "banned"
    if plan.has("remove"):
        return "removed"
    return "muted"


def _next_words(ladder: tuple[str, ...], strikes: int) -> str:
    """The next step in plain words, leaving out the hold every step implies."""
    step = [a for a in step_actions(next_action(ladder, strikes)) if a != "hold"]
    return " and ".join(describe_action(a) for a in step)


def _setting_note(key: str, value: str) -> str:
    """What the audit log says about a /setrule. Blocked words are not repeated there."""
    key = key.strip().lower()
    if key.startswith("blocklist.") and not key.endswith(("shadow", "enabled", "ladder")):
        count = len([p for p in value.split(",") if p.strip()])
        return f"{key} ({count} entr{'y' if count == 1 else 'ies'})"
    return f"{key} = {value.strip()}"
