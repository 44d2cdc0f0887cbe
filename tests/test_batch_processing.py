"""A claimed batch is processed in one transaction, each item in a savepoint: one
poisoned message fails alone, and everyone else is answered once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import inbox_batcher, processing
from bot.processing import SORRY
from bot.routing import Context, Router
from bot.services.inbox import MAX_ATTEMPTS
from bot.services.outbox import Outgoing
from bot.storage.models import Group, InboxItem
from tests.conftest import Harness, make_config, start_harness


def poisoned(harness: Harness) -> None:
    broken = Router()

    @broken.command("explode", summary="writes, then fails")
    async def explode(ctx: Context) -> None:
        await ctx.services.groups.create("boom", "Boom", "", "", None, ctx.now)
        raise RuntimeError("a bug")

    @broken.command("collide", summary="a statement the database refuses")
    async def collide(ctx: Context) -> None:
        # On PostgreSQL an error inside a transaction poisons it whole, unless rolled
        # back to a savepoint: the others in the batch must still commit.
        ctx.reply("never sent")
        await Group.create(code="riverside", name="Again", timezone="UTC", created_at=ctx.now)

    @broken.command("misread", summary="fails before writing anything")
    async def misread(ctx: Context) -> None:
        # A read PostgreSQL refuses (out of the column's range) with no savepoint open:
        # the transaction is unusable, so the batch goes one by one.
        ctx.reply("never sent")
        await ctx.services.members.get(2**70)
        raise RuntimeError("a bug before any write")

    @broken.command("unwritable", summary="a reply the outbox cannot store")
    async def unwritable(ctx: Context) -> None:
        ctx.send(Outgoing(text="no transport", transport=None))  # type: ignore[arg-type]

    harness.app.router.include(broken)


async def statuses(ids: list[int]) -> dict[int, tuple[str, int]]:
    rows = await InboxItem.filter(id__in=ids).values_list("id", "status", "attempts")
    return {i: (s, a) for i, s, a in rows}


async def test_a_failing_item_rolls_back_only_itself_and_the_others_are_answered_once(
        harness: Harness) -> None:
    poisoned(harness)
    for name in ("ana", "ben", "cy", "dee"):
        await harness.member(name, "riverside")
    chat, app = harness.chat, harness.app
    before = len(chat.sent)
    events = [chat.message("ana", "/mygroups"), chat.message("ben", "/explode"),
              chat.message("cy", "HELP"), chat.message("dee", "/collide"),
              chat.message("ana", "/settings")]
    await app.services.inbox.accept(events, harness.clock.now())
    ids = sorted(await InboxItem.filter(status="pending").values_list("id", flat=True))
    assert len(ids) == 5

    # One batch: the three good items are done, the two poisoned ones wait for a retry.
    assert await app.processor.process_pending() == 5
    after_one = await statuses(ids)
    assert [after_one[i] for i in ids] == [("done", 0), ("pending", 1), ("done", 0),
                                           ("pending", 1), ("done", 0)]
    assert await Group.filter(code="boom").count() == 0
    assert await Group.filter(name="Again").count() == 0

    await app.settle()  # the retries, then the friendly line
    final = await statuses(ids)
    assert [final[i][0] for i in ids] == ["done", "failed", "done", "failed", "done"]
    assert final[ids[1]][1] == MAX_ATTEMPTS
    sent = chat.sent[before:]
    by_person = {name: [s.text for s in sent if s.to == name]
                 for name in ("ana", "ben", "cy", "dee")}
    assert len(by_person["ana"]) == 2 and by_person["ana"][0].startswith("Your groups:")
    assert by_person["ana"][1].startswith("Your settings:")
    assert len(by_person["cy"]) == 1 and "what you can do" in by_person["cy"][0]
    assert by_person["ben"] == [SORRY] and by_person["dee"] == [SORRY]
    assert await Group.filter(code="boom").count() == 0


async def test_a_reply_the_outbox_refuses_fails_its_own_message_only(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """The batch's own writes fail: it is rolled back whole and its items run one by one,
    so the others are still answered, once."""
    poisoned(harness)
    for name in ("ana", "ben"):
        await harness.member(name, "riverside")
    chat = harness.chat
    replies = await chat.deliver([chat.message("ana", "/mygroups"),
                                  chat.message("ben", "/unwritable"),
                                  chat.message("ana", "/groups")])
    texts = {name: [s.text for s in replies if s.to == name] for name in ("ana", "ben")}
    assert len(texts["ana"]) == 2
    assert texts["ana"][0].startswith("Your groups:") and "riverside" in texts["ana"][1]
    assert texts["ben"] == [SORRY]
    rows = await InboxItem.all().order_by("-id").limit(3).values_list("status", flat=True)
    assert sorted(rows) == ["done", "done", "failed"]
    assert "one by one now" in caplog.text  # it was the batch that failed first


async def test_an_item_failing_before_any_write_fails_alone(harness: Harness) -> None:
    poisoned(harness)
    for name in ("ana", "ben"):
        await harness.member(name, "riverside")
    chat = harness.chat
    replies = await chat.deliver([chat.message("ana", "/mygroups"),
                                  chat.message("ben", "/misread"),
                                  chat.message("ana", "HELP")])
    texts = {name: [s.text for s in replies if s.to == name] for name in ("ana", "ben")}
    assert len(texts["ana"]) == 2 and texts["ana"][0].startswith("Your groups:")
    assert texts["ben"] == [SORRY]


async def test_with_webhooks_waiting_a_batch_commits_in_parts_and_loses_nothing(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """While inbound events wait for the database, a batch commits what it has done after
    BATCH_SECONDS and goes on in a new transaction (here: after every item)."""
    monkeypatch.setattr(processing, "BATCH_SECONDS", 0.0)
    poisoned(harness)
    for name in ("ana", "ben", "cy"):
        await harness.member(name, "riverside")
    chat, app = harness.chat, harness.app
    app.processor.inbound_waiting = lambda: True
    committed: list[int] = []
    app.processor.after_commit.append(lambda: committed.append(1))
    before = len(chat.sent)
    events = [chat.message("ana", "/mygroups"), chat.message("ben", "/explode"),
              chat.message("cy", "HELP"), chat.message("ana", "/settings")]
    await app.services.inbox.accept(events, harness.clock.now())
    ids = sorted(await InboxItem.filter(status="pending").values_list("id", flat=True))
    assert await app.processor.process_pending() == 4
    assert len(committed) == 4  # one transaction per item, not one for the batch
    assert [status for status, _ in (await statuses(ids)).values()].count("done") == 3
    await app.settle()
    sent = [(s.to, s.text.split("\n")[0]) for s in chat.sent[before:]]
    assert sorted(to for to, _ in sent) == ["ana", "ana", "ben", "cy"]
    assert ("ben", SORRY) in sent


async def test_in_a_surge_webhooks_are_stored_first_and_everyone_is_answered_after(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While webhooks arrive faster than one process stores and processes them,
    processing waits (bot/inbox_batcher.py) for a lull, then answers each of them. On
    PostgreSQL it does not wait: its statements wait on the server, so it overlaps with
    acknowledging instead of taking the loop's time."""
    monkeypatch.setattr(inbox_batcher, "FLOOR_SECONDS", 60.0)  # no floor within the test
    h = await start_harness(make_config(db_url, tmp_path))
    try:
        chat, app = h.chat, h.app

        async def burst(first: int) -> None:  # 64 webhooks at once: one write
            await asyncio.gather(*(chat.arrive([chat.message(f"p{first + i}", "HELP")])
                                   for i in range(64)))

        for n in range(4):
            await burst(64 * n)
        assert app.inbound is not None and app.inbound.batcher.surging()
        processing = asyncio.create_task(app.processor.process_pending())
        if app.postgres:
            assert await asyncio.wait_for(processing, 30) > 0
        else:
            await burst(256)  # the surge goes on
            assert not processing.done()
            assert await InboxItem.filter(status="pending").count() == 320
            while app.inbound.batcher.surging():  # webhooks one at a time again: the lull
                await chat.arrive([chat.message("p0", "HELP")])
            assert await asyncio.wait_for(processing, 30) > 0
        await app.settle()
        assert await InboxItem.filter(status="pending").count() == 0
        answered = {s.to for s in chat.sent}
        senders = 256 if app.postgres else 320
        assert answered == {f"p{i}" for i in range(senders)}
    finally:
        await app.stop()
