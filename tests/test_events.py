"""Events: creating (at once and step by step), RSVPs and the waitlist, organizer tools,
who may do what, answers to bad input, calendars, exports and data rights."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest
from tortoise.transactions import in_transaction

from bot.storage.models_events import Event, Rsvp
from bot.transports.base import Capabilities
from bot.transports.testchat import Sent
from tests.conftest import Harness
from tests.test_core_flow import run_chat

# Riverside is in Europe/London (GMT until 29 March); hillcrest in America/New_York.
# The FakeClock starts on Monday 2026-03-02 12:00 UTC.
WHEN = "2026-03-10 18:00"
PHONE = "15557654321"


async def person(h: Harness, name: str, *groups: str) -> None:
    """A consenting member whose handle is their name."""
    await h.member(name, *groups)
    if len(name) >= 3:
        await h.chat.say(name, f"/name {name}")


async def organizer(h: Harness, name: str, code: str = "riverside") -> None:
    """Made the way an operator does it: the admin (olga) promotes a member."""
    if not await h.app.services.members.find("testchat", "olga"):
        await h.member("olga")
    await person(h, name, code)
    replies = await h.chat.say("olga", f"/promote {name} organizer {code}")
    assert "is now organizer" in replies[0].text


async def new_event(h: Harness, by: str = "orla", code: str = "riverside",
                    title: str = "Park clean-up", when: str = WHEN, place: str = "Riverside Park",
                    capacity: str = "") -> int:
    replies = await h.chat.say(by, f"/newevent {code} | {title} | {when} | {place} | {capacity}")
    assert len(replies) == 1 and replies[0].text.startswith("Created event #"), replies
    return int(replies[0].text.split("#")[1].split(":")[0])


def only(replies: list[Sent]) -> str:
    assert len(replies) == 1, [r.text for r in replies]
    return replies[0].text


# --- the waitlist, end to end ---------------------------------------------------------------


async def test_third_yes_waits_and_is_promoted_when_a_place_frees(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    for name in ("ana", "ben", "cyd"):
        await person(h, name, "riverside")
    event_id = await new_event(h, capacity="2")

    going = only(await h.chat.say("ana", f"/rsvp {event_id} yes"))
    assert "You're going" in going and "1 place left" in going
    assert "not going" in only(await h.chat.say("ben", f"/rsvp {event_id} no"))
    assert "You're going" in only(await h.chat.say("ben", f"/rsvp {event_id} yes"))
    waiting = only(await h.chat.say("cyd", f"/rsvp {event_id} yes"))
    assert "full" in waiting and "waitlist" in waiting and "number 1 in line" in waiting

    replies = await h.chat.say("ben", f"/rsvp {event_id} no")
    to_cyd = [r for r in replies if r.to == "cyd"]
    assert len(to_cyd) == 1 and "a place opened up" in to_cyd[0].text
    assert "you're now going" in to_cyd[0].text
    assert [r.to for r in replies if r.to == "ben"] == ["ben"]

    listing = only(await h.chat.say("orla", f"/attendees {event_id}"))
    assert "Going (2 of 2):" in listing and "@ana (Ana)" in listing and "@cyd (Cyd)" in listing
    assert "Waitlist (0): nobody" in listing and "Not going: 1" in listing


def test_the_waitlist_session_piped_into_the_test_chat(tmp_path: Path) -> None:
    day = f"{datetime.now(UTC) + timedelta(days=60):%Y-%m-%d}"  # the CLI runs on the real clock
    script = "\n".join([
        "olga> hi", "olga> YES",
        *[line for name in ("orla", "ana", "ben", "cyd") for line in (
            f"{name}> hi", f"{name}> YES", f"{name}> /name {name}", f"{name}> /join riverside")],
        "olga> /promote orla organizer riverside",
        f"orla> /newevent riverside | Park clean-up | {day} 10:00 | Riverside Park | 2",
        "ana> /rsvp 1 yes", "ben> /rsvp 1 yes", "cyd> /rsvp 1 yes",
        "ben> /rsvp 1 no",
        "orla> /attendees 1", ""])
    out = run_chat(script, tmp_path)
    assert "[to orla] Created event #1: Park clean-up" in out
    assert "[to cyd] Park clean-up is full, so you're on the waitlist — number 1 in line" in out
    assert "[to cyd] Good news: a place opened up at Park clean-up" in out
    assert out.index("[to ben] Noted: you're not going") > 0
    tail = out[out.index("[to orla] #1 Park clean-up"):]
    assert "Going (2 of 2):" in tail and "@cyd" in tail and "Waitlist (0): nobody" in tail


async def test_yes_from_a_stopped_member_in_line_does_not_take_a_freed_place(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    for name in ("ana", "ben", "cyd"):
        await person(h, name, "riverside")
    event_id = await new_event(h, capacity="1")
    for name in ("ana", "ben", "cyd"):
        await h.chat.say(name, f"/rsvp {event_id} yes")
    await h.chat.say("ben", "STOP")
    replies = await h.chat.say("ana", f"/rsvp {event_id} no")
    assert [r.to for r in replies if "place opened up" in r.text] == ["cyd"]
    assert not [r for r in h.chat.to("ben") if "place opened up" in r.text]


async def test_answers_race_for_the_last_place_and_only_one_gets_it(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    names = ["ana", "ben", "cyd", "dee", "eve"]
    for name in names:
        await person(h, name, "riverside")
    event_id = await new_event(h, capacity="2")
    events = h.app.services.extra["events"]
    ids = [(await h.app.services.members.find("testchat", n)).id for n in names]

    async def answer(member_id: int) -> str:
        async with in_transaction():
            return (await events.rsvp(event_id, member_id, "testchat", "yes",
                                      h.clock.now())).status

    statuses = await asyncio.gather(*(answer(i) for i in ids))
    assert sorted(statuses) == ["waitlist"] * 3 + ["yes"] * 2
    assert await Rsvp.filter(event_id=event_id, status="yes").count() == 2


async def test_only_members_of_the_group_can_answer(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "hal", "hillcrest")
    event_id = await new_event(h)
    assert only(await h.chat.say("hal", f"/rsvp {event_id} yes")) == (
        f"Event {event_id} is for members of riverside: /join riverside first.")
    assert not await Rsvp.all().count()


# --- creating step by step -----------------------------------------------------------------


async def test_guided_newevent_asks_each_thing_and_checks_each_answer(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    assert "What's it called?" in only(await h.chat.say("orla", "/newevent"))
    assert "YYYY-MM-DD HH:MM" in only(await h.chat.say("orla", "Park clean-up"))
    assert "YYYY-MM-DD HH:MM" in only(await h.chat.say("orla", "next tuesday"))
    assert "in the past" in only(await h.chat.say("orla", "2026-03-01 10:00"))
    assert "Where?" in only(await h.chat.say("orla", "2026-03-14 10:30"))
    assert "How many people" in only(await h.chat.say("orla", "Riverside Park gate"))
    assert "positive whole number" in only(await h.chat.say("orla", "0"))
    check = await h.chat.say("orla", "skip")
    summary = only(check)
    assert "Sat 14 Mar 2026, 10:30 GMT" in summary and "Places: no limit" in summary
    assert [b.id for b in check[0].buttons] == ["ok", "/cancel"]
    assert "Send OK" in only(await h.chat.say("orla", "hmm"))
    created = only(await h.chat.say("orla", "ok"))
    assert created.startswith("Created event #1: Park clean-up — Sat 14 Mar 2026, 10:30 GMT")
    event = await Event.get(id=1)
    assert (event.place, event.capacity) == ("Riverside Park gate", None)
    assert event.starts_at == datetime(2026, 3, 14, 10, 30, tzinfo=UTC)
    orla = await h.app.services.members.find("testchat", "orla")
    assert orla.flow is None
    assert "didn't catch that" in only(await h.chat.say("orla", "thanks"))


async def test_guided_newevent_with_a_code_and_capacity(harness: Harness) -> None:
    h = harness
    await organizer(h, "hank", "hillcrest")
    assert "for Hillcrest Tenants" in only(await h.chat.say("hank", "/newevent hillcrest"))
    await h.chat.say("hank", "Tenants meeting")
    await h.chat.say("hank", "2026-03-09 18:00")
    await h.chat.say("hank", "skip")
    assert "Places: 30" in only(await h.chat.say("hank", "30"))
    assert "18:00 EDT" in only(await h.chat.say("hank", "OK"))
    event = await Event.get(title="Tenants meeting")
    assert (event.place, event.capacity) == ("", 30)
    assert event.starts_at == datetime(2026, 3, 9, 22, 0, tzinfo=UTC)  # EDT is UTC-4


async def test_admin_is_asked_which_group(harness: Harness) -> None:
    h = harness
    await h.member("olga")
    assert "which group" in only(await h.chat.say("olga", "/newevent"))
    assert "There's no group" in only(await h.chat.say("olga", "nowhere"))
    assert "for Riverside Neighbours" in only(await h.chat.say("olga", "riverside"))


async def test_cancel_abandons_the_guided_flow(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await h.chat.say("orla", "/newevent")
    await h.chat.say("orla", "Park clean-up")
    assert "dropped" in only(await h.chat.say("orla", "/cancel"))
    assert "didn't catch that" in only(await h.chat.say("orla", "2026-03-14 10:30"))
    assert not await Event.all().count()
    assert "nothing to cancel" in only(await h.chat.say("orla", "/cancel"))


async def test_guided_flow_refuses_a_member_who_lost_the_role_before_confirming(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    for text in ("/newevent", "Walk", "2026-03-14 10:30", "skip", "skip"):
        await h.chat.say("orla", text)
    await h.chat.say("olga", "/demote orla riverside")
    assert only(await h.chat.say("orla", "ok")) == "Only organizers of riverside can do that."
    assert not await Event.all().count()


# --- who may do what -----------------------------------------------------------------------


async def state() -> tuple[list[tuple[object, ...]], ...]:
    """Everything an organizer command could change."""
    return (list(await Event.all().order_by("id").values_list(
                "id", "title", "starts_at", "place", "capacity", "status", "sequence")),
            list(await Rsvp.all().order_by("id").values_list("id", "status", "checked_in_at")))


def organizer_commands(event_id: int) -> list[str]:
    return [f"/newevent riverside | Takeover | {WHEN} | Park | 5", "/newevent riverside",
            f"/editevent {event_id} title Hacked", f"/editevent {event_id} capacity 1",
            f"/cancelevent {event_id} because I can", f"/attendees {event_id}",
            f"/checkin {event_id} ana", f"/export {event_id}"]


@pytest.mark.parametrize("who", ["hank", "ana"])
async def test_organizer_commands_are_refused_outside_ones_own_group(
        harness: Harness, who: str) -> None:
    """hank organizes hillcrest and is a plain member of riverside; ana is a plain member."""
    h = harness
    await organizer(h, "orla")
    await organizer(h, "hank", "hillcrest")
    await h.chat.say("hank", "/join riverside")
    await person(h, "ana", "riverside")
    event_id = await new_event(h)
    await h.chat.say("ana", f"/rsvp {event_id} yes")
    before = await state()
    sent_before = len(h.chat.sent)
    for command in organizer_commands(event_id):
        assert only(await h.chat.say(who, command)) == (
            "Only organizers of riverside can do that."), command
    assert await state() == before
    assert all(s.to == who for s in h.chat.sent[sent_before:])  # nobody else heard a thing
    assert (await h.app.services.members.find("testchat", who)).flow is None


async def test_a_plain_member_cannot_start_the_guided_flow(harness: Harness) -> None:
    h = harness
    await person(h, "ana", "riverside")
    assert only(await h.chat.say("ana", "/newevent")) == (
        "Only a group's organizers can create its events, and you don't organize a group.")


async def test_organizer_of_hillcrest_creates_there_not_in_riverside(harness: Harness) -> None:
    h = harness
    await organizer(h, "hank", "hillcrest")
    assert "for Hillcrest Tenants" in only(await h.chat.say("hank", "/newevent"))


# --- bad input -----------------------------------------------------------------------------


BAD_INPUT = [
    ("/newevent riverside | Walk | tomorrow 6pm | Park", "as YYYY-MM-DD HH:MM"),
    ("/newevent riverside | Walk | 2026-02-30 18:00 | Park", "isn't a real date"),
    ("/newevent riverside | Walk | 2026-03-01 18:00 | Park", "That's in the past"),
    ("/newevent riverside | Walk | 2026-03-29 01:30 | Park", "doesn't exist on 2026-03-29"),
    ("/newevent riverside | Walk | 2036-03-20 18:00 | Park", "more than three years away"),
    ("/newevent riverside | Walk | 2026-03-20 18:00 | Park | 0", "positive whole number"),
    ("/newevent riverside | Walk | 2026-03-20 18:00 | Park | -3", "positive whole number"),
    ("/newevent riverside | Walk | 2026-03-20 18:00 | Park | lots", "positive whole number"),
    ("/newevent nowhere | Walk | 2026-03-20 18:00 | Park", "There's no group 'nowhere'"),
    ("/newevent riverside |  | 2026-03-20 18:00", "needs a title"),
    ("/newevent riverside | Walk", "Usage: /newevent CODE | TITLE"),
    ("/editevent 99 title X", "There's no event 99."),
    ("/editevent abc title X", "'abc' isn't an event number"),
    ("/editevent", "Which event?"),
    ("/editevent {id} colour red", "title, when, place or capacity"),
    ("/editevent {id} when yesterday", "as YYYY-MM-DD HH:MM"),
    ("/editevent {id} when 2026-03-01 10:00", "That's in the past"),
    ("/editevent {id} capacity zero", "positive whole number"),
    ("/editevent {id} place", "What's the new place?"),
    ("/cancelevent {id}", "Please add a reason"),
    ("/checkin {id} nobody", "@nobody hasn't answered event"),
    ("/checkin {id}", "Who? Usage: /checkin"),
    ("/attendees", "Which event?"),
    ("/export 42", "There's no event 42."),
    ("/rsvp {id} perhaps", "Answer yes, no or maybe"),
    ("/rsvp 99 yes", "There's no event 99."),
    ("/rsvp", "Which event?"),
    ("/event 12345", "There's no event 12345."),
    ("/ics x", "'x' isn't an event number"),
    ("/events nowhere", "There's no group 'nowhere'"),
]


async def test_bad_input_gets_a_specific_one_liner_and_changes_nothing(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    event_id = await new_event(h, capacity="5")
    before = await state()
    for command, expected in BAD_INPUT:
        text = only(await h.chat.say("orla", command.format(id=event_id)))
        assert expected in text, (command, text)
        assert "\n" not in text, (command, text)
        assert await state() == before, command


async def test_a_cancelled_or_past_event_cannot_be_changed_or_answered(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    soon = await new_event(h, when="2026-03-02 13:00")
    gone = await new_event(h)
    await h.chat.say("orla", f"/cancelevent {gone} hall unavailable")
    assert "was cancelled" in only(await h.chat.say("ana", f"/rsvp {gone} yes"))
    assert "was cancelled" in only(await h.chat.say("orla", f"/editevent {gone} place X"))
    assert "Cancelled. Reason: hall unavailable" in only(await h.chat.say("ana", f"/event {gone}"))
    h.clock.advance(hours=2)
    assert "already started" in only(await h.chat.say("ana", f"/rsvp {soon} yes"))
    assert "already started" in only(await h.chat.say("orla", f"/editevent {soon} title X"))


# --- organizers changing an event ----------------------------------------------------------


async def answered(h: Harness, event_id: int) -> None:
    """ana yes, ben maybe, cyd no, dee on the waitlist (capacity 1)."""
    for name, answer in (("ana", "yes"), ("ben", "maybe"), ("cyd", "no"), ("dee", "yes")):
        await person(h, name, "riverside")
        await h.chat.say(name, f"/rsvp {event_id} {answer}")


async def test_a_new_time_is_told_to_those_planning_to_come_with_a_footer(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    event_id = await new_event(h, capacity="1")
    await answered(h, event_id)
    replies = await h.chat.say("orla", f"/editevent {event_id} when 2026-03-11 19:30")
    told = {r.to: r.text for r in replies if r.to != "orla"}
    assert set(told) == {"ana", "ben", "dee"}
    for name, reason in (("ana", "you RSVP'd yes"), ("ben", "you RSVP'd maybe"),
                         ("dee", "waitlist")):
        text = told[name]
        assert "now starts Wed 11 Mar 2026, 19:30 GMT (was Tue 10 Mar 2026, 18:00 GMT)" in text
        assert "the organizers of Riverside Neighbours" in text and reason in text
        assert "/leave riverside" in text and "STOP" in text and "/quiet" in text
    assert "Told the 3 people planning to come" in only(
        [r for r in replies if r.to == "orla"])
    reminders = h.app.services.extra["events"].reminders
    assert await reminders.pending(event_id) == [
        (24, datetime(2026, 3, 10, 19, 30, tzinfo=UTC)),
        (2, datetime(2026, 3, 11, 17, 30, tzinfo=UTC))]


async def test_a_new_place_is_told_and_a_new_title_is_not(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    event_id = await new_event(h, capacity="1")
    await answered(h, event_id)
    replies = await h.chat.say("orla", f"/editevent {event_id} place Library hall")
    assert {r.to for r in replies} == {"orla", "ana", "ben", "dee"}
    assert "is now at Library hall (was Riverside Park)" in h.chat.to("ana")[-1].text
    replies = await h.chat.say("orla", f"/editevent {event_id} title Big clean-up")
    assert only(replies) == (
        f"Changed the title of #{event_id} Big clean-up: Park clean-up → Big clean-up.")


async def test_more_places_promote_the_waitlist_in_order(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    event_id = await new_event(h, capacity="1")
    for name in ("ana", "ben", "cyd", "dee"):
        await person(h, name, "riverside")
        await h.chat.say(name, f"/rsvp {event_id} yes")
    replies = await h.chat.say("orla", f"/editevent {event_id} capacity 3")
    assert sorted(r.to for r in replies if "place opened up" in r.text) == ["ben", "cyd"]
    assert "2 people from the waitlist got a place" in h.chat.to("orla")[-1].text
    assert "number 1 in line" in only(await h.chat.say("dee", f"/rsvp {event_id} yes"))
    lower = only(await h.chat.say("orla", f"/editevent {event_id} capacity 2"))
    assert "3 people are already going; nobody loses their place" in lower


async def test_cancelling_tells_everyone_who_answered(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    event_id = await new_event(h, capacity="1")
    await answered(h, event_id)
    replies = await h.chat.say("orla", f"/cancelevent {event_id} The park is flooded")
    told = {r.to: r.text for r in replies if r.to != "orla"}
    assert set(told) == {"ana", "ben", "cyd", "dee"}
    assert all("Reason: The park is flooded" in t for t in told.values())
    assert "you RSVP'd no" in told["cyd"]
    assert "Told the 4 people who had answered" in h.chat.to("orla")[-1].text
    assert await h.app.services.extra["events"].reminders.pending(event_id) == []


async def test_attendees_check_in_and_export(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    event_id = await new_event(h, capacity="1")
    await answered(h, event_id)
    await h.member(PHONE, "riverside")  # a profile name that is a phone number
    await h.chat.say(PHONE, f"/rsvp {event_id} maybe")
    h.clock.advance(hours=30)  # the evening of the event, 18:00 GMT
    assert only(await h.chat.say("orla", f"/checkin {event_id} @ana")) == (
        "Checked in @ana for Park clean-up at 18:00.")
    assert "(their answer was maybe)" in only(
        await h.chat.say("orla", f"/checkin {event_id} ben"))
    assert "already checked in at 18:00" in only(
        await h.chat.say("orla", f"/checkin {event_id} ana"))
    listing = only(await h.chat.say("orla", f"/attendees {event_id}"))
    assert "@ana (Ana) ✓ checked in" in listing and "1. @dee (Dee)" in listing
    assert PHONE not in listing
    export = await h.chat.say("orla", f"/export {event_id}")
    attachment = export[0].attachment
    assert attachment is not None and attachment.mime_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(attachment.data.decode())))
    phone_handle = (await h.app.services.members.find("testchat", PHONE)).handle
    assert {r["handle"]: (r["status"], r["waitlist_position"], r["checked_in"])
            for r in rows} == {
        "ana": ("yes", "", "2026-03-03 18:00"), "ben": ("maybe", "", "2026-03-03 18:00"),
        "cyd": ("no", "", ""), "dee": ("waitlist", "1", ""), phone_handle: ("maybe", "", "")}
    assert PHONE.encode() not in attachment.data


# --- members' views ------------------------------------------------------------------------


async def test_events_and_event_show_local_times_counts_and_places_left(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    await organizer(h, "hank", "hillcrest")
    await person(h, "ana", "riverside", "hillcrest")
    river = await new_event(h, capacity="3")
    hill = await new_event(h, by="hank", code="hillcrest", title="Tenants meeting",
                           when="2026-03-09 18:00", place="")
    await h.chat.say("ana", f"/rsvp {river} yes")
    listing = only(await h.chat.say("ana", "/events"))
    assert listing.index("Tenants meeting") < listing.index("Park clean-up")  # by start
    assert f"#{hill} Tenants meeting — Mon 9 Mar 2026, 18:00 EDT, place to be announced" in listing
    assert "(1 of 3 going, 2 places left) [riverside]" in listing
    assert "Tenants meeting" not in only(await h.chat.say("ana", "/events riverside"))
    details = await h.chat.say("ana", f"/event {river}")
    text = only(details)
    assert "When: Tue 10 Mar 2026, 18:00 GMT" in text and "Places left: 2" in text
    assert "Your answer: you're going" in text
    assert [b.id for b in details[0].buttons] == [f"/rsvp {river} maybe", f"/rsvp {river} no"]
    mine = only(await h.chat.say("ana", "/myevents"))
    assert f"#{river} Park clean-up" in mine and "[going]" in mine and "Tenants" not in mine


async def test_no_events_and_no_groups_get_a_clear_answer(harness: Harness) -> None:
    h = harness
    await person(h, "ana")
    assert "not in any group" in only(await h.chat.say("ana", "/events"))
    assert "No upcoming events in Riverside Neighbours" in only(
        await h.chat.say("ana", "/events riverside"))
    assert "haven't said yes or maybe" in only(await h.chat.say("ana", "/myevents"))


# --- calendars -----------------------------------------------------------------------------


def calendar_event(sent: Sent) -> icalendar.Event:
    assert sent.attachment is not None and sent.attachment.mime_type == "text/calendar"
    return icalendar.Calendar.from_ical(sent.attachment.data).walk("VEVENT")[0]


async def test_yes_confirmation_carries_the_calendar_file_and_buttons(harness: Harness) -> None:
    h = harness
    await organizer(h, "hank", "hillcrest")
    await person(h, "ana", "hillcrest")
    event_id = await new_event(h, by="hank", code="hillcrest", title="Tenants meeting",
                               when="2026-03-09 18:00", place="Community room")
    reply = (await h.chat.say("ana", f"/rsvp {event_id} yes"))[0]
    assert "The calendar file is attached" in reply.text
    assert [b.id for b in reply.buttons] == [f"/rsvp {event_id} maybe", f"/rsvp {event_id} no"]
    vevent = calendar_event(reply)
    assert vevent["SUMMARY"] == "Tenants meeting" and vevent["LOCATION"] == "Community room"
    assert vevent["DTSTART"].params["TZID"] == "America/New_York"
    assert vevent.decoded("DTSTART") == datetime(2026, 3, 9, 22, 0, tzinfo=UTC)
    assert "Hillcrest Tenants" in vevent["DESCRIPTION"]
    maybe = (await h.chat.say("ana", f"/rsvp {event_id} maybe"))[0]
    assert maybe.attachment is None


async def test_calendar_uid_is_stable_and_sequence_grows_with_changes(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    event_id = await new_event(h)
    first = calendar_event((await h.chat.say("orla", f"/ics {event_id}"))[0])
    again = calendar_event((await h.chat.say("orla", f"/ics {event_id}"))[0])
    await h.chat.say("orla", f"/editevent {event_id} when 2026-03-12 18:00")
    moved = calendar_event((await h.chat.say("orla", f"/ics {event_id}"))[0])
    assert first["UID"] == again["UID"] == moved["UID"]
    assert (first["SEQUENCE"], moved["SEQUENCE"]) == (0, 1)
    assert moved.decoded("DTSTART") == datetime(2026, 3, 12, 18, 0, tzinfo=UTC)
    await h.chat.say("orla", f"/cancelevent {event_id} rain")
    assert calendar_event((await h.chat.say("orla", f"/ics {event_id}"))[0])["STATUS"] == (
        "CANCELLED")


async def test_an_end_time_is_shown_and_goes_into_the_calendar_file(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    event_id = await new_event(h, when="2026-03-10 18:00-20:30")
    shown = only(await h.chat.say("orla", f"/event {event_id}"))
    assert "Tue 10 Mar 2026, 18:00–20:30 GMT" in shown
    entry = calendar_event((await h.chat.say("orla", f"/ics {event_id}"))[0])
    assert entry.decoded("DTEND") - entry.decoded("DTSTART") == timedelta(hours=2, minutes=30)
    # Running past midnight ends the next day; a new time without an end clears it.
    await h.chat.say("orla", f"/editevent {event_id} when 2026-03-11 22:00 to 01:00")
    moved = calendar_event((await h.chat.say("orla", f"/ics {event_id}"))[0])
    assert moved.decoded("DTEND") == datetime(2026, 3, 12, 1, 0, tzinfo=UTC)
    assert "Wed 11 Mar 2026, 22:00 GMT to Thu 12 Mar, 01:00 GMT" in only(
        await h.chat.say("orla", f"/event {event_id}"))
    await h.chat.say("orla", f"/editevent {event_id} when 2026-03-12 18:00")
    assert "DTEND" not in calendar_event((await h.chat.say("orla", f"/ics {event_id}"))[0])


@pytest.mark.parametrize(("when", "answer"), [
    ("2026-03-10 18:00-18:00", "The end must come after the start"),
    ("2026-03-10 18:00-25:00", "25:00 isn't a time of day."),
    ("2026-03-10 18:00 until 20:00", "as YYYY-MM-DD HH:MM"),
])
async def test_a_bad_end_time_gets_a_one_line_answer_and_creates_nothing(
        harness: Harness, when: str, answer: str) -> None:
    h = harness
    await organizer(h, "orla")
    replies = await h.chat.say("orla", f"/newevent riverside | Walk | {when} | Park")
    assert answer in only(replies)
    assert await Event.all().count() == 0


async def test_without_files_the_calendar_and_export_come_as_text(harness: Harness) -> None:
    h = harness
    h.chat.capabilities = Capabilities(rooms=True, buttons=True, files=False)
    await organizer(h, "orla")
    await person(h, "ana", "riverside")
    event_id = await new_event(h)
    reply = (await h.chat.say("ana", f"/rsvp {event_id} yes"))[0]
    assert reply.attachment is None and f"/ics {event_id}" in reply.text
    ics_text = (await h.chat.say("ana", f"/ics {event_id}"))[0]
    assert ics_text.attachment is None
    assert "When: Tue 10 Mar 2026, 18:00 GMT\nWhere: Riverside Park" in ics_text.text
    export = (await h.chat.say("orla", f"/export {event_id}"))[0]
    assert export.attachment is None
    assert "handle,status,waitlist_position,checked_in\r\nana,yes,," in export.text


# --- data rights ---------------------------------------------------------------------------


async def test_mydata_lists_rsvps_and_forgetme_erases_them_and_frees_the_place(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    event_id = await new_event(h, capacity="1")
    await person(h, "ana", "riverside")
    await person(h, "ben", "riverside")
    await h.chat.say("ana", f"/rsvp {event_id} yes")
    await h.chat.say("ben", f"/rsvp {event_id} yes")
    assert "Rsvps: event Park clean-up, group riverside" in only(
        await h.chat.say("ana", "/mydata"))
    replies = await h.chat.say("ana", "/forgetme confirm")
    assert [r.to for r in replies if "place opened up" in r.text] == ["ben"]
    assert await Rsvp.filter(status="yes").values_list("member__handle", flat=True) == ["ben"]


async def test_leaving_the_group_withdraws_answers_and_frees_the_place(
        harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    event_id = await new_event(h, capacity="1")
    await person(h, "ana", "riverside", "hillcrest")
    await person(h, "ben", "riverside")
    await h.chat.say("ana", f"/rsvp {event_id} yes")
    await h.chat.say("ben", f"/rsvp {event_id} yes")
    replies = await h.chat.say("ana", "/leave riverside")
    to_ana = [r.text for r in replies if r.to == "ana"]
    assert to_ana == ["You left Riverside Neighbours. You'll get nothing more from it.\n"
                      "Your answer to its upcoming event was withdrawn."]
    assert [r.to for r in replies if "place opened up" in r.text] == ["ben"]
    assert await Rsvp.filter(event_id=event_id).values_list(
        "member__handle", "status") == [("ben", "yes")]
    # Leaving a group one has no answers in says nothing more.
    assert only(await h.chat.say("ana", "/leave hillcrest")).endswith(
        "You'll get nothing more from it.")


async def test_an_organizers_erasure_keeps_their_events(harness: Harness) -> None:
    h = harness
    await organizer(h, "orla")
    event_id = await new_event(h)
    await h.chat.say("orla", "/forgetme confirm")
    event = await Event.get(id=event_id)
    assert event.created_by_id is None and event.title == "Park clean-up"
