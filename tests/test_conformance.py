"""One conformance suite for every transport.

Each scenario runs against the test chat, WhatsApp (real transport, signed webhooks into
the App's HTTP routes, Graph API stand-in) and Telegram (real transport, by webhook and
by long polling, Bot API stand-in), on SQLite and PostgreSQL. A transport may differ only
where its declared capabilities say it can't do something; where that matters a scenario
asserts the capability explicitly.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.services.data_rights import mask
from bot.transports.base import Capabilities
from tests.conftest import reset_postgres
from tests.drivers import (
    ADMIN,
    TRANSPORTS,
    Driver,
    Reply,
    member,
    open_driver,
    organizer,
    texts,
)

NOTICE_START = "Hi! This is"
KINDS = [*TRANSPORTS, "telegram-polling"]
# Capabilities that only concern rooms the bot sits in (moderation actions, room links).
ROOM_ONLY = frozenset({"rooms", "delete_message", "restrict_member", "remove_member",
                       "approve_join"})


@pytest.fixture(params=KINDS)
async def driver(request: pytest.FixtureRequest, db_url: str,
                 tmp_path: Path) -> AsyncIterator[Driver]:
    async with open_driver(request.param, db_url, tmp_path) as d:
        yield d


async def find(d: Driver, name: str) -> object:
    return await d.app.services.members.find(d.name, d.address(name))


def only(replies: list[Reply], to: str) -> Reply:
    assert [r.to for r in replies] == [to], replies
    return replies[0]


# -- consent ---------------------------------------------------------------------------


async def test_first_message_gets_the_notice_and_yes_opts_in(driver: Driver) -> None:
    d = driver
    notice = only(await d.say("ana", "hello"), "ana")
    assert notice.text.startswith(NOTICE_START)
    org = d.app.config.organization
    for must in (org.name, org.contact, org.privacy_url, "YES", "STOP"):
        assert must in notice.text
    assert await d.say("ana", "what is this?") == []
    welcome = only(await d.say("ana", "YES"), "ana")
    assert "You're in" in welcome.text and "STOP" in welcome.text
    ana = await find(d, "ana")
    history = await d.app.services.consent.history(ana.id)  # type: ignore[attr-defined]
    assert [(c.action, c.channel, c.method) for c in history] == [("granted", d.name, "YES")]


async def test_stop_confirms_exactly_once_then_silence(driver: Driver) -> None:
    d = driver
    await member(d, "ana", "riverside")
    confirmation = only(await d.say("ana", "STOP"), "ana")
    assert "unsubscribed" in confirmation.text and "left 1 group" in confirmation.text
    for text in ("stop", "/groups", "/join riverside", "hello"):
        assert await d.say("ana", text) == [], text
    # Only what she asks for herself is answered.
    assert "START" in only(await d.say("ana", "HELP"), "ana").text
    ana = await find(d, "ana")
    assert ana.status == "stopped"  # type: ignore[attr-defined]


async def test_help_lists_what_a_member_may_do(driver: Driver) -> None:
    d = driver
    await member(d, "ana")
    text = only(await d.say("ana", "HELP"), "ana").text
    assert "what you can do" in text and "/join CODE" in text and "STOP" in text
    assert "/announce" not in text  # organizers' commands are not shown to members
    # Someone who never opted in gets the notice instead of the command list.
    assert only(await d.say("bob", "HELP"), "bob").text.startswith(NOTICE_START)


# -- groups, events, announcements ---------------------------------------------------------


async def test_joining_a_group(driver: Driver) -> None:
    d = driver
    await member(d, "ana")
    listing = only(await d.say("ana", "/groups"), "ana").text
    assert "riverside — Riverside Neighbours" in listing
    joined = only(await d.say("ana", "/join riverside"), "ana").text
    assert joined.startswith("You joined Riverside Neighbours!")
    assert texts(await d.say("ana", "/join riverside")) == [
        "You're already in Riverside Neighbours."]
    assert "riverside — Riverside Neighbours (member)" in only(
        await d.say("ana", "/mygroups"), "ana").text


async def test_rsvp_answers_with_buttons_and_a_calendar_file(driver: Driver) -> None:
    d = driver
    if "rsvp" not in d.app.router.commands:
        pytest.skip("the events feature has no /rsvp in the router yet")
    await organizer(d, "orla", "riverside")
    await member(d, "ana", "riverside")
    created = only(await d.say(
        "orla", "/newevent riverside | Park clean-up | 2026-03-07 10:00 | Riverside Park | 20"),
        "orla").text
    found = re.search(r"#(\d+)", created)
    assert found, created
    event_id = found.group(1)
    going = only(await d.say("ana", f"/rsvp {event_id} yes"), "ana")
    assert going.text.startswith("You're going to Park clean-up")
    if d.capabilities.buttons:
        assert going.buttons == ("Maybe", "I can't go")
    else:
        assert going.buttons == ()
    if d.capabilities.files:
        assert going.file is not None and going.file.endswith(".ics")
        assert "calendar file is attached" in going.text
    else:
        assert going.file is None and f"/ics {event_id}" in going.text
    if not d.capabilities.buttons:
        return
    maybe = only(await d.tap("ana", going, "Maybe"), "ana")
    assert maybe.text.startswith("Noted: maybe for Park clean-up")


async def test_announcement_reaches_exactly_the_members(driver: Driver) -> None:
    d = driver
    await organizer(d, "orla", "riverside")
    await member(d, "ana", "riverside")
    await member(d, "ben", "riverside")
    await member(d, "cat", "hillcrest")
    await member(d, "dan", "riverside")
    await d.say("dan", "STOP")
    await d.say("eve", "hello")  # never said YES
    await d.say("eve", "/join riverside")
    replies = await d.say("orla", "/announce riverside Park clean-up Saturday 10:00!")
    # The organizer's confirmation is a direct answer: it goes first.
    assert replies[0].to == "orla" and "queued for 3 members" in replies[0].text
    got = sorted(r.to for r in replies if "Park clean-up Saturday" in r.text)
    assert got == ["ana", "ben", "orla"]
    sample = next(r for r in replies if r.to == "ana")
    assert "Riverside Neighbours" in sample.text and "organizers" in sample.text
    assert "STOP" in sample.text


async def test_a_moderated_post_never_reaches_the_group(driver: Driver) -> None:
    d = driver
    if d.app.services.post_gate is None:
        pytest.skip("no moderation post gate is installed yet (services.post_gate is None)")
    await member(d, "ana", "riverside")
    await member(d, "ben", "riverside")
    fine = await d.say("ana", "/post riverside Anyone for litter picking on Saturday?")
    assert any(r.to == "ben" and "litter picking" in r.text for r in fine)
    held = await d.say("ana", "/post riverside Pete lives at 12 Oak Street, call 555 123 4567")
    assert not any(r.to == "ben" for r in held)
    assert [r.to for r in held] == ["ana"]  # the author is told, nobody else hears of it


async def test_linking_a_room_needs_rooms(driver: Driver) -> None:
    d = driver
    if not d.capabilities.rooms:
        # WhatsApp declares no rooms: local groups are relayed by the bot instead.
        assert d.name == "whatsapp"
        pytest.skip("this transport declares rooms=False")
    await organizer(d, "orla", "riverside")
    linked = await d.say("orla", "/linkroom riverside", room="riverside-room")
    assert [(r.to, r.text) for r in linked] == [
        ("orla", "This room is now linked to Riverside Neighbours.")]
    group = await d.app.services.groups.group_of_room(d.name, d.roster.room("riverside-room"))
    assert group is not None and group.code == "riverside"


# -- data rights -------------------------------------------------------------------------


async def test_mydata_then_forgetme_with_confirmation(driver: Driver) -> None:
    d = driver
    await member(d, "ana", "riverside")
    data = only(await d.say("ana", "/mydata"), "ana").text
    assert "Everything we hold about you" in data
    assert f"granted via {d.name} YES" in data
    assert "riverside (member, active)" in data and "Name: Ana" in data
    assert f"Address: {d.name} {mask(d.address('ana'))}" in data
    ask = only(await d.say("ana", "/forgetme"), "ana").text
    assert "/forgetme confirm" in ask
    assert await find(d, "ana") is not None
    done = only(await d.say("ana", "/forgetme confirm"), "ana").text
    assert "erased" in done
    assert await find(d, "ana") is None
    # Erased means forgotten: a new message starts from the notice.
    assert only(await d.say("ana", "hello"), "ana").text.startswith(NOTICE_START)


# -- the same conversation everywhere ----------------------------------------------------

TAP = "tap:"  # a script line "tap:TITLE" presses that button under the last reply with it
SCRIPT = [
    ("ana", "hello"), ("ana", "YES"), ("ana", "HELP"), ("ana", "/groups"),
    ("ana", "/join riverside"), ("ana", "/mygroups"), ("ana", "/why"), ("ana", "/settings"),
    ("ana", "/quiet 22:00-07:00"), (ADMIN, "hi"), (ADMIN, "YES"),
    (ADMIN, "/newevent riverside | Park clean-up | 2026-03-07 10:00 | Riverside Park | 20"),
    ("ana", "/rsvp 1 yes"), ("ana", f"{TAP}Maybe"), ("ana", "/mydata"), ("ana", "/nonsense"),
    ("ana", "STOP"), ("ana", "stop"), ("ana", "HELP"), ("ana", "START"),
    ("ana", "/forgetme"), ("ana", "/forgetme confirm"), ("ana", "hello again"),
]
_HANDLE = re.compile(r"\b[a-z]+-[a-z]+-\d{2}\b")


def normalized(d: Driver, replies: list[Reply]) -> list[Reply]:
    """What may differ by transport only in name: handles, the transport, addresses."""
    def clean(text: str) -> str:
        text = _HANDLE.sub("HANDLE", text)
        text = text.replace(mask(d.address("ana")), "ADDRESS")
        return text.replace(d.name, "TRANSPORT")

    return [dataclasses.replace(r, text=clean(r.text)) for r in replies]


def allowed(baseline: list[Reply], caps: Capabilities) -> list[Reply]:
    """The baseline as a transport with these capabilities may show it."""
    out = []
    for r in baseline:
        if not caps.buttons:
            r = dataclasses.replace(r, buttons=(), payloads=())
        if not caps.files:
            r = dataclasses.replace(r, file=None)
        out.append(r)
    return out


async def test_the_same_conversation_reads_the_same_on_every_transport(
        db_url: str, tmp_path: Path) -> None:
    transcripts: dict[str, list[Reply]] = {}
    caps: dict[str, Capabilities] = {}
    for kind in TRANSPORTS:
        url = db_url
        if db_url.startswith("sqlite://"):
            url = f"sqlite://{tmp_path}/{kind}.sqlite3"
        else:
            await reset_postgres(db_url)
        async with open_driver(kind, url, tmp_path) as d:
            for user, text in SCRIPT:
                if text.startswith(TAP):
                    title = text.removeprefix(TAP)
                    under = next(r for r in reversed(d.to(user)) if title in r.buttons)
                    await d.tap(user, under, title)
                else:
                    await d.say(user, text)
            transcripts[kind] = normalized(d, d.log)
            caps[kind] = d.capabilities
            events = "rsvp" in d.app.router.commands
    baseline = transcripts["testchat"]
    assert len(baseline) >= len(SCRIPT) - 3  # the script is answered, not silent
    if events:  # then the script shows buttons, a tap on one and a calendar file
        assert any(r.buttons for r in baseline) and any(r.file for r in baseline)
        assert any(r.text.startswith("Noted: maybe") for r in baseline)
    for kind in TRANSPORTS:
        differs = {f.name for f in dataclasses.fields(Capabilities)
                   if getattr(caps[kind], f.name) != getattr(caps["testchat"], f.name)}
        # Differences in room abilities cannot show in a direct conversation.
        assert differs <= ROOM_ONLY | {"max_text_length"}, (kind, differs)
        assert transcripts[kind] == allowed(baseline, caps[kind]), kind
