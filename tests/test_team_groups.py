"""WhatsApp groups for core teams: /teamgroup, /teamlink and join requests, against the
Graph API stand-in, with the App on the real WhatsApp transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.messages import JoinRequest
from handlers.wa_groups import NEEDS_WHATSAPP
from tests.drivers import (
    ADMIN,
    Driver,
    Reply,
    WhatsAppDriver,
    member,
    open_driver,
    organizer,
    texts,
)
from tests.seeding import seed_members

SUBJECT = "Riverside core team"


@pytest.fixture
async def wa(db_url: str, tmp_path: Path) -> AsyncIterator[WhatsAppDriver]:
    async with open_driver("whatsapp", db_url, tmp_path) as d:
        assert isinstance(d, WhatsAppDriver)
        yield d


def one(replies: list[Reply], to: str) -> str:
    assert [r.to for r in replies] == [to], replies
    return replies[0].text


async def team_group(d: WhatsAppDriver) -> str:
    """orla organizes riverside and creates its team group; returns the group's id."""
    await organizer(d, "orla", "riverside")
    one(await d.say("orla", f"/teamgroup riverside {SUBJECT}"), "orla")
    [group_id] = d.graph.groups
    return group_id


async def join_request(d: Driver, group_id: str, sender: str, request_id: str) -> list[Reply]:
    """A join request, as the transport would hand it over (its webhook is not parsed yet:
    see the report). The request id travels in `event_id`."""
    return await d.accept([JoinRequest(transport="whatsapp", room=group_id, sender=sender,
                                       time=d.clock.now(), event_id=request_id)])


async def test_organizer_creates_a_team_group_with_join_approval(wa: WhatsAppDriver) -> None:
    await organizer(wa, "orla", "riverside")
    text = one(await wa.say("orla", f"/teamgroup riverside {SUBJECT}"), "orla")
    [(group_id, group)] = wa.graph.groups.items()
    assert group.subject == SUBJECT and group.join_approval_mode == "approval_required"
    assert f"Invite link: {group.invite_link}" in text
    assert "8 people" in text and "opted in" in text  # the cap and the rule, explained
    create = wa.graph.requests_to("/groups")[0]
    assert create.path == "/v23.0/111/groups" and create.headers["Authorization"] == "Bearer T"
    again = one(await wa.say("orla", "/teamgroup riverside Another"), "orla")
    assert "has a team group already" in again and len(wa.graph.groups) == 1
    assert group_id in wa.graph.groups


async def test_only_organizers_of_that_group_may_create_or_see_it(wa: WhatsAppDriver) -> None:
    await organizer(wa, "orla", "hillcrest")
    await member(wa, "ana", "riverside")
    for who in ("orla", "ana"):
        assert one(await wa.say(who, f"/teamgroup riverside {SUBJECT}"), who) == (
            "Only organizers of riverside can do that.")
        assert one(await wa.say(who, "/teamlink riverside"), who) == (
            "Only organizers of riverside can do that.")
    assert wa.graph.requests_to("/groups") == []


async def test_pending_creation_tells_the_organizer_it_is_being_created(
        wa: WhatsAppDriver) -> None:
    wa.graph.group_create_returns_id = False  # Meta answers with a request id only
    await organizer(wa, "orla", "riverside")
    text = one(await wa.say("orla", f"/teamgroup riverside {SUBJECT}"), "orla")
    assert text.startswith(f"WhatsApp is creating the team group '{SUBJECT}'")
    assert "/teamlink riverside" in text
    later = one(await wa.say("orla", "/teamlink riverside"), "orla")
    assert "still creating" in later
    assert wa.graph.requests_to("/invite_link") == []


async def test_teamlink_fetches_the_link_and_reset_replaces_it(wa: WhatsAppDriver) -> None:
    group_id = await team_group(wa)
    first = wa.graph.groups[group_id].invite_link
    assert first in one(await wa.say("orla", "/teamlink riverside"), "orla")
    reset = one(await wa.say("orla", "/teamlink riverside reset"), "orla")
    second = wa.graph.groups[group_id].invite_link
    assert second != first and second in reset and "old link no longer works" in reset
    assert [r.method for r in wa.graph.requests_to(f"/{group_id}/invite_link")] == [
        "GET", "GET", "POST"]  # one GET right after creating it


