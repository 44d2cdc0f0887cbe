"""The consent invariant, as a property: whatever members and organizers do, in any
order, nobody receives anything unless they had consented at the time of sending,
except the notice and direct answers to the few commands they send themselves."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.policy.consent import EXEMPT_COMMANDS, is_opt_out
from bot.routing import bare_keyword, parse_command
from tests.conftest import make_config, start_harness

PEOPLE = ("ana", "ben", "cat", "dev")
ORGANIZER = "orla"

person = st.sampled_from(PEOPLE)
member_action = st.one_of(
    st.tuples(person, st.sampled_from([
        "hello", "YES", "STOP", "START", "stop", "please stop messaging me", "HELP",
        "/join riverside", "/leave riverside", "/pause 1d", "/resume", "/quiet 22:00-07:00",
        "/quiet off", "/digest daily", "/digest off", "/mutegroup riverside",
        "/unmutegroup riverside", "/mydata", "/why", "/groups", "/post riverside hi all",
        "/forgetme confirm", "/cap 1",
    ])),
    st.tuples(st.just(ORGANIZER), st.sampled_from([
        "/announce riverside Meeting tonight", "/announce riverside Petition is live"])),
    st.tuples(st.just("clock"), st.sampled_from([1, 3, 9, 25])),
)


@dataclass
class Model:
    """What the test believes each person's consent is, updated step by step."""

    status: dict[str, str] = field(default_factory=dict)  # absent: never wrote

    def after(self, who: str, text: str) -> None:
        state = self.status.get(who)
        word = bare_keyword(text)
        parsed = parse_command(text)
        command = parsed[0] if parsed else word.lower()
        if is_opt_out(text):
            self.status[who] = "stopped"
        elif command == "forgetme" and parsed and parsed[1] == "confirm":
            # Erased: a stopped address stays stopped, anyone else starts over.
            self.status[who] = "stopped" if state == "stopped" else "gone"
        elif state in (None, "gone"):
            self.status[who] = "pending"  # first contact, or a forgotten number starting over
        elif word in {"YES", "START", "UNSTOP"} and state in ("pending", "stopped"):
            self.status[who] = "active"


def allowed(model_after: dict[str, str], actor: str, text: str, to: str, body: str) -> bool:
    """May `to` receive `body` in the step where `actor` sent `text`?"""
    if model_after.get(to) == "active":
        return True
    if to != actor:
        return False  # someone who has not consented gets nothing caused by others
    if body.startswith("Hi! This is"):
        return True  # the notice, in answer to their own message
    parsed = parse_command(text)
    command = parsed[0] if parsed else bare_keyword(text).lower()
    return is_opt_out(text) or command in EXEMPT_COMMANDS or command in {"unstop"}


async def run(steps: list[tuple[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        h = await start_harness(make_config(f"sqlite://{path}/p.sqlite3", path))
        try:
            await h.member(ORGANIZER, "riverside")
            await h.chat.say(ORGANIZER, "/name orla-org")
            await h.member("olga")
            await h.chat.say("olga", "/promote orla-org organizer riverside")
            model = Model()
            for who, what in steps:
                if who == "clock":
                    h.clock.advance(hours=float(what))  # type: ignore[arg-type]
                    before = len(h.chat.sent)
                    await h.app.settle()
                    for sent in h.chat.sent[before:]:
                        if sent.to in PEOPLE:
                            assert model.status.get(sent.to) == "active", (sent, model)
                    continue
                text = str(what)
                if who != ORGANIZER:
                    model.after(who, text)
                replies = await h.chat.say(who, text)
                for sent in replies:
                    if sent.to in PEOPLE:
                        assert allowed(model.status, who, text, sent.to, sent.text), (
                            who, text, sent, model.status)
        finally:
            await h.app.stop()


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=st.lists(member_action, min_size=5, max_size=30))
def test_nobody_gets_a_message_without_consent_at_send_time(steps: list) -> None:
    asyncio.run(run(steps))
