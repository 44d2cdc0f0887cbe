"""The policy gate: the delivery worker asks it before every send.

Consent first (nobody hears from us without it), then restraint for anything
that is not a direct answer: membership, pause, digest, quiet hours, daily cap.
What restraint holds back is held until later or folded into the digest;
nothing is dropped silently (a dropped row keeps its reason).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.config import Messaging, parse_quiet_hours
from bot.policy.consent import may_receive
from bot.policy.restraint import in_quiet_hours, local_midnight, quiet_hours_end
from bot.services.outbox import DIRECT_KINDS, Claim
from bot.services.preferences import DeliveryFacts, PreferenceService

SEND = "send"
HOLD = "hold"  # try again at `until`
DROP = "drop"  # final: not allowed (consent, left group); reason recorded
FOLD = "fold"  # into the member's next digest

# Digests are themselves the folded messages, so they skip the fold and the cap.
UNCAPPED_KINDS = frozenset({"digest"})


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str = ""
    until: datetime | None = None


class PolicyGate:
    def __init__(self, prefs: PreferenceService, messaging: Messaging,
                 default_timezone: str) -> None:
        self.prefs = prefs
        self.messaging = messaging
        self.default_tz = default_timezone

    async def decide(self, claims: list[Claim], now: datetime) -> dict[int, Decision]:
        people = [c for c in claims if c.room is None]
        member_ids = list({c.member_id for c in people if c.member_id is not None})
        candidates = [c for c in people if c.kind not in DIRECT_KINDS and c.member_id is not None]
        # Independent reads, together: on PostgreSQL each waits on its own connection.
        facts, memberships, home, group_tz = await asyncio.gather(
            self.prefs.facts(member_ids),
            self.prefs.active_memberships(
                {(c.member_id, c.group_id) for c in candidates
                 if c.group_id is not None and c.member_id is not None}),
            self.prefs.home_timezones(list({c.member_id for c in candidates
                                             if c.member_id is not None})),
            self.prefs.group_timezones(list({c.group_id for c in candidates
                                              if c.group_id is not None})))
        bulk = [c for c in candidates if c.member_id in facts]
        zones = self._zones(bulk, facts, home, group_tz)
        sent_today = await self.prefs.bulk_sent_since(
            list(zones), {m: local_midnight(now, tz) for m, tz in zones.items()},
            deciding=[c.id for c in claims])
        decisions: dict[int, Decision] = {}
        for c in claims:
            if c.room is not None or (c.member_id is None and c.kind == "reply"):
                # Rooms are not people; an unowned reply is the last answer to /forgetme.
                decisions[c.id] = Decision(SEND)
                continue
            f = facts.get(c.member_id or -1)
            if f is None:
                decisions[c.id] = Decision(DROP, "member no longer exists")
            elif not may_receive(f.status, c.kind, c.command):
                decisions[c.id] = Decision(DROP, f"no consent ({f.status})")
            elif c.kind in DIRECT_KINDS:
                decisions[c.id] = Decision(SEND)
            else:
                in_group = memberships.get((f.member_id, c.group_id or -1), c.group_id is None)
                decision = _too_late(c, self._restrain(c, f, in_group, zones[f.member_id],
                                                       sent_today, now), now)
                if decision.action == SEND:
                    sent_today[f.member_id] = sent_today.get(f.member_id, 0) + 1
                decisions[c.id] = decision
        return decisions

    def _restrain(self, c: Claim, f: DeliveryFacts, in_group: bool, tz: ZoneInfo,
                  sent_today: dict[int, int], now: datetime) -> Decision:
        if not in_group:
            return Decision(DROP, "left or muted the group")
        if not f.marketing_ok:
            return Decision(DROP, "stopped marketing messages on the platform")
        if f.paused_until and f.paused_until > now:
            return Decision(HOLD, "paused", f.paused_until)
        if f.digest == "daily" and c.kind not in UNCAPPED_KINDS:
            return Decision(FOLD, "member takes a daily digest")
        quiet = (parse_quiet_hours(f.quiet_hours) if f.quiet_hours is not None
                 else self.messaging.default_quiet)
        if quiet and in_quiet_hours(quiet, now.astimezone(tz)):
            return Decision(HOLD, "quiet hours", quiet_hours_end(quiet, now, tz))
        cap = f.daily_cap or self.messaging.max_group_messages_per_day
        if c.kind not in UNCAPPED_KINDS and sent_today.get(f.member_id, 0) >= cap:
            return Decision(FOLD, "daily cap reached")
        return Decision(SEND)

    def _zones(self, bulk: list[Claim], facts: dict[int, DeliveryFacts],
               home: dict[int, str], group_tz: dict[int, str]) -> dict[int, ZoneInfo]:
        """Each member's own time zone, else their group's, else the organization's."""
        ids = list({c.member_id for c in bulk if c.member_id is not None})
        by_claim_group = {c.member_id: group_tz.get(c.group_id or -1) for c in bulk}
        zones: dict[int, ZoneInfo] = {}
        for member_id in ids:
            name = (facts[member_id].timezone or home.get(member_id)
                    or by_claim_group.get(member_id) or self.default_tz)
            zones[member_id] = ZoneInfo(name)
        return zones


def _too_late(c: Claim, decision: Decision, now: datetime) -> Decision:
    """A message with a use-by time (an event reminder: the event's start) is dropped, with
    the reason, if it can no longer arrive before then: held past its start by quiet hours
    or a pause, a reminder is only noise."""
    expires = (c.extra or {}).get("expires_at")
    if not expires:
        return decision
    deadline = datetime.fromisoformat(expires)
    if now >= deadline:
        return Decision(DROP, "too late: the event has started")
    if decision.action == HOLD and (decision.until is None or decision.until >= deadline):
        return Decision(DROP, f"{decision.reason} last past the event's start")
    return decision  # a fold is kept: the digest leaves out what has gone stale by then
