"""WhatsApp groups for core teams: /teamgroup, /teamlink, join requests, departures and
removals, against the Graph API stand-in, with the App on the real WhatsApp transport and
Meta's Groups API webhooks POSTed to it signed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.storage.models import OutboxItem
from handlers.wa_groups import NEEDS_WHATSAPP
from tests.drivers import (
    ADMIN,
    WA_NUMBER,
    Reply,
    WhatsAppDriver,
    member,
    open_driver,
    organizer,
    texts,
)
from tests.fakes.graph_api import (
    group_create_failed_webhook,
    group_created_webhook,
    join_request_webhook,
    participants_removed_webhook,
    text_webhook,
)
from tests.seeding import seed_members

SUBJECT = "Riverside core team"
ASKING = f"Asking WhatsApp to create the team group '{SUBJECT}' for riverside."


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
    asked, ready = await d.say("orla", f"/teamgroup riverside {SUBJECT}")
    assert asked.text.startswith(ASKING) and "Invite link" in ready.text
    [group_id] = d.graph.groups
    return group_id


async def join_request(d: WhatsAppDriver, group_id: str, address: str,
                       request_id: str) -> list[Reply]:
    """Someone taps the invite link: the stand-in holds the request, Meta's webhook says so."""
    d.graph.add_join_request(group_id, request_id)
    return await d.webhook(join_request_webhook(group_id, request_id, wa_id=address,
                                                phone_number_id=WA_NUMBER))


def settled_join_requests(d: WhatsAppDriver, method: str) -> list[list[str]]:
    return [r.json["join_requests"] for r in d.graph.requests_to("/join_requests")
            if r.method == method]


# -- creation -----------------------------------------------------------------------------


async def test_organizer_creates_a_team_group_with_join_approval(wa: WhatsAppDriver) -> None:
    await organizer(wa, "orla", "riverside")
    asked, ready = await wa.say("orla", f"/teamgroup riverside {SUBJECT}")
    assert (asked.to, ready.to) == ("orla", "orla")
    [(group_id, group)] = wa.graph.groups.items()
    assert group.subject == SUBJECT and group.join_approval_mode == "approval_required"
    assert asked.text.startswith(ASKING) and "8 people" in asked.text
    assert f"Invite link: {group.invite_link}" in ready.text
    assert "8 people" in ready.text and "opted in" in ready.text  # the cap and the rule
    create = wa.graph.requests_to("/groups")[0]
    assert create.path == "/v23.0/111/groups" and create.headers["Authorization"] == "Bearer T"
    again = one(await wa.say("orla", "/teamgroup riverside Another"), "orla")
    assert "has a team group already" in again and len(wa.graph.groups) == 1
    assert group_id in wa.graph.groups


async def test_no_groups_api_call_is_made_while_the_command_is_processed(
        wa: WhatsAppDriver) -> None:
    """A rolled-back, retried processing transaction must not create a second group: the
    create call waits for the delivery worker, after commit."""
    await organizer(wa, "orla", "riverside")
    assert await wa.post(text_webhook(f"/teamgroup riverside {SUBJECT}",
                                      wa_id=wa.address("orla"), phone_number_id=WA_NUMBER,
                                      message_id="wamid.TEAMGROUP1")) == 200
    assert await wa.app.processor.process_pending() == 1
    assert wa.graph.requests_to("/groups") == []  # committed as an intent only
    await wa.app.settle()
    assert len(wa.graph.requests_to("/groups")) == 1


async def test_a_create_claimed_again_after_a_worker_died_is_not_sent_twice(
        wa: WhatsAppDriver) -> None:
    await team_group(wa)
    # The worker "died" after the call: its lease on the outbox row ran out.
    row = await OutboxItem.filter(kind="room_action").order_by("id").first()
    assert row is not None and row.extra and row.extra["action"] == "team_create"
    past = wa.clock.now() - timedelta(minutes=5)
    await OutboxItem.filter(id=row.id).update(status="sending", claimed_until=past)
    await wa.app.settle()
    assert len(wa.graph.requests_to("/groups")) == 1 and len(wa.graph.groups) == 1
    assert (await OutboxItem.get(id=row.id)).status == "sent"


