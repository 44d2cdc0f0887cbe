"""Event reminders: stored rows, due at fixed UTC instants, sent once by a scheduled job.

Stored (not timers in memory) so they survive a restart; each is claimed with a
conditional update in the same transaction that writes its outbox rows, so a
reminder is sent exactly once even with two workers or a crash half-way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from bot.footer import footer
from bot.messages import Button
from bot.services.calendar import show
from bot.services.outbox import OutboxService, Outgoing
from bot.storage.models_events import Event, Reminder, Rsvp

log = logging.getLogger("groundwork.reminders")

# Only people planning to come are reminded; the waitlist has no place yet.
REMINDED = ("yes", "maybe")
BATCH = 50
MAX_HOURS = 24 * 14


def reminder_hours(settings: Mapping[str, Any] | None, default: Sequence[int]
                   ) -> tuple[int, ...]:
    """The group's `reminder_hours_before` setting if it is sound, else the config's."""
    wanted = (settings or {}).get("reminder_hours_before")
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        wanted = [wanted]
    if isinstance(wanted, list) and all(
            isinstance(h, int) and not isinstance(h, bool) and 0 < h <= MAX_HOURS
            for h in wanted):
        return tuple(sorted(set(wanted), reverse=True))
    if wanted is not None:
        log.warning("ignoring a group's unusable reminder_hours_before: %r", wanted)
    return tuple(default)


class ReminderService:
    def __init__(self, outbox: OutboxService, default_hours: Sequence[int]) -> None:
        self.outbox = outbox
        self.default_hours = tuple(default_hours)

    async def schedule(self, event_id: int, starts_at: datetime,
                       settings: Mapping[str, Any] | None, now: datetime) -> int:
        """(Re)plan an event's reminders: the pending ones go, new ones are due `hours`
        before the start as an absolute instant (UTC arithmetic: 24 h is 24 h, also across
        a daylight-saving change). Reminders whose time has passed are not made."""
        await self.drop(event_id)
        rows = [Reminder(event_id=event_id, hours_before=hours,
                         due_at=starts_at - timedelta(hours=hours))
                for hours in reminder_hours(settings, self.default_hours)
                if starts_at - timedelta(hours=hours) > now]
        if rows:
            await Reminder.bulk_create(rows)
        return len(rows)

    async def drop(self, event_id: int) -> None:
        await Reminder.filter(event_id=event_id, status="pending").update(status="dropped")

    async def pending(self, event_id: int) -> list[tuple[int, datetime]]:
        """(hours before, due at) of the reminders still to send."""
        return list(await Reminder.filter(event_id=event_id, status="pending")
                    .order_by("due_at").values_list("hours_before", "due_at"))

    async def send_due(self, now: datetime) -> int:
        """The scheduled job: send every reminder that is due. Returns how many reminders it
        dealt with plus how many messages it queued (0: nothing to do)."""
        due = await (Reminder.filter(status="pending", due_at__lte=now)
                     .order_by("due_at", "id").limit(BATCH).values_list("id", flat=True))
        done = 0
        for reminder_id in due:
            done += 1 + await self._send(int(reminder_id), now)
        return done

    async def _send(self, reminder_id: int, now: datetime) -> int:
        async with in_transaction():
            # The claim: only one transaction can move it out of "pending".
            if not await Reminder.filter(id=reminder_id, status="pending").update(
                    status="sent", sent_at=now):
                return 0
            reminder = await Reminder.get(id=reminder_id).select_related("event__group")
            event = reminder.event
            if event.status != "scheduled" or event.starts_at <= now:
                # Too late to be useful (the worker was down); never remind of the past.
                await Reminder.filter(id=reminder_id).update(status="dropped")
                return 0
            rows = await Rsvp.filter(event_id=event.id, status__in=list(REMINDED)).values_list(
                "member_id", "transport", "status")
            texts = {status: _text(event, status) for status in REMINDED}
            out = [Outgoing(text=texts[status], transport=transport, member_id=member_id,
                            kind="reminder", group_id=event.group_id,
                            buttons=_buttons(event.id, status),
                            # Of no use once the event has begun (the gate drops it then).
                            meta={"event_id": event.id,
                                  "expires_at": event.starts_at.isoformat()})
                   for member_id, transport, status in rows]
            await self.outbox.enqueue(out, now)
            await Reminder.filter(id=reminder_id).update(recipients=len(out))
            return len(out)


def _text(event: Event, status: str) -> str:
    group = event.group
    where = event.place or "place to be announced"
    nudge = (f"Can't come any more? /rsvp {event.id} no frees your place for someone else."
             if status == "yes" else
             f"Still a maybe? /rsvp {event.id} yes or /rsvp {event.id} no helps the organizers.")
    return (f"⏰ Reminder: {event.title} — {show(event.starts_at, group.timezone)}, at {where}.\n"
            f"{nudge}\n\n"
            + footer(group.name, group.code, f"the organizers of {group.name}",
                     f"you RSVP'd {status} to this event"))


def _buttons(event_id: int, status: str) -> tuple[Button, ...]:
    if status == "yes":
        return (Button(f"/rsvp {event_id} no", "I can't go"),)
    return (Button(f"/rsvp {event_id} yes", "I'm going"), Button(f"/rsvp {event_id} no",
                                                                  "I can't go"))
