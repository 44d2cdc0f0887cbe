"""Escalation ladders: which action answers a member's next violation.

A ladder is a tuple of steps; a step is one action or several joined by "+"
("hold+warn"). Actions: "hold", "warn", "remove", "mute:<duration>" and
"ban:<duration>" with durations like 30m, 24h, 7d.

The step is picked by how many *unexpired* warnings the member already has
in that group: none -> ladder[0], one -> ladder[1], and the last step repeats.
Expiring warnings is the caller's business (its storage knows when they were
given); this module stays pure. With the default ladder the third violation
inside the window mutes and the fourth removes.

For relayed posts the post is always held, whatever the step says: a
violating post is never passed on, and "hold" does not need to be spelled
out in every step (`plan_actions` adds it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta

__all__ = [
    "DEFAULT_LADDER",
    "describe_action",
    "describe_ladder",
    "ladder_error",
    "next_action",
    "parse_duration",
    "plan_actions",
    "step_actions",
]

DEFAULT_LADDER: tuple[str, ...] = ("hold+warn", "warn", "mute:24h", "remove")
HOLD = "hold"
_PLAIN_ACTIONS = frozenset({"hold", "warn", "remove"})
_TIMED_ACTIONS = frozenset({"mute", "ban"})
MAX_LADDER_STEPS = 10
MAX_DURATION = timedelta(days=366)

_DURATION_RE = re.compile(r"\s*(\d{1,6})\s*([a-z]+)\s*", re.IGNORECASE)
# every spelling of a unit -> (its length, its name in plain words)
_UNITS: dict[str, tuple[timedelta, str]] = {}
for _names, _unit, _word in (
    (("m", "min", "mins", "minute", "minutes"), timedelta(minutes=1), "minute"),
    (("h", "hr", "hrs", "hour", "hours"), timedelta(hours=1), "hour"),
    (("d", "day", "days"), timedelta(days=1), "day"),
    (("w", "wk", "week", "weeks"), timedelta(weeks=1), "week"),
):
    for _name in _names:
        _UNITS[_name] = (_unit, _word)


def parse_duration(text: str) -> timedelta:
    """Parse "30m", "24h", "7d", "2w" (or "24 hours"); ValueError says why not."""
    m = _DURATION_RE.fullmatch(text or "")
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(
            f"'{text}' is not a duration I understand: use a number and m, h, d or w, "
            "like 30m, 24h or 7d"
        )
    amount = int(m.group(1))
    if amount == 0:
        raise ValueError(f"'{text}' is zero: a duration must be at least 1 minute")
    duration = amount * _UNITS[m.group(2).lower()][0]
    if duration > MAX_DURATION:
        raise ValueError(f"'{text}' is too long: the longest allowed is 366 days")
    return duration


def _action_error(action: str) -> str | None:
    if action in _PLAIN_ACTIONS:
        return None
    kind, sep, duration = action.partition(":")
    if sep and kind in _TIMED_ACTIONS:
        try:
            parse_duration(duration)
        except ValueError as exc:
            return f"'{action}': {exc}"
        return None
    if kind in _TIMED_ACTIONS:
        return f"'{action}' needs a duration, like {kind}:24h"
    return (
        f"'{action}' is not an action; use hold, warn, mute:<time>, remove or ban:<time> "
        "(e.g. mute:24h)"
    )


def step_actions(step: str) -> tuple[str, ...]:
    """The actions of one ladder step: "hold+warn" -> ("hold", "warn")."""
    return tuple(a.strip().lower() for a in step.split("+") if a.strip())


def ladder_error(ladder: object) -> str | None:
    """Why `ladder` is not a usable ladder, or None. Phrased to follow a key name."""
    if isinstance(ladder, str) or not isinstance(ladder, Sequence):
        return "must be a list of steps, like [hold, warn, mute:24h, remove]"
    if not ladder:
        return "must have at least one step"
    if len(ladder) > MAX_LADDER_STEPS:
        return f"has more than {MAX_LADDER_STEPS} steps"
    for step in ladder:
        if not isinstance(step, str) or not step_actions(step):
            return f"has a step that is not text: {step!r}"
        actions = step_actions(step)
        if len(set(actions)) != len(actions):
            return f"repeats an action in step '{step}'"
        for action in actions:
            error = _action_error(action)
            if error:
                return f"has a bad step: {error}"
    return None


def next_action(ladder: Sequence[str], active_warnings: int) -> str:
    """The ladder step for a member with `active_warnings` unexpired warnings."""
    if not ladder:
        return HOLD
    return ladder[min(max(active_warnings, 0), len(ladder) - 1)]


def plan_actions(
    ladder: Sequence[str], active_warnings: int, relayed: bool = True
) -> tuple[str, ...]:
    """Actions to take, in order; a relayed post is always held first."""
    actions = step_actions(next_action(ladder, active_warnings))
    if relayed and HOLD not in actions:
        actions = (HOLD, *actions)
    return actions


def _duration_words(text: str) -> str:
    # Keep the moderator's unit: "24h" reads "24 hours", not "1 day".
    m = _DURATION_RE.fullmatch(text)
    if m is None or m.group(2).lower() not in _UNITS:
        return text
    amount = int(m.group(1))
    word = _UNITS[m.group(2).lower()][1]
    return f"{amount} {word}{'' if amount == 1 else 's'}"


def describe_action(action: str) -> str:
    """Plain words for one action, as a member would read it."""
    kind, _, duration = action.partition(":")
    if kind == "hold":
        return "post held for a moderator"
    if kind == "warn":
        return "a warning"
    if kind == "remove":
        return "removal from the group"
    if kind == "mute":
        return f"muted for {_duration_words(duration)}"
    if kind == "ban":
        return f"banned for {_duration_words(duration)}"
    return action


def describe_ladder(ladder: Sequence[str]) -> str:
    """Plain words, e.g. "1st time: a warning; after that: removal from the group"."""
    parts = []
    for i, step in enumerate(ladder):
        label = _ordinal(i + 1) + " time"
        if len(ladder) == 1:
            label = "each time"
        elif i == len(ladder) - 1:
            label = "after that"
        parts.append(f"{label}: " + " and ".join(describe_action(a) for a in step_actions(step)))
    return "; ".join(parts)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
