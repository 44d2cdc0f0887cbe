"""Events: listing, details, RSVPs with a waitlist, calendars; organizers create, edit,
cancel, see attendees, check people in and export.

Every organizer command checks the member's role in the group of THAT event, and
every bad input gets a one-line answer before anything changes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.messages import Attachment, Button
from bot.routing import Context, Router
from bot.services.calendar import BadInput, parse_span, show_span
from bot.services.events import (
    ANSWERS,
    EDITABLE,
    MAX_PLACE,
    MAX_TITLE,
    WAITLIST,
    EventService,
    EventView,
    RsvpResult,
    parse_capacity,
)
from handlers.common import group_arg, numbered_arg, require_role

router = Router()
SECTION = "Events"
ORGANIZERS = "Organizers"
FLOW = "newevent"
NEWEVENT_USAGE = "/newevent CODE | TITLE | YYYY-MM-DD HH:MM | PLACE | CAPACITY"
CONFIRM_WORDS = frozenset({"ok", "okay", "create", "confirm", "go"})
SKIP_WORDS = frozenset({"skip", "-", "none"})
MAX_LISTED = 150  # names in one /attendees message; /export has them all
CSV_MIME = "text/csv"


def _events(ctx: Context) -> EventService:
    return ctx.services.extra["events"]


def _files(ctx: Context) -> bool:
    return _events(ctx).takes_files(ctx.msg.transport)


async def _event_arg(ctx: Context, text: str, usage: str) -> EventView | None:
    """The event numbered by `text`, or a one-line answer saying what is wrong."""
    return await numbered_arg(ctx, text, usage, "event",
                              "/events lists the upcoming ones with their numbers.",
                              _events(ctx).get)


async def _organizer_of(ctx: Context, view: EventView) -> bool:
    """Organizers of the event's own group only (or an admin); a one-line refusal otherwise."""
    group = await ctx.services.groups.by_id(view.group_id)
    return group is not None and await require_role(ctx, group, "organizer")


def _still_open(ctx: Context, view: EventView, doing: str) -> bool:
    if view.cancelled:
        ctx.reply(f"Event {view.id} ({view.title}) was cancelled, so it can't be {doing}.")
        return False
    if view.starts_at <= ctx.now:
        ctx.reply(f"Event {view.id} ({view.title}) has already started, so it can't be "
                  f"{doing}.")
        return False
    return True


def _places(view: EventView) -> str:
    if view.capacity is None:
        return f"{view.going} going"
    left = view.places_left
    waiting = f", {view.waiting} on the waitlist" if view.waiting else ""
    return f"{view.going} of {view.capacity} going, " + (
        f"{left} place{'s' if left != 1 else ''} left" if left else "full") + waiting


def _answer_buttons(event_id: int, status: str | None) -> tuple[Button, ...]:
    titles = {"yes": "I'm going", "maybe": "Maybe", "no": "I can't go"}
    current = "yes" if status == WAITLIST else status
    return tuple(Button(f"/rsvp {event_id} {answer}", titles[answer])
                 for answer in ANSWERS if answer != current)


# --- members -------------------------------------------------------------------------------


@router.command("events", usage="/events [CODE]", summary="upcoming events of your groups",
                section=SECTION)
async def events(ctx: Context) -> None:
    if ctx.args.strip():
        group = await group_arg(ctx, ctx.args.split()[0], "/events [CODE]")
        if group is None:
            return
        groups, where = [group], group.name
    else:
        groups = [g for g, _ in await ctx.services.groups.of_member(ctx.member.id)]
        if not groups:
            ctx.reply("You're not in any group yet. /groups to find one, or /events CODE.")
            return
        where = "your groups"
    found = await _events(ctx).upcoming([g.id for g in groups], ctx.now)
    if not found:
        ctx.reply(f"No upcoming events in {where}.")
        return
    lines = [f"Upcoming events in {where}:"]
    for v in found:
        lines.append(f"#{v.id} {v.title} — {v.when}, {v.where} ({_places(v)})"
                     + ("" if len(groups) == 1 else f" [{v.group_code}]"))
    lines.append("Details: /event NUMBER · Answer: /rsvp NUMBER yes|no|maybe")
    ctx.reply("\n".join(lines))


