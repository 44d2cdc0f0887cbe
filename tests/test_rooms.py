"""Group rooms: talk in a room is conversation, not commands, and is moderated for all."""

from __future__ import annotations

from tests.conftest import Harness
from tests.test_moderation_enforcement import PHONE_POST, link_park


async def test_yes_or_stop_said_in_a_room_changes_no_ones_consent(harness: Harness) -> None:
    h = harness
    await link_park(h)
    assert await h.chat.say("ana", "stop", room="park") == []
    assert await h.chat.say("newbie", "YES", room="park") == []
    ana = await h.app.services.members.find("testchat", "ana")
    newbie = await h.app.services.members.find("testchat", "newbie")
    assert ana.status == "active"
    assert newbie.status == "pending"


async def test_slash_commands_in_a_room_still_work(harness: Harness) -> None:
    h = harness
    await link_park(h)
    replies = await h.chat.say("ana", "/mygroups", room="park")
    assert replies and "riverside" in replies[0].text and replies[0].to == "ana"


async def test_a_post_by_someone_who_never_opted_in_is_still_moderated(
        harness: Harness) -> None:
    h = harness
    await link_park(h)
    replies = await h.chat.say("stranger", PHONE_POST, room="park", message_id="s-1")
    assert ("delete", "park", "s-1") in h.chat.actions
    # Acting on the room is not messaging them: no notice, no explanation to a stranger.
    assert all(r.to != "stranger" for r in replies)
