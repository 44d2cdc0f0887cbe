"""From rule violations to what the bot does about a post. Pure: no I/O, no clock.

The engine (`rules.ModerationEngine`) says which rules a post breaks; this module
picks the one violation to act on and the ladder step that answers it, given the
member's unexpired warnings in the group:

* Each rule's ladder counts the member's warnings under that rule, plus warnings a
  moderator gave by hand (rule "moderator"), which count toward every rule. Counting
  per rule keeps a too-long post from escalating an insult, and lets a rule whose
  ladder starts with a plain "hold" (flood) escalate on its own.
* When a post breaks several rules, the most severe step wins, so breaking two rules
  never costs less than breaking the worse one.
* Shadow rules are planned like the others but only logged.
* A post is always held (not relayed, or deleted in a room), whatever the step says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from bot.policy.ladder import parse_duration, plan_actions
from bot.policy.rules import Violation

MANUAL_RULE = "moderator"  # a warning a moderator gave by hand
# Address detection also fires on event venues: organizers may name places.
ORGANIZER_EXEMPT_DETAILS = frozenset({"address"})
_SEVERITY = {"hold": 0, "warn": 1, "mute": 2, "remove": 3, "ban": 4}


@dataclass(frozen=True)
class Plan:
    """One violation and the actions its ladder step calls for."""

    violation: Violation
    actions: tuple[str, ...]  # ("hold", "warn"), ("hold", "mute:24h"), ...

    @property
    def severity(self) -> int:
        return max(_SEVERITY.get(a.partition(":")[0], 0) for a in self.actions)

    @property
    def label(self) -> str:
        return "+".join(self.actions)

    def duration(self, kind: str) -> timedelta | None:
        """How long a "mute:24h" or "ban:7d" in this step lasts; None if there is none."""
        for action in self.actions:
            name, _, spec = action.partition(":")
            if name == kind and spec:
                return parse_duration(spec)
        return None

    def has(self, kind: str) -> bool:
        return any(a.partition(":")[0] == kind for a in self.actions)


@dataclass(frozen=True)
class Verdict:
    act_on: Plan | None  # what the bot does; None lets the post through
    shadow: tuple[Plan, ...]  # what shadow rules would have done (logged only)


def warnings_for(rule_id: str, counts: Mapping[str, int]) -> int:
    """Unexpired warnings that count toward one rule's ladder."""
    return counts.get(rule_id, 0) + counts.get(MANUAL_RULE, 0)


def exempt(violations: Sequence[Violation], organizer: bool) -> list[Violation]:
    """Drop what organizers may post (venue addresses); everyone else gets all of them."""
    if not organizer:
        return list(violations)
    return [v for v in violations
            if not (v.rule_id == "doxxing" and v.detail in ORGANIZER_EXEMPT_DETAILS)]


def judge(violations: Sequence[Violation], counts: Mapping[str, int]) -> Verdict:
    """The enforced plan (most severe, first on a tie) and the shadow plans."""
    enforced: Plan | None = None
    shadow: list[Plan] = []
    for v in violations:
        plan = Plan(v, plan_actions(v.ladder, warnings_for(v.rule_id, counts), relayed=True))
        if v.shadow:
            shadow.append(plan)
        elif enforced is None or plan.severity > enforced.severity:
            enforced = plan
    return Verdict(enforced, tuple(shadow))