@router.command("event", usage="/event NUMBER", summary="details of one event", section=SECTION)
async def event(ctx: Context) -> None:
    view = await _event_arg(ctx, ctx.args, "/event NUMBER")
    if view is None:
        return
    head = f"#{view.id} {view.title} — {view.group_name} ({view.group_code})"
    if view.cancelled:
        ctx.reply(f"{head}\nCancelled. Reason: {view.cancel_reason}")
        return
    answer = await _events(ctx).answer_of(view.id, ctx.member.id)
    status = answer[0] if answer else None
    yours = {None: "not answered yet", "yes": "you're going", "maybe": "maybe",
             "no": "you're not going",
             WAITLIST: f"on the waitlist, number {answer[1] if answer else '?'} in line"}
    lines = [head, f"When: {view.when}", f"Where: {view.where}",
             f"Going: {view.going} · Maybe: {view.maybe}"
             + (f" · Places left: {view.places_left}" if view.capacity is not None else "")
             + (f" · Waitlist: {view.waiting}" if view.waiting else ""),
             f"Your answer: {yours[status]}",
             f"Calendar file: /ics {view.id}"]
    started = view.starts_at <= ctx.now
    ctx.reply("\n".join(lines), buttons=() if started else _answer_buttons(view.id, status))


@router.command("rsvp", usage="/rsvp NUMBER yes|no|maybe", summary="answer an event",
                section=SECTION)
async def rsvp(ctx: Context) -> None:
    parts = ctx.args.split()
    view = await _event_arg(ctx, parts[0] if parts else "", "/rsvp NUMBER yes|no|maybe")
    if view is None:
        return
    answer = parts[1].lower() if len(parts) > 1 else ""
    if answer not in ANSWERS or len(parts) > 2:
        ctx.reply(f"Answer yes, no or maybe, e.g. /rsvp {view.id} yes")
        return
    if not _still_open(ctx, view, "answered"):
        return
    if await ctx.services.groups.role(ctx.member.id, view.group_id) is None:
        ctx.reply(f"Event {view.id} is for members of {view.group_code}: /join "
                  f"{view.group_code} first.")
        return
    result = await _events(ctx).rsvp(view.id, ctx.member.id, ctx.msg.transport, answer, ctx.now)
    for notice in result.notices:
        ctx.send(notice)  # the first in line, promoted into the place this answer freed
    _confirm(ctx, result)


def _confirm(ctx: Context, result: RsvpResult) -> None:
    v = result.event
    buttons = _answer_buttons(v.id, result.status)
    if result.status == "yes":
        attach = _files(ctx) and result.changed
        more = ("The calendar file is attached." if attach else
                f"Add it to your calendar: /ics {v.id}")
        first = "You're going to" if result.changed else "You're already going to"
        ctx.reply(f"{first} {v.title} — {v.when}, {v.at_where}. ({_places(v)})\n{more}",
                  buttons=buttons,
                  attachment=_events(ctx).calendar_file(v) if attach else None)
    elif result.status == WAITLIST:
        if result.changed:
            text = (f"{v.title} is full, so you're on the waitlist — number {result.position} "
                    "in line. I'll tell you as soon as a place opens up.")
        else:
            text = (f"You're still on the waitlist for {v.title} — number {result.position} "
                    "in line.")
        ctx.reply(text, buttons=(Button(f"/rsvp {v.id} no", "Leave waitlist"),))
    elif result.status == "maybe":
        ctx.reply(f"Noted: maybe for {v.title} ({v.when}). You'll get the reminders; "
                  f"/rsvp {v.id} yes when you know.", buttons=buttons)
    else:
        ctx.reply(f"Noted: you're not going to {v.title}. Thanks for letting the organizers "
                  "know.", buttons=buttons)


@router.command("myevents", usage="/myevents", summary="events you're going to",
                section=SECTION)
async def myevents(ctx: Context) -> None:
    mine = await _events(ctx).of_member(ctx.member.id, ctx.now)
    if not mine:
        ctx.reply("You haven't said yes or maybe to any upcoming event. /events lists them.")
        return
    lines = ["Your upcoming events:"]
    for v, status, position in mine:
        said = {"yes": "going", "maybe": "maybe", WAITLIST: f"waitlist #{position}"}[status]
        lines.append(f"#{v.id} {v.title} — {v.when}, {v.where} [{said}]")
    lines.append("Change an answer: /rsvp NUMBER yes|no|maybe")
    ctx.reply("\n".join(lines))


@router.command("ics", usage="/ics NUMBER", summary="an event as a calendar file",
                section=SECTION)