async def test_only_organizers_of_that_group_may_create_or_see_it(wa: WhatsAppDriver) -> None:
    await organizer(wa, "orla", "hillcrest")
    await member(wa, "ana", "riverside")
    for who in ("orla", "ana"):
        assert one(await wa.say(who, f"/teamgroup riverside {SUBJECT}"), who) == (
            "Only organizers of riverside can do that.")
        assert one(await wa.say(who, "/teamlink riverside"), who) == (
            "Only organizers of riverside can do that.")
    assert wa.graph.requests_to("/groups") == []


async def test_pending_creation_finishes_with_the_lifecycle_webhook(wa: WhatsAppDriver) -> None:
    wa.graph.group_create_returns_id = False  # Meta answers with a request id only
    await organizer(wa, "orla", "riverside")
    assert one(await wa.say("orla", f"/teamgroup riverside {SUBJECT}"), "orla").startswith(
        ASKING)
    assert "still creating" in one(await wa.say("orla", "/teamlink riverside"), "orla")
    assert wa.graph.requests_to("/invite_link") == []
    [request_id] = wa.graph.creations
    webhook = group_created_webhook(wa.graph, request_id, phone_number_id=WA_NUMBER)
    ready = one(await wa.webhook(webhook), "orla")
    group_id = wa.graph.creations[request_id]
    assert f"Invite link: {wa.graph.groups[group_id].invite_link}" in ready
    assert texts(await wa.webhook(webhook)) == []  # redelivered: said once
    link = one(await wa.say("orla", "/teamlink riverside"), "orla")
    assert wa.graph.groups[group_id].invite_link in link


async def test_failed_creation_webhook_explains_and_lets_the_organizer_retry(
        wa: WhatsAppDriver) -> None:
    wa.graph.group_create_returns_id = False
    await organizer(wa, "orla", "riverside")
    await wa.say("orla", f"/teamgroup riverside {SUBJECT}")
    [request_id] = wa.graph.creations
    failed = one(await wa.webhook(group_create_failed_webhook(
        request_id, SUBJECT, details="The business is not eligible for groups.",
        phone_number_id=WA_NUMBER)), "orla")
    assert failed == ("WhatsApp did not create the riverside team group: The business is "
                      "not eligible for groups.. /teamgroup riverside NAME tries again.")
    assert "no team group yet" in one(await wa.say("orla", "/teamlink riverside"), "orla")
    assert one(await wa.say("orla", f"/teamgroup riverside {SUBJECT}"), "orla").startswith(
        ASKING)


async def test_graph_refusing_to_create_is_explained(wa: WhatsAppDriver) -> None:
    await organizer(wa, "orla", "riverside")
    wa.graph.fail_next(100, message="(#100) Invalid parameter", path_suffix="/groups")
    asked, refused = await wa.say("orla", f"/teamgroup riverside {SUBJECT}")
    assert asked.text.startswith(ASKING)
    assert refused.text.startswith("WhatsApp did not create the riverside team group:")
    assert wa.graph.groups == {}
    assert "no team group yet" in one(await wa.say("orla", "/teamlink riverside"), "orla")


async def test_teamlink_fetches_the_link_and_reset_replaces_it(wa: WhatsAppDriver) -> None:
    group_id = await team_group(wa)
    first = wa.graph.groups[group_id].invite_link
    assert first in one(await wa.say("orla", "/teamlink riverside"), "orla")
    reset = one(await wa.say("orla", "/teamlink riverside reset"), "orla")
    second = wa.graph.groups[group_id].invite_link
    assert second != first and second in reset and "old link no longer works" in reset
    assert [r.method for r in wa.graph.requests_to(f"/{group_id}/invite_link")] == [
        "GET", "GET", "POST"]  # one GET right after creating it


async def test_teamlink_asks_whatsapp_only_after_the_command_is_committed(
        wa: WhatsAppDriver) -> None:
    """A Graph call inside the processing transaction would hold it (and on SQLite every
    webhook's inbox write) for as long as Meta takes to answer."""
    group_id = await team_group(wa)
    before = len(wa.graph.requests_to(f"/{group_id}/invite_link"))
    assert await wa.post(text_webhook("/teamlink riverside reset",
                                      wa_id=wa.address("orla"), phone_number_id=WA_NUMBER,
                                      message_id="wamid.TEAMLINK1")) == 200
    assert await wa.app.processor.process_pending() == 1
    assert len(wa.graph.requests_to(f"/{group_id}/invite_link")) == before
    mark = len(wa.graph.sent)
    await wa.app.settle()
    assert [r.method for r in wa.graph.requests_to(f"/{group_id}/invite_link")][before:] == [
        "POST"]
    answers = [b["text"]["body"] for b in wa.graph.sent[mark:]]
    assert answers == [f"New invite link for the riverside team group: "
                       f"{wa.graph.groups[group_id].invite_link}\n"
                       "The old link no longer works."]


