"""Polls on issues: organizers ask and close, members vote (one vote each, changeable until
the poll closes) and see the results, unless the organizer hid them until the close.

Where the transport shows buttons and a poll has at most three options, the options come
as buttons ("/vote POLL N"); otherwise as numbered text, which always works.
"""

from __future__ import annotations

import re

from bot.routing import Context, Router
from bot.services.polls import PollService, PollView, VoteResult, parse_options, pick_option
from handlers.common import numbered_arg
from handlers.discussions import issue_arg, member_of, organizer_of, split_first

router = Router()
SECTION = "Discussions"
ORGANIZERS = "Organizers"
POLL_USAGE = "/poll ISSUE [hidden] QUESTION | OPTION | OPTION …"
# "hidden" as the first word hides the results until the poll closes.
_HIDDEN = re.compile(r"^hidden\b\s*[|:]?\s*(.*)$", re.IGNORECASE | re.DOTALL)


def polls(ctx: Context) -> PollService:
    return ctx.services.extra["polls"]


async def poll_arg(ctx: Context, text: str, usage: str) -> PollView | None:
    """The poll numbered by `text`, or a one-line answer saying what is wrong."""
    return await numbered_arg(ctx, text, usage, "poll", "/issue NUMBER lists an issue's polls.",
                              polls(ctx).get)


@router.command("poll", usage=POLL_USAGE,
                summary="ask the followers of an issue (hidden: results only at the close)",
                audience="organizer", section=ORGANIZERS)
async def poll(ctx: Context) -> None:
    first, rest = split_first(ctx.args)
    if not first:
        ctx.reply(f"Usage: /poll POLL to see a poll, or {POLL_USAGE} to ask one.")
        return
    if not rest:  # "/poll 5": show poll 5
        await _show(ctx, first)
        return
    view = await issue_arg(ctx, first, POLL_USAGE)
    if view is None or not await organizer_of(ctx, view.group_id):
        return
    if view.closed:
        ctx.reply(f"Issue #{view.id} is closed, so it takes no new polls.")
        return
    flag = _HIDDEN.match(rest)
    hidden = flag is not None
    parsed = parse_options(flag.group(1) if flag else rest)
    if isinstance(parsed, str):
        ctx.reply(f"{parsed} Usage: {POLL_USAGE}")
        return
    question, options = parsed
    made, notices = await polls(ctx).create(view, question, options, hidden, ctx.member.id,
                                            ctx.now)
    for notice in notices:
        ctx.send(notice)
    results = ("Results stay hidden until you close it" if hidden
               else f"Everyone sees the results with /results {made.id}")
    ctx.reply(f"Poll #{made.id} on issue #{view.id}: {made.question}\n{made.option_list()}\n"
              f"Members vote with /vote {made.id} NUMBER. {results}; close it with "
              f"/closepoll {made.id}. {len(notices)} follower"
              f"{'s' if len(notices) != 1 else ''} of the issue will hear of it.")


@router.command("results", usage="/results POLL (or /poll POLL)",
                summary="a poll's question, options and votes", section=SECTION)
async def results(ctx: Context) -> None:
    await _show(ctx, ctx.args)


async def _show(ctx: Context, text: str) -> None:
    view = await poll_arg(ctx, text, "/results POLL")
    if view is None:
        return
    mine = await polls(ctx).vote_of(view.id, ctx.member.id)
    lines = [f"Poll #{view.id} on issue #{view.issue.id} ({view.issue.title}): "
             f"{view.question}", view.results()]
    if view.closed:
        lines.append(f"Closed. {view.outcome()}")
    if mine is not None:
        lines.append(f"Your vote: {view.options[mine - 1]}")
    if not view.closed:
        lines.append(f"Vote: /vote {view.id} NUMBER" + (" (you can change it until the poll "
                                                        "closes)" if mine else ""))
    ctx.reply("\n".join(lines), buttons=polls(ctx).buttons(view, ctx.msg.transport, mine))


@router.command("vote", usage="/vote POLL OPTION", summary="vote in a poll (number or words)",
                section=SECTION)
async def vote(ctx: Context) -> None:
    first, choice = split_first(ctx.args)
    view = await poll_arg(ctx, first, "/vote POLL OPTION")
    if view is None:
        return
    if view.closed:
        ctx.reply(f"Poll #{view.id} is closed, so it takes no more votes. "
                  f"Results: /results {view.id}")
        return
    if not await member_of(ctx, view.issue):
        return
    if not choice:
        ctx.reply(f"Which option? Usage: /vote {view.id} NUMBER (1-{len(view.options)})")
        return
    option = pick_option(view, choice)
    if option is None:
        ctx.reply(f"'{choice[:40]}' isn't an option of poll #{view.id}: send 1-"
                  f"{len(view.options)} or an option's words (/poll {view.id} lists them).")
        return
    result = await polls(ctx).vote(view.id, ctx.member.id, option, ctx.now)
    if result is None:  # closed between reading it and locking it
        ctx.reply(f"Poll #{view.id} is closed, so it takes no more votes.")
        return
    ctx.reply(_voted(result),
              buttons=polls(ctx).buttons(result.poll, ctx.msg.transport, result.chosen))


def _voted(result: VoteResult) -> str:
    v = result.poll
    chosen = v.options[result.chosen - 1]
    if result.previous is None:
        said = f"You voted for {chosen} in poll #{v.id}."
    elif result.changed:
        said = f"Changed your vote in poll #{v.id} from {v.options[result.previous - 1]} " \
               f"to {chosen}."
    else:
        said = f"You already voted for {chosen} in poll #{v.id}."
    after = (f"Results: /results {v.id}." if v.results_visible
             else "Results stay hidden until the poll closes.")
    return f"{said} You can change it until the poll closes. {after}"


@router.command("closepoll", usage="/closepoll POLL",
                summary="close a poll; followers hear the result", audience="organizer",
                section=ORGANIZERS)
async def closepoll(ctx: Context) -> None:
    view = await poll_arg(ctx, ctx.args, "/closepoll POLL")
    if view is None or not await organizer_of(ctx, view.issue.group_id):
        return
    if view.closed:
        ctx.reply(f"Poll #{view.id} is already closed. Results: /results {view.id}")
        return
    closed = await polls(ctx).close(view.id, ctx.member.id, ctx.now)
    if closed is None:
        ctx.reply(f"Poll #{view.id} is already closed. Results: /results {view.id}")
        return
    final, notices = closed
    for notice in notices:
        ctx.send(notice)
    ctx.reply(f"Closed poll #{final.id}: {final.question}\n{final.results()}\n"
              f"{final.outcome()} {len(notices)} follower{'s' if len(notices) != 1 else ''} "
              "of the issue will hear it.")