async def ics(ctx: Context) -> None:
    view = await _event_arg(ctx, ctx.args, "/ics NUMBER")
    if view is None:
        return
    if _files(ctx):
        ctx.reply(f"{view.title} — {view.when}. Open the file to add it to your calendar.",
                  attachment=_events(ctx).calendar_file(view))
        return
    # No files on this transport: the same facts as text, to copy into a calendar by hand.
    status = " (cancelled)" if view.cancelled else ""
    ctx.reply(f"{view.title}{status}\nWhen: {view.when}\nWhere: {view.where}\n"
              f"Group: {view.group_name} ({view.group_code})")


# --- organizers: creating events, at once or step by step ---------------------------------


def _check_title(text: str) -> str | None:
    if not text.strip():
        return "The event needs a title."
    if len(text.strip()) > MAX_TITLE:
        return f"Please keep the title under {MAX_TITLE} characters."
    return None


def _check_place(text: str) -> str | None:
    return f"Please keep the place under {MAX_PLACE} characters." if len(text) > MAX_PLACE \
        else None


CAPACITY_HELP = "Capacity must be a positive whole number (or leave it out for no limit)."


@router.command("newevent", usage=NEWEVENT_USAGE,
                summary="create an event (or /newevent alone, step by step)",
                audience="organizer", section=ORGANIZERS)
async def newevent(ctx: Context) -> None:
    args = ctx.args.strip()
    if "|" in args:
        await _newevent_at_once(ctx, [p.strip() for p in args.split("|")])
        return
    if args:
        group = await group_arg(ctx, args.split()[0], NEWEVENT_USAGE)
        if group is not None and await require_role(ctx, group, "organizer"):
            await _start_flow(ctx, group)
        return
    organized = [g for g, m in await ctx.services.groups.of_member(ctx.member.id)
                 if m.role == "organizer"]
    if len(organized) == 1 and not ctx.is_admin:
        await _start_flow(ctx, organized[0])
    elif not organized and not ctx.is_admin:
        ctx.reply("Only a group's organizers can create its events, and you don't organize "
                  "a group.")
    else:
        await _save_flow(ctx, {"name": FLOW, "step": "group"})
        codes = ", ".join(g.code for g in organized) or "see /groups"
        ctx.reply(f"New event: which group is it for? Send its code ({codes}), or /cancel.")


async def _newevent_at_once(ctx: Context, parts: list[str]) -> None:
    if not 3 <= len(parts) <= 5:
        ctx.reply(f"Usage: {NEWEVENT_USAGE} (place and capacity may be left out)")
        return
    group = await group_arg(ctx, parts[0], NEWEVENT_USAGE)
    if group is None or not await require_role(ctx, group, "organizer"):
        return
    title, when_text = parts[1], parts[2]
    place = parts[3] if len(parts) > 3 else ""
    problem = _check_title(title) or _check_place(place)
    if problem:
        ctx.reply(problem)
        return
    try:
        starts_at, ends_at = parse_span(when_text, group.timezone, ctx.now)
        capacity = parse_capacity(parts[4] if len(parts) > 4 else "")
    except BadInput as exc:
        ctx.reply(str(exc))
        return
    except ValueError:
        ctx.reply(CAPACITY_HELP)
        return
    await _create(ctx, group, title, (starts_at, ends_at), place, capacity)


async def _create(ctx: Context, group: Any, title: str,
                  span: tuple[datetime, datetime | None], place: str,
                  capacity: int | None) -> None:
    service = _events(ctx)
    view = await service.create(group, ctx.member, title, span[0], place, capacity, ctx.now,
                                ends_at=span[1])
    hours = [h for h, _ in await service.reminders.pending(view.id)]
    reminders = (" and ".join(f"{h} h" for h in hours) + " before it starts" if hours
                 else "none (it starts too soon)")
    limit = f"{capacity} places" if capacity else "no limit on places"
    ctx.reply(f"Created event #{view.id}: {view.title} — {view.when}, {view.at_where} "
              f"({limit}).\nMembers see it with /events {group.code} and answer with "
              f"/rsvp {view.id} yes. Reminders: {reminders}.")


async def _save_flow(ctx: Context, flow: dict[str, Any] | None) -> None:
    await ctx.services.prefs.set(ctx.member, flow=flow)


