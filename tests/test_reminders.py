"""Event reminders: stored, due at the right instant in the group's time zone (also across
a daylight-saving change), sent once, only to yes and maybe, through the policy gate,
and still sent after a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.clock import FakeClock
from bot.storage.models import Group, OutboxItem
from bot.storage.models_events import Reminder
from tests.conftest import Harness, make_config, start_harness
from tests.test_events import new_event, organizer, person

NEW_YORK = ZoneInfo("America/New_York")


def reminders_to(h: Harness, name: str) -> list[str]:
    return [s.text for s in h.chat.to(name) if s.text.startswith("⏰ Reminder")]


async def at(h: Harness, moment: datetime) -> None:
    """Move the clock and let the jobs and the delivery worker do what is due."""
    h.clock.set(moment)
    await h.app.settle()


async def reminder_rows() -> int:
    return await OutboxItem.filter(kind="reminder").count()


@pytest.fixture
def server_in_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server's own zone must not matter: only the group's does."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("server_in_tokyo")
async def test_reminders_fire_at_local_times_across_the_dst_change(harness: Harness) -> None:
    """New York moves to EDT on Sunday 8 March 2026. The event, Monday 9 March 18:00 local,
    is created a week earlier in EST: a fixed offset taken then would be an hour late."""
    h = harness
    await organizer(h, "hank", "hillcrest")
    await person(h, "ana", "hillcrest")
    event_id = await new_event(h, by="hank", code="hillcrest", title="Tenants meeting",
                               when="2026-03-09 18:00", place="Community room")
    await h.chat.say("ana", f"/rsvp {event_id} yes")

    await at(h, datetime(2026, 3, 8, 21, 59, tzinfo=UTC))
    assert reminders_to(h, "ana") == []
    await at(h, datetime(2026, 3, 8, 22, 0, tzinfo=UTC))  # exactly 24 h before
    assert h.clock.now().astimezone(NEW_YORK).strftime("%a %H:%M %Z") == "Sun 18:00 EDT"
    [day_before] = reminders_to(h, "ana")
    assert "Tenants meeting — Mon 9 Mar 2026, 18:00 EDT, at Community room" in day_before

    await at(h, datetime(2026, 3, 9, 19, 59, tzinfo=UTC))
    assert len(reminders_to(h, "ana")) == 1
    await at(h, datetime(2026, 3, 9, 20, 0, tzinfo=UTC))  # 16:00 EDT, 2 h before
    assert len(reminders_to(h, "ana")) == 2


async def test_reminders_go_to_yes_and_maybe_only_with_footer_and_buttons(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    event_id = await new_event(h, capacity="2")
    for name, answer in (("ana", "yes"), ("ben", "maybe"), ("cyd", "no"), ("dee", "yes"),
                         ("eve", "yes")):
        await person(h, name, "riverside")
        await h.chat.say(name, f"/rsvp {event_id} {answer}")  # eve is on the waitlist
    await person(h, "fay", "riverside")  # never answered

    await at(h, datetime(2026, 3, 9, 18, 0, tzinfo=UTC))
    got = {name: reminders_to(h, name) for name in ("ana", "ben", "cyd", "dee", "eve", "fay")}
    assert {name: len(texts) for name, texts in got.items()} == {
        "ana": 1, "ben": 1, "cyd": 0, "dee": 1, "eve": 0, "fay": 0}
    yes, maybe = got["ana"][0], got["ben"][0]
    for text, answer in ((yes, "yes"), (maybe, "maybe")):
        assert "Park clean-up — Tue 10 Mar 2026, 18:00 GMT, at Riverside Park" in text
        assert "Riverside Neighbours · sent by the organizers of Riverside Neighbours" in text
        assert f"you RSVP'd {answer} to this event" in text
        assert "/quiet" in text and "/digest" in text and "/leave riverside" in text
        assert "STOP" in text
    sent_to_ana = next(s for s in h.chat.to("ana") if s.text == yes)
    assert [b.id for b in sent_to_ana.buttons] == [f"/rsvp {event_id} no"]
    rows = await OutboxItem.filter(kind="reminder").values_list("group_id", "priority")
    riverside = await Group.get(code="riverside")
    assert set(rows) == {(riverside.id, 10)}  # a group message: the gate's restraint applies


async def test_a_reminder_is_never_sent_twice(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    event_id = await new_event(h)
    await h.chat.say("ana", f"/rsvp {event_id} yes")
    jobs = h.app.services.extra["events"].reminders
    h.clock.set(datetime(2026, 3, 9, 18, 0, tzinfo=UTC))
    # Two workers reach the same due reminder at the same moment.
    await asyncio.gather(jobs.send_due(h.clock.now()), jobs.send_due(h.clock.now()))
    for _ in range(3):
        await h.app.run_jobs()
        await h.app.settle()
    h.clock.advance(minutes=30)
    await h.app.settle()
    assert await reminder_rows() == 1
    assert len(reminders_to(h, "ana")) == 1
    assert await Reminder.filter(event_id=event_id).order_by("due_at").values_list(
        "status", flat=True) == ["sent", "pending"]


async def test_reminders_survive_a_restart(db_url: str, tmp_path: Path) -> None:
    config = make_config(db_url, tmp_path)
    clock = FakeClock()
    h = await start_harness(config, clock)
    try:
        await organizer(h, "orla")
        await person(h, "ana", "riverside")
        event_id = await new_event(h)
        await h.chat.say("ana", f"/rsvp {event_id} yes")
    finally:
        await h.app.stop()
    clock.set(datetime(2026, 3, 9, 18, 0, tzinfo=UTC))
    h = await start_harness(config, clock)  # a new process: nothing kept in memory
    try:
        await h.app.settle()
        [text] = reminders_to(h, "ana")
        assert "Park clean-up — Tue 10 Mar 2026, 18:00 GMT" in text
    finally:
        await h.app.stop()


async def test_a_reminder_in_quiet_hours_waits_for_the_morning(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    event_id = await new_event(h, when="2026-03-10 09:00")  # the 2 h reminder: 07:00 GMT
    await h.chat.say("ana", f"/rsvp {event_id} yes")
    await at(h, datetime(2026, 3, 9, 9, 0, tzinfo=UTC))
    assert len(reminders_to(h, "ana")) == 1
    await at(h, datetime(2026, 3, 10, 7, 0, tzinfo=UTC))
    assert len(reminders_to(h, "ana")) == 1  # held: quiet hours end at 08:00
    await at(h, datetime(2026, 3, 10, 7, 59, tzinfo=UTC))
    assert len(reminders_to(h, "ana")) == 1
    await at(h, datetime(2026, 3, 10, 8, 0, tzinfo=UTC))
    assert len(reminders_to(h, "ana")) == 2


async def test_a_reminder_held_past_the_start_is_dropped_with_the_reason(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    event_id = await new_event(h, when="2026-03-10 07:30")  # 2 h reminder at 05:30 GMT
    await h.chat.say("ana", f"/rsvp {event_id} yes")
    await at(h, datetime(2026, 3, 9, 8, 0, tzinfo=UTC))  # the 24 h one, after quiet hours
    assert len(reminders_to(h, "ana")) == 1
    await at(h, datetime(2026, 3, 10, 5, 30, tzinfo=UTC))
    await at(h, datetime(2026, 3, 10, 8, 0, tzinfo=UTC))  # quiet hours end after the start
    assert len(reminders_to(h, "ana")) == 1
    dropped = await OutboxItem.get(kind="reminder", status="suppressed")
    assert dropped.error == "quiet hours last past the event's start"


async def test_a_digest_leaves_out_reminders_for_events_that_have_begun(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    await h.chat.say("ana", "/digest daily")
    event_id = await new_event(h, when="2026-03-10 12:00")
    await h.chat.say("ana", f"/rsvp {event_id} yes")
    await at(h, datetime(2026, 3, 9, 12, 0, tzinfo=UTC))  # the 24 h reminder: folded
    await at(h, datetime(2026, 3, 9, 18, 0, tzinfo=UTC))  # digest time, before the event
    digests = [s.text for s in h.chat.to("ana") if s.text.startswith("Your daily digest")]
    assert len(digests) == 1 and "Reminder" in digests[0]
    await at(h, datetime(2026, 3, 10, 10, 0, tzinfo=UTC))  # the 2 h reminder: folded
    await at(h, datetime(2026, 3, 10, 18, 0, tzinfo=UTC))  # next digest: the event began
    assert len([s for s in h.chat.to("ana") if s.text.startswith("Your daily digest")]) == 1
    stale = await OutboxItem.get(kind="reminder", status="suppressed")
    assert stale.error == "too late: the event has started"


async def test_a_new_time_replaces_the_reminders(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    event_id = await new_event(h)
    await h.chat.say("ana", f"/rsvp {event_id} yes")
    await h.chat.say("orla", f"/editevent {event_id} when 2026-03-12 18:00")
    await at(h, datetime(2026, 3, 9, 18, 0, tzinfo=UTC))  # the old 24 h mark
    await at(h, datetime(2026, 3, 10, 16, 0, tzinfo=UTC))  # the old 2 h mark
    assert reminders_to(h, "ana") == []
    await at(h, datetime(2026, 3, 11, 18, 0, tzinfo=UTC))
    assert "Thu 12 Mar 2026, 18:00 GMT" in reminders_to(h, "ana")[0]


async def test_a_cancelled_event_sends_no_reminders(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    event_id = await new_event(h)
    await h.chat.say("ana", f"/rsvp {event_id} yes")
    await h.chat.say("orla", f"/cancelevent {event_id} hall flooded")
    await at(h, datetime(2026, 3, 10, 17, 0, tzinfo=UTC))
    assert reminders_to(h, "ana") == []
    assert await reminder_rows() == 0


async def test_reminders_missed_while_down_are_not_sent_after_the_start(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    event_id = await new_event(h)
    await h.chat.say("ana", f"/rsvp {event_id} yes")
    await at(h, datetime(2026, 3, 10, 19, 0, tzinfo=UTC))  # the jobs did not run until now
    assert reminders_to(h, "ana") == []
    assert set(await Reminder.filter(event_id=event_id).values_list("status", flat=True)) == {
        "dropped"}


async def test_a_group_can_choose_its_own_reminder_hours(harness: Harness) -> None:
    h = harness
    await Group.filter(code="riverside").update(settings={"reminder_hours_before": [48]})
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    created = (await h.chat.say(
        "orla", "/newevent riverside | Park clean-up | 2026-03-10 18:00 | Park"))[0].text
    assert "Reminders: 48 h before it starts." in created
    await h.chat.say("ana", "/rsvp 1 yes")
    await at(h, datetime(2026, 3, 8, 18, 0, tzinfo=UTC))
    assert len(reminders_to(h, "ana")) == 1
    await at(h, datetime(2026, 3, 10, 17, 0, tzinfo=UTC))
    assert len(reminders_to(h, "ana")) == 1


async def test_an_event_soon_gets_only_the_reminders_still_ahead(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    created = (await h.chat.say(
        "orla", "/newevent riverside | Quick meet | 2026-03-02 20:00 | Park"))[0].text
    assert "Reminders: 2 h before it starts." in created


async def test_who_left_the_group_gets_no_reminder(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    event_id = await new_event(h)
    await h.chat.say("ana", f"/rsvp {event_id} yes")
    await h.chat.say("ana", "/leave riverside")
    await at(h, datetime(2026, 3, 9, 18, 0, tzinfo=UTC))
    assert reminders_to(h, "ana") == []