async def test_teamlink_refused_by_whatsapp_is_explained_in_one_line(
        wa: WhatsAppDriver) -> None:
    await team_group(wa)
    wa.graph.fail_next(100, message="(#100) Invalid parameter", path_suffix="/invite_link")
    refused = one(await wa.say("orla", "/teamlink riverside"), "orla")
    # Graph's own words for the error, in one line.
    assert refused == "WhatsApp did not give the invite link: A parameter is missing or invalid."
    row = await OutboxItem.filter(kind="room_action").order_by("-id").first()
    assert row is not None and row.extra and row.extra["action"] == "team_link"
    assert row.status == "failed"


# -- join requests (signed group_participants_update webhooks) ------------------------------


async def test_join_requests_are_approved_only_for_members_who_opted_in(
        wa: WhatsAppDriver) -> None:
    group_id = await team_group(wa)
    await member(wa, "ana")  # opted in
    await wa.say("bob", "hello")  # pending: never said YES
    await member(wa, "cyd")
    await wa.say("cyd", "STOP")  # withdrew
    for name in ("ana", "bob", "cyd", "stranger"):
        await join_request(wa, group_id, wa.address(name), f"JR-{name}")
    group = wa.graph.groups[group_id]
    assert group.participants == {"JR-ana"}
    assert group.join_requests == set()  # every request answered one way or the other
    assert settled_join_requests(wa, "POST") == [["JR-ana"]]
    assert settled_join_requests(wa, "DELETE") == [["JR-bob"], ["JR-cyd"], ["JR-stranger"]]


async def test_a_redelivered_join_request_is_settled_once(wa: WhatsAppDriver) -> None:
    group_id = await team_group(wa)
    await member(wa, "ana")
    await join_request(wa, group_id, wa.address("ana"), "JR-ana")
    await wa.webhook(join_request_webhook(group_id, "JR-ana", wa_id=wa.address("ana"),
                                          phone_number_id=WA_NUMBER))
    assert settled_join_requests(wa, "POST") == [["JR-ana"]]


async def test_a_join_request_by_business_scoped_id_finds_the_member_by_wa_id(
        wa: WhatsAppDriver) -> None:
    group_id = await team_group(wa)
    await member(wa, "ana")  # known by wa_id only
    wa.graph.add_join_request(group_id, "JR-ana")
    await wa.webhook(join_request_webhook(group_id, "JR-ana", wa_id=wa.address("ana"),
                                          user_id="US.77001122334455",
                                          phone_number_id=WA_NUMBER))
    assert settled_join_requests(wa, "POST") == [["JR-ana"]]


async def test_an_approval_graph_fails_transiently_is_retried(wa: WhatsAppDriver) -> None:
    group_id = await team_group(wa)
    await member(wa, "ana")
    wa.graph.fail_next(131016, path_suffix="/join_requests")  # 503: Graph had trouble
    await join_request(wa, group_id, wa.address("ana"), "JR-ana")
    assert wa.graph.groups[group_id].participants == set()
    wa.clock.advance(seconds=5)
    await wa.app.settle()
    assert wa.graph.groups[group_id].participants == {"JR-ana"}
    assert settled_join_requests(wa, "POST") == [["JR-ana"], ["JR-ana"]]


async def test_someone_who_stops_before_the_approval_goes_out_is_declined(
        wa: WhatsAppDriver) -> None:
    group_id = await team_group(wa)
    await member(wa, "ana")
    wa.graph.add_join_request(group_id, "JR-ana")
    assert await wa.post(join_request_webhook(group_id, "JR-ana", wa_id=wa.address("ana"),
                                              phone_number_id=WA_NUMBER)) == 200
    assert await wa.app.processor.process_pending() == 1  # decided: approve, not yet sent
    await wa.say("ana", "STOP")  # processed before the delivery worker re-checks
    assert settled_join_requests(wa, "POST") == []
    assert settled_join_requests(wa, "DELETE") == [["JR-ana"]]


