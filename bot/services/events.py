"""Events and RSVPs: creating, editing and cancelling events, answers, the waitlist,
attendee lists, check-ins, exports, and a member's own RSVPs (data rights).

Every method runs inside the caller's transaction (the processor's, for a
handler). The messages a change causes — a waitlist promotion, a changed time,
a cancellation — are returned as `Outgoing` values, so they are written in that
same transaction (the outbox pattern) and are lost or kept together with it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from tortoise.functions import Count

from bot.footer import footer
from bot.messages import Attachment, Button
from bot.services.calendar import ICS_MIME, CalendarEntry, ics, ics_filename, show_span
from bot.services.crypto import Vault
from bot.services.outbox import OutboxService, Outgoing
from bot.services.reminders import ReminderService
from bot.storage.models import Group, Member
from bot.storage.models_events import Event, Rsvp

ANSWERS = ("yes", "maybe", "no")
WAITLIST = "waitlist"
EDITABLE = ("title", "when", "place", "capacity")
MAX_TITLE = 120
MAX_PLACE = 200
MAX_CAPACITY = 100_000
PHONE_DIGITS = 7  # a display name with this many digits may be a phone number
# Who hears of a changed time or place: everyone still planning to come.
PLANNING = ("yes", "maybe", WAITLIST)
REASONS = {"yes": "you RSVP'd yes to this event", "maybe": "you RSVP'd maybe to this event",
           "no": "you RSVP'd no to this event", WAITLIST: "you're on this event's waitlist"}


@dataclass(frozen=True)
class EventView:
    """An event as handlers see it: the group it belongs to and how full it is."""

    id: int
    group_id: int
    group_code: str
    group_name: str
    timezone: str
    title: str
    starts_at: datetime
    ends_at: datetime | None
    place: str
    capacity: int | None
    status: str
    cancel_reason: str | None
    sequence: int
    updated_at: datetime
    going: int = 0
    maybe: int = 0
    waiting: int = 0

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"

    @property
    def places_left(self) -> int | None:
        return None if self.capacity is None else max(0, self.capacity - self.going)

    @property
    def when(self) -> str:
        return show_span(self.starts_at, self.ends_at, self.timezone)

    @property
    def where(self) -> str:
        return self.place or "place to be announced"

    @property
    def at_where(self) -> str:
        """For sentences: 'at the Library', or 'place to be announced'."""
        return f"at {self.place}" if self.place else "place to be announced"

    def footer(self, reason: str) -> str:
        return footer(self.group_name, self.group_code, f"the organizers of {self.group_name}",
                      reason)


# One of a member's upcoming events: (event, their answer, their place in line).
MyEvent = tuple[EventView, str, int | None]


@dataclass(frozen=True)
class RsvpResult:
    status: str  # yes|maybe|no|waitlist
    changed: bool
    position: int | None  # in the waitlist
    event: EventView
    notices: list[Outgoing]  # promotions of others


@dataclass(frozen=True)
class Attendee:
    handle: str
    display_name: str | None
    status: str
    position: int | None
    checked_in_at: datetime | None


@dataclass(frozen=True)
class EditResult:
    event: EventView
    before: str  # the old value, as shown
    notices: list[Outgoing]


def parse_capacity(text: str) -> int | None:
    """'25' -> 25, ''/'skip'/'none' -> no limit; anything else raises ValueError."""
    text = text.strip().lower()
    if text in {"", "skip", "none", "no limit", "unlimited", "-"}:
        return None
    if not text.isdecimal() or not 0 < int(text) <= MAX_CAPACITY:
        raise ValueError(text)
    return int(text)


class EventService:
    def __init__(self, vault: Vault, outbox: OutboxService, reminders: ReminderService,
                 org_name: str, takes_files: Callable[[str], bool]) -> None:
        self.vault = vault
        self.outbox = outbox
        self.reminders = reminders
        self.org_name = org_name
        # Whether a transport can carry files (.ics, .csv). The composition root knows the
        # transports, handlers do not: they ask here and fall back to text.
        self.takes_files = takes_files

    # --- reading -----------------------------------------------------------------------------

    async def get(self, event_id: int) -> EventView | None:
        event = await Event.get_or_none(id=event_id).select_related("group")
        if event is None:
            return None
        return (await self._views([event]))[0]

    async def upcoming(self, group_ids: list[int], now: datetime, limit: int = 20
                       ) -> list[EventView]:
        events = await (Event.filter(group_id__in=group_ids, status="scheduled",
                                     starts_at__gt=now)
                        .select_related("group").order_by("starts_at", "id").limit(limit))
        return await self._views(events)

    async def of_member(self, member_id: int, now: datetime) -> list[MyEvent]:
        """The member's upcoming events they did not say no to: (event, answer, place in line)."""
        rows = await (Rsvp.filter(member_id=member_id, status__in=PLANNING,
                                  event__status="scheduled", event__starts_at__gt=now)
                      .values_list("event_id", "status"))
        answers = dict(rows)
        events = await (Event.filter(id__in=list(answers)).select_related("group")
                        .order_by("starts_at", "id"))
        views = await self._views(events)
        out = []
        for view in views:
            position = (await self._position(view.id, member_id)
                        if answers[view.id] == WAITLIST else None)
            out.append((view, answers[view.id], position))
        return out

    async def answer_of(self, event_id: int, member_id: int) -> tuple[str, int | None] | None:
        """The member's RSVP to an event and their place in line, or None."""
        rsvp = await Rsvp.get_or_none(event_id=event_id, member_id=member_id)
        if rsvp is None:
            return None
        position = await self._position(event_id, member_id) if rsvp.status == WAITLIST else None
        return rsvp.status, position

    async def _views(self, events: list[Event]) -> list[EventView]:
        ids = [e.id for e in events]
        counts: dict[tuple[int, str], int] = {}
        if ids:
            rows = await (Rsvp.filter(event_id__in=ids).annotate(n=Count("id"))
                          .group_by("event_id", "status").values_list("event_id", "status", "n"))
            counts = {(event_id, status): n for event_id, status, n in rows}
        return [_view(e, e.group, counts.get((e.id, "yes"), 0), counts.get((e.id, "maybe"), 0),
                      counts.get((e.id, WAITLIST), 0)) for e in events]

    async def _position(self, event_id: int, member_id: int) -> int | None:
        line = await self._waitlist(event_id)
        return line.index(member_id) + 1 if member_id in line else None

    async def _waitlist(self, event_id: int) -> list[int]:
        """Member ids waiting for a place, first in line first."""
        return list(await Rsvp.filter(event_id=event_id, status=WAITLIST)
                    .order_by("waitlisted_at", "id").values_list("member_id", flat=True))

    # --- organizers ------------------------------------------------------------------------------

    async def create(self, group: Group, creator: Member, title: str, starts_at: datetime,
                     place: str, capacity: int | None, now: datetime,
                     ends_at: datetime | None = None) -> EventView:
        event = await Event.create(group=group, title=title.strip()[:MAX_TITLE],
                                   starts_at=starts_at, ends_at=ends_at,
                                   place=place.strip()[:MAX_PLACE],
                                   capacity=capacity, created_by=creator, created_at=now,
                                   updated_at=now)
        await self.reminders.schedule(event.id, starts_at, group.settings, now)
        return _view(event, group, 0, 0, 0)

    async def edit(self, event_id: int, field: str, value: object, now: datetime
                   ) -> EditResult:
        """Change one field (already validated). A new time reschedules the reminders and,
        like a new place, is told to everyone planning to come. More places promote."""
        event = await self._locked(event_id)
        before = (await self._views([event]))[0]
        if field == "when":
            assert isinstance(value, tuple)  # (start, end or None), as parse_span gives
            event.starts_at, event.ends_at = value
            await self.reminders.schedule(event.id, event.starts_at, event.group.settings, now)
        elif field == "capacity":
            assert value is None or isinstance(value, int)
            event.capacity = value
        else:
            setattr(event, field, str(value).strip()[:MAX_PLACE if field == "place" else MAX_TITLE])
        if field != "capacity":
            event.sequence += 1  # calendars pick up the new version
        event.updated_at = now
        await event.save(update_fields=["starts_at", "ends_at", "capacity", "title", "place",
                                        "sequence", "updated_at"])
        notices = await self._promote(event, now)
        after = (await self._views([event]))[0]
        if field == "when":
            notices += await self._tell_planning(
                after, f"Change of time: {after.title} now starts {after.when} "
                       f"(was {before.when}), {after.at_where}.")
        elif field == "place":
            notices += await self._tell_planning(
                after, f"Change of place: {after.title} ({after.when}) is now at "
                       f"{after.where} (was {before.where}).")
        return EditResult(after, _shown(before, field), notices)

    async def cancel(self, event_id: int, reason: str, now: datetime) -> tuple[EventView, int,
                                                                               list[Outgoing]]:
        """Cancel the event and tell everyone who answered, whatever they answered."""
        event = await self._locked(event_id)
        event.status, event.cancel_reason = "cancelled", reason.strip()[:200]
        event.sequence += 1
        event.updated_at = now
        await event.save(update_fields=["status", "cancel_reason", "sequence", "updated_at"])
        await self.reminders.drop(event.id)
        view = (await self._views([event]))[0]
        text = (f"Cancelled: {view.title} ({view.when}, {view.where}).\n"
                f"Reason: {view.cancel_reason}")
        notices = await self._tell(view, text, (*ANSWERS, WAITLIST))
        return view, len(notices), notices

    async def attendees(self, event_id: int) -> list[Attendee]:
        """Everyone who answered, by handle and display name (never an address)."""
        rows = await (Rsvp.filter(event_id=event_id).order_by("waitlisted_at", "id")
                      .values_list("member__handle", "member__display_name_enc", "status",
                                   "checked_in_at"))
        out: list[Attendee] = []
        position = 0
        for handle, name_enc, status, checked_in in rows:
            if status == WAITLIST:
                position += 1
            out.append(Attendee(handle or "(no handle)", self._shown_name(name_enc), status,
                                position if status == WAITLIST else None, checked_in))
        return out

    def _shown_name(self, name_enc: str | None) -> str | None:
        """A profile name can be anything, even a phone number: one that looks like a
        number is not shown (members see each other by handle, never by number)."""
        if not name_enc:
            return None
        name = self.vault.decrypt(name_enc)
        return None if sum(ch.isdigit() for ch in name) >= PHONE_DIGITS else name

    async def check_in(self, event_id: int, handle: str, now: datetime
                       ) -> tuple[str, datetime | None] | None:
        """Mark a member as arrived: (their answer, when they had checked in before), or None
        if they never answered. Checking in twice keeps the first time."""
        rsvp = await Rsvp.get_or_none(event_id=event_id,
                                      member__handle=handle.strip().lstrip("@").lower())
        if rsvp is None:
            return None
        earlier = rsvp.checked_in_at
        if earlier is None:
            rsvp.checked_in_at = now
            await rsvp.save(update_fields=["checked_in_at"])
        return rsvp.status, earlier

    async def export_csv(self, event: EventView) -> bytes:
        """Handles, answers, place in line and check-in times: for the door, not for a CRM."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["handle", "status", "waitlist_position", "checked_in"])
        tz = ZoneInfo(event.timezone)
        for a in await self.attendees(event.id):
            checked = (f"{a.checked_in_at.astimezone(tz):%Y-%m-%d %H:%M}"
                       if a.checked_in_at else "")
            writer.writerow([_cell(a.handle), a.status, a.position or "", checked])
        return buffer.getvalue().encode("utf-8")

    # --- members ---------------------------------------------------------------------------------

    async def rsvp(self, event_id: int, member_id: int, transport: str, answer: str,
                   now: datetime) -> RsvpResult:
        """Record an answer. A yes to a full event joins the waitlist; a yes given up frees a
        place for the first in line, who is promoted and told in this same transaction."""
        event = await self._locked(event_id)
        rsvp = await Rsvp.get_or_none(event_id=event_id, member_id=member_id)
        previous = rsvp.status if rsvp else None
        status = answer
        if answer == "yes" and previous not in ("yes", WAITLIST):
            status = "yes" if await self._has_room(event) else WAITLIST
        elif answer == "yes":
            status = str(previous)  # already going or already in line: keep the place
        if rsvp is None:
            rsvp = await Rsvp.create(event_id=event_id, member_id=member_id, status=status,
                                     transport=transport, created_at=now, updated_at=now,
                                     waitlisted_at=now if status == WAITLIST else None)
        elif status != previous or rsvp.transport != transport:
            rsvp.status, rsvp.transport, rsvp.updated_at = status, transport, now
            rsvp.waitlisted_at = (rsvp.waitlisted_at or now) if status == WAITLIST else None
            await rsvp.save(update_fields=["status", "transport", "updated_at", "waitlisted_at"])
        notices = await self._promote(event, now) if previous == "yes" else []
        view = (await self._views([event]))[0]
        position = await self._position(event_id, member_id) if status == WAITLIST else None
        return RsvpResult(status, status != previous, position, view, notices)

    async def _locked(self, event_id: int) -> Event:
        """The event row, locked until the transaction ends (PostgreSQL), so two answers at
        once cannot both take the last place. SQLite serializes writers by itself."""
        event = await Event.filter(id=event_id).select_for_update().get()
        await event.fetch_related("group")  # not joined: FOR UPDATE refuses outer joins
        return event

    async def _has_room(self, event: Event) -> bool:
        if event.capacity is None:
            return True
        return await Rsvp.filter(event_id=event.id, status="yes").count() < event.capacity

    async def _promote(self, event: Event, now: datetime) -> list[Outgoing]:
        """Fill free places from the waitlist, first in line first, and tell each one."""
        if event.status != "scheduled" or event.starts_at <= now:
            return []
        # Only members we may still message get a place; a stopped one keeps their spot in
        # line (their consent may come back) but cannot take a place they would not hear of.
        query = (Rsvp.filter(event_id=event.id, status=WAITLIST, member__status="active")
                 .order_by("waitlisted_at", "id"))
        if event.capacity is not None:
            free = event.capacity - await Rsvp.filter(event_id=event.id, status="yes").count()
            if free <= 0:
                return []
            query = query.limit(free)
        promoted = list(await query.values_list("id", "member_id", "transport"))
        if not promoted:
            return []
        await Rsvp.filter(id__in=[r[0] for r in promoted]).update(
            status="yes", waitlisted_at=None, updated_at=now)
        view = (await self._views([event]))[0]
        return [self._promotion(view, member_id, transport)
                for _, member_id, transport in promoted]

    def _promotion(self, view: EventView, member_id: int, transport: str) -> Outgoing:
        # Kind "reply" (command "rsvp"): this answers the member's own yes, which was waiting
        # for a place. It is time-critical (they need to plan to come) and a direct answer,
        # so it is not held by quiet hours or folded into a digest. Consent still applies:
        # the gate lets a reply through only to an active member.
        text = (f"Good news: a place opened up at {view.title} ({view.when}, {view.where}) "
                f"and you're now going!\nCan't make it after all? /rsvp {view.id} no\n\n"
                + view.footer("you asked for a place and were on the waitlist"))
        return Outgoing(text=text, transport=transport, member_id=member_id, kind="reply",
                        command="rsvp", group_id=view.group_id,
                        buttons=(Button(f"/rsvp {view.id} no", "I can't go"),),
                        meta={"event_id": view.id})

    async def _tell_planning(self, view: EventView, text: str) -> list[Outgoing]:
        return await self._tell(view, text + f"\nDetails: /event {view.id}", PLANNING)

    async def _tell(self, view: EventView, text: str, statuses: tuple[str, ...]
                    ) -> list[Outgoing]:
        """A group message to everyone with one of these answers. Kind "event_update" with
        the group set, so the gate applies quiet hours and caps (held, never lost)."""
        rows = await Rsvp.filter(event_id=view.id, status__in=list(statuses)).values_list(
            "member_id", "transport", "status")
        bodies = {s: f"{text}\n\n{view.footer(REASONS[s])}" for s in statuses}
        return [Outgoing(text=bodies[status], transport=transport, member_id=member_id,
                         kind="event_update", group_id=view.group_id,
                         meta={"event_id": view.id})
                for member_id, transport, status in rows]

    # --- calendars -------------------------------------------------------------------------------

    def calendar_file(self, view: EventView) -> Attachment:
        entry = CalendarEntry(view.id, view.group_code, view.group_name, view.title,
                              view.starts_at, view.timezone, view.place, view.cancelled,
                              view.sequence, view.updated_at, view.ends_at)
        return Attachment(ics_filename(view.id), ICS_MIME, ics(entry, self.org_name))

    # --- data rights -----------------------------------------------------------------------------

    async def export_member(self, member_id: int) -> list[dict[str, object]]:
        rows = await (Rsvp.filter(member_id=member_id).order_by("event__starts_at")
                      .values_list("event__title", "event__group__code", "event__starts_at",
                                   "status", "checked_in_at"))
        return [{"event": title, "group": code, "starts": starts.isoformat(), "answer": status,
                 "checked_in": checked.isoformat() if checked else None}
                for title, code, starts, status, checked in rows]

    async def withdraw_from_group(self, member_id: int, group_id: int, now: datetime
                                  ) -> str | None:
        """The leave hook: someone who left a group stops holding places at its upcoming
        events (they will hear nothing more of them); the waitlist moves up."""
        rows = await Rsvp.filter(member_id=member_id, event__group_id=group_id,
                                 event__status="scheduled", event__starts_at__gt=now,
                                 status__in=["yes", "maybe", WAITLIST]).values_list(
            "id", "event_id", "status")
        if not rows:
            return None
        await Rsvp.filter(id__in=[r[0] for r in rows]).delete()
        notices: list[Outgoing] = []
        for _, event_id, status in rows:
            if status == "yes":
                notices += await self._promote(await self._locked(event_id), now)
        await self.outbox.enqueue(notices, now)
        count = len(rows)
        return (f"Your answers to {count} of its upcoming events were withdrawn."
                if count > 1 else "Your answer to its upcoming event was withdrawn.")

    async def erase_member(self, member_id: int, now: datetime) -> None:
        """Erase the member's RSVPs. Places they held go to the waitlist (and those promoted
        are told). Events they created stay, without a creator."""
        held = list(await Rsvp.filter(member_id=member_id, status="yes").values_list(
            "event_id", flat=True))
        await Rsvp.filter(member_id=member_id).delete()
        await Event.filter(created_by_id=member_id).update(created_by_id=None)
        notices: list[Outgoing] = []
        for event_id in held:
            notices += await self._promote(await self._locked(event_id), now)
        await self.outbox.enqueue(notices, now)


def _view(event: Event, group: Group, going: int, maybe: int, waiting: int) -> EventView:
    return EventView(event.id, group.id, group.code, group.name, group.timezone, event.title,
                     event.starts_at, event.ends_at, event.place, event.capacity, event.status,
                     event.cancel_reason, event.sequence, event.updated_at, going, maybe,
                     waiting)


def _shown(view: EventView, field: str) -> str:
    if field == "when":
        return view.when
    if field == "capacity":
        return str(view.capacity) if view.capacity is not None else "no limit"
    return str(getattr(view, field)) or "(none)"


def _cell(value: str) -> str:
    """Spreadsheets run cells starting with these as formulas: keep them text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value

