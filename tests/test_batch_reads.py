"""A processing batch reads its senders and their groups once (bot/services/batch_reads.py),
and reads afresh after an item changed them: every message sees what came before it."""

from __future__ import annotations

from tortoise import connections

from bot.routing import Context
from bot.services.batch_reads import BatchReads
from bot.storage.models import Identity, Member, OutboxItem
from bot.transports.testchat import Sent
from tests.conftest import Harness
from tests.test_moderation_enforcement import people, promote


async def ana_in_one_batch(harness: Harness, *texts: str) -> list[Sent]:
    """Ana, a member of riverside, sends `texts`, all processed in one batch."""
    await harness.member("ana", "riverside")
    return await harness.chat.deliver([harness.chat.message("ana", t) for t in texts])


async def test_a_stop_earlier_in_the_batch_holds_for_the_same_members_next_message(
        harness: Harness) -> None:
    replies = await ana_in_one_batch(harness, "STOP", "/mygroups")
    assert await Member.filter(status="stopped").count() == 1
    assert len(replies) == 1  # the STOP confirmation; nothing more to a stopped member
    assert not replies[0].text.startswith("Your groups:")


async def test_a_join_earlier_in_the_batch_shows_in_the_next_messages_groups(
        harness: Harness) -> None:
    replies = await ana_in_one_batch(harness, "/join hillcrest", "/mygroups")
    listing = [r.text for r in replies if r.text.startswith("Your groups:")]
    assert len(listing) == 1
    assert "hillcrest" in listing[0] and "riverside" in listing[0]


async def test_a_newcomers_messages_in_one_batch_make_one_member(harness: Harness) -> None:
    chat = harness.chat
    await chat.deliver([chat.message("zed", "hi"), chat.message("zed", "HELP"),
                        chat.message("zed", "hello?")])
    assert await Member.all().count() == 1
    assert await Identity.all().count() == 1


async def in_one_batch(harness: Harness, messages: list[tuple[str, str]]
                       ) -> tuple[list[Sent], list[str]]:
    """Deliver (sender, text) messages in one batch: the replies, and the statements run."""
    chat = harness.chat
    statements: list[str] = []
    raw = connections.get("sqlite")._connection._conn  # runs on this thread (inline)
    raw.set_trace_callback(statements.append)
    try:
        replies = await chat.deliver([chat.message(who, text) for who, text in messages])
    finally:
        raw.set_trace_callback(None)
    return replies, statements


async def test_a_batch_of_reads_looks_up_its_senders_and_their_groups_once(
        sqlite_harness: Harness) -> None:
    for name in ("ana", "ben", "cy"):
        await sqlite_harness.member(name, "riverside")
    replies, statements = await in_one_batch(sqlite_harness, [
        (name, text) for name in ("ana", "ben", "cy") for text in ("HELP", "/mygroups")])
    assert len(replies) == 6
    member_reads = [s for s in statements if 'FROM "identity" i' in s]
    group_reads = [s for s in statements if "FROM membership ms JOIN local_group" in s]
    assert len(member_reads) == 1  # not one per message
    assert len(group_reads) == 1


async def group_listings(harness: Harness, texts_by_sender: list[tuple[str, str]]
                         ) -> tuple[list[str], list[str]]:
    """Deliver the messages in one batch: the /groups answers, and the listing queries run."""
    replies, statements = await in_one_batch(harness, texts_by_sender)
    answers = [r.text for r in replies if r.text.startswith("Local groups")]
    return answers, [s for s in statements if "AS members FROM local_group" in s]


async def test_the_same_group_search_in_one_batch_is_read_once(sqlite_harness: Harness
                                                               ) -> None:
    for name in ("ana", "ben", "cy"):
        await sqlite_harness.member(name, "riverside")
    answers, reads = await group_listings(sqlite_harness, [
        ("ana", "/groups"), ("ben", "/groups"), ("cy", "/groups"), ("ana", "/groups river")])
    assert len(answers) == 4
    assert answers[0] == answers[1] == answers[2]
    assert "riverside — " in answers[3] and "hillcrest" not in answers[3]
    assert len(reads) == 2  # one per distinct search, not one per message