async def _start_flow(ctx: Context, group: Any) -> None:
    await _save_flow(ctx, {"name": FLOW, "step": "title", "group": group.code})
    ctx.reply(f"New event for {group.name}. What's it called? (/cancel to stop)")


def _when_prompt(group: Any, now: datetime) -> str:
    example = (now.astimezone(ZoneInfo(group.timezone)) + timedelta(days=7)).date()
    return (f"When does it start? Send the date and time in {group.timezone} time as "
            f"YYYY-MM-DD HH:MM, e.g. {example} 18:30 — with an end time if you know it: "
            f"{example} 18:30-20:00.")


@router.flow(FLOW)
async def newevent_flow(ctx: Context) -> None:
    """A step of the guided /newevent: each answer is checked, then the next question."""
    flow = dict(ctx.member.flow or {})
    text = ctx.args.strip()
    step = flow.get("step")
    if step == "group":
        await _flow_group(ctx, flow, text)
        return
    group = await ctx.services.groups.get(str(flow.get("group", "")))
    if group is None:  # deleted meanwhile: nothing sensible to continue with
        await _save_flow(ctx, None)
        ctx.reply("That group no longer exists, so I dropped the new event.")
        return
    steps = {"title": _flow_title, "when": _flow_when, "place": _flow_place,
             "capacity": _flow_capacity, "confirm": _flow_confirm}
    await steps.get(str(step), _flow_confirm)(ctx, flow, group, text)


async def _flow_group(ctx: Context, flow: dict[str, Any], text: str) -> None:
    group = await ctx.services.groups.get(text.split()[0]) if text else None
    if group is None:
        ctx.reply(f"There's no group '{text}'. Send a group code, or /cancel.")
        return
    if await require_role(ctx, group, "organizer"):
        await _start_flow(ctx, group)


async def _flow_title(ctx: Context, flow: dict[str, Any], group: Any, text: str) -> None:
    problem = _check_title(text)
    if problem:
        ctx.reply(f"{problem} What's the event called? (/cancel to stop)")
        return
    await _save_flow(ctx, {**flow, "step": "when", "title": text})
    ctx.reply(_when_prompt(group, ctx.now))


async def _flow_when(ctx: Context, flow: dict[str, Any], group: Any, text: str) -> None:
    try:
        starts_at, ends_at = parse_span(text, group.timezone, ctx.now)
    except BadInput as exc:
        ctx.reply(f"{exc} (or /cancel)")
        return
    await _save_flow(ctx, {**flow, "step": "place", "when": starts_at.isoformat(),
                           "ends": ends_at.isoformat() if ends_at else None})
    ctx.reply("Where? An address or a place people know — or 'skip' if it's not decided yet.")


async def _flow_place(ctx: Context, flow: dict[str, Any], group: Any, text: str) -> None:
    place = "" if text.lower() in SKIP_WORDS else text
    problem = _check_place(place)
    if problem:
        ctx.reply(f"{problem} Where is it? (or 'skip')")
        return
    await _save_flow(ctx, {**flow, "step": "capacity", "place": place})
    ctx.reply("How many people can come? Send a number, or 'skip' for no limit.")


async def _flow_capacity(ctx: Context, flow: dict[str, Any], group: Any, text: str) -> None:
    try:
        capacity = parse_capacity(text)
    except ValueError:
        ctx.reply("Send a positive whole number, or 'skip' for no limit.")
        return
    flow = {**flow, "step": "confirm", "capacity": capacity}
    await _save_flow(ctx, flow)
    starts_at, ends_at = _flow_span(flow)
    ctx.reply(f"Please check:\n{flow['title']} — {group.name} ({group.code})\n"
              f"When: {show_span(starts_at, ends_at, group.timezone)}\n"
              f"Where: {flow['place'] or 'place to be announced'}\n"
              f"Places: {capacity or 'no limit'}\n"
              "Send OK to create it, or /cancel to drop it.",
              buttons=(Button("ok", "Create it"), Button("/cancel", "Cancel")))


async def _flow_confirm(ctx: Context, flow: dict[str, Any], group: Any, text: str) -> None:
    if text.lower() not in CONFIRM_WORDS:
        ctx.reply("Send OK to create the event, or /cancel to drop it.")
        return
    if not await require_role(ctx, group, "organizer"):  # the role may have gone meanwhile
        await _save_flow(ctx, None)
        return
    span = _flow_span(flow)
    if span[0] <= ctx.now:
        await _save_flow(ctx, {**flow, "step": "when"})
        ctx.reply("That start time has passed meanwhile. " + _when_prompt(group, ctx.now))
        return
    await _save_flow(ctx, None)
    await _create(ctx, group, flow["title"], span, flow["place"], flow["capacity"])


