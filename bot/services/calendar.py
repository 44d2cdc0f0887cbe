"""Event times and calendars: parsing local times, showing them, and iCalendar files.

Pure functions, no database. Times are stored in UTC and converted with zoneinfo
only at the edges, so daylight-saving changes are handled by the tz database and
never by a fixed offset taken on the day the event was created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar

ICS_MIME = "text/calendar"
_WHEN = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})[ T]+(\d{1,2})[:.](\d{2})"
                   r"(?:\s*(?:-|–|—|to)\s*(\d{1,2})[:.](\d{2}))?$", re.IGNORECASE)
MAX_AHEAD = timedelta(days=3 * 366)  # further away is more likely a typo than a plan
MAX_LENGTH = timedelta(hours=24)
WHEN_FORMAT_HELP = ("YYYY-MM-DD HH:MM, e.g. 2026-03-09 18:30, with an end time if you "
                    "know it: 2026-03-09 18:30-20:00")


class BadInput(ValueError):
    """A friendly one-line explanation of what is wrong with what someone typed."""


def parse_when(text: str, tz_name: str, now: datetime) -> datetime:
    """'2026-03-09 18:30' in the group's time zone -> an aware UTC datetime."""
    return parse_span(text, tz_name, now)[0]


def parse_span(text: str, tz_name: str, now: datetime) -> tuple[datetime, datetime | None]:
    """'2026-03-09 18:30' or '2026-03-09 18:30-20:00' in the group's time zone -> the
    start and the end (None when not given) as aware UTC datetimes. An end earlier in
    the day than the start is the next day (an evening running past midnight)."""
    match = _WHEN.match(" ".join(text.split()))
    if not match:
        raise BadInput(f"I need the date and time as {WHEN_FORMAT_HELP}.")
    year, month, day, hour, minute = (int(g) for g in match.groups()[:5])
    tz = ZoneInfo(tz_name)
    try:
        local = datetime(year, month, day, hour, minute, tzinfo=tz)
    except ValueError:
        raise BadInput(f"{text.strip()} isn't a real date and time.") from None
    moment = _utc(local, tz, tz_name)
    if moment <= now:
        raise BadInput(f"That's in the past — it's {show(now, tz_name)} now. "
                       "Pick a future time.")
    if moment - now > MAX_AHEAD:
        raise BadInput("That's more than three years away — is the year right?")
    if match.group(6) is None:
        return moment, None
    end_hour, end_minute = int(match.group(6)), int(match.group(7))
    if end_hour > 23 or end_minute > 59:
        raise BadInput(f"{end_hour:02d}:{end_minute:02d} isn't a time of day.")
    end_local = local.replace(hour=end_hour, minute=end_minute)
    if (end_hour, end_minute) < (hour, minute):
        end_local = (local + timedelta(days=1)).replace(hour=end_hour, minute=end_minute)
    end = _utc(end_local, tz, tz_name)
    if not timedelta(0) < end - moment <= MAX_LENGTH:
        raise BadInput("The end must come after the start, within a day.")
    return moment, end


def _utc(local: datetime, tz: ZoneInfo, tz_name: str) -> datetime:
    moment = local.astimezone(UTC)
    # A wall-clock time skipped by a daylight-saving change does not round-trip.
    if moment.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise BadInput(f"{local:%H:%M} doesn't exist on {local:%Y-%m-%d} in "
                       f"{tz_name} (the clocks go forward); pick another time.")
    return moment


def show(moment: datetime, tz_name: str) -> str:
    """'Mon 9 Mar 2026, 18:00 EDT': the group's local time, with its zone's abbreviation."""
    local = moment.astimezone(ZoneInfo(tz_name))
    return f"{local:%a} {local.day} {local:%b %Y}, {local:%H:%M %Z}"


def show_span(start: datetime, end: datetime | None, tz_name: str) -> str:
    """'Mon 9 Mar 2026, 18:00–20:00 GMT'; the end's date too when it is another day."""
    if end is None:
        return show(start, tz_name)
    tz = ZoneInfo(tz_name)
    local, local_end = start.astimezone(tz), end.astimezone(tz)
    if local_end.date() != local.date():
        return f"{show(start, tz_name)} to {local_end:%a} {local_end.day} {local_end:%b}, " \
               f"{local_end:%H:%M %Z}"
    return f"{local:%a} {local.day} {local:%b %Y}, {local:%H:%M}–{local_end:%H:%M %Z}"


def show_short(moment: datetime, tz_name: str) -> str:
    """'Mon 9 Mar, 18:00' for lists."""
    local = moment.astimezone(ZoneInfo(tz_name))
    return f"{local:%a} {local.day} {local:%b}, {local:%H:%M}"


@dataclass(frozen=True)
class CalendarEntry:
    """What a calendar file says about one event."""

    event_id: int
    group_code: str
    group_name: str
    title: str
    starts_at: datetime  # UTC
    timezone: str
    place: str
    cancelled: bool
    sequence: int
    stamp: datetime  # when this version was made: the file is the same until it changes
    ends_at: datetime | None = None  # UTC; without it calendars show a start only


def ics(entry: CalendarEntry, org_name: str) -> bytes:
    """An iCalendar file for one event. The UID is stable, SEQUENCE grows with each change,
    so calendars update the entry they have instead of adding a second one."""
    cal = icalendar.Calendar()
    cal.add("prodid", f"-//{org_name}//Groundwork events//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", f"event-{entry.event_id}-{entry.group_code}@groundwork")
    event.add("dtstamp", entry.stamp.astimezone(UTC))
    event.add("dtstart", entry.starts_at.astimezone(ZoneInfo(entry.timezone)))
    if entry.ends_at is not None:
        event.add("dtend", entry.ends_at.astimezone(ZoneInfo(entry.timezone)))
    event.add("summary", entry.title)
    if entry.place:
        event.add("location", entry.place)
    event.add("description", f"{entry.group_name} ({entry.group_code}), via {org_name}. "
                             f"Details: /event {entry.event_id}")
    event.add("sequence", entry.sequence)
    event.add("status", "CANCELLED" if entry.cancelled else "CONFIRMED")
    cal.add_component(event)
    cal.add_missing_timezones()  # a VTIMEZONE for the TZID, as RFC 5545 asks
    return bytes(cal.to_ical())


def ics_filename(event_id: int) -> str:
    return f"event-{event_id}.ics"