async def test_a_join_earlier_in_the_batch_shows_in_the_next_group_listing(
        sqlite_harness: Harness) -> None:
    for name in ("ana", "ben"):
        await sqlite_harness.member(name, "riverside")
    answers, reads = await group_listings(sqlite_harness, [
        ("ana", "/groups"), ("ben", "/join hillcrest"), ("ana", "/groups")])
    before = next(line for line in answers[0].splitlines() if line.startswith("hillcrest"))
    after = next(line for line in answers[1].splitlines() if line.startswith("hillcrest"))
    assert before.endswith("(0 members)") and after.endswith("(1 member)")
    assert len(reads) == 2  # read again after the join


async def member_reads(harness: Harness, messages: list[tuple[str, str]]
                       ) -> tuple[list[Sent], int]:
    """Deliver the messages in one batch: the replies, and how many member lookups ran."""
    replies, statements = await in_one_batch(harness, messages)
    return replies, sum('FROM "identity" i' in s for s in statements)


async def test_a_newcomer_in_the_batch_leaves_the_other_senders_rows_shared(
        sqlite_harness: Harness) -> None:
    for name in ("ana", "ben", "cy"):
        await sqlite_harness.member(name, "riverside")
    replies, reads = await member_reads(sqlite_harness, [
        ("zed", "hi"), ("ana", "HELP"), ("ben", "/mygroups"), ("cy", "/mygroups")])
    assert [r.to for r in replies] == ["zed", "ana", "ben", "cy"]
    assert replies[0].text.startswith("Hi! This is")  # the newcomer's notice
    assert reads == 1  # the batch's; none again after zed became a member


async def test_a_senders_own_change_is_read_afresh_by_their_next_message(
        sqlite_harness: Harness) -> None:
    await sqlite_harness.member("ana", "riverside")
    await sqlite_harness.chat.say("zed", "hi")  # pending: has had the notice
    replies, reads = await member_reads(sqlite_harness, [
        ("zed", "YES"), ("ana", "/mygroups"), ("zed", "/mygroups")])
    assert [r.to for r in replies] == ["zed", "ana", "zed"]
    assert replies[0].text.startswith("Welcome to")
    assert replies[2].text.startswith("You're not in any group yet.")  # as a member: YES held
    assert reads == 2  # the batch's, and zed's own again after YES: ana's row stayed


async def test_a_moderators_removal_is_seen_by_the_removed_members_next_message(
        sqlite_harness: Harness) -> None:
    h = sqlite_harness
    await people(h, "ana", "ben", "moe")
    await promote(h, "moe", "moderator")
    replies, reads = await member_reads(h, [
        ("ben", "/mygroups"), ("moe", "/remove ben riverside spam"), ("ben", "/mygroups")])
    listings = [r.text for r in replies if r.to == "ben" and "group" in r.text.lower()
                and "removed you" not in r.text]
    assert "riverside" in listings[0]
    assert "riverside" not in listings[-1]
    assert reads == 2  # everything forgotten after a change to someone else's membership


async def test_a_change_to_another_members_row_alone_is_seen_by_their_next_message(
        sqlite_harness: Harness) -> None:
    # No handler of ours changes another member's row without touching memberships too;
    # one that did must still not leave that member's next message reading the old row.
    h = sqlite_harness
    await people(h, "ana", "ben")

    @h.app.processor.router.command("stopfor")
    async def stop_for(ctx: Context) -> None:
        other = await ctx.services.members.find("testchat", ctx.args)
        assert other is not None
        await Member.filter(id=other.id).update(status="stopped")
        ctx.reply("done")

    ben = await h.app.services.members.find("testchat", "ben")
    assert ben is not None
    before = await OutboxItem.filter(member_id=ben.id).count()
    replies, reads = await member_reads(h, [
        ("ben", "/mygroups"), ("ana", "/stopfor ben"), ("ben", "/mygroups")])
    # Only ben's first message was answered (and the gate held that answer back at send
    # time, ben being stopped by then); the second was read as from a stopped member.
    assert await OutboxItem.filter(member_id=ben.id).count() == before + 1
    assert [r.to for r in replies] == ["ana"]
    assert reads == 2  # ben's own row again, after ana's write to it