def _flow_span(flow: dict[str, Any]) -> tuple[datetime, datetime | None]:
    ends = flow.get("ends")  # absent in flows saved before end times existed
    return (datetime.fromisoformat(flow["when"]),
            datetime.fromisoformat(ends) if ends else None)


@router.command("cancel", usage="/cancel", summary="drop a step-by-step command",
                section="General")
async def cancel(ctx: Context) -> None:
    """Ends any guided conversation in progress (plain 'cancel' would be an opt-out word)."""
    if not ctx.member.flow:
        ctx.reply("There's nothing to cancel.")
        return
    await _save_flow(ctx, None)
    ctx.reply("OK — dropped. Nothing was created.")


# --- organizers: changing and running an event --------------------------------------------


EDIT_USAGE = "/editevent NUMBER title|when|place|capacity VALUE"
EXAMPLES = {"title": "Park clean-up", "when": "2026-06-01 18:30", "place": "Library hall",
            "capacity": "40"}


@router.command("editevent", usage=EDIT_USAGE, summary="change an event (members are told)",
                audience="organizer", section=ORGANIZERS)
async def editevent(ctx: Context) -> None:
    parts = ctx.args.split(maxsplit=2)
    view = await _event_arg(ctx, parts[0] if parts else "", EDIT_USAGE)
    if view is None or not await _organizer_of(ctx, view) or not _still_open(ctx, view,
                                                                             "changed"):
        return
    field = parts[1].lower() if len(parts) > 1 else ""
    if field not in EDITABLE:
        ctx.reply(f"You can change title, when, place or capacity, e.g. /editevent {view.id} "
                  "place Library hall")
        return
    if len(parts) < 3:
        ctx.reply(f"What's the new {field}? e.g. /editevent {view.id} {field} "
                  f"{EXAMPLES[field]}")
        return
    value = _edit_value(ctx, view, field, parts[2].strip())
    if value is _INVALID:
        return
    result = await _events(ctx).edit(view.id, field, value, ctx.now)
    for notice in result.notices:
        ctx.send(notice)
    ctx.reply(_edited(result.event, field, result.before, result.notices))


_INVALID = object()


def _edit_value(ctx: Context, view: EventView, field: str, text: str) -> object:
    """The new value, checked; or _INVALID after a one-line answer."""
    problem = _check_title(text) if field == "title" else (
        _check_place(text) if field == "place" else None)
    if problem:
        ctx.reply(problem)
        return _INVALID
    try:
        if field == "when":
            return parse_span(text, view.timezone, ctx.now)
        if field == "capacity":
            return parse_capacity(text)
    except BadInput as exc:
        ctx.reply(str(exc))
        return _INVALID
    except ValueError:
        ctx.reply("Capacity must be a positive whole number, or 'none' for no limit.")
        return _INVALID
    return text


def _edited(v: EventView, field: str, before: str, notices: list[Any]) -> str:
    after = {"when": v.when, "place": v.where, "title": v.title,
             "capacity": str(v.capacity) if v.capacity is not None else "no limit"}[field]
    promoted = sum(1 for n in notices if n.kind == "reply")
    told = len(notices) - promoted
    lines = [f"Changed the {field} of #{v.id} {v.title}: {before} → {after}."]
    if told:
        lines.append(f"Told the {told} people planning to come.")
    if promoted:
        lines.append(f"{promoted} {'person' if promoted == 1 else 'people'} from the waitlist "
                     f"got a place and {'was' if promoted == 1 else 'were'} told.")
    if field == "capacity" and v.capacity is not None and v.going > v.capacity:
        lines.append(f"{v.going} people are already going; nobody loses their place, and new "
                     "yeses go on the waitlist.")
    return "\n".join(lines)


@router.command("cancelevent", usage="/cancelevent NUMBER REASON",
                summary="cancel an event (everyone who answered is told)",
                audience="organizer", section=ORGANIZERS)