async def test_banned_members_are_declined(wa: WhatsAppDriver) -> None:
    if "moderation" not in wa.app.services.extra:
        pytest.skip("no moderation service installed: only consent is checked")
    group_id = await team_group(wa)
    await member(wa, "dan", "riverside")
    await wa.say("dan", "/name dan-h")
    await member(wa, ADMIN)
    await wa.say(ADMIN, "/ban dan-h threats 30d")
    await join_request(wa, group_id, wa.address("dan"), "JR-dan")
    assert wa.graph.groups[group_id].participants == set()
    assert [r.method for r in wa.graph.requests_to("/join_requests")] == ["DELETE"]


async def test_the_ninth_request_is_declined_and_organizers_are_told(
        wa: WhatsAppDriver) -> None:
    group_id = await team_group(wa)
    await seed_members(wa.app.vault, "hillcrest", 9, wa.clock.now(), prefix="w",
                       transport="whatsapp")
    for i in range(9):
        told = await join_request(wa, group_id, f"w{i}", f"JR-{i}")
    assert wa.graph.groups[group_id].participants == {f"JR-{i}" for i in range(8)}
    assert "JR-8" not in wa.graph.groups[group_id].join_requests  # declined, not left open
    assert [r.to for r in told] == ["orla"]
    assert "full" in told[0].text and "8 people" in told[0].text
    assert "8 approved so far" in one(await wa.say("orla", "/teamlink riverside"), "orla")


async def test_a_seat_frees_up_when_a_participant_leaves(wa: WhatsAppDriver) -> None:
    group_id = await team_group(wa)
    await seed_members(wa.app.vault, "hillcrest", 9, wa.clock.now(), prefix="w",
                       transport="whatsapp")
    for i in range(8):
        await join_request(wa, group_id, f"w{i}", f"JR-{i}")
    await wa.webhook(participants_removed_webhook(group_id, ["w3"],
                                                  phone_number_id=WA_NUMBER))
    assert texts(await join_request(wa, group_id, "w8", "JR-8")) == []
    assert ["JR-8"] in settled_join_requests(wa, "POST")
    assert "8 approved so far" in one(await wa.say("orla", "/teamlink riverside"), "orla")


async def test_join_requests_for_other_groups_are_left_alone(wa: WhatsAppDriver) -> None:
    await team_group(wa)
    await member(wa, "ana")
    await wa.webhook(join_request_webhook("some-other-group", "JR-1", wa_id=wa.address("ana"),
                                          phone_number_id=WA_NUMBER))
    assert wa.graph.requests_to("/join_requests") == []


# -- moderation ---------------------------------------------------------------------------


async def test_a_moderators_removal_takes_the_member_out_of_the_team_group(
        wa: WhatsAppDriver) -> None:
    group_id = await team_group(wa)
    await member(wa, "dan", "riverside")
    await wa.say("dan", "/name dan-h")
    await join_request(wa, group_id, wa.address("dan"), "JR-dan")
    await wa.say("orla", "/remove dan-h riverside threats")
    [removal] = [r for r in wa.graph.requests_to("/participants") if r.method == "DELETE"]
    assert removal.path == f"/v23.0/{group_id}/participants"
    assert removal.json["participants"] == [{"user": wa.address("dan")}]
    assert "0 approved so far" in one(await wa.say("orla", "/teamlink riverside"), "orla")


async def test_removing_someone_the_bot_never_let_in_calls_nothing(wa: WhatsAppDriver) -> None:
    await team_group(wa)
    await member(wa, "dan", "riverside")
    await wa.say("dan", "/name dan-h")
    await wa.say("orla", "/remove dan-h riverside threats")
    assert wa.graph.requests_to("/participants") == []


async def test_without_whatsapp_the_commands_say_so_in_one_line(
        db_url: str, tmp_path: Path) -> None:
    async with open_driver("testchat", db_url, tmp_path) as d:
        await organizer(d, "orla", "riverside")
        for command in (f"/teamgroup riverside {SUBJECT}", "/teamlink riverside",
                        "/teamlink riverside reset"):
            assert texts(await d.say("orla", command)) == [NEEDS_WHATSAPP]
