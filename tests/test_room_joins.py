"""Join requests to a group's Telegram room: the bot approves members who joined the
group with it, declines the banned and the removed, and leaves strangers to the room's
human admins. Real Telegram transport by webhook, Bot API stand-in, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage.models_moderation import ModAction
from tests.drivers import ADMIN, TelegramDriver, member, open_driver, organizer
from tests.fakes.bot_api import chat_join_request

JOIN_METHODS = ("approvechatjoinrequest", "declinechatjoinrequest")


@pytest.fixture
async def tg(db_url: str, tmp_path: Path) -> AsyncIterator[TelegramDriver]:
    async with open_driver("telegram", db_url, tmp_path) as d:
        assert isinstance(d, TelegramDriver)
        yield d


async def linked_room(d: TelegramDriver) -> int:
    await organizer(d, "orla", "riverside")
    await d.say("orla", "/linkroom riverside", room="riverside-room")
    return int(d.roster.room("riverside-room"))


async def ask_to_join(d: TelegramDriver, name: str, room: int) -> list[tuple[str, str]]:
    """NAME asks to join ROOM; returns the join answers the bot gave (method, user id)."""
    mark = len(d.tg.calls)
    await d._hand_over(chat_join_request(chat_id=room, user_id=int(d.address(name)),
                                         first_name=name.capitalize(), last_name=None,
                                         date=int(d.clock.now().timestamp())))
    await d.app.settle()
    return [(c.method.lower(), str(c.params["user_id"])) for c in d.tg.calls[mark:]
            if c.method.lower() in JOIN_METHODS]


async def test_a_member_of_the_group_is_let_in(tg: TelegramDriver) -> None:
    room = await linked_room(tg)
    await member(tg, "ana", "riverside")
    assert await ask_to_join(tg, "ana", room) == [("approvechatjoinrequest", tg.address("ana"))]


async def test_a_banned_member_is_declined_and_the_audit_log_says_why(
        tg: TelegramDriver) -> None:
    room = await linked_room(tg)
    await member(tg, "ben", "riverside")
    await tg.say("ben", "/name ben")
    await tg.say(ADMIN, "/ban ben spam 7d")
    assert await ask_to_join(tg, "ben", room) == [("declinechatjoinrequest", tg.address("ben"))]
    assert await ModAction.filter(action="decline-join", reason="banned").count() == 1


async def test_strangers_and_members_outside_the_group_are_left_to_the_admins(
        tg: TelegramDriver) -> None:
    room = await linked_room(tg)
    assert await ask_to_join(tg, "zed", room) == []  # never wrote to the bot
    await member(tg, "cyd")  # consented, but never joined riverside
    assert await ask_to_join(tg, "cyd", room) == []
    await tg.say("cyd", "STOP")
    assert await ask_to_join(tg, "cyd", room) == []
    assert await ModAction.filter(action="decline-join").count() == 0
