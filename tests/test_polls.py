"""Polls on issues: asking, voting (one changeable vote per member, by number or words),
results (hidden until the close when asked), closing and publishing; buttons where the
transport has them; who may do what; answers to bad input; data rights."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from bot.services.discussions import IssueView
from bot.services.polls import PollView, parse_options, pick_option
from bot.storage.models_discussions import Poll, PollOption, Vote
from bot.transports.testchat import Sent
from tests.conftest import Harness
from tests.test_core_flow import run_chat
from tests.test_discussions import answer, mentioning, organizer, person, riverside_with_issue

ISSUE = IssueView(1, 1, "riverside", "Riverside Neighbours", "Europe/London", "Bridge", "open",
                  None, None, datetime(2026, 3, 2, 12, 0, tzinfo=UTC), None)


async def new_poll(h: Harness, issue_id: int, spec: str = "Which day? | Saturday | Sunday",
                   by: str = "orla") -> int:
    text = await answer(h, by, f"/poll {issue_id} {spec}")
    assert text.startswith("Poll #"), text
    return int(text.split("#")[1].split(" ")[0])


def to(replies: list[Sent], name: str) -> list[Sent]:
    return [r for r in replies if r.to == name]


async def votes_of(poll_id: int) -> dict[str, str]:
    rows = await Vote.filter(poll_id=poll_id).values_list("member__handle", "option__text")
    return dict(rows)


# --- asking and voting ----------------------------------------------------------------------


async def test_organizer_asks_and_followers_are_invited_with_vote_buttons(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await h.chat.say("ana", f"/follow {issue_id}")
    replies = await h.chat.say("orla", f"/poll {issue_id} Which day? | Saturday | Sunday")
    mine = to(replies, "orla")
    assert len(mine) == 1 and mine[0].text.startswith(f"Poll #1 on issue #{issue_id}: Which day?")
    assert "1. Saturday\n2. Sunday" in mine[0].text and "/closepoll 1" in mine[0].text
    assert "1 follower of the issue will hear of it" in mine[0].text
    invite = to(replies, "ana")
    assert len(invite) == 1 and "New poll on issue" in invite[0].text
    assert "sent by the organizers of Riverside Neighbours" in invite[0].text
    assert f"you follow issue #{issue_id}" in invite[0].text
    assert [(b.id, b.title) for b in invite[0].buttons] == [("/vote 1 1", "Saturday"),
                                                            ("/vote 1 2", "Sunday")]
    assert not to(replies, "ben")  # not a follower


async def test_one_vote_per_member_by_number_or_words_changeable_until_close(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    poll_id = await new_poll(h, issue_id)

    first = await answer(h, "ana", f"/vote {poll_id} 1")
    assert first.startswith(f"You voted for Saturday in poll #{poll_id}.")
    assert f"Results: /results {poll_id}" in first
    again = await answer(h, "ana", f"/vote {poll_id} saturday")
    assert again.startswith(f"You already voted for Saturday in poll #{poll_id}.")
    changed = await answer(h, "ana", f"/vote {poll_id} SUNDAY")
    assert changed.startswith(f"Changed your vote in poll #{poll_id} from Saturday to Sunday.")
    await h.chat.say("ben", f"/vote {poll_id} #2")
    assert await votes_of(poll_id) == {"ana": "Sunday", "ben": "Sunday"}
    assert await Vote.filter(poll_id=poll_id).count() == 2

    shown = await answer(h, "ana", f"/results {poll_id}")
    assert "1. Saturday — 0 votes (0%)\n2. Sunday — 2 votes (100%)" in shown
    assert "Your vote: Sunday" in shown
    assert shown == await answer(h, "ana", f"/poll {poll_id}")


async def test_buttons_offer_the_other_options_after_a_vote(harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    poll_id = await new_poll(h, issue_id, "Time? | Morning | Noon | Evening")
    replies = await h.chat.say("ana", f"/vote {poll_id} 2")
    assert [b.id for b in replies[0].buttons] == [f"/vote {poll_id} 1", f"/vote {poll_id} 3"]
    # A tapped button arrives as its id: a vote like any other.
    await h.chat.say("ana", f"/vote {poll_id} 3")
    assert await votes_of(poll_id) == {"ana": "Evening"}


async def test_more_than_three_options_come_as_numbered_text_without_buttons(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await h.chat.say("ana", f"/follow {issue_id}")
    replies = await h.chat.say("orla", f"/poll {issue_id} Where? | Park | Library | Hall | Pub")
    invite = to(replies, "ana")[0]
    assert invite.buttons == ()
    assert "1. Park\n2. Library\n3. Hall\n4. Pub" in invite.text and "/vote 1 NUMBER" in invite.text
    shown = (await h.chat.say("ana", "/poll 1"))[0]
    assert shown.buttons == () and "4. Pub — 0 votes" in shown.text


async def test_a_transport_without_buttons_gets_numbered_text(harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    poll_id = await new_poll(h, issue_id)
    h.chat.capabilities = dataclasses.replace(h.chat.capabilities, buttons=False)
    shown = (await h.chat.say("ana", f"/poll {poll_id}"))[0]
    assert shown.buttons == () and "1. Saturday" in shown.text and "2. Sunday" in shown.text


async def test_hidden_results_stay_hidden_until_the_poll_closes(harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    made = await answer(h, "orla", f"/poll {issue_id} hidden Who chairs? | Ana | Ben | Cyd")
    assert "Results stay hidden until you close it" in made
    poll_id = int(made.split("#")[1].split(" ")[0])
    assert (await Poll.get(id=poll_id)).question == "Who chairs?"
    voted = await answer(h, "ana", f"/vote {poll_id} ben")
    assert "Results stay hidden until the poll closes." in voted
    await h.chat.say("ben", f"/vote {poll_id} Ben")

    for name in ("ana", "orla"):  # organizers do not see them early either
        shown = await answer(h, name, f"/results {poll_id}")
        assert "Results are hidden until the poll closes (2 votes so far)." in shown
        assert "— 2 votes" not in shown and "1. Ana\n2. Ben\n3. Cyd" in shown
    assert "Your vote: Ben" in await answer(h, "ana", f"/results {poll_id}")

    await h.chat.say("orla", f"/closepoll {poll_id}")
    shown = await answer(h, "ana", f"/results {poll_id}")
    assert "2. Ben — 2 votes (100%)" in shown and "Most votes: Ben (2 votes of 2)." in shown

    # The flag may also stand alone before the question, as its own part.
    second = await new_poll(h, issue_id, "HIDDEN | Venue? | Park | Hall")
    made_second = await Poll.get(id=second)
    assert made_second.hidden and made_second.question == "Venue?"
    visible = await new_poll(h, issue_id, "Hiddenness matters? | Yes | No")
    assert not (await Poll.get(id=visible)).hidden


async def test_closing_publishes_the_outcome_to_followers_and_ends_the_voting(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await person(h, "cyd", "riverside")
    await h.chat.say("ana", f"/follow {issue_id}")
    poll_id = await new_poll(h, issue_id)
    await h.chat.say("ana", f"/vote {poll_id} 1")
    await h.chat.say("ben", f"/vote {poll_id} 1")
    await h.chat.say("cyd", f"/vote {poll_id} 2")

    replies = await h.chat.say("orla", f"/closepoll {poll_id}")
    closer = to(replies, "orla")
    assert len(closer) == 1 and "Most votes: Saturday (2 votes of 3)." in closer[0].text
    published = to(replies, "ana")
    assert len(published) == 1
    assert f"Poll closed on issue #{issue_id} (Fix the footbridge): Which day?" in \
        published[0].text
    assert "1. Saturday — 2 votes (67%)\n2. Sunday — 1 vote (33%)" in published[0].text
    assert published[0].buttons == ()
    assert not to(replies, "ben") and not to(replies, "cyd")  # they don't follow the issue

    late = await answer(h, "cyd", f"/vote {poll_id} 1")
    assert late == f"Poll #{poll_id} is closed, so it takes no more votes. " \
                   f"Results: /results {poll_id}"
    assert await votes_of(poll_id) == {"ana": "Saturday", "ben": "Saturday", "cyd": "Sunday"}
    assert "already closed" in await answer(h, "orla", f"/closepoll {poll_id}")


async def test_closing_the_issue_closes_its_polls_and_tells_their_results(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await h.chat.say("ana", f"/follow {issue_id}")
    poll_id = await new_poll(h, issue_id)
    await h.chat.say("ana", f"/vote {poll_id} Sunday")
    replies = await h.chat.say("orla", f"/closeissue {issue_id} Repairs on Sunday")
    assert "Its open polls closed too (1)." in to(replies, "orla")[0].text
    told = to(replies, "ana")[0].text
    assert "Outcome: Repairs on Sunday" in told
    assert f"Poll #{poll_id} (Which day?): Most votes: Sunday (1 vote of 1)." in told
    assert (await Poll.get(id=poll_id)).status == "closed"
    assert "is closed" in await answer(h, "ben", f"/vote {poll_id} 1")
    assert "is closed, so it takes no new polls" in await answer(
        h, "orla", f"/poll {issue_id} Again? | Yes | No")


# --- who may do what ----------------------------------------------------------------------


async def test_organizers_of_another_group_and_plain_members_cannot_ask_or_close(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    poll_id = await new_poll(h, issue_id)
    await organizer(h, "hugo", "hillcrest")
    refusal = "Only organizers of riverside can do that."
    for name in ("hugo", "ana"):
        assert await answer(h, name, f"/poll {issue_id} Mine? | Yes | No") == refusal
        assert await answer(h, name, f"/closepoll {poll_id}") == refusal
    assert await Poll.all().count() == 1
    assert (await Poll.get(id=poll_id)).status == "open"


async def test_only_members_of_the_group_vote(harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    poll_id = await new_poll(h, issue_id)
    await person(h, "hal", "hillcrest")
    refused = await answer(h, "hal", f"/vote {poll_id} 1")
    assert refused == f"Issue #{issue_id} is for members of riverside: /join riverside first."
    assert await Vote.all().count() == 0
    assert "Which day?" in await answer(h, "hal", f"/poll {poll_id}")  # reading is open


# --- bad input ------------------------------------------------------------------------------


async def test_bad_input_gets_a_specific_one_liner_and_changes_nothing(
        harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    poll_id = await new_poll(h, issue_id)
    usage = "Usage: /poll ISSUE [hidden] QUESTION | OPTION | OPTION …"
    eleven = " | ".join(f"o{n}" for n in range(11))
    answers = {
        ("orla", f"/poll {issue_id} Only one? | Yes"):
            f"A poll needs 2 to 10 options, separated by |. You gave 1. {usage}",
        ("orla", f"/poll {issue_id} Too many? | {eleven}"):
            f"A poll needs 2 to 10 options, separated by |. You gave 11. {usage}",
        ("orla", f"/poll {issue_id} | Yes | No"):
            f"The poll needs a question before the first |. {usage}",
        ("orla", f"/poll {issue_id} Twice? | Yes | yes"):
            f"Two options are the same; each option must differ. {usage}",
        ("orla", "/poll 99 Where? | Here | There"):
            "There's no issue 99. /issues CODE lists a group's issues.",
        ("orla", "/poll"):
            f"Usage: /poll POLL to see a poll, or {usage[7:]} to ask one.",
        ("ana", "/poll 99"): "There's no poll 99. /issue NUMBER lists an issue's polls.",
        ("ana", "/results x"): "'x' isn't a poll number. /issue NUMBER lists an issue's polls.",
        ("ana", f"/vote {poll_id}"): f"Which option? Usage: /vote {poll_id} NUMBER (1-2)",
        ("ana", f"/vote {poll_id} 3"):
            f"'3' isn't an option of poll #{poll_id}: send 1-2 or an option's words "
            f"(/poll {poll_id} lists them).",
        ("ana", f"/vote {poll_id} Monday"):
            f"'Monday' isn't an option of poll #{poll_id}: send 1-2 or an option's words "
            f"(/poll {poll_id} lists them).",
        ("ana", "/vote"): "Which poll? Usage: /vote POLL OPTION",
        ("orla", "/closepoll 99"): "There's no poll 99. /issue NUMBER lists an issue's polls.",
    }
    for (name, command), expected in answers.items():
        assert await answer(h, name, command) == expected, command
    assert await Poll.all().count() == 1 and await PollOption.all().count() == 2
    assert await Vote.all().count() == 0


def test_option_parsing_and_picking() -> None:
    assert parse_options("Day? | Sat |  | Sun") == ("Day?", ["Sat", "Sun"])
    assert "under 80" in str(parse_options("Q | " + "x" * 81 + " | y"))
    view = PollView(7, ISSUE, "Day?", False, "open", ("Sat", "10"), (0, 0))
    assert pick_option(view, "2") == 2 and pick_option(view, "#1") == 1
    assert pick_option(view, " sAt ") == 1 and pick_option(view, "Sun") is None
    assert pick_option(view, "0") is None


def test_outcome_words_for_a_win_a_tie_and_no_votes() -> None:
    view = PollView(7, ISSUE, "Day?", False, "closed", ("Sat", "Sun", "Mon"), (2, 2, 1))
    assert view.outcome() == "A tie between Sat and Sun (2 votes each)."
    assert dataclasses.replace(view, counts=(0, 0, 0)).outcome() == "No votes were cast."
    assert dataclasses.replace(view, counts=(0, 1, 0)).outcome() == \
        "Most votes: Sun (1 vote of 1)."


# --- data rights -----------------------------------------------------------------------------


async def test_mydata_shows_votes_and_forgetme_erases_them(harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    poll_id = await new_poll(h, issue_id)
    await h.chat.say("ana", f"/vote {poll_id} Sunday")
    await h.chat.say("ben", f"/vote {poll_id} Sunday")
    data = await answer(h, "ana", "/mydata")
    assert f"Votes: poll #{poll_id} Which day?, vote Sunday" in data

    await h.chat.say("ana", "/forgetme confirm")
    assert await votes_of(poll_id) == {"ben": "Sunday"}
    assert "2. Sunday — 1 vote (100%)" in await answer(h, "ben", f"/results {poll_id}")


def test_a_poll_session_piped_into_the_test_chat(tmp_path: Path) -> None:
    script = "\n".join([
        "olga> hi", "olga> YES",
        *[line for name in ("orla", "ana") for line in (
            f"{name}> hi", f"{name}> YES", f"{name}> /name {name}", f"{name}> /join riverside")],
        "olga> /promote orla organizer riverside",
        "orla> /newissue riverside Fix the footbridge",
        "orla> /poll 1 Which day? | Saturday | Sunday",
        "ana> /poll 1", "ana> /vote 1 sunday", ""])
    out = run_chat(script, tmp_path)
    assert "[to orla] Opened issue #1: Fix the footbridge (riverside)." in out
    assert "[to ana] Poll #1 on issue #1 (Fix the footbridge): Which day?" in out
    assert "[buttons] Saturday | Sunday" in out
    assert "[to ana] You voted for Sunday in poll #1." in out


async def test_followers_hear_of_a_poll_within_their_quiet_hours(harness: Harness) -> None:
    h = harness
    issue_id = await riverside_with_issue(h)
    await h.chat.say("ana", f"/follow {issue_id}")
    await h.chat.say("ana", "/quiet 11:00-13:00")  # it is 12:00 in London
    await new_poll(h, issue_id)
    assert not mentioning(h, "ana", "New poll")
    h.clock.advance(hours=1)
    await h.app.settle()
    assert len(mentioning(h, "ana", "New poll")) == 1