def held(*members: tuple[str, int]) -> BatchReads:
    """Reads holding each (address hash, member id)'s row, and one address that led nowhere."""
    reads = BatchReads()
    for address, member_id in members:
        reads.members[("testchat", address)] = {"id": member_id}
        reads.memberships[member_id] = []
    reads.members[("testchat", "h-nobody")] = None
    return reads


def test_writes_to_other_tables_forget_nothing() -> None:
    reads = held(("h-ana", 1))
    reads.forget_written([('INSERT INTO "rsvp" ("member_id","event_id") VALUES (?,?)', [1, 2]),
                          ('UPDATE "poll_vote" SET "choice"=? WHERE "member_id"=?', [3, 1]),
                          ('DELETE FROM "suppression" WHERE "address_hash" IN (?)', ["x"])])
    assert set(reads.members) == {("testchat", "h-ana"), ("testchat", "h-nobody")}
    assert 1 in reads.memberships


def test_a_member_row_updated_by_id_forgets_that_member_only() -> None:
    for query, values in (('UPDATE "member" SET "notice_sent_at"=? WHERE "id"=?', ["t", 2]),
                          ('UPDATE "member" SET "status"=$1,"notice_version"=$2 WHERE "id"=$3',
                           ["active", "v2", 2])):
        reads = held(("h-ana", 1), ("h-ben", 2), ("h-ben-alt", 2))
        reads.forget_written([(query, values)])
        assert set(reads.members) == {("testchat", "h-ana"), ("testchat", "h-nobody")}
        assert set(reads.memberships) == {1}


def test_an_identity_added_forgets_its_address_and_its_member() -> None:
    reads = held(("h-ana", 1), ("h-ben", 2))
    reads.forget_written([
        ('INSERT INTO "member" ("status","transport") VALUES ($1,$2) RETURNING "id"',
         ["pending", "testchat"]),
        ('INSERT INTO "identity" ("member_id", "transport", "kind", "address_hash", '
         '"address_enc", "created_at") VALUES (?1, ?2, ?3, ?4, ?5, ?6) '
         "ON CONFLICT (transport, address_hash) DO NOTHING",
         [2, "testchat", "user", "h-nobody", "enc", "t"])])
    assert set(reads.members) == {("testchat", "h-ana")}
    assert set(reads.memberships) == {1}


def test_writes_that_cannot_be_told_forget_everything() -> None:
    for writes in ([('UPDATE "membership" SET "status"=? WHERE "member_id"=?', ["left", 1])],
                   [('UPDATE "local_group" SET "settings"=?', ["{}"])],
                   [('DELETE FROM "member" WHERE "id"=?', [1])],  # cascades to memberships
                   [('UPDATE "member" SET "status"=? WHERE "id" IN (?)', ["stopped", 1])],
                   [('UPDATE "member" SET "x"=$2 WHERE "id"=$1', [1, "y"])],  # id not last
                   [('UPDATE "identity" SET "member_id"=? WHERE "id"=?', [1, 9])],
                   [('INSERT INTO "member" ("id","status") VALUES (?,?) '
                     'ON CONFLICT ("id") DO UPDATE SET "status"=excluded."status"', [1, "x"])],
                   [('INSERT INTO "identity" ("member_id") VALUES (?)', [1])],  # no address
                   [('INSERT INTO "identity" ("member_id","transport","address_hash") '
                     "VALUES (?,?,?)", None)],  # values not seen
                   None):  # statements not seen (a transaction inside the item)
        reads = held(("h-ana", 1))
        reads.forget_written(writes)
        assert reads.members == {} and reads.memberships == {}, writes
