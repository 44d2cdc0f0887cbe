"""Quiet hours in the member's own time zone; pure functions, no I/O."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.config import QuietHours


def in_quiet_hours(quiet: QuietHours, local: datetime) -> bool:
    t = local.timetz().replace(tzinfo=None)
    if quiet.start < quiet.end:
        return quiet.start <= t < quiet.end
    return t >= quiet.start or t < quiet.end  # spans midnight


def quiet_hours_end(quiet: QuietHours, now: datetime, tz: ZoneInfo) -> datetime:
    """The first moment after `now` (UTC) when the quiet hours are over, in UTC."""
    local = now.astimezone(tz)
    candidate = _at(local, quiet.end, tz)
    if candidate <= local:
        candidate = _at(local + timedelta(days=1), quiet.end, tz)
    return candidate.astimezone(now.tzinfo)


def local_midnight(now: datetime, tz: ZoneInfo) -> datetime:
    """The start of the member's local day, in UTC."""
    local = now.astimezone(tz)
    return _at(local, time(0, 0), tz).astimezone(now.tzinfo)


def next_local(at: time, now: datetime, tz: ZoneInfo) -> datetime:
    """The next time the local clock shows `at` (today if still ahead), in UTC."""
    local = now.astimezone(tz)
    candidate = _at(local, at, tz)
    if candidate <= local:
        candidate = _at(local + timedelta(days=1), at, tz)
    return candidate.astimezone(now.tzinfo)


def _at(local: datetime, clock: time, tz: ZoneInfo) -> datetime:
    # Building the wall time in the zone handles daylight-saving days correctly.
    return datetime(local.year, local.month, local.day, clock.hour, clock.minute, tzinfo=tz)