async def cancelevent(ctx: Context) -> None:
    parts = ctx.args.split(maxsplit=1)
    view = await _event_arg(ctx, parts[0] if parts else "", "/cancelevent NUMBER REASON")
    if view is None or not await _organizer_of(ctx, view) or not _still_open(ctx, view,
                                                                             "cancelled"):
        return
    reason = parts[1].strip() if len(parts) > 1 else ""
    if not reason:
        ctx.reply(f"Please add a reason — members will see it: /cancelevent {view.id} REASON")
        return
    if len(reason) > 200:
        ctx.reply("Please keep the reason under 200 characters.")
        return
    cancelled, told, notices = await _events(ctx).cancel(view.id, reason, ctx.now)
    for notice in notices:
        ctx.send(notice)
    ctx.reply(f"Cancelled #{cancelled.id} {cancelled.title}. Told the {told} "
              f"{'person' if told == 1 else 'people'} who had answered.")


@router.command("attendees", usage="/attendees NUMBER", summary="who's coming, the waitlist",
                audience="organizer", section=ORGANIZERS)
async def attendees(ctx: Context) -> None:
    view = await _event_arg(ctx, ctx.args, "/attendees NUMBER")
    if view is None or not await _organizer_of(ctx, view):
        return
    people = await _events(ctx).attendees(view.id)
    lines = [f"#{view.id} {view.title} — {view.when}"
             + (" (cancelled)" if view.cancelled else "")]
    titles = {"yes": "Going", "maybe": "Maybe", WAITLIST: "Waitlist"}
    listed = 0
    for status, title in titles.items():
        group = [a for a in people if a.status == status]
        count = f"{len(group)} of {view.capacity}" if status == "yes" and view.capacity \
            else str(len(group))
        lines.append(f"{title} ({count}):" + ("" if group else " nobody"))
        for a in group:
            listed += 1
            if listed > MAX_LISTED:
                break
            name = f" ({a.display_name})" if a.display_name else ""
            place = f"{a.position}. " if a.position else ""
            mark = " ✓ checked in" if a.checked_in_at else ""
            lines.append(f"  {place}@{a.handle}{name}{mark}")
    if listed > MAX_LISTED:
        lines.append(f"…and more: /export {view.id} has everyone.")
    lines.append(f"Not going: {sum(1 for a in people if a.status == 'no')}")
    ctx.reply("\n".join(lines))


@router.command("checkin", usage="/checkin NUMBER HANDLE", summary="mark someone as arrived",
                audience="organizer", section=ORGANIZERS)
async def checkin(ctx: Context) -> None:
    parts = ctx.args.split()
    view = await _event_arg(ctx, parts[0] if parts else "", "/checkin NUMBER HANDLE")
    if view is None or not await _organizer_of(ctx, view):
        return
    if view.cancelled:
        ctx.reply(f"Event {view.id} ({view.title}) was cancelled.")
        return
    if len(parts) != 2:
        ctx.reply(f"Who? Usage: /checkin {view.id} HANDLE")
        return
    handle = parts[1].lstrip("@").lower()
    done = await _events(ctx).check_in(view.id, handle, ctx.now)
    if done is None:
        ctx.reply(f"@{handle} hasn't answered event {view.id}; they can send /rsvp {view.id} "
                  "yes first.")
        return
    status, earlier = done
    tz = ZoneInfo(view.timezone)
    if earlier is not None:
        ctx.reply(f"@{handle} was already checked in at {earlier.astimezone(tz):%H:%M}.")
        return
    note = "" if status == "yes" else f" (their answer was {status})"
    ctx.reply(f"Checked in @{handle} for {view.title} at {ctx.now.astimezone(tz):%H:%M}"
              f"{note}.")


@router.command("export", usage="/export NUMBER", summary="attendees as a CSV file",
                audience="organizer", section=ORGANIZERS)
async def export(ctx: Context) -> None:
    view = await _event_arg(ctx, ctx.args, "/export NUMBER")
    if view is None or not await _organizer_of(ctx, view):
        return
    data = await _events(ctx).export_csv(view)
    rows = data.count(b"\n") - 1
    if _files(ctx):
        ctx.reply(f"Attendees of #{view.id} {view.title}: {rows} row{'s' if rows != 1 else ''}"
                  " (handles, answers, waitlist places, check-ins).",
                  attachment=Attachment(f"event-{view.id}-attendees.csv", CSV_MIME, data))
    else:
        ctx.reply(f"Attendees of #{view.id} {view.title} (CSV):\n" + data.decode("utf-8"))