async def test_graph_refusing_to_create_is_explained(wa: WhatsAppDriver) -> None:
    await organizer(wa, "orla", "riverside")
    wa.graph.fail_next(100, message="(#100) Invalid parameter")
    text = one(await wa.say("orla", f"/teamgroup riverside {SUBJECT}"), "orla")
    assert text.startswith("WhatsApp did not create the group:")
    assert wa.graph.groups == {}
    assert "no team group yet" in one(await wa.say("orla", "/teamlink riverside"), "orla")


async def test_join_requests_are_approved_only_for_members_who_opted_in(
        wa: WhatsAppDriver) -> None:
    group_id = await team_group(wa)
    await member(wa, "ana")  # opted in
    await wa.say("bob", "hello")  # pending: never said YES
    await member(wa, "cyd")
    await wa.say("cyd", "STOP")  # withdrew
    for name, request in (("ana", "JR-ana"), ("bob", "JR-bob"), ("cyd", "JR-cyd"),
                          ("stranger", "JR-stranger")):
        wa.graph.add_join_request(group_id, request)
        await join_request(wa, group_id, wa.address(name), request)
    group = wa.graph.groups[group_id]
    assert group.participants == {"JR-ana"}
    assert group.join_requests == set()  # every request answered one way or the other
    approved = [r.json["join_requests"] for r in wa.graph.requests_to("/join_requests")
                if r.method == "POST"]
    declined = [r.json["join_requests"] for r in wa.graph.requests_to("/join_requests")
                if r.method == "DELETE"]
    assert approved == [["JR-ana"]]
    assert declined == [["JR-bob"], ["JR-cyd"], ["JR-stranger"]]


async def test_banned_members_are_declined(wa: WhatsAppDriver) -> None:
    if "moderation" not in wa.app.services.extra:
        pytest.skip("no moderation service installed: only consent is checked")
    group_id = await team_group(wa)
    await member(wa, "dan", "riverside")
    await wa.say("dan", "/name dan-h")
    await member(wa, ADMIN)
    await wa.say(ADMIN, "/ban dan-h threats 30d")
    wa.graph.add_join_request(group_id, "JR-dan")
    await join_request(wa, group_id, wa.address("dan"), "JR-dan")
    assert wa.graph.groups[group_id].participants == set()
    assert [r.method for r in wa.graph.requests_to("/join_requests")] == ["DELETE"]


async def test_the_ninth_request_is_declined_and_organizers_are_told(
        wa: WhatsAppDriver) -> None:
    group_id = await team_group(wa)
    await seed_members(wa.app.vault, "hillcrest", 9, wa.clock.now(), prefix="w",
                       transport="whatsapp")
    for i in range(9):
        wa.graph.add_join_request(group_id, f"JR-{i}")
        told = await join_request(wa, group_id, f"w{i}", f"JR-{i}")
    assert wa.graph.groups[group_id].participants == {f"JR-{i}" for i in range(8)}
    assert "JR-8" not in wa.graph.groups[group_id].join_requests  # declined, not left open
    assert [r.to for r in told] == ["orla"]
    assert "full" in told[0].text and "8 people" in told[0].text
    assert "8 approved so far" in one(await wa.say("orla", "/teamlink riverside"), "orla")


async def test_join_requests_for_other_groups_are_left_alone(wa: WhatsAppDriver) -> None:
    await team_group(wa)
    await member(wa, "ana")
    await join_request(wa, "some-other-group", wa.address("ana"), "JR-1")
    assert wa.graph.requests_to("/join_requests") == []


async def test_without_whatsapp_the_commands_say_so_in_one_line(
        db_url: str, tmp_path: Path) -> None:
    async with open_driver("testchat", db_url, tmp_path) as d:
        await organizer(d, "orla", "riverside")
        for command in (f"/teamgroup riverside {SUBJECT}", "/teamlink riverside",
                        "/teamlink riverside reset"):
            assert texts(await d.say("orla", command)) == [NEEDS_WHATSAPP]
